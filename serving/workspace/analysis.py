"""What the workspace shows, computed from a model's holdout evidence.

Numbers only, no words: the pages put them into English or Russian (`i18n.py`). Every
figure comes from the champion's time-ordered holdout (`features/model/evidence.py`):
outcomes it never trained its selection twin on, the points of the model's own matrix,
and TreeSHAP of the registered model on a sample. A model's analysis is computed once
and kept with it (`Analysis.of`): the pages then only render.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from features.model.evidence import Evidence
from features.model.scorer import LeadScorer
from features.points.engine import RuleScores, matching_changes, revalue
from features.points.matrix import RulesConfig

#: the name of an empty categorical value (a page translates it)
EMPTY: Final = "(empty)"
#: the smallest group a conversion rate is quoted for (rows, and share of the holdout)
MIN_GROUP_ROWS: Final = 30
MIN_GROUP_SHARE: Final = 0.01
#: how many signals "what matters" ranks
TOP_SIGNALS: Final = 25
#: leads shown per side of "found by one, missed by the other"
MISSED_SHOWN: Final = 8


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC with ties counted half (the Mann-Whitney statistic), no scikit-learn."""
    y = np.asarray(y, dtype=bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = np.asarray(score)[order]
    # average rank of each run of equal scores
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(score)]
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


@dataclass(frozen=True)
class Signal:
    """One input of the model: how much it moves scores, and the conversion rates behind it."""

    feature: str
    mean_abs_shap: float
    share: float  # of the summed mean |SHAP|
    direction: int  # +1: higher values raise the probability; -1: lower; 0: categorical
    kind: str  # numeric, binary, categorical
    condition: str  # "ge", "eq" (binary 1), "is" (a category); "" when no group qualifies
    value: Any  # the threshold, or the category
    rate_in: float
    rate_out: float
    rows_in: int
    rows_out: int

    @property
    def ratio(self) -> float:
        return self.rate_in / self.rate_out if self.rate_out > 0 else math.inf


_NONE: Final = ("", None, math.nan, math.nan, 0, 0)  # no group large enough to quote


