"""Train the lead-scoring model on closed-won outcomes and compare it with its baselines.

    snapshots ──> fit │ gap │ validation │ gap │ test          (gaps: one horizon each)
                  LightGBM (native categoricals), early stopping on validation
                  calibration fitted on validation, only if validation shows it is needed
                  logistic regression and the points score on the same test rows
    registered:   the same recipe refitted on every snapshot (training/fitting.py)

The figures a run reports are the selection model's on the test rows, which it never
saw; the model registered has seen every row, the newest included. Before anything is
registered the drift report says how the data moved (training/drift.py), and the
weak-model guard refuses a model that learned nothing.

Everything is logged to one MLflow run (the whole config, metrics, plots, the comparison
table, the drift report, the feature list, the rules used, the training data as a
dataset input), and the model is logged once as a pyfunc and registered with the alias
`challenger`.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Protocol

import mlflow
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from features.crm.database import absolute_url, is_database_url, safe_url
from features.crm.load import CRM, CsvFormat, load_crm
from features.model.evidence import Evidence, sample_rows
from features.model.names import MODEL_NAME
from features.model.scorer import LeadScorer
from features.pipeline import registry as R
from features.pipeline.snapshots import SnapshotConfig, TimeSplit, build_snapshots, time_split
from features.pipeline.store import EventStore, seconds
from features.points.engine import score_rules
from features.points.matrix import RulesConfig, load_rules, rules_yaml
from training import evaluate as E
from training.drift import DriftReport, drift_report
from training.fitting import (
    MIN_VALID_AUC,
    FitConfig,
    Fitted,
    Part,
    WeakModelError,
    fit_and_refit,
    recency_weights,
)
from training.holdout import rule_points
from training.registry import CHALLENGER, register_challenger
from training.suggest import NotEnoughConversions, suggest_points
from training.tracking import describe, log_params, log_training_data, training_run
from training.truth import latent_propensity, load_episodes

logger = logging.getLogger(__name__)

EXPERIMENT = "lead-scoring"


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; logged whole as the run's parameters."""

    horizon_days: int = 90
    snapshot_every_days: int = 30
    active_days: int | None = 365
    test_fraction: float = 0.25  # the most recent share of as_of dates
    validation_fraction: float = 0.2  # of the remaining dates: early stopping, calibration
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_data_in_leaf: int = 100
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    num_boost_round: int = 2000
    early_stopping_rounds: int = 100
    stopping_rows: int = 50_000  # validation rows that decide early stopping (training/fitting.py)
    calibration: Literal["auto", "none", "isotonic", "platt"] = "auto"
    calibration_ece_tolerance: float = 0.002  # auto: calibrate above this validation ECE
    seed: int = 0
    num_threads: int = 2
    experiment: str = EXPERIMENT
    model_name: str = MODEL_NAME
    rules_path: str | None = None
    csv_sep: str = ","  # how the export's CSV files are written (promote reads them again)
    csv_encoding: str = "utf-8"
    min_valid_auc: float = MIN_VALID_AUC  # the weak-model guard (training/fitting.py)
    allow_weak: bool = False
    recency_half_life: float | None = None  # share of the period: rows halve in weight

    def snapshots(self) -> SnapshotConfig:
        return SnapshotConfig(
            self.horizon_days, self.snapshot_every_days, active_days=self.active_days
        )

    def fit_config(self, linear_min_frequency: int = 50) -> FitConfig:
        return FitConfig(
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_data_in_leaf=self.min_data_in_leaf,
            feature_fraction=self.feature_fraction,
            bagging_fraction=self.bagging_fraction,
            lambda_l2=self.lambda_l2,
            num_boost_round=self.num_boost_round,
            early_stopping_rounds=self.early_stopping_rounds,
            stopping_rows=self.stopping_rows,
            calibration=self.calibration,
            calibration_ece_tolerance=self.calibration_ece_tolerance,
            seed=self.seed,
            num_threads=self.num_threads,
            linear_min_frequency=linear_min_frequency,
            min_valid_auc=self.min_valid_auc,
            allow_weak=self.allow_weak,
        )


