"""The workspace in a real browser: Playwright driving Debian's Chromium, a real uvicorn
server over the champion's CRM loaded into a lead store.

Every page loads with no request leaving 127.0.0.1 and no console error; the what-if
editor's MQL share is what the API computes for the same matrix; a lead's history is
the ledger's; Russian pages speak Russian; without a session a page leads to the login.
Each page's screenshot is written to docs/workspace/ (docs/workspace.md shows them).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from serving.app import create_app
from serving.config import Settings
from serving.store.tables import scores
from tests.serving.db import rows
from tests.serving.server import running_server
from tests.serving.test_workspace import PASSWORDS, USERS

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).parents[2] / "docs" / "workspace"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture
def server(
    tracking: dict[str, str], seeded_store: Path, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    copy = tmp_path / "store.db"
    shutil.copy(seeded_store, copy)
    url = f"sqlite:///{copy}"
    settings = Settings(
        database_url=url, ui_users=USERS, ui_secret="t" * 32,
        alias_poll_seconds=0, rescore_every_seconds=0,
    )  # fmt: skip
    with running_server(create_app(settings)) as base:
        yield base, url


@pytest.mark.skipif(
    not shutil.which(CHROMIUM),
    reason=f"SKIPPED LOUDLY: no Chromium at {CHROMIUM} (make test installs it)",
)
def test_the_workspace_in_a_browser(server: tuple[str, str]) -> None:
    from playwright.sync_api import sync_playwright

    base, store_url = server
    requested: list[str] = []
    problems: list[Any] = []
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
        page.on("request", lambda request: requested.append(request.url))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("requestfailed", lambda r: problems.append((r.url, r.failure)))

        # without a session, a page leads to the login, and back after it
        page.goto(f"{base}/ui/compare")
        assert page.url.startswith(f"{base}/ui/login?next=")
        page.screenshot(path=SHOTS / "login.png")
        page.fill("input[name=user]", "root")
        page.fill("input[name=password]", PASSWORDS["root"])
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/ui/compare")

        for name in ("matters", "compare", "matrix", "leads", "model"):
            page.goto(f"{base}/ui/{name}")
            assert page.locator("h1").count() == 1
            page.screenshot(path=SHOTS / f"{name}.png")

        # a lead's page: its history is the ledger's (a few events after the load first)
        page.goto(f"{base}/ui/leads")
        lead = page.locator("table.leads a[href^='/ui/leads/']").first.inner_text()
        for k, (type_, day) in enumerate(
            [("pricing_page_view", "2026-01-05"), ("webinar_attendance", "2026-01-19"),
             ("meeting", "2026-02-02"), ("unsubscribe", "2026-03-02")]
        ):  # fmt: skip
            event = {"touchpoint_id": f"ws-{k}", "contact_id": lead, "type": type_,
                     "occurred_at": f"{day}T10:00:00Z"}  # fmt: skip
            sent = httpx.post(
                f"{base}/v1/events", json={"touchpoints": [event], "as_of": f"{day}T12:00:00Z"}
            )
            assert sent.status_code == 200, sent.text
        page.goto(f"{base}/ui/leads/{lead}")
        page.wait_for_selector("#ledger")
        shown = [float(v) for v in page.locator("#ledger td.p").evaluate_all(
            "cells => cells.map(c => c.dataset.value)")]  # fmt: skip
        ledger = rows(store_url, sa.select(scores.c.answer).where(scores.c.contact_id == lead)
                      .order_by(scores.c.score_id.desc()))  # fmt: skip
        assert shown == [yaml.safe_load(r.answer)["probability"] for r in ledger]
        page.screenshot(path=SHOTS / "lead.png")
        account = page.locator("p.headline a[href^='/ui/accounts/']")
        if account.count():
            account.click()
            page.wait_for_selector("table.leads")
            page.screenshot(path=SHOTS / "account.png")

        # the what-if editor: a value changes, the share shown is the API's for that matrix
        page.goto(f"{base}/ui/matrix")
        share = page.locator("#edited-share")
        before = share.get_attribute("data-value")
        page.fill("#mql_threshold", "60")
        page.wait_for_function(
            "before => document.getElementById('edited-share').dataset.value !== before",
            arg=before,
            timeout=20_000,
        )
        shown_share = float(share.get_attribute("data-value") or "nan")
        assert shown_share > float(before or "inf")
        form = {"csrf": page.locator("input[name=csrf]").input_value(), "mql_threshold": "60"}
        matrix = yaml.safe_load(page.request.post(f"{base}/ui/matrix/download", form=form).text())
        api = httpx.post(f"{base}/v1/model/points-what-if", json=matrix).json()
        assert shown_share == api["mql_share"]
        assert share.inner_text().replace("\u00a0", " ") == f"{100 * api['mql_share']:.2f} %"
        page.screenshot(path=SHOTS / "matrix-what-if.png")

        # Russian: labels from the feature registry, the page's own words
        page.goto(f"{base}/ui/matters?lang=ru")
        assert page.locator("h1").inner_text() == "Что важно"
        from features.pipeline.registry import FEATURES

        labels = set(page.locator("summary.label").all_inner_texts())
        assert labels and labels <= {f.label_ru for f in FEATURES}
        page.screenshot(path=SHOTS / "matters-ru.png")
        page.goto(f"{base}/ui/leads")  # the language is remembered
        assert page.locator("h1").inner_text() == "Лиды сегодня"

        # logging out ends it (and lands on the login page: waited for, so that the next
        # navigation does not abort the redirect's request half way, a failed request)
        page.click("header button[type=submit]")
        page.wait_for_url(f"{base}/ui/login")
        page.goto(f"{base}/ui/matters")
        assert "/ui/login" in page.url
        browser.close()
    outside = [u for u in requested if not u.startswith((base, "data:"))]
    assert requested and not outside, outside
    assert not problems, problems
