"""Benchmark: peak memory per touchpoint of `validate`, `build-dataset` and `load`.

    python benchmarks/bench_memory.py [--touchpoints 3] [--commands validate,build-dataset,load]

A synthetic export (Parquet) of about `--touchpoints` million touchpoints; each command
runs as `leadscore` does, in a process of its own, once with Arrow's default memory pool
(mimalloc: the baseline) and once with the pool `leadscore` picks (jemalloc,
features/allocator.py), in the same run. Peak memory is the kernel's (`ru_maxrss` of the
child, from wait4). `load` needs a champion: one is trained first on a small export in a
temporary MLflow store, and the big export is loaded into a fresh SQLite lead store.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOUCHPOINTS_PER_ACCOUNT = 91  # what the generator's default world makes (bench_generate)
LEADSCORE = str(Path(sys.executable).parent / "leadscore")


def _run(args: list[str], env: dict[str, str], cwd: str) -> tuple[float, int]:
    """Seconds and peak bytes of one command in its own process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [LEADSCORE, *args], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        assert process.stderr is not None
        raise SystemExit(f"leadscore {' '.join(args)} failed:\n{process.stderr.read()[-2000:]!r}")
    return seconds, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--touchpoints", type=float, default=3, help="millions")
    parser.add_argument("--commands", default="validate,build-dataset,load")
    args = parser.parse_args()
    commands = args.commands.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        accounts = int(args.touchpoints * 1e6 / TOUCHPOINTS_PER_ACCOUNT)
        base = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
        base["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        data = f"{tmp}/crm"
        _run(["generate", "--out", data, "--accounts", str(accounts), "--format", "parquet",
              "--seed", "1"], base, tmp)  # fmt: skip
        import pyarrow.parquet as pq

        n = pq.read_metadata(f"{data}/touchpoints.parquet").num_rows
        if "load" in commands:
            small = f"{tmp}/small"
            _run(["generate", "--out", small, "--accounts", "1500", "--format", "parquet"],
                 base, tmp)  # fmt: skip
            _run(["train", "--data", small], base, tmp)
            _run(["promote"], base, tmp)
        print(f"{n:,} touchpoints ({accounts:,} accounts)")
        print("| command | pool | seconds | peak | bytes per touchpoint | peak vs mimalloc |")
        print("|---|---|---|---|---|---|")
        for command in commands:
            baseline = 0
            for pool in ("mimalloc", "jemalloc"):
                env = {**base, "ARROW_DEFAULT_MEMORY_POOL": pool}
                if command == "validate":
                    argv = ["validate", data]
                elif command == "build-dataset":
                    argv = ["build-dataset", "--data", data, "--out", f"{tmp}/{pool}.parquet",
                            "--quiet"]  # fmt: skip
                else:
                    url = f"sqlite:///{tmp}/{pool}.db"
                    _run(["db", "upgrade", "--database", url], env, tmp)
                    argv = ["load", "--data", data, "--database", url]
                seconds, peak = _run(argv, env, tmp)
                baseline = baseline or peak
                print(
                    f"| {command} | {pool} | {seconds:.1f} | {peak / 2**20:,.0f} MB "
                    f"| {peak / n:,.0f} | {peak / baseline:.2f}x |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
