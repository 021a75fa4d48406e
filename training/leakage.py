"""The leakage guard: columns that know the outcome are reported and left out.

The classic trap of a lead table is a column that sales filled in after the outcome was
known (a status tag, a lead quality grade). It looks like the best predictor there is,
and it is useless when a new lead arrives. On the training rows only, the guard flags

- a column that alone ranks converted leads above the others almost perfectly: ROC AUC
  of the column by itself at or above `max_auc` (default 0.90). A category is scored by
  its out-of-fold conversion rate, so a column with a value per row does not fool it;
  a number by its value, missing values ranked lowest;
- a column filled in for one class only: at most 1 % of the rows of one class have a
  value while at least 10 % of the other's do.

Flagged columns are excluded unless the user allows them by name (`--allow`); either
way the report says what was found, and training logs it to MLflow.

Why 0.90: an attribute known when a lead arrives rarely ranks leads that well on its
own (in the X Education table the strongest reach 0.63-0.67: occupation, time on the
website, lead source), while a status that sales set after the outcome can (`Tags`
there: 0.92). The threshold was set from that reasoning, not searched on a holdout.
A guard cannot tell every after-the-fact column from an honest one (`Lead Quality`,
0.79 there, passes it), so docs/table.md also tells users which columns to exclude by
knowledge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from features.table.spec import TableSpec

DEFAULT_MAX_AUC = 0.90
ONE_CLASS_FILLED_AT_MOST = 0.01
OTHER_CLASS_FILLED_AT_LEAST = 0.10


@dataclass(frozen=True)
class LeakageReport:
    """One row per input column: how well it predicts alone, and what was decided."""

    table: pd.DataFrame  # column, kind, roc_auc_alone, filled_converted, filled_other, ...
    max_auc: float

    @property
    def excluded(self) -> list[str]:
        return self.table.loc[self.table["action"] == "excluded", "column"].tolist()

    @property
    def flagged(self) -> list[str]:
        return self.table.loc[self.table["reason"] != "", "column"].tolist()

    def markdown(self) -> str:
        lines = [
            "| column | kind | ROC AUC alone | filled (converted) | filled (others) | "
            "flag | action |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in self.table.to_dict("records"):
            lines.append(
                f"| {row['column']} | {row['kind']} | {row['roc_auc_alone']:.3f} | "
                f"{row['filled_converted']:.0%} | {row['filled_other']:.0%} | "
                f"{row['reason'] or '-'} | {row['action']} |"
            )
        return "\n".join(lines) + "\n"


def check_leakage(
    inputs: pd.DataFrame,
    y: np.ndarray,
    spec: TableSpec,
    max_auc: float = DEFAULT_MAX_AUC,
    allow: Sequence[str] = (),
    seed: int = 0,
) -> LeakageReport:
    """The guard's report on training rows (`model_inputs` of them, and the 0/1 target)."""
    rows = []
    converted = y == 1
    for name in spec.columns:
        column = inputs[name]
        kind = "numeric" if name in spec.numeric else "categorical"
        filled = column.notna().to_numpy(dtype=bool)
        fill_pos = float(filled[converted].mean()) if converted.any() else 0.0
        fill_neg = float(filled[~converted].mean()) if (~converted).any() else 0.0
        auc = _auc_alone(column, y, kind, seed)
        reasons = []
        if auc >= max_auc:
            reasons.append(f"alone ROC AUC {auc:.3f} >= {max_auc:g}")
        low, high = min(fill_pos, fill_neg), max(fill_pos, fill_neg)
        if low <= ONE_CLASS_FILLED_AT_MOST and high >= OTHER_CLASS_FILLED_AT_LEAST:
            which = "converted" if fill_pos > fill_neg else "not converted"
            reasons.append(f"filled in for {which} leads only ({high:.0%} vs {low:.0%})")
        reason = "; ".join(reasons)
        action = "kept" if not reason else ("allowed (--allow)" if name in allow else "excluded")
        rows.append((name, kind, auc, fill_pos, fill_neg, reason, action))
    table = pd.DataFrame(
        rows,
        columns=[
            "column",
            "kind",
            "roc_auc_alone",
            "filled_converted",
            "filled_other",
            "reason",
            "action",
        ],
    ).sort_values("roc_auc_alone", ascending=False, ignore_index=True)
    return LeakageReport(table, max_auc)


def _auc_alone(column: pd.Series, y: np.ndarray, kind: str, seed: int) -> float:
    """max(AUC, 1 - AUC) of one column as the only score (0.5 when it cannot rank)."""
    if len(np.unique(y)) < 2:
        return 0.5
    if kind == "numeric":
        values = column.to_numpy(dtype=float, na_value=np.nan)
        if not np.isfinite(values).any():
            return 0.5
        score = np.where(np.isnan(values), np.nanmin(values) - 1.0, values)
    else:
        score = _out_of_fold_rate(column, y, seed)
    auc = float(roc_auc_score(y, score))
    return max(auc, 1.0 - auc)


def _out_of_fold_rate(column: pd.Series, y: np.ndarray, seed: int) -> np.ndarray:
    """Each row's category's conversion rate measured on the other folds (smoothed)."""
    keys = column.astype(object).where(column.notna(), "(missing)").to_numpy()
    score = np.empty(len(y))
    base = float(np.mean(y))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    for train_idx, test_idx in folds.split(np.zeros(len(y)), y):
        stats = pd.DataFrame({"k": keys[train_idx], "y": y[train_idx]}).groupby("k")["y"]
        total, count = stats.sum(), stats.count()
        rate = (total + 10 * base) / (count + 10)  # ten pseudo-leads at the average
        score[test_idx] = pd.Series(keys[test_idx]).map(rate).fillna(base).to_numpy()
    return score
