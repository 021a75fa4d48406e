"""Commands on models: `train` (an export or a lead table), `evaluate`, `promote`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from features.model.names import CHAMPION_URI, MODEL_NAME, TABLE_MODEL_NAME
from leadscore.inputs import (
    DATA_HELP,
    EXIT_OK,
    EXIT_REFUSED,
    UserError,
    add_csv_options,
    add_engine_options,
    dask_or_fail,
    data_source,
    load_crm_or_fail,
    positive_int,
)

if TYPE_CHECKING:
    from features.table.bitrix24 import Preset
    from training.train import TrainConfig, TrainResult


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
        csv_sep=args.sep,
        csv_encoding=args.encoding,
        allow_weak=args.allow_weak,
        recency_half_life=args.recency_half_life,
    )
    try:
        if args.engine == "dask":
            result = _train_dask(cfg, args)
        else:
            crm = load_crm_or_fail(args.data, args)
            result = train(cfg, args.data, dataset=args.dataset, crm=crm)
    except ValueError as exc:  # WeakModelError included: nothing was registered
        _print_drift(exc)
        raise UserError(str(exc)) from exc
    from training.evaluate import table_markdown

    if result.drift is not None:
        print("\n".join(result.drift.lines()) + "\n")
    if result.weak:
        print(f"WEAK MODEL: {result.weak}\n")
    print(
        f"run {result.run_id}: registered {cfg.model_name} version {result.model_version} "
        f"as challenger: {result.registered}\n(selection fit: best iteration "
        f"{result.best_iteration}; calibration {result.calibration}; rows {result.rows})\n"
    )
    print(table_markdown(result.comparison))
    if result.latent_truth_auc is not None:
        print(
            f"latent truth ROC AUC on the same holdout (the knowable ceiling): "
            f"{result.latent_truth_auc:.4f}"
        )
    return EXIT_OK


def _train_dask(cfg: TrainConfig, args: argparse.Namespace) -> TrainResult:
    """The same run on a Dask cluster (training/distributed.py)."""
    if args.dataset is not None:
        raise UserError(
            "--engine dask builds its snapshots on the cluster from --data (the points "
            "baseline and the holdout evidence need the export's touchpoints); leave out "
            "--dataset"
        )
    from features.crm.database import is_database_url

    if is_database_url(str(args.data)):
        raise UserError("--engine dask reads an export folder (CSV or Parquet), not a database")
    dask_or_fail()
    from features.pipeline.partitions import PartitionError
    from training.distributed import train_dask

    try:
        return train_dask(
            cfg, args.data, scheduler=args.scheduler, n_partitions=args.partitions,
            workers=args.workers, say=print,
        )  # fmt: skip
    except PartitionError as exc:
        raise UserError(str(exc)) from None


def _train_table(args: argparse.Namespace) -> int:
    from features.table.spec import DEFAULT_PLACEHOLDERS
    from training.evaluate import table_markdown
    from training.table_train import TableTrainConfig, train_table

    found = _bitrix24_preset(args) if args.preset == "bitrix24" else None
    if found is None and args.target is None:
        raise UserError("--table needs --target COLUMN (the converted flag), or --preset")
    cfg = TableTrainConfig(
        target=args.target or (found.target if found else ""),
        # (MLproject passes "" for an option it does not set)
        positive=args.positive or None,
        time_column=args.time_column or (found.time_column if found else None) or None,
        id_column=args.id_column or (found.id_column if found else None) or None,
        exclude=tuple(args.exclude) + (found.exclude if found else ()),
        positive_values=found.positive if found else (),
        negative_values=found.negative if found else (),
        allow=tuple(args.allow),
        sep=args.sep,
        encoding=args.encoding,
        placeholders=tuple(args.placeholder) if args.placeholder else DEFAULT_PLACEHOLDERS,
        max_single_auc=args.max_single_auc,
        rules_path=str(args.rules) if args.rules else None,
        experiment=args.experiment,
        model_name=args.model_name or TABLE_MODEL_NAME,
        seed=args.seed,
        allow_weak=args.allow_weak,
        recency_half_life=args.recency_half_life,
        drop_calendar=args.drop_calendar,
    )
    try:
        result = train_table(cfg, args.table)
    except ValueError as exc:  # TableError, RulesError, WeakModelError: nothing registered
        _print_drift(exc)
        raise UserError(str(exc)) from exc
    split = result.split
    if result.drift is not None:
        print("\n".join(result.drift.lines()) + "\n")
    if result.weak:
        print(f"WEAK MODEL: {result.weak}\n")
    print(
        f"run {result.run_id}: registered {cfg.model_name} version {result.model_version} "
        f"as challenger: {result.registered}\nholdout: {split['rows_test']} rows, ordered by "
        f"{split['ordered_by']} (fit {split['rows_fit']}, validation {split['rows_validation']})"
        f"\ninputs: {len(result.spec.numeric)} numeric, {len(result.spec.categorical)} "
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


def _bitrix24_preset(args: argparse.Namespace) -> Preset:
    """A Bitrix24 lead export: the stage as the target (converted 1, junk 0, open stages
    left out and scored), the creation date and ID, and what leaks or names a person out."""
    from features.table.bitrix24 import PresetError, preset
    from features.table.read import read_table
    from features.table.spec import TableError

    try:
        columns = read_table(args.table, args.sep, args.encoding).columns
        found = preset(columns)
    except (TableError, PresetError) as exc:
        raise UserError(str(exc)) from exc
    print(
        f"bitrix24 preset: target {found.target!r} (1: {', '.join(found.positive[:2])}; "
        f"0: {', '.join(found.negative[:2])}; other stages are open: not trained on), "
        f"id {found.id_column!r}, time {found.time_column!r}"
    )
    for column, why in found.reasons.items():
        print(f"  left out: {column}: {why}")
    return found


def _print_drift(exc: Exception) -> None:
    """A refused (weak) model's drift report: why the data may have beaten the model."""
    drift = getattr(exc, "drift", None)
    if drift is not None:
        print("\n".join(drift.lines()) + "\n")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import table_markdown
    from training.holdout import evaluate_model

    crm = load_crm_or_fail(args.data, args)  # a refused export is explained before anything else
    try:
        table, window = evaluate_model(args.model, args.data, args.horizon_days, crm=crm)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    print(
        f"recent holdout: {window['snapshots']} snapshots, {window['conversions']} conversions, "
        f"{window['holdout_from']} .. {window['holdout_to']}\n"
    )
    if window["warning"]:
        print(f"note: {window['warning']}\n")
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


