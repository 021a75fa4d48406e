"""Arrow's memory pool: one that gives freed memory back to the system.

pandas 3 keeps text in Arrow, so a loaded export, its parsing, the event store's inputs
and every Parquet file go through Arrow's memory pool. Its default on Linux, mimalloc,
keeps what was freed for reuse: after `load_crm` of 3 million touchpoints a process held
1,194 MB while Arrow had 267 MB allocated, and `release_unused()` gave 614 MB back. With
jemalloc (which Arrow sets up to return freed pages within a second) the peaks of
`validate`, `build-dataset` and `load` on that export were 19-30 % lower, no slower
(`benchmarks/bench_memory.py`; docs/benchmarks.md, "Memory per touchpoint").

`leadscore` picks it at start; the processes it starts (a LocalCluster's Dask workers)
inherit the choice through ARROW_DEFAULT_MEMORY_POOL. A pool set by the user in
ARROW_DEFAULT_MEMORY_POOL is left alone, and a pyarrow built without jemalloc keeps its
default.
"""

from __future__ import annotations

import os

import pyarrow as pa

ENV = "ARROW_DEFAULT_MEMORY_POOL"


def use_returning_pool() -> str:
    """Make jemalloc Arrow's pool (unless the user chose one); the backend in use."""
    if os.environ.get(ENV):
        return str(pa.default_memory_pool().backend_name)
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without it
        return str(pa.default_memory_pool().backend_name)
    pa.set_memory_pool(pool)
    os.environ[ENV] = "jemalloc"
    return "jemalloc"