@dataclass
class TrainResult:
    run_id: str
    model_version: str
    comparison: pd.DataFrame
    best_iteration: int
    calibration: str
    latent_truth_auc: float | None
    rows: dict[str, int]  # fit, validation, test, refit (every row, for the registered model)
    seconds: dict[str, float]  # wall time per stage: snapshots, fit, calibration, ...
    rounds: int  # boosting rounds the selection fit ran (best iteration + patience, capped)
    estimator: str = "lightgbm"  # what was registered: lightgbm, or logistic (weak booster)
    weak: str | None = None  # why the booster was judged to have learned nothing
    refit_rounds: int = 0  # of the registered booster
    drift: DriftReport | None = None
    registered: str = ""  # what was registered, in words


@dataclass
class Splits:
    fit: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    outer: TimeSplit
    inner: TimeSplit


def split(frame: pd.DataFrame, cfg: TrainConfig) -> Splits:
    """fit | gap | validation | gap | test, all by as_of, each gap one horizon."""
    outer = time_split(frame, cfg.horizon_days, cfg.test_fraction)
    try:
        inner = time_split(outer.train, cfg.horizon_days, cfg.validation_fraction)
    except ValueError as exc:
        raise ValueError(
            f"not enough history for a validation slice before the test period: {exc}. "
            "Use more months of data, --snapshot-every-days smaller, or a shorter horizon."
        ) from exc
    return Splits(inner.train, inner.test, outer.test, outer, inner)


def vocabularies(frame: pd.DataFrame, names: Sequence[str] = R.CATEGORICAL) -> dict[str, list[str]]:
    """Known values of each categorical feature, most frequent first (from every training row:
    no label is read, and a value that only appears lately must not become "unknown")."""
    out = {}
    for name in names:
        counts = frame[name].astype(object).dropna().value_counts()
        out[name] = [str(v) for v in counts.index]
    return out


def importance_table(scorer: LeadScorer, contributions: np.ndarray) -> pd.DataFrame:
    """Mean |SHAP| (of ``contributions``: rows x features) and gain, most important first."""
    gain = (
        scorer.booster.feature_importance(importance_type="gain")
        if scorer.booster is not None
        else np.full(len(scorer.feature_names), np.nan)
    )
    shap = np.abs(contributions).mean(axis=0)
    return pd.DataFrame(
        {
            "feature": scorer.feature_names,
            "label": [R.label(f) for f in scorer.feature_names],
            "gain": gain,
            "mean_abs_shap": shap,
        }
    ).sort_values("mean_abs_shap", ascending=False)


#: holdout rows whose contributions are computed (mean |SHAP| settles long before it, and
#: TreeSHAP of a refit model is costly)
EXPLAINED_ROWS = 5_000


class MatchedPoints(Protocol):
    """The points of holdout rows with what each rule matched (a `RuleScores`, or the
    rows of one gathered from a Dask cluster's partitions)."""

    rule_names: list[str]
    total: np.ndarray
    mql: np.ndarray
    count: np.ndarray  # (rows, rules)
    decay: np.ndarray  # (rows, rules)


def holdout_evidence(
    test: pd.DataFrame,
    probability: np.ndarray,
    points: MatchedPoints,
    scorer: LeadScorer,
    x_test: np.ndarray,
    seed: int,
    holdout_rows: int | None = None,
) -> Evidence:
    """The holdout as the workspace reads it (features/model/evidence.py), with the
    registered model's contributions on a sample of it. ``holdout_rows``: the whole
    holdout's size when ``test`` is already the sample of it (`sample_rows`)."""
    keep = sample_rows(len(test), seed)
    rng = np.random.default_rng(seed + 1)
    explained = np.sort(rng.choice(len(keep), size=min(EXPLAINED_ROWS, len(keep)), replace=False))
    frame = test.iloc[keep].reset_index(drop=True)
    ids = pd.DataFrame(
        {
            "contact_id": frame["contact_id"].astype(str),
            "account_id": frame["account_id"].astype(object)
            if "account_id" in frame
            else pd.Series([None] * len(frame), dtype=object),
            "as_of": frame["as_of"],
            "converted": frame["converted"].astype(bool),
            "probability": probability[keep],
            "points": points.total[keep],
            "mql": points.mql[keep],
        }
    )
    features = scorer.feature_names
    table = pd.concat([ids, frame[features].reset_index(drop=True)], axis=1)
    contributions = scorer.contributions(x_test[keep][explained])[:, :-1]
    return Evidence(
        frame=table,
        rule_names=list(points.rule_names),
        count=points.count[keep],
        weight=(points.count * points.decay)[keep],
        shap=contributions,
        explained=explained,
        features=list(features),
        meta={"holdout_rows": holdout_rows or len(test), "kept_rows": len(keep)},
    )