def add_commands(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser(
        "train",
        help="train the model and register it as the challenger",
        description="Train on a CRM export (--data) or on a flat lead table (--table).",
    )
    tr.add_argument("--data", type=data_source, default=None, help=DATA_HELP)
    add_csv_options(tr, "the CSV files of --data or --table")
    tr.add_argument(
        "--dataset",
        type=Path,
        default=None,
        help="snapshots from build-dataset (default: built from --data)",
    )
    tr.add_argument("--horizon-days", type=positive_int, default=90)
    add_engine_options(tr)
    tr.add_argument("--experiment", default="lead-scoring", help="MLflow experiment")
    tr.add_argument("--rules", type=Path, default=None, help="points matrix for the baseline")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument(
        "--allow-weak",
        action="store_true",
        help="register the boosted model even when it learned nothing (promote then needs --force)",
    )
    tr.add_argument(
        "--recency-half-life",
        type=float,
        default=None,
        metavar="SHARE",
        help="weigh rows down with age: halved every SHARE of the training period "
        "(0.5: a row from the middle counts half); default: equal weights",
    )
    flat = tr.add_argument_group("a flat lead table (one row per lead)")
    flat.add_argument("--table", type=Path, default=None, help="CSV or Parquet lead table")
    flat.add_argument("--target", default=None, help="the column that says converted")
    flat.add_argument(
        "--preset",
        choices=["bitrix24"],
        default=None,
        help="read a known CRM's lead export: bitrix24 (stages as the target, open leads "
        "left out of training; see docs/integrations.md)",
    )
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
    flat.add_argument(
        "--drop-calendar",
        action="store_true",
        help="leave out the columns that only encode the calendar (the drift report names them)",
    )
    tr.set_defaults(func=cmd_train)

    evl = sub.add_parser("evaluate", help="evaluate a registered model on a CRM export")
    evl.add_argument("--model", default=CHAMPION_URI, help="model URI")
    evl.add_argument("--data", required=True, type=data_source, help=DATA_HELP)
    add_csv_options(evl)
    evl.add_argument(
        "--horizon-days",
        type=positive_int,
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
        type=data_source,
        default=None,
        help="CRM export (folder or lead store URL, or a lead table) for the comparison "
        "(default: the challenger's training data)",
    )
    pr.add_argument(
        "--metric", default="roc_auc", choices=("roc_auc", "pr_auc", "log_loss", "brier")
    )
    pr.add_argument(
        "--min-improvement", type=float, default=0.0, help="how much better the challenger must be"
    )
    pr.set_defaults(func=cmd_promote)
