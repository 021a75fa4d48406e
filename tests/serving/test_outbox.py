"""The outbox proof: nothing lost, duplicates only with the same id, order kept per lead.

The session champion's CRM is cut a month before its end and loaded; a subscription to
MQL crossings and score moves is registered; then every later change is posted to a
real server in time order. The messages are delivered by `leadscore dispatch` processes
(two, on PostgreSQL, sharing the work) to a receiver that fails 30 % of calls at random
and is down (socket closed) for 10 s in the middle, while a dispatcher is killed with
SIGKILL and restarted three times. Afterwards:
- every MQL crossing in the ledger reached the receiver (2xx), each exactly as written;
- a message that arrived twice had the same webhook-id and the same body;
- per lead, messages were first received in the order they were written.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from features.crm.database import engine_url
from features.crm.load import load_crm
from features.model.batch import resolve_as_of
from leadscore.cli import main
from serving.app import create_app
from serving.config import Settings
from serving.store.outbox import timestamp
from serving.store.tables import outbox, scores
from tests.serving.receiver import Received, Receiver
from tests.serving.replay import bodies, split
from tests.serving.server import running_server

pytestmark = pytest.mark.slow

FAST = {
    "LEADSCORE_WEBHOOK_RETRY_BASE_SECONDS": "0.05",
    "LEADSCORE_WEBHOOK_RETRY_CAP_SECONDS": "0.5",
    "LEADSCORE_WEBHOOK_MAX_ATTEMPTS": "100",
    "LEADSCORE_WEBHOOK_TIMEOUT_SECONDS": "1",
    "LEADSCORE_WEBHOOK_LEASE_SECONDS": "3",
    "LEADSCORE_DISPATCH_POLL_SECONDS": "0.05",
}


def test_a_flaky_receiver_gets_every_mql_crossing_once_per_id_in_order(
    tracking: dict[str, str], store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crm = load_crm(tracking["data"])
    end = resolve_as_of(crm, None)
    export, events = split(crm, end - pd.Timedelta(days=12))
    cut = tmp_path / "cut"
    cut.mkdir()
    for name, frame in export.items():
        frame.to_csv(cut / f"{name}.csv", index=False)
    assert main(["load", "--data", str(cut), "--database", store_url,
                 "--as-of", end.isoformat()]) == 0  # fmt: skip
    capsys.readouterr()

    rng = random.Random(7)
    lock = threading.Lock()

    def respond(_request: Received) -> tuple[int, bytes, dict[str, str]]:
        time.sleep(0.003)  # a receiver that takes a moment: kills land mid-delivery
        with lock:
            fail = rng.random() < 0.30
        return (500, b'{"error": "flaky"}', {}) if fail else (200, b"{}", {})

    receiver = Receiver(respond)
    receiver.up()
    env = {**os.environ, **FAST, "LEADSCORE_DATABASE_URL": store_url}
    command = [str(Path(sys.executable).parent / "leadscore"), "dispatch"]
    workers = 2 if store_url.startswith("postgresql") else 1

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command, env=env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    dispatchers = [start() for _ in range(workers)]
    stop = threading.Event()
    kills: list[float] = []

    def chaos() -> None:
        started = time.monotonic()
        outage_done = False
        while not stop.is_set():
            time.sleep(1.5)
            if len(kills) < 3:
                os.killpg(dispatchers[0].pid, signal.SIGKILL)
                dispatchers[0].wait()
                kills.append(time.monotonic() - started)
                dispatchers[0] = start()
            if not outage_done and time.monotonic() - started > 3:
                receiver.down()
                time.sleep(5)  # longer than the lease: deliveries in flight fail
                receiver.up()
                outage_done = True
            if len(kills) >= 3 and outage_done:
                return

    settings = Settings(
        alias_poll_seconds=0, database_url=store_url, rescore_every_seconds=0, dispatch=False
    )
    chaos_thread = threading.Thread(target=chaos, daemon=True)
    try:
        with running_server(create_app(settings)) as base, httpx.Client(base_url=base) as client:
            hook = client.post(
                "/v1/webhooks",
                json={"url": receiver.url + "/in", "min_change": 0.02,
                      "events": ["lead.mql_reached", "lead.mql_lost", "lead.score_changed"]},
            ).json()  # fmt: skip
            chaos_thread.start()
            for body in bodies(events, 250, as_of=end.isoformat()):
                response = client.post("/v1/events", json=body, timeout=120)
                assert response.status_code == 200, response.text
            chaos_thread.join(timeout=60)
            engine = sa.create_engine(engine_url(store_url))

            def pending() -> int:
                with engine.connect() as connection:
                    return int(
                        connection.execute(
                            sa.select(sa.func.count())
                            .select_from(outbox)
                            .where(outbox.c.status != "delivered")
                        ).scalar_one()
                    )

            deadline = time.monotonic() + 180
            while pending() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert pending() == 0, "every message delivered (none pending, none dead)"
    finally:
        stop.set()
        for process in dispatchers:
            with_signal(process)
        receiver.down()
    assert len(kills) == 3

    with engine.connect() as connection:
        ledger = connection.execute(
            sa.select(
                scores.c.contact_id, scores.c.mql, scores.c.scored_us, scores.c.trigger
            ).order_by(scores.c.score_id)
        ).all()
        written = connection.execute(
            sa.select(outbox.c.msg_id, outbox.c.lead_key, outbox.c.message_id, outbox.c.body)
        ).all()
    engine.dispose()

    # the MQL crossings the ledger holds since the subscription (the replay's events)
    crossings = set()
    last: dict[str, bool] = {}
    for contact, mql, scored_us, trigger in ledger:
        if trigger == "event" and mql and not last.get(contact, False):
            crossings.add((contact, timestamp(scored_us)))
        last[contact] = bool(mql)
    assert len(crossings) >= 5, "the replay must cross the MQL line a few times"

    ok = receiver.ok()
    assert len(ok) < len(receiver.requests), "the receiver did fail"
    by_id: dict[str, set[bytes]] = defaultdict(set)
    for request in ok:
        by_id[request.headers["webhook-id"]].add(request.body)
    assert all(len(b) == 1 for b in by_id.values()), "a resent message is the same message"
    assert set(by_id) == {row.msg_id for row in written}, "0 lost, nothing unknown"
    reached = {
        (d["data"]["contact_id"], d["data"]["scored_at"])
        for d in (json.loads(next(iter(b))) for b in by_id.values())
        if d["type"] == "lead.mql_reached"
    }
    assert reached == crossings

    # per lead, the first arrival of each message follows the order it was written in
    order = {row.msg_id: (row.lead_key, row.message_id) for row in written}
    seen: set[str] = set()
    arrived: dict[str, list[int]] = defaultdict(list)
    for request in ok:
        msg_id = request.headers["webhook-id"]
        if msg_id not in seen:
            seen.add(msg_id)
            lead, position = order[msg_id]
            arrived[lead].append(position)
    assert all(p == sorted(p) for p in arrived.values())
    assert hook["webhook_id"]


def with_signal(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