def suggestions(
    crm: CRM, rules: RulesConfig, cfg: TrainConfig, store: EventStore
) -> tuple[list[dict[str, object]] | None, str]:
    """Suggested point values and their evidence (training/suggest.py), or why there are none."""
    try:
        found = suggest_points(crm, rules, cfg.snapshots(), store=store)
    except NotEnoughConversions as exc:
        return None, str(exc)
    table = found.rules.astype(object).where(found.rules.notna(), None)
    return [{str(k): v for k, v in row.items()} for row in table.to_dict("records")], ""


def train(
    cfg: TrainConfig, data: str | Path, dataset: str | Path | None = None, crm: CRM | None = None
) -> TrainResult:
    """Build (or read) the training set, fit, compare, log to MLflow, register as challenger."""
    clock = Clock()
    # stored in the model (`promote` runs from any folder; a password never is)
    database = is_database_url(str(data))
    data = absolute_url(str(data)) if database else Path(data).resolve()
    crm = crm or load_crm(data, CsvFormat(cfg.csv_sep, cfg.csv_encoding))
    if database:
        data = safe_url(str(data))
    store = EventStore.from_crm(crm)
    rules = load_rules(cfg.rules_path)
    if dataset is not None:
        frame = pd.read_parquet(dataset)
        source = str(Path(dataset).resolve())
    else:
        frame, _ = build_snapshots(crm, cfg.snapshots(), store=store)
        source = str(data)
    if frame["converted"].sum() < 20:
        raise ValueError(
            f"only {int(frame['converted'].sum())} conversions in {len(frame):,} snapshots; "
            "a model needs at least 20 (more history or a longer horizon)"
        )
    clock.lap("snapshots")
    s = split(frame, cfg)
    logger.info("split: fit %d, validation %d, test %d rows", len(s.fit), len(s.valid), len(s.test))
    template = LeadScorer(booster=None, vocabularies=vocabularies(frame), rules=rules)
    weight = recency_weights(epoch_seconds(frame["as_of"]), cfg.recency_half_life)
    x_all, y_all = template.matrix_from_frame(frame), frame["converted"].to_numpy()
    parts = {}  # each slice's rows of the one encoded matrix
    for name, rows in (("fit", s.fit), ("valid", s.valid), ("test", s.test)):
        at = frame.index.get_indexer(rows.index)
        parts[name] = Part(x_all[at], y_all[at], None if weight is None else weight[at])
    drift = snapshot_drift(frame, s)
    for line in drift.lines():
        logger.debug("%s", line)
    clock.lap("encode")
    try:
        fitted = fit_and_refit(
            template,
            parts["fit"],
            parts["valid"],
            parts["test"],
            cfg.fit_config(),
            every_row=Part(x_all, y_all, weight),
        )
    except WeakModelError as exc:
        exc.drift = drift  # printed with the refusal
        raise
    clock.lap("fit")
    scorer = fitted.final

    y = parts["test"].y
    x_test = parts["test"].x
    p_model = fitted.selection.predict(x_test)
    p_logreg = fitted.linear.predict(x_test)
    test_points = score_rules(
        rules, store, store.contact_index(s.test["contact_id"].astype(str).tolist()),
        seconds(s.test["as_of"]),
    )  # fmt: skip
    points_valid, _ = rule_points(rules, store, s.valid)
    clock.lap("baselines")
    episodes = None if database else load_episodes(data)
    truth = (
        None
        if episodes is None
        else latent_propensity(episodes, s.test["account_id"], s.test["as_of"])
    )
    held = Holdout(y, p_model, p_logreg, test_points.total, test_points.mql, truth)
    compared = compare(held, fitted, points_valid, parts["valid"].y, len(s.fit))
    evidence = holdout_evidence(s.test, p_model, test_points, scorer, x_test, cfg.seed)
    evidence.suggestions, evidence.suggestion_note = suggestions(crm, rules, cfg, store)
    return record(
        cfg,
        Trained(
            data=str(data),
            database=database,
            source=source,
            frame=frame,
            rows=(len(s.fit), len(s.valid), len(s.test)),
            test_window=(s.test["as_of"].min(), s.test["as_of"].max()),
            contacts=len(crm.contacts),
            touchpoints=len(crm.touchpoints),
            example=s.test[list(R.FEATURE_NAMES)].head(5),
            drift=drift,
        ),
        fitted,
        held,
        compared,
        evidence,
        clock,
    )