def _rate(y: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    n = int(mask.sum())
    return (float(y[mask].mean()) if n else float("nan")), n


def _most_different(
    y: np.ndarray, groups: Iterable[tuple[str, Any, np.ndarray]], least: int
) -> tuple[str, Any, float, float, int, int]:
    """Of the candidate groups (condition, value, rows inside), the one whose conversion
    rate differs most from the other rows', both sides at least ``least`` rows."""
    best: tuple[float, tuple[str, Any, float, float, int, int]] | None = None
    for condition, value, inside in groups:
        rate_in, n_in = _rate(y, inside)
        rate_out, n_out = _rate(y, ~inside)
        if n_in < least or n_out < least or rate_in == 0 or rate_out == 0:
            continue
        strength = abs(math.log(rate_in / rate_out))
        if best is None or strength > best[0]:
            best = (strength, (condition, value, rate_in, rate_out, n_in, n_out))
    return _NONE if best is None else best[1]


def _numeric_evidence(x: np.ndarray, y: np.ndarray) -> tuple[str, Any, float, float, int, int]:
    """The threshold t whose group (x >= t) converts most differently from the other rows
    with a value (an empty value, e.g. no account, is neither: it says nothing of size)."""
    known = np.isfinite(x)
    x, y = x[known], y[known]
    if len(x) == 0:
        return _NONE
    lowest = x.min()
    candidates = np.unique(np.quantile(x, np.linspace(0.05, 0.95, 19), method="lower"))
    candidates = np.unique(np.r_[candidates, x[x > lowest].min() if (x > lowest).any() else lowest])
    groups = (("ge", float(t), x >= t) for t in candidates[candidates > lowest])
    return _most_different(y, groups, max(MIN_GROUP_ROWS, int(MIN_GROUP_SHARE * len(x))))


def _categorical_evidence(x: np.ndarray, y: np.ndarray) -> tuple[str, Any, float, float, int, int]:
    """The category that converts most differently from the rest."""
    values = pd.Series(x, dtype=object).fillna(EMPTY).astype(str).to_numpy()
    groups = (("is", str(v), values == v) for v in np.unique(values))
    return _most_different(y, groups, max(MIN_GROUP_ROWS, int(MIN_GROUP_SHARE * len(x))))


def signals(evidence: Evidence, categorical: set[str], limit: int = TOP_SIGNALS) -> list[Signal]:
    """The model's inputs ranked by mean |SHAP| on the holdout sample, each with a direction
    (from how its contributions follow its values) and the conversion rates behind it."""
    y = evidence.frame["converted"].to_numpy(bool)
    size = np.abs(evidence.shap).mean(axis=0)
    total = float(size.sum()) or 1.0
    out = []
    for j in np.argsort(-size)[:limit]:
        name = evidence.features[j]
        column = evidence.frame[name]
        direction, kind = 0, "categorical"
        if name in categorical:
            found = _categorical_evidence(column.to_numpy(object), y)
        else:
            x = column.to_numpy(float)
            sample = x[evidence.explained]
            contribution = evidence.shap[:, j]
            ok = np.isfinite(sample)
            if ok.sum() > 2 and np.std(sample[ok]) > 0 and np.std(contribution[ok]) > 0:
                direction = 1 if np.corrcoef(sample[ok], contribution[ok])[0, 1] >= 0 else -1
            finite = x[np.isfinite(x)]
            if len(finite) and set(np.unique(finite).tolist()) <= {0.0, 1.0}:
                kind, found = "binary", _flag_evidence(x, y)
            else:
                kind, found = "numeric", _numeric_evidence(x, y)
        out.append(Signal(name, float(size[j]), float(size[j]) / total, direction, kind, *found))
    return out


def _flag_evidence(x: np.ndarray, y: np.ndarray) -> tuple[str, Any, float, float, int, int]:
    """A 0/1 feature: the rows where it is 1 against the others."""
    inside = x == 1
    rate_in, n_in = _rate(y, inside)
    rate_out, n_out = _rate(y, ~inside)
    return ("eq", 1, rate_in, rate_out, n_in, n_out) if n_in and n_out else _NONE


@dataclass(frozen=True)
class Curve:
    share: np.ndarray  # 0.01 .. 1.0
    lift: np.ndarray
    capture: np.ndarray


def _best_first(score: np.ndarray, seed: int = 0) -> np.ndarray:
    """Rows by score, best first, ties in a seeded random order (so a points score's many
    ties are neither flattered nor punished)."""
    return np.lexsort((np.random.default_rng(seed).random(len(score)), -score))


def _curve(y: np.ndarray, score: np.ndarray) -> Curve:
    """Lift and capture of the top share by score."""
    n = len(y)
    order = _best_first(score)
    caught = np.cumsum(y[order])
    shares = np.arange(1, 101) / 100
    at = np.maximum(np.round(shares * n).astype(int), 1) - 1
    base = y.mean() if n else 0.0
    capture = caught[at] / max(caught[-1], 1)
    lift = (caught[at] / (at + 1)) / base if base > 0 else np.zeros(len(at))
    return Curve(shares, lift, capture)


def top_share(score: np.ndarray, share: float) -> np.ndarray:
    """The best ``share`` of rows by score (ties as `_best_first` orders them)."""
    chosen = np.zeros(len(score), dtype=bool)
    chosen[_best_first(score)[: round(share * len(score))]] = True
    return chosen


@dataclass(frozen=True)
class Flags:
    """One way of flagging leads on the holdout, measured."""

    flagged: int
    share: float
    precision: float
    recall: float
    roc_auc: float


def flags(y: np.ndarray, flagged: np.ndarray, score: np.ndarray) -> Flags:
    n_flagged = int(flagged.sum())
    caught = int(y[flagged].sum())
    return Flags(
        n_flagged,
        n_flagged / len(y) if len(y) else 0.0,
        caught / n_flagged if n_flagged else 0.0,
        caught / int(y.sum()) if y.sum() else 0.0,
        roc_auc(y, score),
    )


@dataclass(frozen=True)
class Comparison:
    rows: int
    conversions: int
    base_rate: float
    model_curve: Curve
    points_curve: Curve
    points: Flags  # MQL by the points
    model: Flags  # the model's top share, the same share as the MQLs
    #: [[both, points only], [model only, neither]]: (leads, conversions)
    agreement: list[list[tuple[int, int]]]
    found_by_model: list[dict[str, Any]]  # converted, model's top share, not an MQL
    found_by_points: list[dict[str, Any]]  # converted, an MQL, outside the model's top


def _reasons(scorer: LeadScorer, frame: pd.DataFrame, k: int = 3) -> list[list[tuple[str, float]]]:
    if frame.empty:
        return []
    x = scorer.matrix_from_frame(frame)
    contributions = scorer.contributions(x)[:, :-1]
    names = scorer.feature_names
    out = []
    for row in contributions:
        top = np.argsort(-np.abs(row))[:k]
        out.append([(names[j], float(row[j])) for j in top])
    return out


def compare(evidence: Evidence, points: RuleScores, scorer: LeadScorer) -> Comparison:
    frame = evidence.frame
    y = frame["converted"].to_numpy(bool)
    p = frame["probability"].to_numpy(float)
    mql = points.mql.astype(bool)
    model_top = top_share(p, float(mql.mean()))
    cells = [
        [(mql & model_top), (mql & ~model_top)],
        [(~mql & model_top), (~mql & ~model_top)],
    ]
    agreement = [[(int(c.sum()), int(y[c].sum())) for c in row] for row in cells]

    ids = frame["contact_id"].to_numpy(object)
    accounts = frame["account_id"].to_numpy(object)
    as_of = frame["as_of"].to_numpy(object)

    def leads(mask: np.ndarray, order: np.ndarray) -> list[dict[str, Any]]:
        picked = np.flatnonzero(mask)
        picked = picked[np.argsort(-order[picked], kind="stable")][:MISSED_SHOWN]
        reasons = _reasons(scorer, frame.iloc[picked])
        return [
            {
                "contact_id": ids[i],
                "account_id": accounts[i],
                "as_of": as_of[i],
                "probability": float(p[i]),
                "points": float(points.total[i]),
                "rules": points.top_rules(int(i)),
                "reasons": reasons[k],
            }
            for k, i in enumerate(picked.tolist())
        ]

    return Comparison(
        rows=len(y),
        conversions=int(y.sum()),
        base_rate=float(y.mean()) if len(y) else 0.0,
        model_curve=_curve(y, p),
        points_curve=_curve(y, points.total),
        points=flags(y, mql, points.total),
        model=flags(y, model_top, p),
        agreement=agreement,
        found_by_model=leads(y & model_top & ~mql, p),
        found_by_points=leads(y & mql & ~model_top, points.total),
    )


class MatrixMismatch(ValueError):
    """The matrix tests other conditions than the one the holdout's matches were found with."""


@dataclass(frozen=True)
class WhatIf:
    mql_share: float
    mql: int
    precision: float
    recall: float
    roc_auc: float
    rows: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "mql_share": self.mql_share,
            "mql": self.mql,
            "precision": self.precision,
            "recall": self.recall,
            "roc_auc": self.roc_auc,
            "rows": self.rows,
        }


