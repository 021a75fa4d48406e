"""The drift report: how the training data moved over time, and which inputs encode time.

A model fitted on the past meets the future. Training reports, before anything is
registered:

- the conversion rate per period of the training data (equal-size slices in time order):
  a base rate that doubles is a shift a model must be refitted through;
- per input, the population stability index between the fit rows (the oldest) and the
  newest rows: PSI = sum over bins of (new - old) x ln(new / old), bins from the old
  rows' deciles (numbers) or values (categories), missing values a bin of their own.
  Above 0.25 is the usual "shifted" mark, 0.1-0.25 "moved";
- inputs that only encode the calendar: a number that rises (or falls) with time almost
  monotonically (|Spearman| >= 0.9 with the time order: a campaign counter, an id), or a
  category whose values come and go with the periods (Cramér's V >= 0.6 with the period:
  a month, a campaign name). Such a column explains the past by its date; on tomorrow's
  leads its values are out of range (`--drop-calendar` leaves them out).

The report is printed and logged to MLflow (`drift.md`, `drift.csv`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

PERIODS = 6
SAMPLE_ROWS = 100_000
SHIFTED_PSI = 0.25
MOVED_PSI = 0.10
CALENDAR_SPEARMAN = 0.9
CALENDAR_CRAMERS_V = 0.6
_EPS = 1e-4


@dataclass(frozen=True)
class DriftReport:
    periods: pd.DataFrame  # period, first, last, rows, conversions, conversion_rate
    columns: pd.DataFrame  # column, kind, psi, shift, calendar, why (sorted by psi)

    @property
    def calendar(self) -> list[str]:
        return self.columns.loc[self.columns["calendar"], "column"].tolist()

    @property
    def rate_ratio(self) -> float:
        """Conversion rate of the newest period over the oldest's."""
        rates = self.periods["conversion_rate"].to_numpy()
        return float(rates[-1] / rates[0]) if len(rates) and rates[0] > 0 else float("nan")

    def lines(self, top: int = 8) -> list[str]:
        """The report in plain words, for the command line."""
        out = ["conversion rate by period of the training data (oldest first):"]
        for row in self.periods.itertuples(index=False):
            out.append(
                f"  {row.first} .. {row.last}: {row.rows:,} rows, "
                f"{row.conversion_rate:.2%} converted"
            )
        if np.isfinite(self.rate_ratio) and not 0.67 <= self.rate_ratio <= 1.5:
            out.append(
                f"  the base rate moved: the newest period converts {self.rate_ratio:.1f}x as "
                "often as the oldest"
            )
        moved = self.columns[self.columns["psi"] >= MOVED_PSI].head(top)
        if len(moved):
            out.append("inputs whose distribution moved most (fit rows -> newest rows, PSI):")
            for item in moved.to_dict("records"):
                why = f" {item['why']}" if item["why"] else ""
                out.append(f"  {item['column']}: {item['psi']:.2f} ({item['shift']}){why}")
        for name in self.calendar:
            why = self.columns.loc[self.columns["column"] == name, "why"].iloc[0]
            out.append(f"calendar column: {name} {why}")
        return out

    def markdown(self) -> str:
        lines = ["# Drift report", "", "## Conversion rate by period", "",
                 "| period | rows | conversions | rate |", "|---|---|---|---|"]  # fmt: skip
        for row in self.periods.itertuples(index=False):
            lines.append(
                f"| {row.first} .. {row.last} | {row.rows:,} | {row.conversions:,} | "
                f"{row.conversion_rate:.2%} |"
            )
        lines += ["", "## Inputs: population stability (fit rows -> newest rows)", ""]
        lines += ["| column | kind | PSI | shift | calendar |", "|---|---|---|---|---|"]
        for item in self.columns.to_dict("records"):
            lines.append(
                f"| {item['column']} | {item['kind']} | {item['psi']:.3f} | {item['shift']} | "
                f"{item['why'] if item['calendar'] else ''} |"
            )
        return "\n".join(lines) + "\n"


