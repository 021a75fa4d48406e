"""The one conversion of a lead table's cells, for training, batch scoring and the API.

Numbers become float (missing: NaN; yes/no words: 1/0), categories trimmed text
(missing: None); empty cells and form placeholders are missing. Plain Python per cell:
a lead's row through pandas would cost ~100 µs per column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.table.spec import TableError, TableSpec

#: cell texts that read as yes (1) and no (0), compared lower-cased
TRUE_WORDS = frozenset({"1", "1.0", "true", "yes", "y", "t"})
FALSE_WORDS = frozenset({"0", "0.0", "false", "no", "n", "f"})
_WORDS = {**dict.fromkeys(TRUE_WORDS, 1.0), **dict.fromkeys(FALSE_WORDS, 0.0)}


def require_columns(frame: pd.DataFrame, names: Sequence[str | None], what: str) -> None:
    """Every named column exists, or a TableError listing what the table has."""
    missing = [n for n in names if n is not None and n not in frame.columns]
    if missing:
        have = ", ".join(repr(c) for c in list(frame.columns)[:40])
        raise TableError(f"{what}: no column {', '.join(map(repr, missing))}; the table has {have}")


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
        texts = [cell_text(cell) for cell in columns[name]]
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


def cell_text(cell: Any) -> str | None:
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
    text = cell_text(cell)
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