def what_if(evidence: Evidence, found_with: RulesConfig, rules: RulesConfig) -> WhatIf:
    """``rules``' MQL share, precision, recall and ROC AUC on the holdout, re-scored from
    the matches the model's own matrix (``found_with``) found there."""
    problems = matching_changes(found_with, rules)
    if problems:
        raise MatrixMismatch("; ".join(problems))
    scored = revalue(rules, evidence.count, evidence.weight)
    y = evidence.frame["converted"].to_numpy(bool)
    result = flags(y, scored.mql.astype(bool), scored.total)
    return WhatIf(
        result.share, result.flagged, result.precision, result.recall, result.roc_auc, len(y)
    )


@dataclass(frozen=True)
class RuleRow:
    name: str
    group: str
    points: float
    cap: float | None
    fired: int  # holdout snapshots it fired on
    rate: float  # their conversion rate
    lift: float  # over the holdout's base rate
    suggestion: dict[str, Any] | None  # training/suggest.py's row for it


def rule_rows(evidence: Evidence, rules: RulesConfig) -> list[RuleRow]:
    y = evidence.frame["converted"].to_numpy(bool)
    base = float(y.mean()) if len(y) else 0.0
    position = {name: j for j, name in enumerate(evidence.rule_names)}
    suggested = {row["rule"]: row for row in evidence.suggestions or []}
    out = []
    for rule in rules.rules:
        j = position.get(rule.name)
        fired = evidence.count[:, j] > 0 if j is not None else np.zeros(len(y), dtype=bool)
        rate, n = _rate(y, fired)
        out.append(
            RuleRow(
                rule.name,
                rule.group,
                rule.points,
                rule.cap,
                n,
                rate,
                rate / base if n and base > 0 else math.nan,
                suggested.get(rule.name),
            )
        )
    return out


