"""Benchmark: loading and validating an export (`read_crm`), against an earlier commit.

    python benchmarks/bench_load.py [--touchpoints 3] [--format csv,parquet]
                                    [--baseline REV] [--repeat 3]

A synthetic export of about `--touchpoints` million touchpoints in each format; then
`read_crm` (read the files, parse, run every contract check) in fresh processes, taking
turns between this checkout and `--baseline` (default: the commit before the loader moved
to Arrow), checked out beside it as a git worktree, so both meet the same machine at the
same moment. Printed per format: the median seconds of each (imports excluded), the
ratio baseline / now, peak memory of each process, and whether the two produced the same
tables and the same report (a digest of every value, dtype and problem). A difference in
the report is printed (the new loader reports a closed deal without closed_at once, where
pandera reported it once per column, and refuses infinite numbers; the synthetic export
has neither, so the digests must agree).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, checked_out

TOUCHPOINTS_PER_ACCOUNT = 91  # what the generator's default world makes (bench_generate)
#: the last commit whose loader parsed with pandas and checked with pandera
BASELINE = "774f377"

_CHILD = """
import hashlib, json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from features.allocator import use_returning_pool
use_returning_pool()
import pandas as pd
from features.crm.load import read_crm
started = time.perf_counter()
crm, report = read_crm(sys.argv[2])
seconds = time.perf_counter() - started
digest = hashlib.sha256()
for name in ("accounts", "contacts", "touchpoints", "opportunities"):
    frame = crm.table(name)
    digest.update(repr(list(frame.dtypes.astype(str).items())).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
problems = sorted(json.dumps(p, sort_keys=True, default=str) for p in report.to_dict()["problems"])
digest.update("".join(problems).encode())
print(json.dumps({"seconds": seconds, "digest": digest.hexdigest(), "problems": problems,
                  "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def _load(tree: Path, folder: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tree), str(folder)],
        check=False,
        capture_output=True,
        text=True,
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )
    if done.returncode != 0:
        raise SystemExit(f"read_crm in {tree} failed:\n{done.stderr[-3000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--touchpoints", type=float, default=3, help="millions")
    parser.add_argument("--format", default="csv,parquet")
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from features.synthetic import GeneratorConfig, generate_crm

    accounts = int(args.touchpoints * 1e6 / TOUCHPOINTS_PER_ACCOUNT)
    with tempfile.TemporaryDirectory() as tmp, checked_out(args.baseline) as old:
        for fmt in args.format.split(","):
            folder = Path(tmp) / fmt
            generate_crm(GeneratorConfig(accounts=accounts, seed=1), folder, fmt=fmt)
            runs: dict[str, list[dict[str, object]]] = {"baseline": [], "now": []}
            for _ in range(args.repeat):
                runs["baseline"].append(_load(old, folder))
                runs["now"].append(_load(ROOT, folder))
            _print(fmt, args.baseline, runs)


def _print(fmt: str, baseline: str, runs: dict[str, list[dict[str, object]]]) -> None:
    median = {k: statistics.median(float(str(r["seconds"])) for r in v) for k, v in runs.items()}
    peak = {k: max(int(str(r["peak"])) for r in v) for k, v in runs.items()}
    same = runs["baseline"][0]["digest"] == runs["now"][0]["digest"]
    print(
        f"{fmt:8s} baseline {baseline} {median['baseline']:6.2f} s "
        f"(peak {peak['baseline'] / 2**20:,.0f} MB)   now {median['now']:6.2f} s "
        f"(peak {peak['now'] / 2**20:,.0f} MB)   {median['baseline'] / median['now']:.2f}x   "
        f"same tables and report: {'yes' if same else 'NO'}"
    )
    if not same:
        for key in ("baseline", "now"):
            print(f"  {key} problems: {runs[key][0]['problems']}")


if __name__ == "__main__":
    main()
