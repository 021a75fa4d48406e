"""Train on a flat lead table: `leadscore train --table FILE --target COL`.

The same discipline as the touchpoint model (`training/train.py`), on a table with one
row per lead:

1. read the file, treat placeholders as missing, read the target (`--positive`);
2. order the rows by a time column, or by a numeric id that grows with time, and hold
   out the most recent share (fit | validation | test); without either, a stratified
   random split (and the report says so: a random split flatters any model);
3. decide the input columns on the fit rows, and run the leakage guard there;
4. LightGBM with native categoricals, early-stopped on the validation rows, calibrated
   when its validation ECE asks for it; a logistic regression and a points sheet (the
   user's, or one derived from the fit rows) on the same test rows;
5. log everything to MLflow (parameters, metrics, the guard's report, plots, the points
   sheet), register the model (kind "table") and make it the challenger.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import mlflow
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import train_test_split

from features.model.names import TABLE_MODEL_NAME
from features.model.scorer import LeadScorer
from features.points.table_sheet import (
    check_columns,
    derive_points,
    load_table_rules,
    score_table_rules,
    table_rules_yaml,
)
from features.table.cells import model_inputs, require_columns
from features.table.read import clean, order_key, read_table, target_values
from features.table.spec import DEFAULT_PLACEHOLDERS, TableError, TableSpec, infer_spec
from training import evaluate as E
from training.drift import DriftReport, drift_report
from training.fitting import (
    MIN_VALID_AUC,
    FitConfig,
    Part,
    WeakModelError,
    fit_and_refit,
    recency_weights,
)
from training.leakage import DEFAULT_MAX_AUC, LeakageReport, check_leakage
from training.registry import CHALLENGER, register_challenger
from training.tracking import describe, log_params, log_training_data, training_run
from training.train import (
    EXPERIMENT,
    fit_notes,
    importance_table,
    log_comparison,
    refit_row,
    vocabularies,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableTrainConfig:
    """Everything a table training run depends on; logged whole as the run's parameters."""

    target: str
    positive: str | None = None
    #: several values that mean converted, and those that mean lost (a preset's stages);
    #: with `negative_values`, every other value is a lead still open: left out, scored
    positive_values: tuple[str, ...] = ()
    negative_values: tuple[str, ...] = ()
    time_column: str | None = None
    id_column: str | None = None
    exclude: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()  # flagged by the leakage guard, kept on purpose
    sep: str = ","
    encoding: str = "utf-8"
    placeholders: tuple[str, ...] = DEFAULT_PLACEHOLDERS
    max_single_auc: float = DEFAULT_MAX_AUC
    test_fraction: float = 0.25
    validation_fraction: float = 0.2
    learning_rate: float = 0.03
    num_leaves: int = 15
    min_data_in_leaf: int = 20
    num_boost_round: int = 2000
    early_stopping_rounds: int = 100
    calibration: Literal["auto", "none", "isotonic", "platt"] = "auto"
    seed: int = 0
    num_threads: int = 2
    rules_path: str | None = None  # a points sheet; default: derived from the fit rows
    experiment: str = EXPERIMENT
    model_name: str = TABLE_MODEL_NAME
    min_valid_auc: float = MIN_VALID_AUC  # the weak-model guard (training/fitting.py)
    allow_weak: bool = False
    recency_half_life: float | None = None  # share of the period: rows halve in weight
    drop_calendar: bool = False  # leave out the columns that only encode the calendar

    def fit_config(self) -> FitConfig:
        """The estimators' settings (shared with the touchpoint trainer)."""
        return FitConfig(
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_data_in_leaf=self.min_data_in_leaf,
            num_boost_round=self.num_boost_round,
            early_stopping_rounds=self.early_stopping_rounds,
            calibration=self.calibration,
            seed=self.seed,
            num_threads=self.num_threads,
            linear_min_frequency=10,
            min_valid_auc=self.min_valid_auc,
            allow_weak=self.allow_weak,
        )


@dataclass
class TableSplit:
    fit: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    ordered_by: str | None  # None: stratified random
    order: pd.Series | None = None  # the time order of every row (by index), when known


@dataclass
class TableTrainResult:
    run_id: str
    model_version: str
    comparison: pd.DataFrame
    leakage: LeakageReport
    spec: TableSpec
    split: dict[str, object] = field(default_factory=dict)
    registered: str = ""  # what was registered, in words
    weak: str | None = None
    drift: DriftReport | None = None


