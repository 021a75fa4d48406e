"""`leadscore`: thin commands over the project's functions.

Each command parses its flags, builds a configuration, sets up logging and calls one
function; tests call those functions, not the shell. User mistakes (a folder that is
not a CRM export, an existing output folder) end with a plain message and exit code 2,
never a stack trace.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from features.model.names import CHAMPION_URI, MODEL_NAME, TABLE_CHAMPION_URI, TABLE_MODEL_NAME

if TYPE_CHECKING:
    from features.crm.load import CRM
    from features.points.matrix import RulesConfig

logger = logging.getLogger("leadscore")

EXIT_OK = 0
EXIT_REFUSED = 1  # the command ran and its answer is "no" (validate refused the load)
EXIT_USAGE = 2  # the user's input cannot be used


class UserError(Exception):
    """A mistake in the user's input: printed as one line, exit code 2."""


def _date(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from exc


def _timestamp(text: str) -> str:
    try:
        dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 timestamp such as 2025-03-02T10:00:00Z, got {text!r}"
        ) from exc
    return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


# --- commands -----------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    from features.synthetic import GeneratorConfig, generate_crm

    cfg = GeneratorConfig(
        accounts=args.accounts, seed=args.seed, start=args.start, months=args.months
    )
    started = time.perf_counter()
    try:
        manifest = generate_crm(
            cfg, args.out, fmt=args.format, progress=not args.quiet, overwrite=args.overwrite
        )
    except FileExistsError as exc:
        raise UserError(str(exc)) from exc
    seconds = time.perf_counter() - started
    rows = manifest["rows"]
    print(f"generated a synthetic CRM in {args.out} ({args.format}) in {seconds:.1f} s")
    for name, count in rows.items():
        print(f"  {name:<14} {count:>12,} rows")
    print(f"  latent truth (never a model input) in {Path(args.out) / 'truth'}")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from features.crm.load import read_crm

    _, report = read_crm(args.folder)
    print(report.to_json() if args.json else report.to_text())
    return EXIT_OK if report.ok else EXIT_REFUSED


def cmd_build_dataset(args: argparse.Namespace) -> int:
    from features.crm.validation import InvalidCRMError
    from features.pipeline.snapshots import SnapshotConfig, build_dataset

    cfg = SnapshotConfig(
        horizon_days=args.horizon_days,
        every_days=args.snapshot_every_days,
        start=args.start,
        end=args.end,
        active_days=args.active_days or None,
    )
    try:
        report = build_dataset(args.data, args.out, cfg, progress=not args.quiet)
    except InvalidCRMError as exc:
        raise UserError(
            f"{exc}\n(run `leadscore validate {args.data}` for the full report)"
        ) from exc
    print(f"wrote {args.out}")
    print(report.to_text())
    return EXIT_OK


def _load_rules(path: Path | None) -> RulesConfig:
    from features.points.matrix import RulesError, load_rules

    try:
        return load_rules(path)
    except RulesError as exc:
        raise UserError(str(exc)) from exc


def _load_crm(folder: Path) -> CRM:
    from features.crm.load import load_crm
    from features.crm.validation import InvalidCRMError

    try:
        return load_crm(folder)
    except InvalidCRMError as exc:
        raise UserError(f"{exc}\n(run `leadscore validate {folder}` for the full report)") from exc


