"""Benchmark: the live store. Events in, rescored, written to the ledger.

    python benchmarks/bench_live.py event   [--accounts 1500] [--requests 1000]
    python benchmarks/bench_live.py intake  [--accounts 1500] [--batches 20] [--workers 1]
    python benchmarks/bench_live.py rescore [--accounts 22000]
    python benchmarks/bench_live.py load    [--accounts 105000]

- event: one touchpoint event for a lead of the CRM (ingest + rescore of its account +
  ledger), server-side time from the Server-Timing header, p50 and p99, against
  `POST /v1/score` of the same lead with its whole history sent, measured in the same
  run on the same server: on SQLite and on PostgreSQL.
- intake: batches of 500 touchpoint events for random contacts, one client per worker,
  events per second with rescoring, on SQLite and on PostgreSQL.
- rescore: `leadscore rescore` of every active lead of a large store (SQLite).
- load: `leadscore load` of a large export into SQLite: time and peak memory (its own
  process, measured by the kernel: ru_maxrss), against reading the same export.

PostgreSQL runs need the machine's server (127.0.0.1:5432, trust auth); without it they
are skipped and say so.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from common import AS_OF, champion_and_leads, free_port, wait_until_up

BIN = Path(sys.executable).parent
POSTGRES = os.environ.get("LEADSCORE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _fresh_postgres() -> str | None:
    try:
        import psycopg

        name = f"leadscore_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(POSTGRES, autocommit=True, connect_timeout=2) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        print(f"PostgreSQL is not reachable ({exc}): its figures are NOT measured")
        return None
    return POSTGRES.rsplit("/", 1)[0] + "/" + name


def _drop_postgres(url: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def _run(*args: str) -> str:
    done = subprocess.run(
        [str(BIN / "leadscore"), *args], check=False, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"leadscore {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def _seeded(url: str, data: Path) -> None:
    _run("db", "upgrade", "--database", url)
    _run("load", "--data", str(data), "--database", url, "--as-of", AS_OF.isoformat())


class _Server:
    def __init__(self, url: str, workers: int = 1) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "LEADSCORE_ALIAS_POLL_SECONDS": "0",
            "LEADSCORE_RESCORE_EVERY_SECONDS": "0",
            "LEADSCORE_MAX_BODY_BYTES": "100000000",
        }
        self.process = subprocess.Popen(
            [
                str(BIN / "leadscore"),
                "serve",
                "--port",
                str(self.port),
                "--database",
                url,
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        wait_until_up(f"{self.base}/readyz")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)


def _server_ms(response: httpx.Response) -> float:
    timing = response.headers.get("server-timing", "")
    return float(timing.split("dur=")[1]) if "dur=" in timing else float("nan")


def _touch(contact: str) -> dict[str, Any]:
    day = random.randrange(1, 28)
    return {
        "touchpoint_id": uuid.uuid4().hex,
        "contact_id": contact,
        "occurred_at": f"2025-05-{day:02d}T10:00:00Z",
        "type": random.choice(
            ["pricing_page_view", "webinar_attendance", "email_click", "demo_request", "page_view"]
        ),
    }


def bench_event(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        _, bodies = champion_and_leads(home, args.accounts)
        stores = [("SQLite", f"sqlite:///{home / 'leadscore.db'}")]
        pg = _fresh_postgres()
        if pg:
            stores.append(("PostgreSQL", pg))
        touches = [
            len(b["touchpoints"]) + sum(len(m["touchpoints"]) for m in b["committee"])
            for b in bodies
        ]
        committee = [1 + len(b["committee"]) for b in bodies]
        print(
            f"{len(bodies)} leads of a {args.accounts:,}-account CRM: median "
            f"{int(np.median(touches))} touchpoints with the committee, median account "
            f"{int(np.median(committee))} contacts; {args.requests} requests each, 1 worker"
        )
        try:
            for name, url in stores:
                _seeded(url, home / "crm")
                server = _Server(url)
                try:
                    with httpx.Client(base_url=server.base, timeout=60) as c:
                        event_ms, score_ms = [], []
                        for i in range(args.requests + 50):
                            k = i % len(bodies)
                            contact = bodies[k]["contact"]["contact_id"]
                            body = {"touchpoints": [_touch(contact)], "as_of": AS_OF.isoformat()}
                            r = c.post("/v1/events", json=body)
                            assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
                            s = c.post("/v1/score", json=bodies[k])
                            assert s.status_code == 200, s.text
                            if i >= 50:  # after the warm-up
                                event_ms.append(_server_ms(r))
                                score_ms.append(_server_ms(s))
                finally:
                    server.stop()
                e50, e99 = np.percentile(event_ms, [50, 99])
                s50, s99 = np.percentile(score_ms, [50, 99])
                print(
                    f"{name}: POST /v1/events (1 touchpoint; ingest + rescore of the account "
                    f"+ ledger) server p50 {e50:.2f} ms, p99 {e99:.2f} ms; POST /v1/score of "
                    f"the same lead sent whole p50 {s50:.2f} ms, p99 {s99:.2f} ms; "
                    f"ratio p50 {e50 / s50:.2f}x"
                )
        finally:
            if pg:
                _drop_postgres(pg)


def bench_intake(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        champion_and_leads(home, args.accounts, leads=10)
        import pandas as pd

        contacts = pd.read_parquet(home / "crm" / "contacts.parquet")
        ids = contacts.loc[contacts["created_at"] <= AS_OF, "contact_id"].tolist()
        stores = [("SQLite", f"sqlite:///{home / 'leadscore.db'}")]
        pg = _fresh_postgres()
        if pg:
            stores.append(("PostgreSQL", pg))
        try:
            for name, url in stores:
                _seeded(url, home / "crm")
                server = _Server(url, args.workers)
                batches = [
                    json.dumps(
                        {
                            "touchpoints": [_touch(random.choice(ids)) for _ in range(500)],
                            "as_of": AS_OF.isoformat(),
                        }
                    ).encode()
                    for _ in range(args.batches * args.workers + args.workers)
                ]
                rescored: list[int] = []
                lock = threading.Lock()

                def client(
                    mine: list[bytes],
                    base: str,
                    rescored: list[int] = rescored,
                    lock: threading.Lock = lock,
                ) -> None:
                    with httpx.Client(base_url=base, timeout=300) as c:
                        for body in mine:
                            r = c.post(
                                "/v1/events",
                                content=body,
                                headers={"content-type": "application/json"},
                            )
                            assert r.status_code == 200, r.text
                            with lock:
                                rescored.append(len(r.json()["rescored"]))

                try:
                    warm = batches[: args.workers]
                    client(warm, server.base)
                    rest = batches[args.workers :]
                    rescored.clear()
                    threads = [
                        threading.Thread(target=client, args=(rest[w :: args.workers], server.base))
                        for w in range(args.workers)
                    ]
                    t0 = time.perf_counter()
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                    seconds = time.perf_counter() - t0
                finally:
                    server.stop()
                n = len(rest) * 500
                print(
                    f"{name}, {args.workers} worker(s): {n:,} events in batches of 500 in "
                    f"{seconds:.1f} s = {n / seconds:,.0f} events/s, each batch rescoring "
                    f"{int(np.median(rescored))} contacts (median)"
                )
        finally:
            if pg:
                _drop_postgres(pg)


def bench_rescore(args: argparse.Namespace) -> None:
    from features.synthetic import GeneratorConfig, generate_crm

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        champion_and_leads(home, 1500, leads=10)
        big = home / "big"
        t0 = time.perf_counter()
        generate_crm(GeneratorConfig(accounts=args.accounts, seed=11), big, fmt="parquet")
        print(f"generated {args.accounts:,} accounts in {time.perf_counter() - t0:.0f} s")
        url = f"sqlite:///{home / 'leadscore.db'}"
        _run("db", "upgrade", "--database", url)
        t0 = time.perf_counter()
        _run("load", "--data", str(big), "--database", url, "--no-score")
        print(f"loaded in {time.perf_counter() - t0:.0f} s")
        for label in ("first run (every score new)", "second run, a day later"):
            as_of = "2025-12-31T00:00:00Z" if label.startswith("first") else "2026-01-01T00:00:00Z"
            t0 = time.perf_counter()
            out = _run("rescore", "--database", url, "--as-of", as_of)
            print(
                f"leadscore rescore, {label}: {time.perf_counter() - t0:.1f} s wall: "
                f"{out.strip().splitlines()[-1]}"
            )


_MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(done.stdout)
sys.stderr.write(done.stderr[-2000:])
print("PEAK_KB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(done.returncode)
"""


