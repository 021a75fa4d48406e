"""Benchmark: the scoring API against `mlflow models serve` and the framework's ceiling.

In one run, on loopback, with one uvicorn worker each and a keep-alive client sending
requests one after another:

- `POST /v1/score` (one lead with its committee, probability + points + reasons),
  client-side and server-side (the Server-Timing header) latency;
- `GET /healthz` of the same app: the framework's ceiling (a route that does nothing);
- `mlflow models serve` of the same registered model answering `/invocations` for one
  row of already-computed features (it does far less: no features, no points, no reasons);
- batch scoring: leads/s through `score_requests` in process without reasons, and
  through `POST /v1/score/batch` over HTTP with reasons.

    python benchmarks/bench_serve.py [--accounts 1500] [--requests 1000] [--baseline REV]

With `--baseline`, the `/v1/score` of an earlier commit (checked out beside this one as
a git worktree, its own server on the same model) is measured in turns with this one,
request by request with the same bodies: each one's server-side p50 and p99, the ratio,
and how many of the answers are byte for byte the same.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from common import OLD_CLI, ROOT, champion_and_leads, checked_out, free_port, wait_until_up


def _measure(
    client: httpx.Client, method: str, path: str, bodies: list[bytes] | None, n: int
) -> dict[str, float]:
    client_ms, server_ms = [], []
    started = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        if bodies is None:
            r = client.request(method, path)
        else:
            r = client.request(
                method,
                path,
                content=bodies[i % len(bodies)],
                headers={"content-type": "application/json"},
            )
        client_ms.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{path}: {r.status_code} {r.text[:300]}")
        timing = r.headers.get("server-timing", "")
        if "dur=" in timing:
            server_ms.append(float(timing.split("dur=")[1]))
    wall = time.perf_counter() - started
    out = {
        "p50": float(np.percentile(client_ms, 50)),
        "p99": float(np.percentile(client_ms, 99)),
        "rps": n / wall,
    }
    if server_ms:
        out["server_p50"] = float(np.percentile(server_ms, 50))
        out["server_p99"] = float(np.percentile(server_ms, 99))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1500)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--baseline", help="a commit whose /v1/score to measure in turns")
    args = parser.parse_args()
    from features.model.pyfunc import load_scorer
    from serving.schemas import ScoreRequest
    from serving.scoring import score_requests
    from serving.state import LoadedModel

    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        sample, bodies = champion_and_leads(Path(tmp), args.accounts)
        encoded = [json.dumps(b).encode() for b in bodies]
        touches = [
            len(b["touchpoints"]) + sum(len(m["touchpoints"]) for m in b["committee"])
            for b in bodies
        ]
        scorer, info = load_scorer("models:/lead-scorer@champion")
        features = sample[list(scorer.feature_names)].copy()
        for name in scorer.categorical:
            features[name] = features[name].astype(object).where(features[name].notna(), None)
        rows = [
            json.dumps(
                {
                    "dataframe_split": json.loads(
                        features.iloc[[i]].to_json(orient="split", index=False)
                    )
                }
            ).encode()
            for i in range(len(features))
        ]

        ours_port, mlflow_port = free_port(), free_port()
        # `mlflow models serve` starts `uvicorn` by name: the environment's bin must be on PATH.
        path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        # 1,000 leads with their committees are ~10 MB: above the default 5 MB body limit.
        env = {
            **os.environ,
            "LEADSCORE_ALIAS_POLL_SECONDS": "0",
            "PATH": path,
            "LEADSCORE_MAX_BODY_BYTES": "100000000",
        }
        ours = subprocess.Popen(
            [str(bin_dir / "leadscore"), "serve", "--port", str(ours_port), "--no-store"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        theirs = subprocess.Popen(
            [
                str(bin_dir / "mlflow"),
                "models",
                "serve",
                "-m",
                "models:/lead-scorer@champion",
                "-p",
                str(mlflow_port),
                "--env-manager",
                "local",
                "-w",
                "1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until_up(f"http://127.0.0.1:{ours_port}/readyz")
            wait_until_up(f"http://127.0.0.1:{mlflow_port}/ping")
            with httpx.Client(base_url=f"http://127.0.0.1:{ours_port}", timeout=30) as c:
                _measure(c, "POST", "/v1/score", encoded, 100)  # warm-up
                score = _measure(c, "POST", "/v1/score", encoded, args.requests)
                noop = _measure(c, "GET", "/healthz", None, args.requests)
                batch_body = json.dumps({"leads": bodies * 5}).encode()  # 1,000 leads
                t0 = time.perf_counter()
                for _ in range(3):
                    assert (
                        c.post(
                            "/v1/score/batch",
                            content=batch_body,
                            headers={"content-type": "application/json"},
                        ).status_code
                        == 200
                    )
                http_batch = 3 * len(bodies) * 5 / (time.perf_counter() - t0)
            with httpx.Client(base_url=f"http://127.0.0.1:{mlflow_port}", timeout=30) as c:
                _measure(c, "POST", "/invocations", rows, 100)
                mlf = _measure(c, "POST", "/invocations", rows, args.requests)
        finally:
            ours.terminate()
            theirs.terminate()
            ours.wait(10)
            theirs.wait(10)
        against = _against_baseline(args, encoded, env) if args.baseline else []
        requests = [ScoreRequest.model_validate(b) for b in bodies * 5]
        model = LoadedModel(scorer, info["name"], info["version"], info["alias"], "")
        score_requests(requests, model, reasons=0)
        t0 = time.perf_counter()
        for _ in range(3):
            score_requests(requests, model, reasons=0)
        in_process = 3 * len(requests) / (time.perf_counter() - t0)

    print(
        f"leads: {len(bodies)} distinct, median {int(np.median(touches))} touchpoints "
        "with the committee "
        f"(max {max(touches)}); {args.requests} sequential requests per endpoint, 1 worker each"
    )
    print(
        "/v1/score (features + probability + points + reasons): "
        f"client p50 {score['p50']:.2f} ms, p99 {score['p99']:.2f} ms, {score['rps']:.0f} req/s; "
        f"server p50 {score['server_p50']:.2f} ms, "
        f"p99 {score['server_p99']:.2f} ms"
    )
    print(
        "/healthz (no-op, the framework's ceiling): "
        f"client p50 {noop['p50']:.2f} ms, p99 {noop['p99']:.2f} ms, "
        f"{noop['rps']:.0f} req/s; server p50 {noop['server_p50']:.3f} ms"
    )
    print(
        "mlflow models serve /invocations (one feature row, probability only): "
        f"client p50 {mlf['p50']:.2f} ms, "
        f"p99 {mlf['p99']:.2f} ms, {mlf['rps']:.0f} req/s"
    )
    print(
        f"ratio /v1/score p50 / mlflow p50: {score['p50'] / mlf['p50']:.2f}x; "
        f"/v1/score p50 / no-op p50: {score['p50'] / noop['p50']:.2f}x"
    )
    print(
        f"batch: {in_process:,.0f} leads/s in process without reasons; "
        f"{http_batch:,.0f} leads/s over HTTP "
        "with reasons (1,000 leads per request)"
    )
    for line in against:
        print(line)


def _against_baseline(
    args: argparse.Namespace, bodies: list[bytes], env: dict[str, str]
) -> list[str]:
    """`/v1/score` of `--baseline` and of this checkout, one request each in turns."""
    with checked_out(args.baseline) as old:
        ms, same = _in_turns(args, bodies, env, old)
    p50 = {who: float(np.percentile(times, 50)) for who, times in ms.items()}
    p99 = {who: float(np.percentile(times, 99)) for who, times in ms.items()}
    return [
        f"/v1/score in turns, {args.requests} requests each, server-side: baseline "
        f"{args.baseline} p50 {p50['baseline']:.2f} ms, p99 {p99['baseline']:.2f} ms; now p50 "
        f"{p50['now']:.2f} ms, p99 {p99['now']:.2f} ms; ratio p50 now / baseline "
        f"{p50['now'] / p50['baseline']:.2f}x; the same answer for {same} of {args.requests}"
    ]


def _in_turns(
    args: argparse.Namespace, bodies: list[bytes], env: dict[str, str], old: Path
) -> tuple[dict[str, list[float]], int]:
    ports = {"baseline": free_port(), "now": free_port()}
    servers = [
        subprocess.Popen(
            [*command, "serve", "--port", str(ports[who]), "--no-store"],
            env={**env, "PYTHONPATH": str(tree)},
            cwd=tree,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for who, tree, command in (
            ("baseline", old, [sys.executable, *OLD_CLI]),
            ("now", ROOT, [str(Path(sys.executable).parent / "leadscore")]),
        )
    ]
    server_ms: dict[str, list[float]] = {"baseline": [], "now": []}
    same = 0
    headers = {"content-type": "application/json"}
    try:
        for port in ports.values():
            wait_until_up(f"http://127.0.0.1:{port}/readyz")
        clients = {
            who: httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
            for who, port in ports.items()
        }
        for i in range(100 + args.requests):  # the first 100 warm both up
            body = bodies[i % len(bodies)]
            answers = {}
            for who in ("baseline", "now") if i % 2 else ("now", "baseline"):
                r = clients[who].post("/v1/score", content=body, headers=headers)
                if r.status_code != 200:
                    raise SystemExit(f"{who} /v1/score: {r.status_code} {r.text[:300]}")
                answers[who] = r.content
                if i >= 100:
                    server_ms[who].append(float(r.headers["server-timing"].split("dur=")[1]))
            same += i >= 100 and answers["baseline"] == answers["now"]
        for client in clients.values():
            client.close()
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)
    return server_ms, same


if __name__ == "__main__":
    main()
