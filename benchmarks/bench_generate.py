"""Benchmark: the synthetic CRM generator at scale, and validating what it wrote.

Prints rows/s and peak memory for `leadscore generate` and `leadscore validate`, each
in a fresh subprocess so that peak memory (ru_maxrss) is that step's alone. The baseline
measured in the same run is the cost of merely writing the same touchpoint table with
pyarrow (the floor any generator pays), so the ratio is stable on a noisy machine.

    python benchmarks/bench_generate.py --accounts 100000 --format parquet
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import json, resource, sys, time
step, folder, accounts, fmt = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
t0 = time.perf_counter()
if step == "generate":
    from features.synthetic import GeneratorConfig, generate_crm
    manifest = generate_crm(GeneratorConfig(accounts=accounts, seed=1), folder, fmt=fmt)
    rows = manifest["rows"]
elif step == "validate":
    from features.crm.load import read_crm
    crm, report = read_crm(folder)
    assert report.ok, report.to_text()
    rows = {name: t.rows for name, t in report.tables.items()}
else:  # the floor: read the touchpoints back and write them again, nothing else
    import pyarrow.parquet as pq, pyarrow.csv as pacsv
    src = f"{folder}/touchpoints.{fmt}"
    table = pq.read_table(src) if fmt == "parquet" else pacsv.read_csv(src)
    t0 = time.perf_counter()
    if fmt == "parquet":
        pq.write_table(table, f"{folder}/copy.parquet", compression="zstd")
    else:
        pacsv.write_csv(table, f"{folder}/copy.csv")
    rows = {"touchpoints": table.num_rows}
seconds = time.perf_counter() - t0
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "rows": rows}))
"""


def run_step(step: str, folder: Path, accounts: int, fmt: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, step, str(folder), str(accounts), fmt],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--format", choices=("csv", "parquet"), default="parquet")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "crm"
        gen = run_step("generate", folder, args.accounts, args.format)
        floor = run_step("floor", folder, args.accounts, args.format)
        val = run_step("validate", folder, args.accounts, args.format)
    rows: dict[str, int] = gen["rows"]  # type: ignore[assignment]
    total = sum(rows.values())
    touches = rows["touchpoints"]
    gen_s, floor_s, val_s = float(gen["seconds"]), float(floor["seconds"]), float(val["seconds"])  # type: ignore[arg-type]
    print(f"accounts={args.accounts:,} format={args.format}")
    print("rows: " + ", ".join(f"{k}={v:,}" for k, v in rows.items()))
    print(
        f"generate: {gen_s:8.1f} s  {total / gen_s:>12,.0f} rows/s  "
        f"{touches / gen_s:>12,.0f} touchpoints/s  peak {gen['peak_mb']:,.0f} MB"
    )
    print(
        f"validate: {val_s:8.1f} s  {total / val_s:>12,.0f} rows/s  "
        f"{touches / val_s:>12,.0f} touchpoints/s  peak {val['peak_mb']:,.0f} MB"
    )
    print(f"baseline (write the touchpoint table only): {floor_s:.1f} s")
    print(f"ratio generate / baseline: {gen_s / floor_s:.1f}x")


if __name__ == "__main__":
    main()