@dataclass(frozen=True)
class CalibrationBin:
    predicted: float
    observed: float
    rows: int


def calibration(evidence: Evidence, bins: int = 10) -> list[CalibrationBin]:
    """Mean predicted probability against the observed rate, in bins of equal rows."""
    p = evidence.frame["probability"].to_numpy(float)
    y = evidence.frame["converted"].to_numpy(float)
    order = np.argsort(p, kind="stable")
    return [
        CalibrationBin(float(p[part].mean()), float(y[part].mean()), len(part))
        for part in np.array_split(order, bins)
        if len(part)
    ]


@dataclass
class Analysis:
    """Everything the workspace shows about one model, computed once."""

    signals: list[Signal]
    comparison: Comparison
    calibration: list[CalibrationBin]
    #: the matrix the comparison's points are from: the one in effect, or the model's own
    #: when the one in effect tests other conditions than the holdout's matches
    rules: RulesConfig

    @classmethod
    def of(cls, scorer: LeadScorer, found_with: RulesConfig | None) -> Analysis | None:
        evidence, rules = scorer.evidence, scorer.rules
        if evidence is None or rules is None or found_with is None:
            return None
        if matching_changes(found_with, rules):
            rules = found_with
        points = revalue(rules, evidence.count, evidence.weight)
        return cls(
            signals=signals(evidence, set(scorer.categorical)),
            comparison=compare(evidence, points, scorer),
            calibration=calibration(evidence),
            rules=rules,
        )


class Analyses:
    """The analysis of each model served (by identity of its evidence), computed on first
    use under a lock: a page asks, the first request pays (~1 s), the rest read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[tuple[int, int], tuple[Evidence, object, Analysis | None]] = {}

    def of(self, scorer: LeadScorer, found_with: RulesConfig | None) -> Analysis | None:
        """The analysis of ``scorer`` with the matrix it scores points with."""
        evidence = scorer.evidence
        if evidence is None:
            return None
        key = (id(evidence), id(scorer.rules))
        with self._lock:
            hit = self._done.get(key)
            if hit is not None and hit[0] is evidence and hit[1] is scorer.rules:
                return hit[2]
            if len(self._done) >= 8:
                self._done.clear()
            found = Analysis.of(scorer, found_with)
            self._done[key] = (evidence, scorer.rules, found)
            return found
