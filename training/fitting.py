"""Fitting the model on its matrix, and the model that is registered: both trainers use this.

    rows, oldest to newest:   fit | validation | test
    selection                 boosted on fit, early-stopped on validation, calibrated on
                              validation: the figures a run reports are its figures on test
    twin                      the same number of rounds (scaled) on fit + validation, never
                              shown the test slice: it calibrates the final model on test
    final (registered)        the same recipe refitted on every row, rounds scaled to the rows

The registered model has seen the newest rows, the ones most like tomorrow's leads: a
model fitted on the oldest 60 % and registered as it was missed every shift after them.
Its number of rounds is the one early stopping chose on validation, scaled by the number
of rows (as LightGBM's and scikit-learn's users commonly do when refitting on more data);
its calibration comes from the twin, which did not see the slice it is calibrated on.

The weak-model guard: a booster that stopped after its first round, or whose ROC AUC on
validation is below `min_valid_auc` (0.55 by default: a ranking barely better than a coin
is a constant with noise), learned nothing worth serving. Training then says so and
registers the logistic regression when that did learn, or refuses, unless told to keep
the weak booster (`allow_weak`); such a version is tagged and `promote` will not make it
champion without `--force`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from features.model.linear import LinearModel, design_state
from features.model.scorer import Calibration, LeadScorer
from training import evaluate as E

logger = logging.getLogger(__name__)

#: ROC AUC on validation below which a model has learned nothing worth serving
MIN_VALID_AUC = 0.55


class WeakModelError(ValueError):
    """Neither the booster nor the logistic regression learned anything; the message says
    what was measured and how to override. The trainers attach their drift report."""

    drift: Any = None


@dataclass(frozen=True)
class Part:
    """Rows of one slice as the model sees them: matrix, labels, optional row weights."""

    x: np.ndarray
    y: np.ndarray
    weight: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)


def join(*parts: Part) -> Part:
    weights = [p.weight for p in parts]
    weight = (
        None
        if all(w is None for w in weights)
        else np.concatenate(
            [w if w is not None else np.ones(len(p)) for w, p in zip(weights, parts, strict=True)]
        )
    )
    return Part(np.vstack([p.x for p in parts]), np.concatenate([p.y for p in parts]), weight)


def lgb_params(cfg: FitConfig) -> dict[str, object]:
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


@dataclass(frozen=True)
class FitConfig:
    """The estimators' settings (both trainers' configs build one)."""

    learning_rate: float = 0.05
    num_leaves: int = 31
    min_data_in_leaf: int = 100
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    num_boost_round: int = 2000
    early_stopping_rounds: int = 100
    stopping_rows: int = 50_000
    calibration: str = "auto"
    calibration_ece_tolerance: float = 0.002
    seed: int = 0
    num_threads: int = 2
    linear_min_frequency: int = 50
    min_valid_auc: float = MIN_VALID_AUC
    allow_weak: bool = False


def _dataset(scorer: LeadScorer, part: Part) -> lgb.Dataset:
    return lgb.Dataset(
        part.x,
        part.y,
        weight=part.weight,
        feature_name=scorer.feature_names,
        categorical_feature=list(range(len(scorer.numeric), len(scorer.feature_names))),
        free_raw_data=True,
    )


def fit_booster(scorer: LeadScorer, fit: Part, valid: Part, cfg: FitConfig) -> lgb.Booster:
    """Boost on the fit rows, early-stopped on (a weighted sample of) the validation rows."""
    train_set = _dataset(scorer, fit)
    rows, weight = stopping_sample(valid.y, cfg.stopping_rows, cfg.seed)
    valid_set = lgb.Dataset(valid.x[rows], valid.y[rows], weight=weight, reference=train_set)
    return lgb.train(
        lgb_params(cfg),
        train_set,
        num_boost_round=cfg.num_boost_round,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
    )


def boost(scorer: LeadScorer, rows: Part, rounds: int, cfg: FitConfig) -> lgb.Booster:
    """Boost a fixed number of rounds (the refit: there is no validation slice left)."""
    return lgb.train(lgb_params(cfg), _dataset(scorer, rows), num_boost_round=max(1, rounds))


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


def fit_calibration(y: np.ndarray, p: np.ndarray, cfg: FitConfig) -> Calibration:
    """Calibrate on held-out rows when asked, or (auto) when their ECE is too high."""
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


def fit_linear(scorer: LeadScorer, rows: Part, cfg: FitConfig, c: float = 0.1) -> LinearModel:
    """The logistic regression of `features.model.linear` on the model's matrix."""
    n_numeric = len(scorer.numeric)
    medians, indicators, kept = design_state(rows.x, n_numeric, cfg.linear_min_frequency)
    raw, _ = LinearModel.raw_design(rows.x, n_numeric, medians, indicators, kept)
    mean, scale = raw.mean(axis=0), raw.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=3000)
    model.fit((raw - mean) / scale, rows.y, sample_weight=rows.weight)
    return LinearModel(
        n_numeric=n_numeric,
        medians=medians,
        with_indicator=indicators,
        kept_codes=kept,
        mean=tuple(map(float, mean)),
        scale=tuple(map(float, scale)),
        coef=tuple(map(float, model.coef_[0])),
        intercept=float(model.intercept_[0]),
    )


def auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else 0.5


@dataclass
class Fitted:
    """What `fit_and_refit` produced."""

    selection: LeadScorer  # the booster fitted on fit rows; its test figures are reported
    linear: LeadScorer  # the logistic regression fitted on fit rows (the baseline)
    final: LeadScorer  # what is registered (its `selection` twin is set)
    weak: str | None  # why the booster was judged to have learned nothing
    valid_auc: dict[str, float]  # booster and logistic regression, on validation
    rounds: int  # of the final booster (0 for a logistic model)
    refit_rows: int
    #: the twin's raw probabilities on the test rows: the recipe as registered, fitted on
    #: fit + validation (never on test), so its ranking on test shows what the refit on
    #: newer rows is worth (its calibration is fitted on these rows: only ranks count)
    twin_test: np.ndarray | None = None


def fit_and_refit(
    template: LeadScorer,
    fit: Part,
    valid: Part,
    test: Part,
    cfg: FitConfig,
    every_row: Part | None = None,
) -> Fitted:
    """Select, judge, and refit on every row (see the module's docstring).

    ``every_row``: the rows of the refit when they are more than fit + validation + test
    (the snapshots in the purge gaps between them). Raises WeakModelError when neither
    estimator learned and `cfg.allow_weak` is off.
    """
    booster = fit_booster(template, fit, valid, cfg)
    selection = replace(template, booster=booster)
    selection.calibration = fit_calibration(valid.y, selection.raw_probability(valid.x), cfg)
    linear = replace(template, booster=None, linear=fit_linear(template, fit, cfg))
    valid_auc = {
        "model": auc(valid.y, selection.raw_probability(valid.x)),
        "logistic_regression": auc(valid.y, linear.raw_probability(valid.x)),
    }
    weak = weakness(booster, valid_auc["model"], cfg.min_valid_auc)
    everything = every_row if every_row is not None else join(fit, valid, test)
    if weak is None or (cfg.allow_weak and valid_auc["logistic_regression"] < cfg.min_valid_auc):
        best = max(1, booster.best_iteration)
        twin = boost(
            template, join(fit, valid), scaled_rounds(best, len(fit) + len(valid), len(fit)), cfg
        )
        twin_test = np.asarray(twin.predict(test.x), dtype=float)
        rounds = scaled_rounds(best, len(everything), len(fit))
        final = replace(
            template,
            booster=boost(template, everything, rounds, cfg),
            calibration=fit_calibration(test.y, twin_test, cfg),
            selection=selection,
        )
        if weak is not None:
            logger.warning("registering a weak model, as asked (--allow-weak): %s", weak)
        return Fitted(selection, linear, final, weak, valid_auc, rounds, len(everything), twin_test)
    if valid_auc["logistic_regression"] >= cfg.min_valid_auc:
        logger.warning("%s; registering the logistic regression instead", weak)
        final = replace(
            template,
            booster=None,
            linear=fit_linear(template, everything, cfg),
            calibration=Calibration("none"),
            selection=linear,
        )
        twin = fit_linear(template, join(fit, valid), cfg)
        return Fitted(
            selection, linear, final, weak, valid_auc, 0, len(everything), twin.predict(test.x)
        )
    raise WeakModelError(
        f"no model learned anything: {weak}, and the logistic regression's ROC AUC on "
        f"validation is {valid_auc['logistic_regression']:.3f} (< {cfg.min_valid_auc:g}). "
        "Nothing was registered; see the drift report above. --allow-weak registers the "
        "booster anyway (promote will not make it champion without --force)."
    )


def weakness(booster: lgb.Booster, valid_auc: float, min_auc: float) -> str | None:
    """Why a booster learned nothing worth serving, or None."""
    if booster.best_iteration <= 1:
        return (
            "the gradient-boosted model stopped after its first tree: validation never "
            f"improved on it (ROC AUC on validation {valid_auc:.3f})"
        )
    if valid_auc < min_auc:
        return (
            f"the gradient-boosted model ranks validation leads no better than chance: "
            f"ROC AUC {valid_auc:.3f} < {min_auc:g}"
        )
    return None


def scaled_rounds(rounds: int, rows: int, fit_rows: int) -> int:
    """Rounds chosen on ``fit_rows`` rows, for a fit on ``rows`` rows."""
    return max(1, round(rounds * rows / max(fit_rows, 1)))


def recency_weights(
    order: np.ndarray, half_life: float | None, period: tuple[float, float] | None = None
) -> np.ndarray | None:
    """Row weights that halve every ``half_life`` of the training period back in time
    (0.5: a row from the middle of the period counts half as much as the newest); None
    without a half-life. ``period``: the whole training period (first, last) when
    ``order`` holds only some of its rows (one partition of a Dask training)."""
    if half_life is None:
        return None
    t = np.asarray(order, dtype=float)
    first, last = period if period is not None else (float(t.min()), float(t.max()))
    span = last - first
    if span <= 0:
        return np.ones(len(t))
    return np.asarray(0.5 ** ((last - t) / (half_life * span)), dtype=float)
