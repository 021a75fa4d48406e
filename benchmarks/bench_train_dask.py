"""Benchmark: `leadscore train` on one process and with `--engine dask`, on the same export.

    python benchmarks/bench_train_dask.py [--accounts 20000] [--workers 2] [--partitions 4]

A synthetic export (Parquet), then the whole training run (snapshots, fit, baselines,
evidence, MLflow logging and registration) single-node and on a LocalCluster of
`--workers` processes, each in a fresh process with its own MLflow store: wall time,
stage times, peak memory (the process; on Dask each worker's and the driver's), the best
iteration, and the holdout ROC AUC of the selection model and of the registered recipe's
twin. The single-node run is the baseline; the ratio is Dask / single.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _child(args: list[str], cwd: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        check=False, capture_output=True, text=True, cwd=cwd,
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd}/mlflow.db"},
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _train(data: str, engine: str, workers: int, partitions: int) -> None:
    from training.train import TrainConfig, train

    cfg = TrainConfig()
    started = time.perf_counter()
    worker_peak = 0
    if engine == "dask":
        from distributed import Client, LocalCluster

        from training.distributed import train_dask

        with (
            LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            started = time.perf_counter()
            result = train_dask(
                cfg, data, scheduler=cluster.scheduler_address, n_partitions=partitions
            )
            seconds = time.perf_counter() - started
            worker_peak = max(
                client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss).values()
            )
    else:
        result = train(cfg, data)
        seconds = time.perf_counter() - started
    table = result.comparison
    print(
        json.dumps(
            {
                "seconds": seconds,
                "stages": {k: round(v, 1) for k, v in result.seconds.items()},
                "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "worker_peak": worker_peak * 1024,
                "best_iteration": result.best_iteration,
                "refit_rounds": result.refit_rounds,
                "rows": result.rows,
                "auc": float(table.loc["model", "roc_auc"]),
                "refit_auc": float(table.loc["model_refit", "roc_auc"]),
            }
        )
    )


def _generate(out: str, accounts: int) -> None:
    from features.synthetic import GeneratorConfig, generate_crm

    generate_crm(GeneratorConfig(accounts=accounts, seed=1), Path(out), fmt="parquet")
    import pyarrow.parquet as pq

    print(json.dumps({"touchpoints": pq.read_metadata(Path(out) / "touchpoints.parquet").num_rows}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        sys.path.insert(0, str(Path(__file__).parents[1]))
        from features.allocator import use_returning_pool

        use_returning_pool()  # as leadscore's commands do (unless ARROW_DEFAULT_MEMORY_POOL)
        command, *rest = sys.argv[1:]
        if command == "_train":
            _train(rest[0], rest[1], int(rest[2]), int(rest[3]))
        else:
            _generate(rest[0], int(rest[1]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=None)
    args = parser.parse_args()
    partitions = args.partitions or 2 * args.workers
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "crm")
        made = _child(["_generate", data, str(args.accounts)], tmp)
        print(
            f"{args.accounts:,} accounts, {made['touchpoints']:,} touchpoints; Dask: "
            f"{args.workers} workers, {partitions} partitions"
        )
        runs = {}
        for engine in ("single", "dask"):
            home = Path(tmp) / engine
            home.mkdir()
            runs[engine] = _child(
                ["_train", data, engine, str(args.workers), str(partitions)], str(home)
            )
    single, dask = runs["single"], runs["dask"]
    print("| engine | seconds | ratio | peak | worker peak | best iteration | refit rounds "
          "| holdout ROC AUC | refit twin ROC AUC | stages |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for engine, run in runs.items():
        seconds = run["seconds"]
        print(
            f"| {engine} | {seconds:.1f} | {seconds / single['seconds']:.2f}x "
            f"| {run['peak'] / 2**20:,.0f} MB | {run['worker_peak'] / 2**20:,.0f} MB "
            f"| {run['best_iteration']} | {run['refit_rounds']} | {run['auc']:.4f} "
            f"| {run['refit_auc']:.4f} | {run['stages']} |"
        )
    print(f"\nrows: {single['rows']} (single) / {dask['rows']} (dask)")


if __name__ == "__main__":
    main()
