"""Reading a flat lead table: the file, its cells cleaned, its target, its time order.

Every problem a user can cause names the file, the column and what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from features.table.cells import FALSE_WORDS, TRUE_WORDS, cell_text
from features.table.spec import NUMERIC_SHARE, TableError


def read_table(path: str | Path, sep: str = ",", encoding: str = "utf-8") -> pd.DataFrame:
    """A lead table from CSV (``sep`` between cells, ``encoding``) or Parquet (by suffix)."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(
                path, sep=sep, encoding=encoding, skipinitialspace=True, low_memory=False
            )
    except UnicodeDecodeError as exc:
        raise TableError(
            f"{path}: not {encoding} text ({exc.reason}); exports from Excel or Bitrix24 in "
            "Russian are often cp1251: give --encoding cp1251"
        ) from exc
    except Exception as exc:  # pandas and Arrow raise many kinds; all mean "not a table"
        raise TableError(f"{path}: not a readable table ({type(exc).__name__}: {exc})") from exc
    if frame.empty:
        raise TableError(f"{path}: the table has no rows")
    if len(frame.columns) < 2:
        header = str(frame.columns[0])
        likely = next((s for s in (";", "\t", "|", ",") if s != sep and s in header), None)
        hint = (
            f"it looks separated by {likely!r}: give --sep {likely!r}"
            if likely
            else f"is the separator right (--sep, now {sep!r})?"
        )
        raise TableError(f"{path}: one column only ({header[:60]!r}); {hint}")
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
            texts = [cell_text(cell) for cell in column.tolist()]
            values = [None if t is None or t in wanted else t for t in texts]
            out[name] = pd.Series(values, index=out.index, dtype=object)  # None, not NaN
    return out


def target_values(
    column: pd.Series,
    positive: str | Sequence[str] | None,
    negative: Sequence[str] | None = None,
) -> np.ndarray:
    """The target as 1.0 (converted), 0.0, or NaN (missing, or not decided yet).

    Without ``positive``, the column must hold two values that read as yes/no (1/0,
    true/false, yes/no); with it, those values are 1 and every other filled value is 0,
    or, with ``negative`` too, those are 0 and the rest (leads still open) NaN.
    """
    text = column.astype("string").str.strip()
    filled = text.notna()
    if positive is not None:
        wanted = [positive] if isinstance(positive, str) else list(positive)
        hit = text.isin([p.strip() for p in wanted]).fillna(False).to_numpy(dtype=bool)
        if not hit.any():
            seen = ", ".join(repr(v) for v in text.dropna().unique()[:10])
            said = " or ".join(repr(p) for p in wanted[:4])
            raise TableError(
                f"column {column.name!r} (the target) never holds {said}; it holds {seen}"
            )
        if negative is not None:
            lost = text.isin([n.strip() for n in negative]).fillna(False).to_numpy(dtype=bool)
            return np.where(hit, 1.0, np.where(lost, 0.0, np.nan))
        return np.where(filled.to_numpy(dtype=bool), hit.astype(float), np.nan)
    lowered = text.str.lower()
    yes, no = lowered.isin(TRUE_WORDS).fillna(False), lowered.isin(FALSE_WORDS).fillna(False)
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