def _measured(command: list[str]) -> tuple[str, int]:
    """A leadscore command in a process of its own, and its peak resident memory (KB)."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(BIN / "leadscore"), *command],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode not in (0, 1):  # (validate exits 1 when it refuses)
        raise SystemExit(f"leadscore {' '.join(command)} failed:\n{done.stderr[-2000:]}")
    peak = int(done.stdout.rsplit("PEAK_KB", 1)[1])
    return done.stdout, peak


def bench_load(args: argparse.Namespace) -> None:
    from features.synthetic import GeneratorConfig, generate_crm

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        data = home / "crm"
        t0 = time.perf_counter()
        generate_crm(GeneratorConfig(accounts=args.accounts, seed=11), data, fmt="parquet")
        print(f"generated {args.accounts:,} accounts in {time.perf_counter() - t0:.0f} s")
        url = f"sqlite:///{home / 'leadscore.db'}"
        _run("db", "upgrade", "--database", url)
        for what, command in (
            ("leadscore validate (reading the export, the baseline)", ["validate", str(data)]),
            (
                "leadscore load --no-score",
                ["load", "--data", str(data), "--database", url, "--no-score"],
            ),
            (
                "leadscore load again (nothing changes)",
                ["load", "--data", str(data), "--database", url, "--no-score"],
            ),
        ):
            t0 = time.perf_counter()
            out, peak_kb = _measured(command)
            rows = [line.strip() for line in out.splitlines() if "touchpoints" in line][:1]
            print(
                f"{what}: {time.perf_counter() - t0:.0f} s, peak memory "
                f"{peak_kb / 1024:,.0f} MB {rows}"
            )
        print(f"store size: {(home / 'leadscore.db').stat().st_size / 1e9:.1f} GB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    ev = sub.add_parser("event")
    ev.add_argument("--accounts", type=int, default=1500)
    ev.add_argument("--requests", type=int, default=1000)
    it = sub.add_parser("intake")
    it.add_argument("--accounts", type=int, default=1500)
    it.add_argument("--batches", type=int, default=20)
    it.add_argument("--workers", type=int, default=1)
    rs = sub.add_parser("rescore")
    rs.add_argument("--accounts", type=int, default=22_000)
    ld = sub.add_parser("load")
    ld.add_argument("--accounts", type=int, default=105_000)
    args = parser.parse_args()
    random.seed(7)
    {"event": bench_event, "intake": bench_intake, "rescore": bench_rescore, "load": bench_load}[
        args.what
    ](args)


if __name__ == "__main__":
    main()
