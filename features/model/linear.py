"""A logistic regression over the model's own input matrix, as plain-file state.

The baseline every run compares with, and the model registered in the booster's place
when the booster learned nothing (training/train.py's weak-model guard). It reads the
same matrix as the booster (`LeadScorer.matrix`: numbers, then category codes), so it
serves through the same doors, and it is saved as JSON, never pickled.

The design matrix, fixed from the training rows:

- each number: missing -> the training median, plus a 0/1 "was missing" column when
  any training value was missing; then sign(x) * log1p(|x|) (counts and amounts are
  heavy-tailed); then standardised;
- each category: one column per value seen at least `min_frequency` times; rarer
  values, unknown values and missing share one column.

Its contributions (the reasons) are coefficient x standardised value per design column
(0 is the average training lead), summed per input; the bias column holds the
intercept, so a row's contributions sum to its log-odds, as LightGBM's do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LinearModel:
    """The fitted state (see the module's docstring)."""

    n_numeric: int
    medians: tuple[float, ...]
    with_indicator: tuple[bool, ...]
    kept_codes: tuple[tuple[int, ...], ...]  # per categorical input: the codes with a column
    mean: tuple[float, ...]  # per design column, after the transform (for standardising)
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    # --- the design matrix ---------------------------------------------------------

    @staticmethod
    def raw_design(
        x: np.ndarray,
        n_numeric: int,
        medians: Sequence[float],
        with_indicator: Sequence[bool],
        kept_codes: Sequence[Sequence[int]],
    ) -> tuple[np.ndarray, np.ndarray]:
        """The unstandardised design matrix of ``x`` and, per column, its input's index."""
        columns, owner = [], []
        for j in range(n_numeric):
            values = x[:, j]
            missing = np.isnan(values)
            filled = np.where(missing, medians[j], values)
            columns.append(np.sign(filled) * np.log1p(np.abs(filled)))
            owner.append(j)
            if with_indicator[j]:
                columns.append(missing.astype(float))
                owner.append(j)
        for k, kept in enumerate(kept_codes):
            j = n_numeric + k
            codes = x[:, j]
            for code in kept:
                columns.append((codes == code).astype(float))
                owner.append(j)
            known = np.isin(codes, np.asarray(kept, dtype=float))
            columns.append((~known).astype(float))  # rare, unseen or missing
            owner.append(j)
        design = np.column_stack(columns) if columns else np.zeros((len(x), 0))
        return design, np.asarray(owner, dtype=np.int64)

    def design(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raw, owner = self.raw_design(
            x, self.n_numeric, self.medians, self.with_indicator, self.kept_codes
        )
        return (raw - np.asarray(self.mean)) / np.asarray(self.scale), owner

    # --- outputs ---------------------------------------------------------------------

    def logit(self, x: np.ndarray) -> np.ndarray:
        design, _ = self.design(x)
        return np.asarray(design @ np.asarray(self.coef) + self.intercept, dtype=float)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logit(x)))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """(n, inputs + 1) log-odds per input relative to the average lead; last: the bias."""
        design, owner = self.design(x)
        n_inputs = int(x.shape[1])
        out = np.zeros((len(x), n_inputs + 1))
        terms = design * np.asarray(self.coef)
        for j in range(n_inputs):
            out[:, j] = terms[:, owner == j].sum(axis=1)
        out[:, -1] = self.intercept
        return out

    # --- files -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        state = asdict(self)
        state["kept_codes"] = [list(codes) for codes in self.kept_codes]
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> LinearModel:
        return cls(
            n_numeric=int(state["n_numeric"]),
            medians=tuple(state["medians"]),
            with_indicator=tuple(bool(v) for v in state["with_indicator"]),
            kept_codes=tuple(tuple(int(c) for c in codes) for codes in state["kept_codes"]),
            mean=tuple(state["mean"]),
            scale=tuple(state["scale"]),
            coef=tuple(state["coef"]),
            intercept=float(state["intercept"]),
        )


def design_state(
    x: np.ndarray, n_numeric: int, min_frequency: int
) -> tuple[tuple[float, ...], tuple[bool, ...], tuple[tuple[int, ...], ...]]:
    """(medians, indicator flags, kept category codes) decided on the training matrix."""
    medians, indicators = [], []
    for j in range(n_numeric):
        values = x[:, j]
        missing = np.isnan(values)
        medians.append(float(np.median(values[~missing])) if (~missing).any() else 0.0)
        indicators.append(bool(missing.any()))
    kept = []
    for j in range(n_numeric, x.shape[1]):
        codes = x[:, j]
        codes = codes[~np.isnan(codes)].astype(np.int64)
        counts = np.bincount(codes) if len(codes) else np.zeros(0, dtype=np.int64)
        kept.append(tuple(int(c) for c in np.flatnonzero(counts >= min_frequency)))
    return tuple(medians), tuple(indicators), tuple(kept)
