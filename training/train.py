"""Train the lead-scoring model on closed-won outcomes and compare it with its baselines.

    snapshots ──> fit │ gap │ validation │ gap │ test          (gaps: one horizon each)
                  LightGBM (native categoricals), early stopping on validation
                  calibration fitted on validation, only if validation shows it is needed
                  logistic regression and the points score on the same test rows

Everything is logged to one MLflow run (the whole config, metrics, plots, the comparison
table, the feature list, the rules used, the training data as a dataset input), and the
model is logged once as a pyfunc and registered with the alias `challenger`.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from features.crm.load import CRM, CsvFormat, load_crm
from features.model.names import MODEL_NAME
from features.model.scorer import Calibration, LeadScorer
from features.pipeline import registry as R
from features.pipeline.snapshots import SnapshotConfig, TimeSplit, build_snapshots, time_split
from features.pipeline.store import EventStore
from features.points.matrix import load_rules, rules_yaml
from training import evaluate as E
from training.holdout import rule_points
from training.registry import CHALLENGER, register_challenger
from training.tracking import describe, log_params, training_run
from training.truth import latent_propensity, load_episodes

logger = logging.getLogger(__name__)

EXPERIMENT = "lead-scoring"
DATASET_SAMPLE_ROWS = 100_000


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
    stopping_rows: int = 50_000  # validation rows that decide early stopping (see fit_booster)
    calibration: Literal["auto", "none", "isotonic", "platt"] = "auto"
    calibration_ece_tolerance: float = 0.002  # auto: calibrate above this validation ECE
    seed: int = 0
    num_threads: int = 2
    experiment: str = EXPERIMENT
    model_name: str = MODEL_NAME
    rules_path: str | None = None
    csv_sep: str = ","  # how the export's CSV files are written (promote reads them again)
    csv_encoding: str = "utf-8"

    def snapshots(self) -> SnapshotConfig:
        return SnapshotConfig(
            self.horizon_days, self.snapshot_every_days, active_days=self.active_days
        )


@dataclass
class TrainResult:
    run_id: str
    model_version: str
    comparison: pd.DataFrame
    best_iteration: int
    calibration: str
    latent_truth_auc: float | None
    rows: dict[str, int]
    seconds: dict[str, float]  # wall time per stage: snapshots, fit, calibration, ...
    rounds: int  # boosting rounds actually run (best iteration + patience, at most the cap)


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
    """Known values of each categorical feature, most frequent first (from the fit rows)."""
    out = {}
    for name in names:
        counts = frame[name].astype(object).dropna().value_counts()
        out[name] = [str(v) for v in counts.index]
    return out


def lgb_params(cfg: TrainConfig) -> dict[str, object]:
    """LightGBM parameters of a training run (the benchmark's bare fit uses the same)."""
    return {
        "objective": "binary",
        "metric": "binary_logloss",
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": cfg.min_data_in_leaf,
        "feature_fraction": cfg.feature_fraction,
        "bagging_fraction": cfg.bagging_fraction,
        "bagging_freq": 1,
        "lambda_l2": cfg.lambda_l2,
        "seed": cfg.seed,
        "num_threads": cfg.num_threads,
        "deterministic": True,
        "verbosity": -1,
    }


def fit_booster(
    scorer: LeadScorer,
    fit: pd.DataFrame,
    valid: pd.DataFrame,
    cfg: TrainConfig,
    matrices: tuple[np.ndarray, np.ndarray] | None = None,
) -> lgb.Booster:
    """Boost on the fit rows, early-stopped on the validation rows (matrices: pre-encoded)."""
    x_fit, x_valid = matrices or (scorer.matrix_from_frame(fit), scorer.matrix_from_frame(valid))
    categorical = list(range(len(scorer.numeric), len(scorer.feature_names)))
    params = lgb_params(cfg)
    train_set = lgb.Dataset(
        x_fit,
        fit["converted"].to_numpy(),
        feature_name=scorer.feature_names,
        categorical_feature=categorical,
        free_raw_data=True,
    )
    y_valid = valid["converted"].to_numpy()
    rows, weight = stopping_sample(y_valid, cfg.stopping_rows, cfg.seed)
    valid_set = lgb.Dataset(x_valid[rows], y_valid[rows], weight=weight, reference=train_set)
    return lgb.train(
        params,
        train_set,
        num_boost_round=cfg.num_boost_round,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
    )


def stopping_sample(y: np.ndarray, cap: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The validation rows that decide early stopping, and their weights.

    Scoring a large validation slice every round made the fit 1.3-1.4x a bare LightGBM
    fit (the budget is 1.2x). Above ``cap`` rows, every positive is kept and negatives
    are sampled to fill the cap, each weighted by (negatives / sampled negatives), so
    the weighted log loss estimates the whole slice's. On ~181,000 validation rows it
    stopped at the same iteration as the whole slice (docs/benchmarks.md). Calibration
    still uses the whole slice.
    """
    if len(y) <= cap:
        return np.arange(len(y)), None
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    k = max(cap - len(positives), cap // 2)  # (mostly positive slices: half negatives)
    if k >= len(negatives):
        return np.arange(len(y)), None
    rng = np.random.default_rng(seed)
    sampled = rng.choice(negatives, size=k, replace=False)
    kept_positives = positives
    if len(positives) + k > cap:  # more positives than the cap leaves room for
        kept_positives = rng.choice(positives, size=cap - k, replace=False)
    rows = np.sort(np.concatenate([kept_positives, sampled]))
    weight = np.where(
        y[rows] == 1, len(positives) / len(kept_positives), len(negatives) / k
    ).astype(float)
    return rows, weight


def fit_calibration(y: np.ndarray, p: np.ndarray, cfg: TrainConfig) -> Calibration:
    """Calibrate on the validation slice when asked, or (auto) when its ECE is too high."""
    method = cfg.calibration
    if method == "auto":
        if E.expected_calibration_error(y, p) <= cfg.calibration_ece_tolerance:
            return Calibration("none")
        method = "isotonic" if y.sum() >= 200 else "platt"
    if method == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(p, y)
        return Calibration(
            "isotonic", tuple(map(float, iso.X_thresholds_)), tuple(map(float, iso.y_thresholds_))
        )
    if method == "platt":
        clipped = np.clip(p, 1e-7, 1 - 1e-7)
        logit = np.log(clipped / (1 - clipped)).reshape(-1, 1)
        lr = LogisticRegression(C=1e6).fit(logit, y)
        return Calibration("platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))
    return Calibration("none")


def logistic_baseline(
    fit: pd.DataFrame,
    numeric: Sequence[str] = R.NUMERIC,
    categorical: Sequence[str] = R.CATEGORICAL,
    target: str = "converted",
    min_frequency: int = 50,
) -> Pipeline:
    """A scikit-learn pipeline over the same features: impute, log-scale, standardise, one-hot."""
    signed_log = FunctionTransformer(
        lambda x: np.sign(x) * np.log1p(np.abs(x)), feature_names_out="one-to-one"
    )
    numeric_steps = make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        signed_log,
        StandardScaler(),
    )
    categorical_steps = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="(missing)"),
        OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=min_frequency),
    )
    pipe = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("num", numeric_steps, list(numeric)),
                        ("cat", categorical_steps, list(categorical)),
                    ]
                ),
            ),
            ("model", LogisticRegression(C=0.1, max_iter=3000)),
        ]
    )
    pipe.fit(lr_input(fit, numeric, categorical), fit[target].to_numpy())
    return pipe


def lr_input(
    frame: pd.DataFrame,
    numeric: Sequence[str] = R.NUMERIC,
    categorical: Sequence[str] = R.CATEGORICAL,
) -> pd.DataFrame:
    """The baseline's input: the feature columns, missing categories as "(missing)"."""
    x = frame[[*numeric, *categorical]].copy()
    for name in categorical:
        x[name] = x[name].astype(object).where(x[name].notna(), "(missing)")
    return x


def importance_table(scorer: LeadScorer, x_sample: np.ndarray) -> pd.DataFrame:
    gain = scorer.booster.feature_importance(importance_type="gain")
    shap = np.abs(scorer.contributions(x_sample)[:, :-1]).mean(axis=0)
    return pd.DataFrame(
        {
            "feature": scorer.feature_names,
            "label": [R.label(f) for f in scorer.feature_names],
            "gain": gain,
            "mean_abs_shap": shap,
        }
    ).sort_values("mean_abs_shap", ascending=False)


def train(
    cfg: TrainConfig, data: str | Path, dataset: str | Path | None = None, crm: CRM | None = None
) -> TrainResult:
    """Build (or read) the training set, fit, compare, log to MLflow, register as challenger."""
    clock = _Clock()
    data = Path(data).resolve()  # stored in the model: `promote` runs from any folder
    crm = crm or load_crm(data, CsvFormat(cfg.csv_sep, cfg.csv_encoding))
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

    scorer = LeadScorer(booster=None, vocabularies=vocabularies(s.fit), rules=rules)
    x_fit, x_valid = scorer.matrix_from_frame(s.fit), scorer.matrix_from_frame(s.valid)
    clock.lap("encode")
    scorer.booster = fit_booster(scorer, s.fit, s.valid, cfg, matrices=(x_fit, x_valid))
    clock.lap("fit")
    y_valid = s.valid["converted"].to_numpy()
    scorer.calibration = fit_calibration(y_valid, scorer.raw_probability(x_valid), cfg)

    clock.lap("calibration")
    y = s.test["converted"].to_numpy()
    x_test = scorer.matrix_from_frame(s.test)
    p_model = scorer.predict(x_test)
    logreg = logistic_baseline(s.fit)
    p_logreg = logreg.predict_proba(lr_input(s.test))[:, 1]
    points_test, mql = rule_points(rules, store, s.test)
    points_valid, _ = rule_points(rules, store, s.valid)
    # The points as a probability (for log loss, Brier, ECE): isotonic map fitted on validation.
    points_to_p = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(
        points_valid, y_valid
    )
    p_rules = points_to_p.predict(points_test)
    clock.lap("baselines")
    share = float(mql.mean())
    results = {
        "model": E.metrics(y, p_model, p_model, E.select_top(p_model, share)),
        "logistic_regression": E.metrics(y, p_logreg, p_logreg, E.select_top(p_logreg, share)),
        "rules": E.metrics(y, points_test, p_rules, mql),
    }
    truth_auc = None
    episodes = load_episodes(data)
    if episodes is not None:
        latent = latent_propensity(episodes, s.test["account_id"], s.test["as_of"])
        truth_auc = float(roc_auc_score(y, latent))
    table = E.comparison_table(results)
    rng = np.random.default_rng(cfg.seed)
    sample = x_test[rng.choice(len(x_test), size=min(20_000, len(x_test)), replace=False)]
    importance = importance_table(scorer, sample)
    scorer.metadata = {
        "trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
        "training_window": [str(s.fit["as_of"].min()), str(s.valid["as_of"].max())],
        "test_window": [str(s.test["as_of"].min()), str(s.test["as_of"].max())],
        "horizon_days": cfg.horizon_days,
        "best_iteration": scorer.booster.best_iteration,
        "holdout_metrics": {k: round(v, 6) for k, v in results["model"].items()},
        "rules_holdout_metrics": {k: round(v, 6) for k, v in results["rules"].items()},
        "latent_truth_roc_auc": truth_auc,
        "data_source": str(data),
        "csv_format": {"sep": cfg.csv_sep, "encoding": cfg.csv_encoding},
        "kind": "touchpoint",
        "feature_importance": importance[["feature", "mean_abs_shap", "gain"]].to_dict("records"),
    }
    clock.lap("evaluation")

    period = f"{frame['as_of'].min():%Y-%m}..{frame['as_of'].max():%Y-%m}"
    name = f"{data.name}: {len(frame):,} snapshots {period}"
    with training_run(cfg.experiment, name) as run, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        auc = results["model"]["roc_auc"]
        describe(
            f"{name} · ROC AUC {auc:.3f}",
            f"Touchpoint model on `{data}` ({len(crm.contacts):,} contacts, "
            f"{len(crm.touchpoints):,} touchpoints): {len(frame):,} snapshots every "
            f"{cfg.snapshot_every_days} days, {period}, horizon {cfg.horizon_days} days; "
            f"fit {len(s.fit):,} | validation {len(s.valid):,} | test {len(s.test):,} rows. "
            f"Holdout ROC AUC {auc:.4f} (logistic regression "
            f"{results['logistic_regression']['roc_auc']:.4f}, points "
            f"{results['rules']['roc_auc']:.4f}).",
        )
        log_params(
            {
                **asdict(cfg),
                "data": str(data),
                "dataset": source,
                "rows_fit": len(s.fit),
                "rows_validation": len(s.valid),
                "rows_test": len(s.test),
                "best_iteration": scorer.booster.best_iteration,
                "calibration_method": scorer.calibration.method,
            }
        )
        log_comparison(
            out, results, table, y, (p_model, p_logreg, points_test), p_rules, importance
        )
        if truth_auc is not None:
            mlflow.log_metric("latent_truth_roc_auc", truth_auc)
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
        (out / "rules.yaml").write_text(rules_yaml(rules), encoding="utf-8")
        mlflow.log_artifacts(str(out))
        mlflow.log_input(
            # A bounded sample: MLflow profiles and schemas the frame it is given, which
            # on a million rows costs a minute; the digest hashes leading rows anyway.
            # The true row counts are the run's rows_* parameters.
            mlflow.data.from_pandas(
                s.outer.train.head(DATASET_SAMPLE_ROWS),
                source=source,
                targets="converted",
                name="training-snapshots",
            ),
            context="training",
        )
        example = s.test[list(R.FEATURE_NAMES)].head(5).copy()
        for name in R.CATEGORICAL:
            example[name] = example[name].astype(object).where(example[name].notna(), None)
        version = register_challenger(scorer, out / "scorer", example, cfg.model_name)
        run_id = run.info.run_id
        clock.lap("logging")
        mlflow.log_metrics({f"seconds_{k}": v for k, v in clock.laps.items()})
    logger.info("registered %s version %s as %s", cfg.model_name, version, CHALLENGER)
    return TrainResult(
        run_id=run_id,
        model_version=version,
        comparison=table,
        best_iteration=scorer.booster.best_iteration,
        calibration=scorer.calibration.method,
        latent_truth_auc=truth_auc,
        rows={"fit": len(s.fit), "validation": len(s.valid), "test": len(s.test)},
        seconds=dict(clock.laps),
        # LightGBM returns the booster cut at the best iteration; it ran `patience` more.
        rounds=min(cfg.num_boost_round, scorer.booster.best_iteration + cfg.early_stopping_rounds),
    )


def log_comparison(
    out: Path,
    results: dict[str, dict[str, float]],
    table: pd.DataFrame,
    y: np.ndarray,
    scores: tuple[np.ndarray, np.ndarray, np.ndarray],
    points_as_p: np.ndarray,
    importance: pd.DataFrame,
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


class _Clock:
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
