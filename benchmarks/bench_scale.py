"""Benchmark: the feature pipeline on one process and on Dask, as exports grow.

    python benchmarks/bench_scale.py [--touchpoints 1,3,10] [--workers 2] [--partitions 4]

For each size (millions of touchpoints; the generator makes about 91 per account), a
synthetic export (Parquet), then `build-dataset` single-node and `build-dataset --engine
dask` on a LocalCluster of `--workers` processes, each in a fresh process of its own:
wall time, peak memory (the single process; on Dask each worker's peak and the driver's),
and bytes per touchpoint at peak. The single-node run is the baseline of its size; the
ratio is Dask / single. The extrapolated ceiling of one machine is its memory divided by
the single-node bytes per touchpoint.
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

TOUCHPOINTS_PER_ACCOUNT = 91  # what the generator's default world makes (bench_generate)


def _child(args: list[str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, *args], check=False, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _single(data: str, out: str) -> None:
    from features.pipeline.snapshots import build_dataset

    started = time.perf_counter()
    report = build_dataset(data, out)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak": peak, "rows": report.rows}))


def _dask(data: str, out: str, workers: int, partitions: int) -> None:
    from distributed import Client, LocalCluster

    from features.pipeline.partitions import build_dataset_dask

    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        started = time.perf_counter()
        report = build_dataset_dask(
            data, out, scheduler=cluster.scheduler_address, n_partitions=partitions
        )
        seconds = time.perf_counter() - started
        peaks = client.run(
            lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        ).values()
    driver = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {"seconds": seconds, "worker_peak": max(peaks), "driver_peak": driver,
             "rows": report.rows}
        )
    )  # fmt: skip


def _generate(out: str, accounts: int) -> None:
    from features.synthetic import GeneratorConfig, generate_crm

    started = time.perf_counter()
    generate_crm(GeneratorConfig(accounts=accounts, seed=1), Path(out), fmt="parquet")
    import pyarrow.parquet as pq

    rows = pq.read_metadata(Path(out) / "touchpoints.parquet").num_rows
    print(json.dumps({"seconds": time.perf_counter() - started, "touchpoints": rows}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        sys.path.insert(0, str(Path(__file__).parents[1]))
        from features.allocator import use_returning_pool

        use_returning_pool()  # as leadscore's commands do (unless ARROW_DEFAULT_MEMORY_POOL)
        command, *rest = sys.argv[1:]
        if command == "_single":
            _single(*rest)
        elif command == "_dask":
            _dask(rest[0], rest[1], int(rest[2]), int(rest[3]))
        else:
            _generate(rest[0], int(rest[1]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--touchpoints", default="1,3,10", help="millions, comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--partitions", type=int, default=None, help="by account (default: twice the workers)"
    )
    args = parser.parse_args()
    partitions = args.partitions or 2 * args.workers
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cores = os.cpu_count()
    print(
        f"machine: {cores} cores, {memory / 2**30:.0f} GiB; Dask: {args.workers} workers, "
        f"{partitions} partitions"
    )
    print(
        "| touchpoints | single s | single peak | B/touchpoint | dask s | ratio "
        "| worker peak | driver peak | B/touchpoint/worker |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    per_touch = []
    for millions in [float(m) for m in args.touchpoints.split(",")]:
        accounts = int(millions * 1e6 / TOUCHPOINTS_PER_ACCOUNT)
        with tempfile.TemporaryDirectory() as tmp:
            data = str(Path(tmp) / "crm")
            made = _child(["_generate", data, str(accounts)])
            n = made["touchpoints"]
            single = _child(["_single", data, str(Path(tmp) / "single.parquet")])
            dask = _child(
                ["_dask", data, str(Path(tmp) / "dask"), str(args.workers), str(partitions)]
            )
            assert single["rows"] == dask["rows"], (single["rows"], dask["rows"])
            per_touch.append(single["peak"] / n)
            print(
                f"| {n:,} | {single['seconds']:.1f} | {single['peak'] / 2**20:,.0f} MB | "
                f"{single['peak'] / n:,.0f} | {dask['seconds']:.1f} | "
                f"{dask['seconds'] / single['seconds']:.2f}x | "
                f"{dask['worker_peak'] / 2**20:,.0f} MB | {dask['driver_peak'] / 2**20:,.0f} MB | "
                f"{dask['worker_peak'] / n:,.0f} |",
                flush=True,
            )
    bytes_per_touch = per_touch[-1]
    print(
        f"\nsingle-node ceiling on this machine (memory / {bytes_per_touch:,.0f} B a touchpoint "
        f"at the largest size): about {memory / bytes_per_touch / 1e6:,.0f} million touchpoints"
    )


if __name__ == "__main__":
    main()
