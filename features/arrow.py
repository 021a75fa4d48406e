"""Whole columns in Arrow: what the loader, the event store and the features share.

pandas 3 keeps text in Arrow, so a loaded export's columns hand their buffers to Arrow's
kernels without a copy; those kernels release the GIL, so independent columns are worked
on in threads, one per core.
"""

from __future__ import annotations

import os
from typing import Any, Final

import pyarrow as pa

#: text stored as a dictionary of its distinct values (a Categorical in pandas): how a
#: column of few values is read, and how categorical features are written
TEXT_DICTIONARY: Final = pa.dictionary(pa.int32(), pa.string())


def one_array(values: Any) -> pa.Array:
    """A column (a pandas Series, or anything `pa.array` takes) as one Arrow array.

    pandas hands Arrow-backed columns over in chunks, and an empty one as no chunks at all;
    several kernels (`dictionary_encode`, `replace_with_mask`) want one array.
    """
    arrow = pa.array(values, from_pandas=True)
    return arrow.combine_chunks() if isinstance(arrow, pa.ChunkedArray) else arrow


def column_threads() -> int:
    """Threads for whole-column Arrow and NumPy work: their kernels release the GIL, so
    one per core (at most 8: the columns of a table are few)."""
    return max(1, min(8, len(os.sched_getaffinity(0))))
