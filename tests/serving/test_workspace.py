"""The marketing workspace (/ui): sign-in, pages, the what-if editor, applying a matrix.

The app runs over a copy of one lead store seeded (`leadscore load`) from the session
champion's CRM; the champion was trained by this version, so it carries its holdout.
The browser tests (Playwright driving Debian's Chromium on a real uvicorn server) are
in `test_workspace_browser.py`.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from serving.store.tables import current_scores, point_matrices, rescore_runs
from serving.workspace.session import user_entry
from tests.serving.db import count, rows, wait_for

LEADSCORE = str(Path(sys.executable).parent / "leadscore")
PASSWORDS = {"ana": "marketing-pass", "root": "admin-pass"}
USERS = [
    user_entry("ana", "marketing", PASSWORDS["ana"]),
    user_entry("root", "admin", PASSWORDS["root"]),
]
PAGES = ["/ui/matters", "/ui/compare", "/ui/matrix", "/ui/leads", "/ui/model"]


@pytest.fixture
def store_url(seeded_store: Path, tmp_path: Path) -> str:
    """This test's own copy of the seeded store (a test may apply a matrix)."""
    copy = tmp_path / "store.db"
    shutil.copy(seeded_store, copy)
    return f"sqlite:///{copy}"


@pytest.fixture
def ui(make_app: Callable[..., Any], store_url: str) -> Iterator[Callable[..., Any]]:
    def make(**overrides: Any) -> Any:
        settings = {"database_url": store_url, "ui_users": USERS, "ui_secret": "s" * 32}
        return make_app(**(settings | overrides))

    yield make