def load_labelled(cfg: TableTrainConfig, path: str | Path) -> pd.DataFrame:
    """The cleaned table with a 0/1 `__converted__` column; rows without a target dropped."""
    raw = read_table(path, cfg.sep, cfg.encoding)
    require_columns(
        raw, [cfg.target, cfg.time_column, cfg.id_column, *cfg.exclude, *cfg.allow], str(path)
    )
    frame = clean(raw, cfg.placeholders)
    positive = cfg.positive or cfg.positive_values or None
    y = target_values(frame[cfg.target], positive, cfg.negative_values or None)
    keep = ~np.isnan(y)
    if (~keep).any():
        logger.warning(
            "%s: %d rows without a decided target (missing, or open) are left out of training",
            path,
            int((~keep).sum()),
        )
    frame = frame.loc[keep].copy()
    frame["__converted__"] = y[keep].astype(int)
    if frame["__converted__"].nunique() < 2:
        raise TableError(f"{path}: every row has the same target value; nothing to learn")
    return frame


def split_table(frame: pd.DataFrame, cfg: TableTrainConfig) -> TableSplit:
    """fit | validation | test, by time when an order is known, else stratified."""
    by = cfg.time_column
    if (
        by is None
        and cfg.id_column is not None
        and pd.api.types.is_numeric_dtype(frame[cfg.id_column])
    ):
        by = cfg.id_column  # a numeric id that grows with time stands for it
    y = frame["__converted__"]
    if by is not None:
        ordered = frame.assign(__order__=order_key(frame, by).to_numpy())
        ordered = ordered.sort_values("__order__", kind="stable").drop(columns="__order__")
        n = len(ordered)
        n_test = round(n * cfg.test_fraction)
        rest = n - n_test
        n_valid = round(rest * cfg.validation_fraction)
        parts = ordered.iloc[: rest - n_valid], ordered.iloc[rest - n_valid : rest]
        key = pd.Series(order_key(frame, by).to_numpy(), index=frame.index)
        return TableSplit(parts[0], parts[1], ordered.iloc[rest:], by, key)
    train_part, test = train_test_split(
        frame, test_size=cfg.test_fraction, stratify=y, random_state=cfg.seed
    )
    fit, valid = train_test_split(
        train_part,
        test_size=cfg.validation_fraction,
        stratify=train_part["__converted__"],
        random_state=cfg.seed,
    )
    return TableSplit(fit, valid, test, None)