@dataclass
class Holdout:
    """Every scorer's view of the test rows (the selection model never saw them)."""

    y: np.ndarray
    p_model: np.ndarray
    p_logreg: np.ndarray
    points: np.ndarray
    mql: np.ndarray
    truth: np.ndarray | None = None  # the synthetic generator's latent propensity, if known


@dataclass
class Compared:
    results: dict[str, dict[str, float]]
    table: pd.DataFrame
    fits: dict[str, str]
    p_rules: np.ndarray  # the points as a probability (isotonic on validation)
    truth_auc: float | None


def compare(
    held: Holdout, fitted: Fitted, points_valid: np.ndarray, y_valid: np.ndarray, fit_rows: int
) -> Compared:
    """The comparison table: the model, its baselines and the refit twin on the test rows."""
    # The points as a probability (for log loss, Brier, ECE): isotonic map fitted on validation.
    points_to_p = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(
        points_valid, y_valid
    )
    p_rules = points_to_p.predict(held.points)
    y, p_model, p_logreg = held.y, held.p_model, held.p_logreg
    share = float(held.mql.mean())
    results = {
        "model": E.metrics(y, p_model, p_model, E.select_top(p_model, share)),
        "logistic_regression": E.metrics(y, p_logreg, p_logreg, E.select_top(p_logreg, share)),
        **refit_row(fitted, y, share),
        "rules": E.metrics(y, held.points, p_rules, held.mql),
    }
    truth_auc = None if held.truth is None else float(roc_auc_score(y, held.truth))
    fits = fit_notes(fitted, fit_rows, "snapshots")
    return Compared(results, E.comparison_table(results, fits), fits, p_rules, truth_auc)


@dataclass
class Trained:
    """What a trainer learned from, as the run and the model describe it."""

    data: str
    database: bool
    source: str  # the dataset's location (the export, or a --dataset file)
    frame: pd.DataFrame  # the training snapshots (a sample of them on Dask: dates, schema)
    rows: tuple[int, int, int]  # fit, validation, test
    test_window: tuple[pd.Timestamp, pd.Timestamp]
    contacts: int
    touchpoints: int
    example: pd.DataFrame  # a few test rows' features: the model's input example
    drift: DriftReport
    engine: str = "single"
    period: tuple[pd.Timestamp, pd.Timestamp] | None = None  # of every row (frame's otherwise)
    snapshots: int | None = None  # every row's count (the frame's otherwise)


