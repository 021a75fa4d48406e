"""Benchmark: scores back out. Event-to-webhook latency and deliveries per second.

    python benchmarks/bench_webhooks.py latency    [--accounts 1500] [--events 300]
    python benchmarks/bench_webhooks.py throughput [--accounts 1500]

- latency: a `leadscore serve` (its in-server dispatcher on) with a subscription to
  `lead.score_changed` (min_change 0) posting to a receiver in this process; one
  touchpoint event at a time. For each, the time from sending `POST /v1/events` to the
  webhook arriving, p50 and p99, against the `POST /v1/events` round trip itself
  measured in the same run (the ratio is the dispatcher's added delay).
- throughput: `leadscore load` of the CRM with a subscription registered first (every
  contact's first score is a message), then `leadscore dispatch --once` delivers them:
  deliveries per second, against plain sequential POSTs of the same bodies to the same
  receiver from one httpx client in the same run.

On SQLite and, when the machine's server answers, PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from bench_live import _drop_postgres, _fresh_postgres, _run, _seeded, _Server, _touch
from common import AS_OF, champion_and_leads, free_port

BIN = Path(sys.executable).parent


class Receiver:
    """Answers 204 and notes when each contact's message arrived."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.arrived: dict[str, float] = {}
        self.count = 0
        self.event = threading.Event()
        self.waiting: str | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                now = time.perf_counter()
                receiver.count += 1
                contact = json.loads(body)["data"].get("contact_id")
                receiver.arrived.setdefault(contact, now)
                if contact == receiver.waiting:
                    receiver.event.set()
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _stores(home: Path) -> tuple[list[tuple[str, str]], str | None]:
    stores = [("SQLite", f"sqlite:///{home / 'leadscore.db'}")]
    pg = _fresh_postgres()
    if pg:
        stores.append(("PostgreSQL", pg))
    return stores, pg


def bench_latency(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        _, bodies = champion_and_leads(home, args.accounts)
        stores, pg = _stores(home)
        try:
            for name, url in stores:
                _seeded(url, home / "crm")
                receiver = Receiver()
                server = _Server(url)
                try:
                    with httpx.Client(base_url=server.base, timeout=60) as c:
                        hook = {"url": receiver.url, "min_change": 0,
                                "events": ["lead.score_changed"]}  # fmt: skip
                        made = c.post("/v1/webhooks", json=hook)
                        assert made.status_code == 201, made.text
                        trip, delivered = [], []
                        for i in range(args.events + 30):
                            contact = bodies[i % len(bodies)]["contact"]["contact_id"]
                            receiver.arrived.pop(contact, None)
                            receiver.waiting = contact
                            receiver.event.clear()
                            body = {"touchpoints": [_touch(contact)], "as_of": AS_OF.isoformat()}
                            start = time.perf_counter()
                            r = c.post("/v1/events", json=body)
                            answered = time.perf_counter()
                            assert r.status_code == 200, r.text
                            if not any(
                                s["contact_id"] == contact and s["changed"]
                                for s in r.json()["rescored"]
                            ):
                                continue  # (its score did not change: no message)
                            if not receiver.event.wait(10):
                                raise SystemExit(f"no webhook for {contact} in 10 s")
                            if i >= 30:
                                trip.append((answered - start) * 1000)
                                delivered.append((receiver.arrived[contact] - start) * 1000)
                finally:
                    server.stop()
                    receiver.close()
                t50, t99 = np.percentile(trip, [50, 99])
                d50, d99 = np.percentile(delivered, [50, 99])
                print(
                    f"{name}: {len(delivered)} events; event to webhook p50 {d50:.2f} ms, "
                    f"p99 {d99:.2f} ms; the POST /v1/events round trip p50 {t50:.2f} ms, "
                    f"p99 {t99:.2f} ms; ratio p50 {d50 / t50:.2f}x"
                )
        finally:
            if pg:
                _drop_postgres(pg)


def bench_throughput(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        champion_and_leads(home, args.accounts, leads=10)
        stores, pg = _stores(home)
        try:
            for name, url in stores:
                receiver = Receiver()
                _run("db", "upgrade", "--database", url)
                code = (
                    "import sys; from serving.store.engine import Store; "
                    "from serving.webhooks import targets, signing; "
                    "s = Store(sys.argv[1]); targets.create(s, sys.argv[2], "
                    "['lead.score_changed'], 0.0, signing.new_secret(), None)"
                )
                subprocess.run([sys.executable, "-c", code, url, receiver.url], check=True)
                _run("load", "--data", str(home / "crm"), "--database", url,
                     "--as-of", AS_OF.isoformat())  # fmt: skip
                env = {**os.environ, "LEADSCORE_DATABASE_URL": url}
                start = time.perf_counter()
                subprocess.run([str(BIN / "leadscore"), "dispatch", "--once"], env=env,
                               check=True, stdout=subprocess.DEVNULL)  # fmt: skip
                seconds = time.perf_counter() - start
                sent = receiver.count
                # the baseline: the same number of bodies, posted one by one
                body = json.dumps({"type": "lead.score_changed", "data": {"contact_id": "x"}})
                start = time.perf_counter()
                with httpx.Client() as client:
                    for _ in range(sent):
                        client.post(receiver.url, content=body,
                                    headers={"content-type": "application/json"})  # fmt: skip
                plain = time.perf_counter() - start
                receiver.close()
                print(
                    f"{name}: dispatch --once delivered {sent:,} messages in {seconds:.2f} s "
                    f"({sent / seconds:,.0f}/s, process start included); plain sequential "
                    f"POSTs of as many bodies {sent / plain:,.0f}/s; ratio "
                    f"{(sent / seconds) / (sent / plain):.2f}x"
                )
        finally:
            if pg:
                _drop_postgres(pg)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--accounts", type=int, default=1500)
    lat.add_argument("--events", type=int, default=300)
    thr = sub.add_parser("throughput")
    thr.add_argument("--accounts", type=int, default=1500)
    args = parser.parse_args()
    {"latency": bench_latency, "throughput": bench_throughput}[args.what](args)


if __name__ == "__main__":
    main()