def train_table(cfg: TableTrainConfig, path: str | Path) -> TableTrainResult:
    """Fit, compare, guard, log to MLflow, register as challenger (see the module doc)."""
    path = Path(path).resolve()  # stored in the model: `promote` runs from any folder
    frame = load_labelled(cfg, path)
    s = split_table(frame, cfg)
    for name, part in (("fit", s.fit), ("validation", s.valid), ("test", s.test)):
        if part["__converted__"].nunique() < 2:
            raise TableError(
                f"{path}: the {name} rows ({len(part)}) hold one target value only; "
                "the table is too small or too ordered for a holdout"
            )
    # Column kinds, constants and vocabularies from every training row (no label is
    # read): a column informative only lately must not be dropped as "one value only".
    spec = infer_spec(
        frame.drop(columns="__converted__"),
        cfg.target,
        cfg.positive,
        cfg.id_column,
        cfg.time_column,
        cfg.exclude,
        cfg.placeholders,
    )
    learn = pd.concat([s.fit, s.valid])  # labels the guard and the points sheet may read
    guard = check_leakage(
        model_inputs(learn, spec),
        learn["__converted__"].to_numpy(),
        spec,
        cfg.max_single_auc,
        cfg.allow,
        cfg.seed,
    )
    spec = _leave_out(
        spec, {name: f"leakage guard: {_reason(guard, name)}" for name in guard.excluded}
    )
    drift = _table_drift(frame, s, spec)
    if drift is not None:
        for line in drift.lines():
            logger.debug("%s", line)
        if cfg.drop_calendar and drift.calendar:
            spec = _leave_out(
                spec, {name: "encodes the calendar (--drop-calendar)" for name in drift.calendar}
            )
    if not spec.columns:
        raise TableError(f"{path}: no usable input column is left: {spec.dropped}")
    for name, reason in spec.dropped.items():
        logger.info("not used: %s (%s)", name, reason)

    all_x = model_inputs(frame, spec)
    fit_x, valid_x, test_x = (all_x.loc[p.index] for p in (s.fit, s.valid, s.test))
    y_valid, y = (p["__converted__"].to_numpy() for p in (s.valid, s.test))
    learn_x, learn_y = all_x.loc[learn.index], learn["__converted__"].to_numpy()
    rules = (
        load_table_rules(cfg.rules_path)
        if cfg.rules_path
        else derive_points(learn_x, learn_y, spec)
    )
    check_columns(rules, spec)
    template = LeadScorer(
        booster=None,
        vocabularies=vocabularies(all_x, spec.categorical),
        table_rules=rules,
        numeric=spec.numeric,
        categorical=spec.categorical,
    )
    weight = (
        recency_weights(s.order.loc[frame.index].to_numpy(), cfg.recency_half_life)
        if s.order is not None
        else None
    )
    weights = None if weight is None else pd.Series(weight, index=frame.index)
    parts = [
        Part(
            template.matrix_from_frame(x),
            part["__converted__"].to_numpy(),
            None if weights is None else weights.loc[part.index].to_numpy(),
        )
        for x, part in ((fit_x, s.fit), (valid_x, s.valid), (test_x, s.test))
    ]
    try:
        fitted = fit_and_refit(template, parts[0], parts[1], parts[2], cfg.fit_config())
    except WeakModelError as exc:
        exc.drift = drift  # printed with the refusal
        raise
    scorer = fitted.final
    if cfg.rules_path is None:  # the registered sheet, like the model, learns from every row
        scorer.table_rules = derive_points(all_x, frame["__converted__"].to_numpy(), spec)
    x_test = parts[2].x
    p_model = fitted.selection.predict(x_test)
    p_logreg = fitted.linear.predict(x_test)
    points_test = score_table_rules(rules, test_x)
    points_valid = score_table_rules(rules, valid_x).total
    points_to_p = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(
        points_valid, y_valid
    )
    p_rules = points_to_p.predict(points_test.total)
    share = float(points_test.mql.mean())
    results = {
        "model": E.metrics(y, p_model, p_model, E.select_top(p_model, share)),
        "logistic_regression": E.metrics(y, p_logreg, p_logreg, E.select_top(p_logreg, share)),
        **refit_row(fitted, y, share),
        "points": E.metrics(y, points_test.total, p_rules, points_test.mql),
    }
    fits = fit_notes(fitted, len(s.fit), "rows")
    table = E.comparison_table(results, fits)
    importance = importance_table(scorer, scorer.contributions(x_test[:5_000])[:, :-1])
    split_info: dict[str, object] = {
        "ordered_by": s.ordered_by or "stratified random",
        "rows_fit": len(s.fit),
        "rows_validation": len(s.valid),
        "rows_test": len(s.test),
        "rows_refit": fitted.refit_rows,
        "positive_rate_test": float(y.mean()),
    }
    best_iteration = int(fitted.selection.booster.best_iteration)  # type: ignore[union-attr]
    scorer.metadata = {
        "kind": "table",
        "table": spec.as_dict(),
        "trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
        "data_source": str(path),
        "split": split_info,
        "train_config": _jsonable(asdict(cfg)),
        "estimator": scorer.estimator,
        "refit": {"rows": fitted.refit_rows, "rounds": fitted.rounds},
        "weak": fitted.weak,
        "validation_roc_auc": fitted.valid_auc,
        "holdout_metrics": {k: round(v, 6) for k, v in results["model"].items()},
        "holdout_fit": fits["model"],
        "rules_holdout_metrics": {k: round(v, 6) for k, v in results["points"].items()},
        "leakage": guard.table.to_dict("records"),
        "drift": None
        if drift is None
        else {"rate_ratio": drift.rate_ratio, "calendar": drift.calendar},
        "best_iteration": best_iteration,
        "feature_importance": importance[["feature", "mean_abs_shap", "gain"]].to_dict("records"),
    }

    order = f"holdout by {s.ordered_by}" if s.ordered_by else "stratified holdout"
    name = f"{path.name}: {len(frame):,} leads, {order}"
    with training_run(cfg.experiment, name) as run, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        auc = results["model"]["roc_auc"]
        describe(
            f"{name} · ROC AUC {auc:.3f}",
            f"Lead-table model on `{path}` ({len(frame):,} rows with a target, "
            f"{len(spec.numeric)} numeric and {len(spec.categorical)} categorical inputs): "
            f"fit {len(s.fit):,} | validation {len(s.valid):,} | test {len(s.test):,} rows, "
            f"{order}. Holdout ROC AUC {auc:.4f} (logistic regression "
            f"{results['logistic_regression']['roc_auc']:.4f}, points "
            f"{results['points']['roc_auc']:.4f}). Registered: {fits['registered']}."
            + (
                f" Left out by the leakage guard: {', '.join(guard.excluded)}."
                if guard.excluded
                else ""
            )
            + (f" Weak booster: {fitted.weak}." if fitted.weak else ""),
        )
        mlflow.set_tags({"model_kind": "table", "leakage_excluded": ", ".join(guard.excluded)})
        log_params(
            {
                **_jsonable(asdict(cfg)),
                "data": str(path),
                "kind": "table",
                **split_info,
                "inputs_numeric": len(spec.numeric),
                "inputs_categorical": len(spec.categorical),
                "leakage_excluded": ", ".join(guard.excluded) or "none",
                "best_iteration": best_iteration,
                "rounds_refit": fitted.rounds,
                "estimator": scorer.estimator,
                "calibration_method": scorer.calibration.method,
            }
        )
        log_comparison(
            out,
            results,
            table,
            y,
            (p_model, p_logreg, points_test.total),
            p_rules,
            importance,
            drift,
        )
        (out / "leakage.md").write_text(guard.markdown())
        guard.table.to_csv(out / "leakage.csv", index=False)
        (out / "inputs.json").write_text(json.dumps(spec.as_dict(), indent=1))
        (out / "points.yaml").write_text(
            table_rules_yaml(scorer.table_rules or rules), encoding="utf-8"
        )
        mlflow.log_artifacts(str(out))
        log_training_data(frame.drop(columns="__converted__"), str(path), cfg.target, "lead-table")
        version = register_challenger(
            scorer, out / "scorer", test_x.head(5), cfg.model_name, weak=fitted.weak
        )
        run_id = run.info.run_id
    logger.info("registered %s version %s as %s", cfg.model_name, version, CHALLENGER)
    return TableTrainResult(
        run_id, version, table, guard, spec, split_info, fits["registered"], fitted.weak, drift
    )