def record(
    cfg: TrainConfig,
    trained: Trained,
    fitted: Fitted,
    held: Holdout,
    compared: Compared,
    evidence: Evidence,
    clock: Clock,
) -> TrainResult:
    """Describe the registered model, log the run to MLflow, register it as challenger."""
    scorer = fitted.final
    frame, data, database = trained.frame, trained.data, trained.database
    results, table, fits = compared.results, compared.table, compared.fits
    evidence.meta["base_rate"] = float(held.y.mean())
    importance = importance_table(scorer, evidence.shap)
    scorer.evidence = evidence
    best_iteration = int(fitted.selection.booster.best_iteration)  # type: ignore[union-attr]
    first, last = trained.period or (frame["as_of"].min(), frame["as_of"].max())
    n_rows = trained.snapshots if trained.snapshots is not None else len(frame)
    n_fit, n_valid, n_test = trained.rows
    scorer.metadata = {
        "trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
        "training_window": [str(first), str(last)],
        "test_window": [str(t) for t in trained.test_window],
        "horizon_days": cfg.horizon_days,
        "best_iteration": best_iteration,
        "estimator": scorer.estimator,
        "refit": {"rows": fitted.refit_rows, "rounds": fitted.rounds},
        "weak": fitted.weak,
        "validation_roc_auc": fitted.valid_auc,
        "holdout_metrics": {k: round(v, 6) for k, v in results["model"].items()},
        "holdout_fit": fits["model"],
        "rules_holdout_metrics": {k: round(v, 6) for k, v in results["rules"].items()},
        "latent_truth_roc_auc": compared.truth_auc,
        "drift": {"rate_ratio": trained.drift.rate_ratio, "calendar": trained.drift.calendar},
        "data_source": data,
        "csv_format": {"sep": cfg.csv_sep, "encoding": cfg.csv_encoding},
        "kind": "touchpoint",
        "engine": trained.engine,
        "feature_importance": importance[["feature", "mean_abs_shap", "gain"]].to_dict("records"),
    }
    clock.lap("evaluation")

    period = f"{first:%Y-%m}..{last:%Y-%m}"
    name = f"{'lead store' if database else Path(data).name}: {n_rows:,} snapshots {period}"
    with training_run(cfg.experiment, name) as run, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        auc = results["model"]["roc_auc"]
        describe(
            f"{name} · ROC AUC {auc:.3f}",
            f"Touchpoint model on `{data}` ({trained.contacts:,} contacts, "
            f"{trained.touchpoints:,} touchpoints): {n_rows:,} snapshots every "
            f"{cfg.snapshot_every_days} days, {period}, horizon {cfg.horizon_days} days; "
            f"fit {n_fit:,} | validation {n_valid:,} | test {n_test:,} rows"
            + ("" if trained.engine == "single" else f", trained on {trained.engine}")
            + f". Holdout ROC AUC {auc:.4f} (logistic regression "
            f"{results['logistic_regression']['roc_auc']:.4f}, points "
            f"{results['rules']['roc_auc']:.4f}). Registered: {fits['registered']}."
            + (f" Weak booster: {fitted.weak}." if fitted.weak else ""),
        )
        log_params(
            {
                **asdict(cfg),
                "data": data,
                "dataset": trained.source,
                "engine": trained.engine,
                "rows_fit": n_fit,
                "rows_validation": n_valid,
                "rows_test": n_test,
                "rows_refit": fitted.refit_rows,
                "rounds_refit": fitted.rounds,
                "estimator": scorer.estimator,
                "best_iteration": best_iteration,
                "calibration_method": scorer.calibration.method,
            }
        )
        log_comparison(
            out,
            results,
            table,
            held.y,
            (held.p_model, held.p_logreg, held.points),
            compared.p_rules,
            importance,
            trained.drift,
        )
        if compared.truth_auc is not None:
            mlflow.log_metric("latent_truth_roc_auc", compared.truth_auc)
        (out / "features.json").write_text(
            json.dumps(
                [
                    {
                        "name": f.name,
                        "label": f.label,
                        "definition": f.definition,
                        "family": f.family,
                        "kind": f.kind,
                    }
                    for f in R.FEATURES
                ],
                indent=1,
            )
        )
        assert scorer.rules is not None
        (out / "rules.yaml").write_text(rules_yaml(scorer.rules), encoding="utf-8")
        mlflow.log_artifacts(str(out))
        log_training_data(frame, trained.source, "converted", "training-snapshots")
        example = trained.example.copy()
        for feature in R.CATEGORICAL:
            example[feature] = example[feature].astype(object).where(example[feature].notna(), None)
        version = register_challenger(
            scorer, out / "scorer", example, cfg.model_name, weak=fitted.weak
        )
        run_id = run.info.run_id
        clock.lap("logging")
        mlflow.log_metrics({f"seconds_{k}": v for k, v in clock.laps.items()})
    logger.info("registered %s version %s as %s", cfg.model_name, version, CHALLENGER)
    return TrainResult(
        run_id=run_id,
        model_version=version,
        comparison=table,
        best_iteration=best_iteration,
        calibration=scorer.calibration.method,
        latent_truth_auc=compared.truth_auc,
        rows={"fit": n_fit, "validation": n_valid, "test": n_test, "refit": fitted.refit_rows},
        seconds=dict(clock.laps),
        # LightGBM returns the booster cut at the best iteration; it ran `patience` more.
        rounds=min(cfg.num_boost_round, best_iteration + cfg.early_stopping_rounds),
        estimator=scorer.estimator,
        weak=fitted.weak,
        refit_rounds=fitted.rounds,
        drift=trained.drift,
        registered=fits["registered"],
    )


