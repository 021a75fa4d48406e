"""Durability: what a 2xx acknowledged survives SIGKILL, exactly once.

A real `leadscore serve` process on a SQLite store takes single-touchpoint events from
two clients while it is killed with SIGKILL and restarted three times. A client resends
whatever got no answer (the CRM's retry). Afterwards every acknowledged touchpoint is in
the store once, the ledger rows its answer reported are there, and the database is whole.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from features.crm.database import touchpoints
from serving.store.tables import current_scores, scores
from tests.serving.server import served

pytestmark = pytest.mark.slow

SEED = {
    "accounts": [{"account_id": f"A{i}", "industry": "software"} for i in range(4)],
    "contacts": [
        {"contact_id": f"C{i}", "account_id": f"A{i % 4}", "created_at": "2025-01-01T00:00:00Z"}
        for i in range(12)
    ],
}


def test_acknowledged_events_survive_sigkill_exactly_once(
    tracking: dict[str, str], sqlite_url: str, tmp_path: Path
) -> None:
    env = {"MLFLOW_TRACKING_URI": tracking["tracking_uri"]}
    acked: dict[str, dict[str, Any]] = {}  # touchpoint id -> the 2xx answer
    unanswered: dict[str, dict[str, Any]] = {}  # touchpoint id -> the body sent
    lock = threading.Lock()
    stop = threading.Event()

    def client(name: str, base: list[str]) -> None:
        n = 0
        rng = random.Random(name)
        while not stop.is_set():
            touch_id = f"{name}-{n}"
            n += 1
            body = {
                "touchpoints": [{"touchpoint_id": touch_id, "contact_id": f"C{rng.randrange(12)}",
                                 "occurred_at": "2025-05-01T10:00:00Z", "type": "page_view"}],
                "as_of": "2025-06-01T00:00:00Z",
            }  # fmt: skip
            try:
                response = httpx.post(f"{base[0]}/v1/events", json=body, timeout=10)
            except httpx.HTTPError:  # killed mid-request: no answer, so the CRM retries later
                with lock:
                    unanswered[touch_id] = body
                time.sleep(0.05)
                continue
            assert response.status_code == 200, response.text
            with lock:
                acked[touch_id] = response.json()

    with served(["--database", sqlite_url], str(tmp_path), env) as (base, restart):
        assert httpx.post(f"{base}/v1/events", json=SEED, timeout=30).json()["accepted"] == 16
        where = [base]
        workers = [threading.Thread(target=client, args=(n, where)) for n in ("a", "b")]
        for w in workers:
            w.start()
        try:
            for _ in range(3):
                time.sleep(random.uniform(1.0, 2.5))
                restart()
            time.sleep(1.0)
        finally:
            stop.set()
            for w in workers:
                w.join(30)
        # the CRM's retry: everything that got no answer is sent again
        for touch_id, body in sorted(unanswered.items()):
            answer = httpx.post(f"{base}/v1/events", json=body, timeout=30).json()
            # stored before the kill (a duplicate) or stored now: once either way
            assert (answer["accepted"], answer["duplicates"], answer["rejected"]) in (
                (1, 0, []),
                (0, 1, []),
            ), touch_id
            acked[touch_id] = answer

    assert len(acked) > 50, "too few events got through to prove anything"
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as connection:
        stored = [r[0] for r in connection.execute(sa.select(touchpoints.c.touchpoint_id))]
        ledger = {
            (r.trigger_id, r.contact_id)
            for r in connection.execute(sa.select(scores.c.trigger_id, scores.c.contact_id))
        }
        dangling = connection.execute(
            sa.select(sa.func.count())
            .select_from(current_scores)
            .outerjoin(scores, scores.c.score_id == current_scores.c.score_id)
            .where(scores.c.score_id.is_(None))
        ).scalar_one()
        integrity = connection.exec_driver_sql("PRAGMA integrity_check").scalar_one()
    engine.dispose()
    assert integrity == "ok"
    assert len(stored) == len(set(stored))  # exactly once
    assert set(acked) <= set(stored)  # every 2xx is there
    for answer in acked.values():  # and so are the ledger rows its answer announced
        for rescored in answer["rescored"]:
            if rescored["changed"]:
                assert (answer["event_id"], rescored["contact_id"]) in ledger
    assert dangling == 0
    print(f"\ndurability: {len(acked)} events acknowledged ({len(unanswered)} resent after a "
          f"kill left them unanswered), 3 SIGKILLs, {len(stored)} touchpoints stored once")  # fmt: skip
