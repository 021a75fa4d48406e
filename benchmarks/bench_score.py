"""Benchmark: batch scoring of a CRM export (`leadscore score`), leads per second.

The budget (docs/benchmarks.md): at least 20,000 leads/s without reasons. Measured in
one run on one generated export:

- the scoring step: EventStore, eligibility, features, probability and points for every
  eligible contact at one as_of (`features.model.batch.model_table`), without and with reasons;
- the same end to end: reading and validating the export, scoring, writing the CSV;
- the baseline: the registered MLflow pyfunc's `predict` on the already-computed
  feature rows of the same contacts (the model alone, no features, no points).

    python benchmarks/bench_score.py [--accounts 20000] [--baseline REV [--repeat 3]]

With `--baseline`, the command end to end is also run in turns with the CLI of an
earlier commit (checked out beside this one as a git worktree, run with the entry point
its console script had), `--repeat` times each; printed: the median seconds of each,
the ratio baseline / now, and whether both wrote the same file.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import OLD_CLI, ROOT, checked_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--train-accounts", type=int, default=1_500)
    parser.add_argument("--baseline", help="a commit whose CLI to run in turns with this one")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    args.cli = [
        ("--reasons 0", ["--reasons", "0"]),
        ("--reasons 3 (reasons for the MQLs and the best 5 %)", ["--reasons", "3"]),
        ("--reasons 3 --reasons-for all", ["--reasons", "3", "--reasons-for", "all"]),
    ]
    import mlflow
    import numpy as np

    from features.crm.load import load_crm
    from features.model.batch import ReasonsFor, eligible_contacts, model_table, resolve_as_of
    from features.model.pyfunc import load_scorer
    from features.pipeline.kernel import compute_features
    from features.pipeline.registry import FEATURE_NAMES
    from features.pipeline.snapshots import to_epoch
    from features.pipeline.store import EventStore
    from features.points.matrix import load_rules
    from features.synthetic import GeneratorConfig, generate_crm
    from training.promote import promote
    from training.train import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        train_data, data = Path(tmp) / "train", Path(tmp) / "crm"
        generate_crm(GeneratorConfig(accounts=args.train_accounts, seed=5), train_data)
        train(TrainConfig(), train_data)
        promote()
        generate_crm(GeneratorConfig(accounts=args.accounts, seed=6), data, fmt="parquet")
        uri = "models:/lead-scorer@champion"
        scorer, _ = load_scorer(uri)
        rules = scorer.rules or load_rules()

        t0 = time.perf_counter()
        crm = load_crm(data)
        t_load = time.perf_counter() - t0
        as_of = resolve_as_of(crm, None)
        timings: dict[str, float] = {}
        tables = {}
        for key, reasons, who in ((0, 0, None), (3, 3, None), ("all", 3, ReasonsFor(all=True))):
            t0 = time.perf_counter()
            table = model_table(crm, scorer, rules, as_of, reasons=reasons, reasons_for=who)
            timings[f"score_{key}"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            table.to_csv(Path(tmp) / f"scores_{key}.csv", index=False)
            timings[f"write_{key}"] = time.perf_counter() - t0
            tables[key] = table
        n = len(table)
        # the same outputs: reasons of the chosen rows equal those of every row
        chosen = tables[3]["top_reasons"] != ""
        same = (tables[3]["top_reasons"][chosen] == tables["all"]["top_reasons"][chosen]).all()
        cost = tables[3].attrs["reasons"]

        store = EventStore.from_crm(crm)
        contacts = eligible_contacts(store, to_epoch(as_of))
        block = compute_features(store, contacts, np.full(len(contacts), to_epoch(as_of)))
        frame = __import__("pandas").DataFrame(block.as_dict())[list(FEATURE_NAMES)]
        pyfunc = mlflow.pyfunc.load_model(uri)
        pyfunc.predict(frame.head(100))
        t0 = time.perf_counter()
        pyfunc.predict(frame)
        t_pyfunc = time.perf_counter() - t0

        # the command a user runs, end to end (its imports included)
        leadscore = str(Path(sys.executable).parent / "leadscore")
        cli: dict[str, float] = {}
        for name, extra in args.cli:
            t0 = time.perf_counter()
            command = [leadscore, "score", "--data", str(data), "--out", str(Path(tmp) / "c.csv")]
            subprocess.run([*command, *extra], check=True, capture_output=True)
            cli[name] = time.perf_counter() - t0
        against = _against_baseline(args, data, Path(tmp)) if args.baseline else []

    touchpoints = len(crm.touchpoints)
    print(
        f"export: {args.accounts:,} accounts, {len(crm.contacts):,} contacts, "
        f"{touchpoints:,} touchpoints; {n:,} eligible contacts scored at {as_of.date()}"
    )
    for reasons, what in (
        (0, "without reasons"),
        (3, "with 3 reasons for the MQLs and the best 5 %"),
        ("all", "with 3 reasons for every lead"),
    ):
        s = timings[f"score_{reasons}"]
        e2e = t_load + s + timings[f"write_{reasons}"]
        print(
            f"scoring step {what}: {s:.2f} s = {n / s:,.0f} leads/s; end to end "
            f"(read+validate {t_load:.1f} s, score, write CSV): {n / e2e:,.0f} leads/s"
        )
    print(
        f"reasons for {cost.rows:,} of {n:,} leads: {cost.us_per_row:,.0f} µs a row; "
        f"the same text as with every row's reasons: {same}"
    )
    for name, seconds in cli.items():
        print(f"leadscore score {name}: {seconds:.1f} s end to end = {n / seconds:,.0f} leads/s")
    print(
        f"baseline, MLflow pyfunc predict on the ready feature rows: {t_pyfunc:.2f} s = "
        f"{n / t_pyfunc:,.0f} leads/s; ratio scoring step (no reasons) / pyfunc: "
        f"{timings['score_0'] / t_pyfunc:.2f}x"
    )
    for line in against:
        print(line)


def _against_baseline(args: argparse.Namespace, data: Path, tmp: Path) -> list[str]:
    """`leadscore score` of this checkout and of `--baseline`, in turns, same export."""
    import statistics

    leadscore = str(Path(sys.executable).parent / "leadscore")
    lines = []
    with checked_out(args.baseline) as old:
        for name, extra in args.cli[:2]:  # (every row's reasons is the TreeSHAP's time)
            seconds: dict[str, list[float]] = {"baseline": [], "now": []}
            for _ in range(args.repeat):
                for who, tree, entry in (
                    ("baseline", old, [sys.executable, *OLD_CLI]),
                    ("now", ROOT, [leadscore]),
                ):
                    out = tmp / f"{who}.csv"
                    env = {**os.environ, "PYTHONPATH": str(tree)}
                    t0 = time.perf_counter()
                    subprocess.run(
                        [*entry, "score", "--data", str(data), "--out", str(out), *extra],
                        check=True,
                        capture_output=True,
                        cwd=tree,
                        env=env,
                    )
                    seconds[who].append(time.perf_counter() - t0)
            same = (tmp / "baseline.csv").read_bytes() == (tmp / "now.csv").read_bytes()
            before, now = (statistics.median(seconds[k]) for k in ("baseline", "now"))
            lines.append(
                f"leadscore score {name}: baseline {args.baseline} {before:.1f} s, now "
                f"{now:.1f} s (medians of {args.repeat}): {before / now:.2f}x; same file: {same}"
            )
    return lines


if __name__ == "__main__":
    main()
