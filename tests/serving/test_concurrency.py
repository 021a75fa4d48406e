"""Several workers, one truth: two uvicorn workers on PostgreSQL, many clients posting
events for the same accounts at once.

No update is lost (each lead's live score is the score of everything stored) and the
ledger is in event order: every ledger row saw exactly the account's touchpoints stored
before it (its own count of decision-stage touches equals the number of the account's
touchpoints received by then), so two workers never interleaved one account's events.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from features.crm.database import contacts, engine_url, touchpoints
from features.model.pyfunc import load_scorer
from serving.store.tables import current_scores, scores
from tests.serving.server import served

pytestmark = pytest.mark.slow

AS_OF = "2025-06-01T00:00:00Z"
ACCOUNTS, PEOPLE, CLIENTS, EACH = 3, 4, 8, 25


def test_two_workers_lose_no_update_and_keep_the_ledger_in_event_order(
    tracking: dict[str, str], postgres_url: str, tmp_path: Path
) -> None:
    env = {"MLFLOW_TRACKING_URI": tracking["tracking_uri"]}
    seed = {
        "accounts": [{"account_id": f"A{a}", "industry": "software"} for a in range(ACCOUNTS)],
        "contacts": [
            {
                "contact_id": f"C{a}-{p}",
                "account_id": f"A{a}",
                "created_at": "2025-01-01T00:00:00Z",
                "job_title": "Director of IT",
            }
            for a in range(ACCOUNTS)
            for p in range(PEOPLE)
        ],
        "as_of": AS_OF,
    }
    acked: list[str] = []
    lock = threading.Lock()
    errors: list[str] = []

    def client(k: int, base: str) -> None:
        rng = random.Random(k)
        with httpx.Client(base_url=base, timeout=60) as http:
            for n in range(EACH):
                touch_id = f"T{k}-{n}"
                body = {
                    "touchpoints": [{
                        "touchpoint_id": touch_id,
                        "contact_id": f"C{rng.randrange(ACCOUNTS)}-{rng.randrange(PEOPLE)}",
                        "occurred_at": f"2025-05-{rng.randrange(10, 28)}T10:00:00Z",
                        "type": "pricing_page_view",
                    }],
                    "as_of": AS_OF,
                }  # fmt: skip
                response = http.post("/v1/events", json=body)
                if response.status_code != 200 or response.json()["accepted"] != 1:
                    errors.append(response.text[:200])
                    continue
                with lock:
                    acked.append(touch_id)

    with served(["--workers", "2", "--database", postgres_url], str(tmp_path), env) as (base, _):
        assert httpx.post(f"{base}/v1/events", json=seed, timeout=60).status_code == 200
        threads = [threading.Thread(target=client, args=(k, base)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert errors == []
        live = {}
        recomputed = {}
        for a in range(ACCOUNTS):
            for p in range(PEOPLE):
                contact = f"C{a}-{p}"
                live[contact] = httpx.get(f"{base}/v1/leads/{contact}", timeout=30).json()
                recomputed[contact] = httpx.get(
                    f"{base}/v1/leads/{contact}", params={"as_of": AS_OF}, timeout=30
                ).json()
    assert len(acked) == CLIENTS * EACH

    # no lost update: the score each lead holds is the score of everything stored
    for contact, answer in live.items():
        assert answer["probability"] == pytest.approx(recomputed[contact]["probability"], abs=1e-12)
        assert answer["rules"]["points"] == recomputed[contact]["rules"]["points"]

    scorer, _ = load_scorer("models:/lead-scorer@champion")
    column = scorer.feature_names.index("account_decision_touches_30d")
    engine = sa.create_engine(engine_url(postgres_url))
    with engine.connect() as connection:
        stored = connection.execute(
            sa.select(touchpoints.c.touchpoint_id, touchpoints.c.received_us, contacts.c.account_id)
            .join(contacts, contacts.c.contact_id == touchpoints.c.contact_id)
        ).all()  # fmt: skip
        ledger = connection.execute(
            sa.select(scores.c.score_id, scores.c.account_id, scores.c.scored_us,
                      scores.c.features, scores.c.trigger)
            .where(scores.c.trigger == "event").order_by(scores.c.score_id)
        ).all()  # fmt: skip
        n_current = connection.execute(
            sa.select(sa.func.count()).select_from(current_scores)
        ).scalar_one()
    engine.dispose()
    assert sorted(r.touchpoint_id for r in stored) == sorted(acked)  # each once
    assert n_current == ACCOUNTS * PEOPLE

    received = defaultdict(list)
    for row in stored:
        received[row.account_id].append(row.received_us)
    last: dict[str, Any] = {}
    checked = 0
    for row in ledger:
        seen = float(np.frombuffer(row.features, dtype="<f8")[column])
        before = sum(t <= row.scored_us for t in received[row.account_id])
        # the row saw exactly the touchpoints stored before it, no more, no fewer
        assert seen == before, (row.score_id, seen, before)
        # and per account, the ledger's order is the order the events were stored in
        assert row.scored_us >= last.get(row.account_id, 0)
        last[row.account_id] = row.scored_us
        checked += 1
    assert checked > CLIENTS * EACH // 2