def sign_in(client: Any, user: str, password: str) -> Any:
    return client.post(
        "/ui/login",
        content=f"user={user}&password={password}&next=/ui/leads",
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found
    return found.group(1)


def test_every_page_needs_a_session_and_the_login_leads_back(ui: Callable[..., Any]) -> None:
    client = ui()
    for page in [*PAGES, "/ui/leads/C1", "/ui/accounts/A1"]:
        answer = client.get(page, follow_redirects=False)
        assert answer.status_code == 303, page
        assert answer.headers["location"].startswith("/ui/login?next="), page
    assert sign_in(client, "ana", "wrong").headers["location"].startswith("/ui/login?failed=1")
    assert (
        sign_in(client, "nobody", PASSWORDS["ana"])
        .headers["location"]
        .startswith("/ui/login?failed=1")
    )
    answer = sign_in(client, "ana", PASSWORDS["ana"])
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/leads"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/ui" in cookie
    for page in PAGES:
        page_answer = client.get(page)
        assert page_answer.status_code == 200, page
        assert "default-src 'self'" in page_answer.headers["content-security-policy"]
    # a forged cookie (the role changed by hand) is no session
    value = client.cookies.get("ls_session")
    body, signature = value.rsplit(".", 1)
    client.cookies.set("ls_session", f"{body}x.{signature}", path="/ui")
    assert client.get("/ui/matters", follow_redirects=False).status_code == 303
    # logging out ends the session
    sign_in(client, "ana", PASSWORDS["ana"])
    assert client.get("/ui/matters").status_code == 200
    client.post("/ui/logout", follow_redirects=False)
    assert client.get("/ui/matters", follow_redirects=False).status_code == 303
    # a login that would send the user to another site goes to the workspace instead
    evil = client.post(
        "/ui/login",
        content=f"user=ana&password={PASSWORDS['ana']}&next=https://evil.example/",
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert evil.headers["location"] == "/ui/matters"


def test_api_keys_sign_in_with_their_roles(ui: Callable[..., Any]) -> None:
    client = ui(ui_users=[], api_keys=["reader-key"], admin_keys=["admin-key"])
    assert sign_in(client, "", "reader-key").status_code == 303
    assert "marketing" in client.get("/ui/matters").text
    assert sign_in(client, "", "admin-key").status_code == 303
    html = client.get("/ui/matrix").text
    assert "Apply to live scores" in html


def test_what_matters_says_it_in_words_with_the_holdouts_rates(ui: Callable[..., Any]) -> None:
    from features.pipeline.registry import label

    client = ui()
    sign_in(client, "ana", PASSWORDS["ana"])
    html = client.get("/ui/matters").text
    signals = re.findall(r'<summary class="label">([^<]+)</summary>', html)
    assert len(signals) >= 10
    importance = client.get("/v1/model/feature-importance").json()["features"]
    top = max(importance, key=lambda f: f["mean_abs_shap"])
    assert signals[0] == label(top["feature"])  # ranked as the model's own importance
    sentences = re.findall(r"convert ([\d.,]+)x (more|less) often", html)
    assert len(sentences) >= 5
    # in Russian: the labels, the directions, the sentences
    ru = client.get("/ui/matters?lang=ru").text
    assert label(top["feature"], "ru") in ru and "раза" in ru and "Что важно" in ru
    # the choice is remembered; Accept-Language decides for a new visitor
    assert "Что важно" in client.get("/ui/matters").text
    client.cookies.delete("ls_lang")
    assert (
        "Что важно" in client.get("/ui/matters", headers={"accept-language": "ru-RU,ru;q=0.9"}).text
    )
    assert "What matters" in client.get("/ui/matters?lang=en").text


def test_points_vs_model_on_the_holdout(ui: Callable[..., Any]) -> None:
    client = ui()
    sign_in(client, "ana", PASSWORDS["ana"])
    html = client.get("/ui/compare").text
    assert html.count("<svg") == 2  # lift and capture
    auc = re.findall(r"<td>(0\.\d{3})</td></tr>", html)
    assert len(auc) == 2
    model_auc = client.get("/v1/model").json()["holdout_metrics"]["roc_auc"]
    assert float(auc[1]) == pytest.approx(model_auc, abs=0.0006)  # the model's own holdout AUC


def test_the_what_if_editor_agrees_with_the_api_and_refuses_bad_values(
    ui: Callable[..., Any],
) -> None:
    client = ui()
    sign_in(client, "ana", PASSWORDS["ana"])
    csrf = csrf_of(client.get("/ui/matrix").text)
    edit = {"mql_threshold": 60, "rules": {"demo_request": {"points": 80, "cap": None}}}
    answer = client.post("/ui/matrix/what-if", json=edit, headers={"x-csrf-token": csrf})
    assert answer.status_code == 200, answer.text
    edited = answer.json()
    unchanged = client.post("/ui/matrix/what-if", json={}, headers={"x-csrf-token": csrf}).json()
    assert edited["mql_share"] > unchanged["mql_share"]  # a lower threshold flags more
    # the downloaded YAML, measured by the API, gives the same numbers
    form = "&".join(
        [f"csrf={csrf}", "mql_threshold=60", "points::demo_request=80", "cap::demo_request="]
    )
    download = client.post(
        "/ui/matrix/download",
        content=form,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert download.status_code == 200
    assert download.headers["content-disposition"] == 'attachment; filename="points_matrix.yaml"'
    matrix = yaml.safe_load(download.text)
    demo = next(r for r in matrix["rules"] if r["name"] == "demo_request")
    assert matrix["mql_threshold"] == 60 and demo["points"] == 80 and "cap" not in demo
    api = client.post("/v1/model/points-what-if", json=matrix)
    assert api.status_code == 200 and api.json() == edited
    # the share the page shows for the matrix in effect is the API's for it
    current = client.post("/v1/model/points-what-if", json=yaml.safe_load(
        client.post("/ui/matrix/download", content=f"csrf={csrf}",
                    headers={"content-type": "application/x-www-form-urlencoded"}).text
    )).json()  # fmt: skip
    assert current == unchanged
    # bad values: which field, what was expected; nothing echoed
    for bad, where in [
        ({"mql_threshold": "NaN"}, "mql_threshold: expected a finite number"),
        ({"mql_threshold": "Infinity"}, "mql_threshold: expected a finite number"),
        ({"rules": {"no_such_rule": {"points": 1}}}, "rules.no_such_rule: not a rule"),
        ({"rules": {"demo_request": {"points": "lots"}}}, "rules.demo_request.points"),
        ({"rules": {"demo_request": {"cap": -5}}}, "cap"),
    ]:
        refused = client.post("/ui/matrix/what-if", json=bad, headers={"x-csrf-token": csrf})
        assert refused.status_code == 422, bad
        assert where in refused.json()["detail"], refused.json()
    # the CSRF token is required
    assert client.post("/ui/matrix/what-if", json={}).status_code == 403
    # a matrix that tests other conditions cannot be measured on these matches
    matrix["rules"][0]["types"] = ["meeting"]
    changed = client.post("/v1/model/points-what-if", json=matrix)
    assert changed.status_code == 422
    assert "its condition or group changed" in changed.json()["detail"][0]["msg"]
    assert client.post("/v1/model/points-what-if", content=b"{").status_code == 422


def test_an_admin_applies_a_matrix_it_is_recorded_and_every_lead_is_rescored(
    ui: Callable[..., Any], store_url: str
) -> None:
    client = ui()
    mql_before = count(store_url, current_scores, current_scores.c.mql)
    sign_in(client, "ana", PASSWORDS["ana"])
    csrf = csrf_of(client.get("/ui/matrix").text)
    form = {"content": f"csrf={csrf}&mql_threshold=40",
            "headers": {"content-type": "application/x-www-form-urlencoded"}}  # fmt: skip
    assert "Only an admin can apply" in client.get("/ui/matrix").text
    assert client.post("/ui/matrix/apply", **form).status_code == 403  # marketing reads only
    assert count(store_url, point_matrices) == 0
    sign_in(client, "root", PASSWORDS["root"])
    csrf = csrf_of(client.get("/ui/matrix").text)
    form["content"] = f"csrf={csrf}&mql_threshold=40"
    assert client.post("/ui/matrix/apply", content="mql_threshold=40", headers=form["headers"]).status_code == 403  # fmt: skip
    applied = client.post("/ui/matrix/apply", follow_redirects=False, **form)
    assert applied.status_code == 303 and applied.headers["location"] == "/ui/matrix?applied=1"
    (row,) = rows(store_url, sa.select(point_matrices))
    assert (
        row.applied_by == "root" and row.model_version == client.get("/v1/model").json()["version"]
    )
    assert yaml.safe_load(row.rules_yaml)["mql_threshold"] == 40
    wait_for(lambda: count(store_url, rescore_runs, rescore_runs.c.reason == "matrix",
                           rescore_runs.c.finished_us.is_not(None)) == 1, 120)  # fmt: skip
    mql_after = count(store_url, current_scores, current_scores.c.mql)
    assert mql_after > mql_before  # a lower threshold: more MQLs, in the live store
    page = client.get("/ui/matrix?applied=1").text
    assert "applied by root" in page and 'value="40.0"' in page
    # a new event is scored with the matrix in effect
    lead = rows(store_url, sa.select(current_scores.c.contact_id).limit(1))[0][0]
    event = {"touchpoint_id": "ws-1", "contact_id": lead, "type": "demo_request",
             "occurred_at": dt.datetime.now(dt.UTC).isoformat()}  # fmt: skip
    assert client.post("/v1/events", json={"touchpoints": [event]}).status_code == 200
    assert client.get(f"/v1/leads/{lead}").json()["rules"]["threshold"] == 40


def test_leads_lead_and_account_pages_read_the_live_store(
    ui: Callable[..., Any], store_url: str
) -> None:
    client = ui()
    sign_in(client, "ana", PASSWORDS["ana"])
    html = client.get("/ui/leads").text
    listed = re.findall(r'<a href="/ui/leads/([^"]+)">', html)
    assert listed
    mql = client.get("/v1/leads", params={"mql": "true", "limit": 50}).json()["items"]
    assert listed[: len(mql)] == [lead["contact_id"] for lead in mql]  # the MQLs first, best first
    graded = client.get("/ui/leads", params={"grade": "A1"}).text
    grades = set(re.findall(r"<td>([A-D][1-4])</td>", graded))
    assert grades <= {"A1"}
    lead = listed[0]
    page = client.get(f"/ui/leads/{lead}").text
    history = client.get(f"/v1/leads/{lead}/history").json()["entries"]
    shown = [float(v) for v in re.findall(r'class="p" data-value="([^"]+)"', page)]
    assert shown == [h["probability"] for h in reversed(history)]
    assert "<svg" in page and "Points breakdown" in page
    account = client.get(f"/v1/leads/{lead}").json()["account"]
    if account:
        acc = client.get(f"/ui/accounts/{account['account_id']}").text
        assert f"/ui/leads/{lead}" in acc
    assert "No such lead" in client.get("/ui/leads/NOPE-404").text
    assert client.get("/ui/leads", params={"grade": "Z9", "source": "x" * 5000}).status_code == 200


def test_the_model_page_shows_the_champion_and_the_promotions(ui: Callable[..., Any]) -> None:
    client = ui()
    sign_in(client, "ana", PASSWORDS["ana"])
    html = client.get("/ui/model").text
    version = client.get("/v1/model").json()["version"]
    assert f"v{version} (" in html
    assert "there was no champion yet" in html  # the session champion's promotion, recorded


def test_a_bad_user_entry_is_refused_at_start_and_ui_user_makes_good_ones(
    ui: Callable[..., Any],
) -> None:
    from serving.workspace.session import UserEntryError

    with pytest.raises(UserEntryError, match=r"entry 1: expected name:role:hash"):
        ui(ui_users=["ana:boss:pbkdf2_sha256$1$00$00"])
    made = subprocess.run(
        [LEADSCORE, "ui-user", "eve", "--role", "admin"],
        input="s3cret\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert made.startswith("eve:admin:pbkdf2_sha256$") and "s3cret" not in made
    client = ui(ui_users=[made])
    assert sign_in(client, "eve", "s3cret").headers["location"] == "/ui/leads"
