"""How a model reads a flat lead table: its input columns, their kinds, and why others
are left out.

Many teams have no touchpoint log, only a CRM export of leads with attributes,
aggregated activity and an outcome. `TableSpec` records which columns a table model
reads as numbers and which as categories (decided once, on training rows, by
`infer_spec`) and is saved in the model's metadata, so batch scoring and the API read
a lead's row exactly as training did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

#: cell values that mean "nothing was chosen" in web-form exports
DEFAULT_PLACEHOLDERS: tuple[str, ...] = ("Select", "select", "--", "N/A", "n/a", "#N/A")
#: a text column is numeric when at least this share of its filled cells are numbers
NUMERIC_SHARE = 0.98


class TableError(ValueError):
    """A lead table that cannot be used as asked; the message says where and why."""


@dataclass(frozen=True)
class TableSpec:
    """How a model reads a lead table; saved in the model's metadata.

    `numeric` and `categorical` are the model's input columns (in order); `dropped`
    records every other column with the reason it is not used.
    """

    target: str
    positive: str | None
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    placeholders: tuple[str, ...] = DEFAULT_PLACEHOLDERS
    id_column: str | None = None
    time_column: str | None = None
    dropped: dict[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["numeric"], out["categorical"] = list(self.numeric), list(self.categorical)
        out["placeholders"] = list(self.placeholders)
        return out

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> TableSpec:
        return cls(
            target=state["target"],
            positive=state.get("positive"),
            numeric=tuple(state["numeric"]),
            categorical=tuple(state["categorical"]),
            placeholders=tuple(state.get("placeholders", DEFAULT_PLACEHOLDERS)),
            id_column=state.get("id_column"),
            time_column=state.get("time_column"),
            dropped=dict(state.get("dropped", {})),
        )


def infer_spec(
    frame: pd.DataFrame,
    target: str,
    positive: str | None = None,
    id_column: str | None = None,
    time_column: str | None = None,
    exclude: Sequence[str] = (),
    placeholders: Sequence[str] = DEFAULT_PLACEHOLDERS,
) -> TableSpec:
    """Numeric and categorical input columns of a cleaned table (decided on these rows).

    Left out, with the reason recorded: the target, id and time columns, excluded
    columns, empty columns, columns with one value in every row (one value with gaps
    stays: being filled in can be the signal), text with a different value on every row
    (an identifier), and timestamps.
    """
    dropped: dict[str, str] = {}
    for name, why in (
        (target, "the target"),
        (id_column, "the id column"),
        (time_column, "the time column (orders the holdout)"),
    ):
        if name is not None:
            dropped[name] = why
    for name in exclude:
        dropped.setdefault(name, "excluded (--exclude)")
    numeric, categorical = [], []
    for name in frame.columns:
        if name in dropped:
            continue
        column = frame[name]
        filled = column.dropna()
        if filled.empty:
            dropped[name] = "empty (every cell missing or a placeholder)"
        elif filled.nunique() < 2 and len(filled) == len(column):
            dropped[name] = f"one value only ({filled.iloc[0]!r})"  # (filled or not would tell)
        elif pd.api.types.is_datetime64_any_dtype(column):
            dropped[name] = "a timestamp (give it as --time-column to order the holdout)"
        elif _is_number_column(column, filled):
            numeric.append(name)
        elif filled.nunique() == len(filled) and len(filled) >= 20:
            dropped[name] = "an identifier (a different value on every row)"
        else:
            categorical.append(name)
    return TableSpec(
        target=target,
        positive=positive,
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        placeholders=tuple(placeholders),
        id_column=id_column,
        time_column=time_column,
        dropped=dropped,
    )


def _is_number_column(column: pd.Series, filled: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return True
    return _mostly_numbers(filled)


def _mostly_numbers(filled: pd.Series) -> bool:
    numbers = pd.to_numeric(filled.astype("string"), errors="coerce")
    return bool(numbers.notna().mean() >= NUMERIC_SHARE)
