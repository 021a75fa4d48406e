"""Benchmark: a CRM export with ~10 million touchpoints into a training set.

Prints wall time per stage (load and validate, event store, snapshots and features,
write), peak memory and rows/s of the pipeline, each step in a fresh subprocess.

The baseline, measured in the same run, is a straightforward per-group pandas
implementation of the engagement features (group the touchpoints by contact; for each
snapshot filter the contact's frame to as_of and count per window, stage and type). It
is far too slow to run on millions of snapshots, so it runs on a random sample of the
snapshots, its values are checked against the kernel's on that sample, and the ratio
compares rows/s. The baseline computes only most of the engagement family (57 features);
the kernel computes all of them, so the ratio understates the kernel's advantage.

    python benchmarks/bench_features.py --accounts 110000        # generates the CRM first
    python benchmarks/bench_features.py --data /path/to/crm      # an existing export
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

_PIPELINE = r"""
import json, resource, sys, time
data, out = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
from features.crm.load import load_crm
from features.pipeline.snapshots import SnapshotConfig, build_snapshots
from features.pipeline.store import EventStore
crm = load_crm(data); t1 = time.perf_counter()
store = EventStore.from_crm(crm); t2 = time.perf_counter()
frame, report = build_snapshots(crm, SnapshotConfig(), store=store); t3 = time.perf_counter()
frame.to_parquet(out, index=False); t4 = time.perf_counter()
print(json.dumps({
    "load": t1 - t0, "store": t2 - t1, "features": t3 - t2, "write": t4 - t3, "total": t4 - t0,
    "rows": len(frame), "positives": report.positives, "touchpoints": len(crm.touchpoints),
    "features_count": frame.shape[1] - 4,
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""

_BASELINE = r"""
import json, sys, time
import numpy as np, pandas as pd
from features.pipeline import registry as R
from features.crm.load import load_crm
from features.crm.taxonomy import STAGE_OF_TYPE
data, dataset, n_sample = sys.argv[1], sys.argv[2], int(sys.argv[3])
crm = load_crm(data)
snapshots = pd.read_parquet(dataset)
sample = snapshots.sample(n=min(n_sample, len(snapshots)), random_state=0)
t0 = time.perf_counter()
tp = crm.touchpoints[crm.touchpoints["contact_id"].isin(sample["contact_id"])].copy()
tp["stage"] = tp["type"].map(STAGE_OF_TYPE)
groups = {cid: g for cid, g in tp.groupby("contact_id")}
empty = tp.iloc[:0]
rows = []
for cid, as_of in zip(sample["contact_id"], sample["as_of"]):
    g = groups.get(cid, empty)
    past = g[g["occurred_at"] <= as_of]
    age = (as_of - past["occurred_at"]).dt.total_seconds() / 86400
    row = {}
    for w in R.WINDOWS_DAYS:
        inw = past[age < w]
        row[f"touches_{w}d"] = len(inw)
        stages = inw["stage"].value_counts()
        for s in R.COUNTED_STAGES:
            row[f"{s}_touches_{w}d"] = stages.get(s, 0)
        types = inw["type"].value_counts()
        for t in R.KEY_TYPES:
            row[f"{t}_{w}d"] = types.get(t, 0)
    weight = 0.5 ** (age / R.DECAY_HALF_LIFE_DAYS)
    row["touches_decayed"] = weight.sum()
    for s in R.COUNTED_STAGES:
        row[f"{s}_touches_decayed"] = weight[past["stage"] == s].sum()
    row["days_since_first_touch"] = age.max() if len(past) else np.nan
    row["days_since_last_touch"] = age.min() if len(past) else np.nan
    dec = age[past["stage"] == "decision"]
    row["days_since_last_decision_touch"] = dec.min() if len(dec) else np.nan
    recent = past[age < 90]
    row["distinct_types_90d"] = recent["type"].nunique()
    row["distinct_channels_90d"] = recent["channel"].nunique()
    rows.append(row)
seconds = time.perf_counter() - t0
baseline = pd.DataFrame(rows)
worst = 0.0
for col in baseline.columns:
    a = baseline[col].to_numpy(dtype=float); b = sample[col].to_numpy(dtype=float)
    both = ~(np.isnan(a) & np.isnan(b))
    if both.any():
        rel = np.abs(a[both] - b[both]) / np.maximum(1.0, np.abs(a[both]))
        worst = max(worst, float(np.nanmax(rel)))
result = {"seconds": seconds, "rows": len(sample), "features_count": baseline.shape[1]}
print(json.dumps({**result, "max_rel_diff": worst}))
"""


def run(code: str, *args: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="an existing CRM export (default: generate one)")
    parser.add_argument("--accounts", type=int, default=110_000, help="accounts to generate")
    parser.add_argument("--sample", type=int, default=3_000, help="snapshots for the baseline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "crm"
            from features.synthetic import GeneratorConfig, generate_crm

            generate_crm(GeneratorConfig(accounts=args.accounts, seed=1), data, fmt="parquet")
        dataset = Path(tmp) / "train.parquet"
        pipe = run(_PIPELINE, str(data), str(dataset))
        base = run(_BASELINE, str(data), str(dataset), str(args.sample))
    kernel_rps = pipe["rows"] / pipe["features"]
    base_rps = base["rows"] / base["seconds"]
    print(
        f"touchpoints: {pipe['touchpoints']:,.0f}  snapshots: {pipe['rows']:,.0f}  "
        f"positives: {pipe['positives']:,.0f}  features: {pipe['features_count']:.0f}"
    )
    print(
        f"load+validate {pipe['load']:6.1f} s | event store {pipe['store']:5.1f} s | "
        f"snapshots+features {pipe['features']:5.1f} s | write {pipe['write']:5.1f} s"
    )
    print(
        f"total {pipe['total']:.1f} s, peak memory {pipe['peak_mb']:,.0f} MB, "
        f"{pipe['rows'] / pipe['total']:,.0f} snapshots/s end to end"
    )
    print(f"kernel: {kernel_rps:,.0f} snapshots/s with {pipe['features_count']:.0f} features")
    print(
        f"baseline (per-group pandas, {base['features_count']:.0f} engagement features, "
        f"{base['rows']:,.0f} sampled snapshots): {base_rps:,.1f} snapshots/s; "
        f"largest relative difference from the kernel {base['max_rel_diff']:.1e}"
    )
    print(f"ratio kernel / baseline: {kernel_rps / base_rps:,.0f}x")


if __name__ == "__main__":
    main()
