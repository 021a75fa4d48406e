"""A flat lead table: one row per lead, its attributes, and a converted flag.

Many teams have no touchpoint log, only a CRM export of leads with attributes,
aggregated activity and an outcome. This module reads such a table (CSV or Parquet),
treats form placeholders (`Select`) as missing, decides which columns are numbers and
which are categories, and turns rows into what `LeadScorer` eats. Training
(`training/table_train.py`), batch scoring and the API share these functions, so a
lead is prepared the same way everywhere.

Every problem a user can cause names the file, the column and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: cell values that mean "nothing was chosen" in web-form exports
DEFAULT_PLACEHOLDERS: tuple[str, ...] = ("Select", "select", "--", "N/A", "n/a", "#N/A")
#: a text column is numeric when at least this share of its filled cells are numbers
NUMERIC_SHARE = 0.98
_TRUE = {"1", "1.0", "true", "yes", "y", "t"}
_FALSE = {"0", "0.0", "false", "no", "n", "f"}
_WORDS = {**dict.fromkeys(_TRUE, 1.0), **dict.fromkeys(_FALSE, 0.0)}


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


def read_table(path: str | Path, sep: str = ",") -> pd.DataFrame:
    """A lead table from CSV (``sep`` between cells) or Parquet (by the file's suffix)."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep=sep, skipinitialspace=True, low_memory=False)
    except Exception as exc:  # pandas and Arrow raise many kinds; all mean "not a table"
        raise TableError(f"{path}: not a readable table ({type(exc).__name__}: {exc})") from exc
    if frame.empty:
        raise TableError(f"{path}: the table has no rows")
    if len(frame.columns) < 2:
        raise TableError(
            f"{path}: one column only ({frame.columns[0]!r}); "
            f"is the separator right (--sep, now {sep!r})?"
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def clean(frame: pd.DataFrame, placeholders: Sequence[str]) -> pd.DataFrame:
    """Text cells trimmed; empty cells and placeholder values become missing (None).

    (The same rule as `input_columns`, which is what the model reads; this keeps the
    frame for deciding column kinds and for splitting.)
    """
    out = frame.copy()
    wanted = set(placeholders)
    for name in out.columns:
        column = out[name]
        if _is_text(column):
            texts = [_text(cell) for cell in column.tolist()]
            values = [None if t is None or t in wanted else t for t in texts]
            out[name] = pd.Series(values, index=out.index, dtype=object)  # None, not NaN
    return out


def require_columns(frame: pd.DataFrame, names: Sequence[str | None], what: str) -> None:
    """Every named column exists, or a TableError listing what the table has."""
    missing = [n for n in names if n is not None and n not in frame.columns]
    if missing:
        have = ", ".join(repr(c) for c in list(frame.columns)[:40])
        raise TableError(f"{what}: no column {', '.join(map(repr, missing))}; the table has {have}")


def target_values(column: pd.Series, positive: str | None) -> np.ndarray:
    """The target as 1.0 (converted), 0.0, or NaN (missing).

    Without ``positive``, the column must hold two values that read as yes/no (1/0,
    true/false, yes/no); with it, that value is 1 and every other filled value is 0.
    """
    text = column.astype("string").str.strip()
    filled = text.notna()
    if positive is not None:
        hit = (text == positive.strip()).fillna(False).to_numpy(dtype=bool)
        if not hit.any():
            seen = ", ".join(repr(v) for v in text.dropna().unique()[:10])
            raise TableError(
                f"column {column.name!r} (the target) never holds {positive!r}; it holds {seen}"
            )
        return np.where(filled.to_numpy(dtype=bool), hit.astype(float), np.nan)
    lowered = text.str.lower()
    yes, no = lowered.isin(_TRUE).fillna(False), lowered.isin(_FALSE).fillna(False)
    odd = filled & ~yes & ~no
    if odd.any():
        seen = ", ".join(repr(v) for v in text[odd].unique()[:10])
        raise TableError(
            f"column {column.name!r} (the target) holds {seen} besides yes/no values; "
            "give --positive VALUE to say which value means converted"
        )
    out = np.full(len(column), np.nan)
    out[yes.to_numpy(dtype=bool)] = 1.0
    out[no.to_numpy(dtype=bool)] = 0.0
    return out


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


def input_columns(
    columns: Mapping[str, Sequence[Any]], spec: TableSpec
) -> tuple[dict[str, np.ndarray], dict[str, list[int]]]:
    """The model's inputs from raw cell values, and where numeric columns hold text.

    The one conversion of a lead table's cells, for training, batch scoring and the
    API alike: numbers as float (missing: NaN; yes/no words as 1/0), categories as
    trimmed text (missing: None); empty cells and placeholders are missing. Plain
    Python per cell (~0.3 µs): a lead's row through pandas would cost ~100 µs per
    column. Returns (column -> array, numeric column -> positions that are not numbers).
    """
    placeholders = set(spec.placeholders)
    out: dict[str, np.ndarray] = {}
    bad: dict[str, list[int]] = {}
    for name in spec.numeric:
        values = np.empty(len(columns[name]))
        wrong = []
        for i, cell in enumerate(columns[name]):
            number = _number(cell, placeholders)
            if number is None:
                wrong.append(i)
                number = np.nan
            values[i] = number
        out[name] = values
        if wrong:
            bad[name] = wrong
    for name in spec.categorical:
        texts = [_text(cell) for cell in columns[name]]
        out[name] = np.array(
            [None if t is None or t in placeholders else t for t in texts], dtype=object
        )
    return out, bad


def model_inputs(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """`input_columns` of a table, as a frame. Text in a numeric column becomes missing
    here; callers that must refuse it (batch scoring, the API) call `input_columns`."""
    require_columns(frame, spec.columns, "the model's input columns")
    arrays, _ = input_columns({name: frame[name].tolist() for name in spec.columns}, spec)
    return pd.DataFrame(arrays, index=frame.index)


def order_key(frame: pd.DataFrame, column: str) -> pd.Series:
    """Sortable values of a time column (timestamps, or numbers such as a lead number)."""
    values = frame[column]
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().mean() >= NUMERIC_SHARE:
        return numbers.astype(float)
    times = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    if times.notna().mean() < NUMERIC_SHARE:
        bad = values[times.isna() & values.notna()].head(3).tolist()
        raise TableError(
            f"column {column!r} (orders the holdout) holds values that are neither "
            f"timestamps nor numbers, e.g. {bad}"
        )
    return (times - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds()


def _is_text(column: pd.Series) -> bool:
    return not (
        pd.api.types.is_numeric_dtype(column)
        or pd.api.types.is_bool_dtype(column)
        or pd.api.types.is_datetime64_any_dtype(column)
    )


def _is_number_column(column: pd.Series, filled: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return True
    return _mostly_numbers(filled)


def _mostly_numbers(filled: pd.Series) -> bool:
    numbers = pd.to_numeric(filled.astype("string"), errors="coerce")
    return bool(numbers.notna().mean() >= NUMERIC_SHARE)


def _text(cell: Any) -> str | None:
    """A cell as trimmed text; None when missing or empty."""
    if cell is None or cell is pd.NA or (isinstance(cell, float) and np.isnan(cell)):
        return None
    text = str(cell).strip()
    return text or None


def _number(cell: Any, placeholders: set[str]) -> float | None:
    """A cell as a number: NaN when missing, None when it is text that is not a number."""
    if isinstance(cell, bool | np.bool_ | int | float | np.integer | np.floating):
        try:
            return float(cell)
        except OverflowError:  # an integer beyond any float: not a usable number
            return None
    text = _text(cell)
    if text is None or text in placeholders:
        return float("nan")
    word = _WORDS.get(text.lower())
    if word is not None:
        return word
    try:
        # (float() also reads "1_000", which a spreadsheet would not)
        return None if "_" in text else float(text)
    except ValueError:
        return None