def refit_row(fitted: Fitted, y: np.ndarray, share: float) -> dict[str, dict[str, float]]:
    """The registered recipe refitted on fit + validation, on the test rows: how it ranks
    (calibration figures n/a: its calibration is fitted on these rows)."""
    if fitted.twin_test is None:
        return {}
    p = fitted.twin_test
    return {"model_refit": E.metrics(y, p, None, E.select_top(p, share))}


def fit_notes(fitted: Fitted, fit_rows: int, unit: str) -> dict[str, str]:
    """Which fit each figure of the comparison comes from, and what was registered."""
    final = fitted.final
    if final.estimator == "logistic":
        registered = f"the logistic regression, refit on all {fitted.refit_rows:,} {unit}"
    else:
        registered = (
            f"LightGBM refit on all {fitted.refit_rows:,} {unit}, {fitted.rounds} rounds "
            f"(chosen on validation, scaled to the rows)"
        )
    return {
        "model": f"LightGBM fitted on the oldest {fit_rows:,} {unit} (early-stopped on validation)",
        "logistic_regression": f"fitted on the oldest {fit_rows:,} {unit}",
        "model_refit": "the registered recipe refit on fit + validation (never on test); "
        "ranking only",
        "rules": "the points matrix as it is (no fit)",
        "points": "the points sheet (derived from the fit and validation rows, or yours)",
        "registered": registered,
    }


def snapshot_drift(frame: pd.DataFrame, s: Splits) -> DriftReport:
    """The drift report over the training snapshots (fit rows against the test rows)."""
    fit, test = frame.index.isin(s.fit.index), frame.index.isin(s.test.index)
    return drift_report(
        frame,
        frame["converted"].to_numpy(),
        epoch_seconds(frame["as_of"]),
        frame["as_of"].dt.strftime("%Y-%m-%d").to_numpy(),
        fit,
        test,
        R.NUMERIC,
        R.CATEGORICAL,
    )


def epoch_seconds(values: pd.Series) -> np.ndarray:
    """Timestamps as seconds (whatever their resolution)."""
    return np.asarray((values - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy())


def log_comparison(
    out: Path,
    results: dict[str, dict[str, float]],
    table: pd.DataFrame,
    y: np.ndarray,
    scores: tuple[np.ndarray, np.ndarray, np.ndarray],
    points_as_p: np.ndarray,
    importance: pd.DataFrame,
    drift: DriftReport | None = None,
) -> None:
    """The run's evaluation: each scorer's metrics, the plots and the comparison table
    (written under ``out`` for `mlflow.log_artifacts`). ``scores``: the model's and the
    regression's probabilities and the points, on the test rows."""
    for scorer_name, values in results.items():
        mlflow.log_metrics({f"{scorer_name}_{k}": v for k, v in values.items() if np.isfinite(v)})
    p_model, p_logreg, points = scores
    E.plot_all(
        out / "plots",
        y,
        {"model": p_model, "logistic regression": p_logreg, "points": points},
        {"model": p_model, "logistic regression": p_logreg, "points": points_as_p},
        importance,
    )
    (out / "comparison.md").write_text(E.table_markdown(table))
    (out / "comparison.html").write_text(table.to_html(float_format=lambda v: f"{v:.4f}"))
    importance.to_csv(out / "feature_importance.csv", index=False)
    if drift is not None:
        (out / "drift.md").write_text(drift.markdown(), encoding="utf-8")
        drift.columns.to_csv(out / "drift.csv", index=False)


class Clock:
    """Wall time per stage, for the run's metrics and the training benchmark."""

    def __init__(self) -> None:
        import time

        self._now = time.perf_counter
        self._last = self._now()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = self._now()
        self.laps[name] = now - self._last
        self._last = now
