"""Benchmark: `leadscore serve --workers 2` against one worker, with 4 concurrent clients.

With several workers uvicorn hands each process the listening socket, and on plain
asyncio the accepted connections lost TCP_NODELAY: Nagle's algorithm met delayed ACKs and
every answer took ~44 ms (20 requests/s at one client, /healthz included). uvicorn's
standard extras (uvloop) set TCP_NODELAY on every connection. In one run, on loopback:

- `GET /healthz` p50 at one client, for 1 and 2 workers (the symptom);
- `POST /v1/score` requests/s with 4 concurrent clients (separate processes, keep-alive
  connections), for 1 and 2 workers, and their ratio (the budget: above 1.5x);
- the baseline: 2 workers on plain asyncio with h11, as `leadscore serve` ran before.

    python benchmarks/bench_workers.py [--accounts 1500] [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import champion_and_leads, free_port, wait_until_up

CLIENTS = 4


def _client(base: str, bodies: list[bytes], seconds: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    done = 0
    with httpx.Client(base_url=base, timeout=30) as http:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            r = http.post(
                "/v1/score",
                content=bodies[done % len(bodies)],
                headers={"content-type": "application/json"},
            )
            if r.status_code != 200:
                raise SystemExit(f"{r.status_code} {r.text[:200]}")
            done += 1
    out.put(done)


def _serve(
    workers: int, bodies: list[bytes], seconds: float, plain_asyncio: bool = False
) -> tuple[float, float]:
    """(healthz p50 ms at one client, /v1/score requests/s at 4 clients)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LEADSCORE_ALIAS_POLL_SECONDS": "0"}
    bin_dir = Path(sys.executable).parent
    command = [
        str(bin_dir / "leadscore"),
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-store",
    ]
    if plain_asyncio:  # the baseline: what `leadscore serve` ran on before uvloop
        command = [str(bin_dir / "uvicorn"), "serving.app:app_from_env", "--factory",
                   "--port", str(port), "--workers", str(workers), "--loop", "asyncio",
                   "--http", "h11", "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until_up(f"{base}/readyz")
        time.sleep(2.0)  # every worker up
        with httpx.Client(base_url=base) as http:
            for _ in range(20):
                http.get("/healthz")
            times = []
            for _ in range(200):
                t0 = time.perf_counter()
                http.get("/healthz")
                times.append((time.perf_counter() - t0) * 1000)
        queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        _client(base, bodies, 1.0, queue)  # warm-up
        queue.get()
        clients = [
            multiprocessing.Process(target=_client, args=(base, bodies, seconds, queue))
            for _ in range(CLIENTS)
        ]
        for c in clients:
            c.start()
        total = sum(queue.get() for _ in clients)
        for c in clients:
            c.join()
        return statistics.median(times), total / seconds
    finally:
        server.terminate()
        server.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1500)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _, bodies = champion_and_leads(Path(tmp), args.accounts)
        encoded = [json.dumps(b).encode() for b in bodies]
        one = _serve(1, encoded, args.seconds)
        two = _serve(2, encoded, args.seconds)
        before = _serve(2, encoded, args.seconds, plain_asyncio=True)
    print(f"/healthz p50 at 1 client: 1 worker {one[0]:.2f} ms, 2 workers {two[0]:.2f} ms")
    print(
        f"baseline, 2 workers on plain asyncio + h11 (no TCP_NODELAY): /healthz p50 "
        f"{before[0]:.2f} ms, /v1/score {before[1]:.0f} req/s at {CLIENTS} clients"
    )
    print(
        f"/v1/score with {CLIENTS} concurrent clients: 1 worker {one[1]:.0f} req/s, "
        f"2 workers {two[1]:.0f} req/s; ratio 2 workers / 1 worker: {two[1] / one[1]:.2f}x"
    )


if __name__ == "__main__":
    main()