def drift_report(
    inputs: pd.DataFrame,
    y: np.ndarray,
    order: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    old: np.ndarray,
    new: np.ndarray,
    numeric: Sequence[str],
    categorical: Sequence[str],
) -> DriftReport:
    """The report over the training rows ``inputs`` (time ``order``, shown as ``labels``);
    ``old`` and ``new`` are the masks of the fit rows and of the newest rows.

    The periods are counted on every row; the per-column figures on a fixed sample of
    SAMPLE_ROWS rows when there are more (a million snapshots x 86 features otherwise
    cost ~20 s of sorting for figures that do not move in the second decimal).
    """
    sort = np.argsort(order, kind="stable")
    slices = np.array_split(sort, min(PERIODS, max(1, len(sort))))
    labels = np.asarray(labels, dtype=object)
    period = np.empty(len(order), dtype=np.int64)
    rows = []
    for k, part in enumerate(slices):
        period[part] = k
        rows.append(
            {
                "period": k + 1,
                "first": str(labels[part[0]]),
                "last": str(labels[part[-1]]),
                "rows": len(part),
                "conversions": int(y[part].sum()),
                "conversion_rate": float(y[part].mean()) if len(part) else float("nan"),
            }
        )
    if len(order) > SAMPLE_ROWS:
        keep = np.sort(np.random.default_rng(0).choice(len(order), SAMPLE_ROWS, replace=False))
        inputs, order, old, new, period = (
            inputs.iloc[keep],
            order[keep],
            old[keep],
            new[keep],
            period[keep],
        )
    columns = []
    for name in [*numeric, *categorical]:
        values = inputs[name]
        is_number = name in numeric
        psi = _psi_numeric(values, old, new) if is_number else _psi_categorical(values, old, new)
        calendar, why = (
            _calendar_numeric(values, order) if is_number else _calendar_categorical(values, period)
        )
        shift = "shifted" if psi >= SHIFTED_PSI else "moved" if psi >= MOVED_PSI else "stable"
        columns.append(
            {
                "column": name,
                "kind": "numeric" if is_number else "categorical",
                "psi": psi,
                "shift": shift,
                "calendar": calendar,
                "why": why,
            }
        )
    table = pd.DataFrame(columns, columns=["column", "kind", "psi", "shift", "calendar", "why"])
    table = table.sort_values("psi", ascending=False, ignore_index=True)
    return DriftReport(pd.DataFrame(rows), table)


def _psi(old_share: np.ndarray, new_share: np.ndarray) -> float:
    a, b = np.maximum(old_share, _EPS), np.maximum(new_share, _EPS)
    return float(np.sum((b - a) * np.log(b / a)))


def _shares(codes: np.ndarray, n_bins: int) -> np.ndarray:
    counts = np.bincount(codes, minlength=n_bins).astype(float)
    return counts / max(counts.sum(), 1.0)


def _psi_numeric(values: pd.Series, old: np.ndarray, new: np.ndarray) -> float:
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    reference = x[old][np.isfinite(x[old])]
    if len(reference) == 0:
        return 0.0
    edges = np.unique(np.quantile(reference, np.linspace(0.1, 0.9, 9)))
    codes = np.where(np.isfinite(x), np.searchsorted(edges, x, side="right"), len(edges) + 1)
    n_bins = len(edges) + 2
    return _psi(_shares(codes[old], n_bins), _shares(codes[new], n_bins))


def _psi_categorical(values: pd.Series, old: np.ndarray, new: np.ndarray) -> float:
    text = values.astype(object).where(values.notna(), "(missing)").astype(str).to_numpy()
    top = pd.Series(text[old]).value_counts().index[:30].tolist()
    lookup = {v: i for i, v in enumerate(top)}
    codes = np.array([lookup.get(v, len(top)) for v in text], dtype=np.int64)
    return _psi(_shares(codes[old], len(top) + 1), _shares(codes[new], len(top) + 1))


def _calendar_numeric(values: pd.Series, order: np.ndarray) -> tuple[bool, str]:
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    known = np.isfinite(x)
    if known.sum() < 20 or np.unique(x[known]).size < 3:
        return False, ""
    rho = float(spearmanr(order[known], x[known]).statistic)
    if abs(rho) >= CALENDAR_SPEARMAN:
        return True, f"(moves with time: Spearman {rho:+.2f} with the time order)"
    return False, ""


def _calendar_categorical(values: pd.Series, period: np.ndarray) -> tuple[bool, str]:
    text = values.astype(object).where(values.notna(), "(missing)").astype(str).to_numpy()
    top = pd.Series(text).value_counts().index[:30].tolist()
    if len(top) < 2:
        return False, ""
    lookup = {v: i for i, v in enumerate(top)}
    codes = np.array([lookup.get(v, len(top)) for v in text], dtype=np.int64)
    n_periods = int(period.max()) + 1
    if n_periods < 2:
        return False, ""
    table = np.zeros((len(top) + 1, n_periods))
    np.add.at(table, (codes, period), 1.0)
    table = table[table.sum(axis=1) > 0]
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    chi2 = float(np.sum((table - expected) ** 2 / np.maximum(expected, 1e-12)))
    v = float(np.sqrt(chi2 / (table.sum() * max(1, min(table.shape) - 1))))
    if v >= CALENDAR_CRAMERS_V:
        return True, f"(its values come and go with the periods: Cramér's V {v:.2f})"
    return False, ""