@dataclass
class TableHoldout:
    """The test rows of a table training run, raw, for comparing models on them."""

    frame: pd.DataFrame  # cleaned rows with `__converted__`

    def metric(self, scorer: LeadScorer, name: str) -> float:
        spec = scorer.table_spec
        x = scorer.matrix_from_frame(model_inputs(self.frame, spec))
        p = scorer.predict(x)
        y = self.frame["__converted__"].to_numpy()
        return E.metrics(y, p, p, E.select_top(p, 0.1))[name]


def table_holdout(scorer: LeadScorer, table: str | Path | None) -> tuple[TableHoldout, str]:
    """The challenger's test rows, split again as in its training run (deterministic)."""
    state = dict(scorer.metadata["train_config"])
    source = table or scorer.metadata.get("data_source")
    if source is None or not Path(source).is_file():
        raise TableError(
            f"no lead table to compare on: pass --data FILE (the challenger's table "
            f"{source!r} is not a file here)"
        )
    for key in ("exclude", "allow", "placeholders"):
        state[key] = tuple(state.get(key, ()))
    cfg = TableTrainConfig(**state)
    s = split_table(load_labelled(cfg, source), cfg)
    return TableHoldout(s.test), f"{len(s.test):,} rows of {source}, by {s.ordered_by or 'chance'}"


def _jsonable(values: dict[str, object]) -> dict[str, object]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def _reason(guard: LeakageReport, name: str) -> str:
    return str(guard.table.loc[guard.table["column"] == name, "reason"].iloc[0])


def _leave_out(spec: TableSpec, reasons: dict[str, str]) -> TableSpec:
    """The spec without these input columns, each recorded with its reason."""
    if not reasons:
        return spec
    return replace(
        spec,
        numeric=tuple(c for c in spec.numeric if c not in reasons),
        categorical=tuple(c for c in spec.categorical if c not in reasons),
        dropped={**spec.dropped, **reasons},
    )


def _table_drift(frame: pd.DataFrame, s: TableSplit, spec: TableSpec) -> DriftReport | None:
    """The drift report over the table's rows, when they have a time order."""
    if s.order is None:
        return None
    inputs = model_inputs(frame, spec)
    labels = frame[s.ordered_by].astype(str).to_numpy() if s.ordered_by else None
    return drift_report(
        inputs,
        frame["__converted__"].to_numpy(),
        s.order.loc[frame.index].to_numpy(),
        labels if labels is not None else np.arange(len(frame)),
        frame.index.isin(s.fit.index),
        frame.index.isin(s.test.index),
        spec.numeric,
        spec.categorical,
    )