def cmd_score(args: argparse.Namespace) -> int:
    if args.table is not None:
        return _score_table(args)
    if args.data is None:
        raise UserError("give --data FOLDER (a CRM export) or --table FILE (a lead table)")
    args.model = args.model or CHAMPION_URI
    from features.model.batch import resolve_as_of, rules_table

    crm = _load_crm(args.data)
    as_of = resolve_as_of(crm, args.as_of)
    if args.rules_only:
        config = _load_rules(args.rules)
        table, _, _ = rules_table(crm, config, as_of)
    else:
        from features.model.batch import model_table
        from features.model.pyfunc import load_scorer

        try:
            scorer, info = load_scorer(args.model)
        except Exception as exc:  # MLflow raises many kinds; all mean "no such model here"
            raise UserError(f"cannot load the model {args.model}: {exc}") from exc
        if scorer.kind != "touchpoint":
            raise UserError(f"{args.model} scores a lead table: use --table FILE, not --data")
        config = _load_rules(args.rules) if args.rules else (scorer.rules or _load_rules(None))
        table = model_table(crm, scorer, config, as_of, reasons=args.reasons)
        print(f"model {info['name'] or args.model} version {info['version'] or '?'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    mql = int(table["mql"].sum())
    how = "the points matrix" if args.rules_only else "the model and the points matrix"
    print(
        f"scored {len(table):,} contacts at {as_of.isoformat()} with {how}; "
        f"{mql:,} MQLs (threshold {config.mql_threshold:g}); wrote {args.out}"
    )
    return EXIT_OK


def cmd_rules_suggest(args: argparse.Namespace) -> int:
    import pandas as pd

    from features.pipeline.snapshots import SnapshotConfig
    from training.suggest import NotEnoughConversions, suggest_points, suggestion_yaml

    config = _load_rules(args.rules)
    crm = _load_crm(args.data)
    try:
        suggestion = suggest_points(
            crm, config, SnapshotConfig(horizon_days=args.horizon_days),
            min_conversions=args.min_conversions,
        )  # fmt: skip
    except NotEnoughConversions as exc:
        raise UserError(str(exc)) from exc
    print(
        f"learned from {suggestion.conversions:,} conversions in {suggestion.snapshots:,} "
        f"snapshots (base rate {suggestion.base_rate:.2%}); the MQL threshold "
        f"({config.mql_threshold:g}) keeps flagging {suggestion.mql_share:.2%} of them\n"
    )
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        columns = ["rule", "group", "current_points", "suggested_points", "share",
                   "conversion_rate", "lift"]  # fmt: skip
        print(suggestion.rules[columns].round(3).to_string(index=False))
        print("\nattribute insights (conversion rate and lift over the base rate):")
        print(suggestion.insights.round(3).to_string(index=False))
    text = suggestion_yaml(suggestion)
    if args.out is None:
        print("\n" + text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"\nwrote the suggested matrix to {args.out}")
    return EXIT_OK


def cmd_rules_evaluate(args: argparse.Namespace) -> int:
    from features.pipeline.snapshots import SnapshotConfig
    from training.rules_eval import evaluate_rules

    config = _load_rules(args.rules)
    crm = _load_crm(args.data)
    try:
        result = evaluate_rules(crm, config, SnapshotConfig(horizon_days=args.horizon_days))
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    print(result.to_text())
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    if args.table is not None:
        return _train_table(args)
    if args.data is None:
        raise UserError("give --data FOLDER (a CRM export) or --table FILE (a lead table)")
    from training.train import TrainConfig, train

    cfg = TrainConfig(
        horizon_days=args.horizon_days,
        experiment=args.experiment,
        rules_path=str(args.rules) if args.rules else None,
        seed=args.seed,
    )
    crm = _load_crm(args.data)
    try:
        result = train(cfg, args.data, dataset=args.dataset, crm=crm)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    from training.evaluate import table_markdown

    print(
        f"run {result.run_id}: registered {cfg.model_name} version {result.model_version} "
        f"as challenger (best iteration {result.best_iteration}, calibration "
        f"{result.calibration}; rows {result.rows})\n"
    )
    print(table_markdown(result.comparison))
    if result.latent_truth_auc is not None:
        print(
            f"latent truth ROC AUC on the same holdout (the knowable ceiling): "
            f"{result.latent_truth_auc:.4f}"
        )
    return EXIT_OK


def _score_table(args: argparse.Namespace) -> int:
    from features.model.batch import table_scores
    from features.model.pyfunc import load_scorer
    from features.table.read import read_table

    if args.rules_only:
        raise UserError("--rules-only scores a CRM export; a table is scored by its model")
    uri = args.model or TABLE_CHAMPION_URI
    try:
        scorer, info = load_scorer(uri)
    except Exception as exc:  # MLflow raises many kinds; all mean "no such model here"
        raise UserError(f"cannot load the model {uri}: {exc}") from exc
    if scorer.kind != "table":
        raise UserError(f"{uri} scores touchpoint histories (--data), not a lead table")
    try:
        table = table_scores(read_table(args.table, args.sep), scorer, reasons=args.reasons)
    except ValueError as exc:  # TableError: the file, a column, a cell
        raise UserError(str(exc)) from exc
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(
        f"model {info['name'] or uri} version {info['version'] or '?'}: scored "
        f"{len(table):,} leads of {args.table}; {int(table['mql'].sum()):,} MQLs; wrote {args.out}"
    )
    return EXIT_OK


def _train_table(args: argparse.Namespace) -> int:
    from features.table.spec import DEFAULT_PLACEHOLDERS
    from training.evaluate import table_markdown
    from training.table_train import TableTrainConfig, train_table

    if args.target is None:
        raise UserError("--table needs --target COLUMN (the converted flag)")
    cfg = TableTrainConfig(
        target=args.target,
        # (MLproject passes "" for an option it does not set)
        positive=args.positive or None,
        time_column=args.time_column or None,
        id_column=args.id_column or None,
        exclude=tuple(args.exclude),
        allow=tuple(args.allow),
        sep=args.sep,
        placeholders=tuple(args.placeholder) if args.placeholder else DEFAULT_PLACEHOLDERS,
        max_single_auc=args.max_single_auc,
        rules_path=str(args.rules) if args.rules else None,
        experiment=args.experiment,
        model_name=args.model_name or TABLE_MODEL_NAME,
        seed=args.seed,
    )
    try:
        result = train_table(cfg, args.table)
    except ValueError as exc:  # TableError, RulesError: the user's table or sheet
        raise UserError(str(exc)) from exc
    split = result.split
    print(
        f"run {result.run_id}: registered {cfg.model_name} version {result.model_version} "
        f"as challenger\nholdout: {split['rows_test']} rows, ordered by {split['ordered_by']} "
        f"(fit {split['rows_fit']}, validation {split['rows_validation']})\n"
        f"inputs: {len(result.spec.numeric)} numeric, {len(result.spec.categorical)} "
        "categorical columns"
    )
    for name, reason in result.spec.dropped.items():
        print(f"  not used: {name}: {reason}")
    flagged = result.leakage.table[result.leakage.table["reason"] != ""]
    for row in flagged.itertuples(index=False):
        print(f"leakage guard: {row.column}: {row.reason} -> {row.action}")
    print()
    print(table_markdown(result.comparison))
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import table_markdown
    from training.holdout import evaluate_model

    crm = _load_crm(args.data)  # a refused export is explained before anything else
    try:
        table, window = evaluate_model(args.model, args.data, args.horizon_days, crm=crm)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    print(
        f"recent holdout: {window['snapshots']} snapshots, {window['conversions']} conversions, "
        f"{window['holdout_from']} .. {window['holdout_to']}\n"
    )
    print(table_markdown(table))
    return EXIT_OK


def cmd_promote(args: argparse.Namespace) -> int:
    from training.promote import promote

    try:
        result = promote(
            name=args.name, version=args.version, force=args.force, data=args.data,
            metric=args.metric, min_improvement=args.min_improvement,
        )  # fmt: skip
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    print(result.message)
    return EXIT_OK if result.promoted else EXIT_REFUSED


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    os.environ["LEADSCORE_MODEL_URI"] = args.model
    print(f"serving {args.model} on http://{args.host}:{args.port} (docs at /docs)", flush=True)
    uvicorn.run(
        "serving.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
    )
    return EXIT_OK


# --- the parser ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadscore",
        description="Lead scoring for B2B: a calibrated conversion probability next to a "
        "transparent points score, learned from your CRM's closed-won deals.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser("generate", help="write a synthetic B2B CRM export")
    gen.add_argument("--out", required=True, type=Path, help="folder to write (must be empty)")
    gen.add_argument("--accounts", type=_positive_int, default=2_000, help="accounts to simulate")
    gen.add_argument("--seed", type=int, default=0, help="random seed (same seed, same CRM)")
    gen.add_argument("--start", type=_date, default="2024-01-01", help="first day, YYYY-MM-DD")
    gen.add_argument("--months", type=_positive_int, default=24, help="months to simulate")
    gen.add_argument("--format", choices=("csv", "parquet"), default="csv")
    gen.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=cmd_generate)

    val = sub.add_parser("validate", help="check a CRM export folder against the data contract")
    val.add_argument(
        "folder",
        type=Path,
        help="folder with accounts, contacts, touchpoints, opportunities (.csv or .parquet)",
    )
    val.add_argument("--json", action="store_true", help="print the report as JSON")
    val.set_defaults(func=cmd_validate)
    ds = sub.add_parser("build-dataset", help="build point-in-time training snapshots")
    ds.add_argument("--data", required=True, type=Path, help="CRM export folder")
    ds.add_argument("--out", required=True, type=Path, help="Parquet file to write")
    ds.add_argument(
        "--horizon-days",
        type=_positive_int,
        default=90,
        help="a deal won within this many days after as_of is a conversion",
    )
    ds.add_argument("--snapshot-every-days", type=_positive_int, default=30)
    ds.add_argument(
        "--start",
        type=_date,
        default=None,
        help="first as_of (default: a step after the first touchpoint)",
    )
    ds.add_argument(
        "--end",
        type=_date,
        default=None,
        help="last as_of considered (default: the end of the data)",
    )
    ds.add_argument(
        "--active-days",
        type=int,
        default=365,
        help="leave out contacts with no "
        "touchpoint or creation in this many days before as_of (0 keeps them all)",
    )
    ds.add_argument("--quiet", action="store_true", help="no progress bar")
    ds.set_defaults(func=cmd_build_dataset)
    sc = sub.add_parser("score", help="score every eligible contact of a CRM export")
    sc.add_argument("--data", type=Path, default=None, help="CRM export folder")
    sc.add_argument("--table", type=Path, default=None, help="or a lead table (CSV or Parquet)")
    sc.add_argument("--sep", default=",", help="CSV separator of --table (default ,)")
    sc.add_argument("--out", required=True, type=Path, help="CSV file to write")
    sc.add_argument(
        "--as-of",
        type=_timestamp,
        default=None,
        help="scoring moment, ISO 8601 (default: the end of the data)",
    )
    sc.add_argument(
        "--rules", type=Path, default=None, help="points matrix YAML (default: the shipped one)"
    )
    sc.add_argument("--rules-only", action="store_true", help="points only, no model")
    sc.add_argument(
        "--model",
        default=None,
        help=f"model URI (default {CHAMPION_URI}, with --table {TABLE_CHAMPION_URI})",
    )
    sc.add_argument(
        "--reasons",
        type=int,
        default=3,
        choices=range(0, 21),
        metavar="N",
        help="top reasons per contact, 0-20 (default 3; 0 is fastest)",
    )
    sc.set_defaults(func=cmd_score)

    tr = sub.add_parser(
        "train",
        help="train the model and register it as the challenger",
        description="Train on a CRM export (--data) or on a flat lead table (--table).",
    )
    tr.add_argument("--data", type=Path, default=None, help="CRM export folder")
    tr.add_argument(
        "--dataset",
        type=Path,
        default=None,
        help="snapshots from build-dataset (default: built from --data)",
    )
    tr.add_argument("--horizon-days", type=_positive_int, default=90)
    tr.add_argument("--experiment", default="lead-scoring", help="MLflow experiment")
    tr.add_argument("--rules", type=Path, default=None, help="points matrix for the baseline")
    tr.add_argument("--seed", type=int, default=0)
    flat = tr.add_argument_group("a flat lead table (one row per lead)")
    flat.add_argument("--table", type=Path, default=None, help="CSV or Parquet lead table")
    flat.add_argument("--target", default=None, help="the column that says converted")
    flat.add_argument(
        "--positive", default=None, help="the target value that means converted (default: 1/yes)"
    )
    flat.add_argument(
        "--time-column", default=None, help="orders the holdout: the most recent rows are tested"
    )
    flat.add_argument(
        "--id-column", default=None, help="lead id; a numeric id also orders the holdout"
    )
    flat.add_argument(
        "--exclude", nargs="+", default=[], metavar="COL", help="columns to leave out"
    )
    flat.add_argument(
        "--allow", nargs="+", default=[], metavar="COL", help="keep these despite the leakage guard"
    )
    flat.add_argument("--sep", default=",", help="CSV separator (default ,)")
    flat.add_argument(
        "--placeholder",
        action="append",
        default=None,
        metavar="TEXT",
        help="a cell value meaning missing, repeatable (default: Select, --, N/A, ...)",
    )
    flat.add_argument(
        "--max-single-auc",
        type=float,
        default=0.9,
        help="leakage guard: exclude a column that alone reaches this ROC AUC (default 0.9)",
    )
    flat.add_argument(
        "--model-name", default=None, help="registered model (default lead-scorer-table)"
    )
    tr.set_defaults(func=cmd_train)

    evl = sub.add_parser("evaluate", help="evaluate a registered model on a CRM export")
    evl.add_argument("--model", default=CHAMPION_URI, help="model URI")
    evl.add_argument("--data", required=True, type=Path, help="CRM export folder")
    evl.add_argument(
        "--horizon-days",
        type=_positive_int,
        default=None,
        help="default: the horizon the model was trained with",
    )
    evl.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("promote", help="make the challenger the champion if it is better")
    pr.add_argument(
        "--name", default=MODEL_NAME, help=f"registered model ({TABLE_MODEL_NAME} for tables)"
    )
    pr.add_argument("--version", default=None, help="make this version the champion (rollback)")
    pr.add_argument("--force", action="store_true", help="promote the challenger regardless")
    pr.add_argument(
        "--data",
        type=Path,
        default=None,
        help="CRM export (or lead table) for the comparison "
        "(default: the challenger's training data)",
    )
    pr.add_argument(
        "--metric", default="roc_auc", choices=("roc_auc", "pr_auc", "log_loss", "brier")
    )
    pr.add_argument(
        "--min-improvement", type=float, default=0.0, help="how much better the challenger must be"
    )
    pr.set_defaults(func=cmd_promote)

    sv = sub.add_parser("serve", help="run the scoring API")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=_positive_int, default=8000)
    sv.add_argument("--workers", type=_positive_int, default=1)
    sv.add_argument("--model", default=CHAMPION_URI, help="model URI")
    sv.set_defaults(func=cmd_serve)

    rules = sub.add_parser("rules", help="work with the points matrix")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    sug = rules_sub.add_parser("suggest", help="suggest point values from the CRM's outcomes")
    sug.add_argument("--data", required=True, type=Path, help="CRM export folder")
    sug.add_argument("--out", type=Path, default=None, help="YAML file to write (default: print)")
    sug.add_argument(
        "--rules", type=Path, default=None, help="the matrix to improve (default: the shipped one)"
    )
    sug.add_argument("--horizon-days", type=_positive_int, default=90)
    sug.add_argument(
        "--min-conversions",
        type=_positive_int,
        default=None,
        help="refuse below this many conversions (default: 5 per rule, >= 100)",
    )
    sug.set_defaults(func=cmd_rules_suggest)
    ev = rules_sub.add_parser("evaluate", help="measure how well a points matrix ranks leads")
    ev.add_argument("--data", required=True, type=Path, help="CRM export folder")
    ev.add_argument(
        "--rules", type=Path, default=None, help="the matrix (default: the shipped one)"
    )
    ev.add_argument("--horizon-days", type=_positive_int, default=90)
    ev.set_defaults(func=cmd_rules_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UserError as exc:
        print(f"leadscore {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
