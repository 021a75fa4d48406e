"""The replay proof: a CRM told as events ends where the whole export is.

The session champion's CRM is cut two months before its end; the cut is loaded with
`leadscore load`, then every later change is posted to a real server through
`POST /v1/events`, in time order, 500 items a call. At the end each lead's live score
equals what `leadscore score --data` gives on the whole export at the same as_of
(probability to 1e-9, points, grade, MQL), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from features.crm.database import engine_url
from features.crm.load import load_crm
from features.model.batch import resolve_as_of
from features.pipeline.snapshots import eligibility, to_epoch
from features.pipeline.store import EventStore
from leadscore.cli import main
from serving.app import create_app
from serving.config import Settings
from serving.store.tables import current_scores
from tests.serving.replay import bodies, split
from tests.serving.server import running_server

pytestmark = pytest.mark.slow


def test_events_replayed_in_order_end_where_the_whole_export_is(
    tracking: dict[str, str], store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crm = load_crm(tracking["data"])
    end = resolve_as_of(crm, None)
    export, events = split(crm, end - pd.Timedelta(days=30))
    cut = tmp_path / "cut"
    cut.mkdir()
    for name, frame in export.items():
        frame.to_csv(cut / f"{name}.csv", index=False)
    assert len(events) > 2_000  # a real stream: contacts, deals, closings, touchpoints
    assert {e.table for e in events} == {"accounts", "contacts", "opportunities", "touchpoints"}

    assert main(["load", "--data", str(cut), "--database", store_url,
                 "--as-of", end.isoformat()]) == 0  # fmt: skip
    settings = Settings(alias_poll_seconds=0, database_url=store_url, rescore_every_seconds=0)
    rejected = 0
    with running_server(create_app(settings)) as base, httpx.Client(base_url=base) as client:
        for body in bodies(events, 500, as_of=end.isoformat()):
            response = client.post("/v1/events", json=body, timeout=120)
            assert response.status_code == 200, response.text
            rejected += len(response.json()["rejected"])
    assert rejected == 0

    out = tmp_path / "scores.csv"
    assert main(["score", "--data", tracking["data"], "--as-of", end.isoformat(),
                 "--out", str(out)]) == 0  # fmt: skip
    capsys.readouterr()
    batch = pd.read_csv(out).set_index("contact_id")
    engine = sa.create_engine(engine_url(store_url))
    with engine.connect() as connection:
        live = pd.DataFrame(connection.execute(sa.select(current_scores)).mappings().all())
    engine.dispose()
    live = live.set_index("contact_id")

    # every lead the batch scores that was active in the last year has a live score at END
    store = EventStore.from_crm(crm)
    masks = eligibility(store, to_epoch(end), active_days=365)
    active = set(store.contact_ids[masks["active"] & masks["created"] & ~masks["blocked"]])
    assert active <= set(live.index)
    both = batch.index.intersection(live.index)
    assert len(both) >= len(active) > 500
    live, batch = live.loc[both], batch.loc[both]
    assert (live["as_of_us"] == int(end.value // 1_000)).all()
    np.testing.assert_allclose(live["probability"], batch["probability"], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(live["points"].round(2), batch["rule_points"])
    np.testing.assert_array_equal(live["grade"], batch["grade"])
    np.testing.assert_array_equal(live["mql"].astype(bool), batch["mql"].astype(bool))
