"""Run the simulation chunk by chunk and write a CRM folder in the data contract.

Memory stays bounded by the chunk size: each chunk's tables are appended to the output
files and dropped. The latent truth (each account's fit, each buying episode's stages
and probabilities, each contact's persona) goes to `truth/` beside the contract tables,
never inside them, so a model can later be compared with what is knowable.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from tqdm import tqdm

from features.crm.contract import CONTRACT_VERSION, TABLES, Kind, TableSpec
from features.synthetic.params import GeneratorConfig
from features.synthetic.simulate import Chunk, Counters, simulate_chunk

logger = logging.getLogger(__name__)

Format = Literal["csv", "parquet"]
TRUTH_DIR = "truth"

_ARROW_TYPES = {
    Kind.STRING: pa.string(),
    Kind.ENUM: pa.string(),
    Kind.INTEGER: pa.int64(),
    Kind.NUMBER: pa.float64(),
    Kind.TIMESTAMP: pa.timestamp("s", tz="UTC"),
}


def contract_schema(spec: TableSpec) -> pa.Schema:
    """The Arrow schema the generator writes a contract table with."""
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.kind]) for c in spec.columns])


def span_days(cfg: GeneratorConfig) -> float:
    """Length of the simulated period in days (calendar months from the start)."""
    start = pd.Timestamp(cfg.start)
    return float((start + pd.DateOffset(months=cfg.months) - start).days)


def iter_chunks(cfg: GeneratorConfig, progress: bool = False) -> Iterator[Chunk]:
    """Simulate the whole CRM as a sequence of chunks (deterministic for the config)."""
    if cfg.accounts < 1:
        raise ValueError(f"accounts must be at least 1, got {cfg.accounts}")
    if cfg.months < 1:
        raise ValueError(f"months must be at least 1, got {cfg.months}")
    span = span_days(cfg)
    counters = Counters()
    starts = range(0, cfg.accounts, cfg.chunk_accounts)
    bar = tqdm(starts, desc="simulating accounts", unit="chunk", disable=not progress)
    for index, first in enumerate(bar):
        rng = np.random.default_rng([cfg.seed, index])
        n = min(cfg.chunk_accounts, cfg.accounts - first)
        yield simulate_chunk(rng, cfg, first, n, span, counters)


def generate_frames(
    cfg: GeneratorConfig,
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """The whole CRM in memory: (contract tables, truth tables). For small configs."""
    tables: dict[str, list[pd.DataFrame]] = {}
    truth: dict[str, list[pd.DataFrame]] = {}
    for chunk in iter_chunks(cfg):
        for name, frame in chunk.tables.items():
            tables.setdefault(name, []).append(frame)
        for name, frame in chunk.truth.items():
            truth.setdefault(name, []).append(frame)
    return (
        {k: pd.concat(v, ignore_index=True) for k, v in tables.items()},
        {k: pd.concat(v, ignore_index=True) for k, v in truth.items()},
    )


class _TableWriter:
    """Appends chunks of one table to a CSV or Parquet file with a fixed schema."""

    def __init__(self, path: Path, schema: pa.Schema, fmt: Format) -> None:
        self.path, self.schema, self.fmt = path, schema, fmt
        self.rows = 0
        self._writer: pq.ParquetWriter | pacsv.CSVWriter | None = None

    def write(self, frame: pd.DataFrame) -> None:
        table = _to_arrow(frame, self.schema)
        if self.fmt == "csv":
            table = _timestamps_as_text(table)
        if self._writer is None:
            if self.fmt == "parquet":
                self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
            else:
                self._writer = pacsv.CSVWriter(self.path, table.schema)
        self._writer.write_table(table)
        self.rows += len(frame)

    def close(self) -> None:
        if self._writer is None:  # no chunk at all: still write a header
            self.write(self.schema.empty_table().to_pandas())
        assert self._writer is not None
        self._writer.close()


def _to_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    arrays = []
    for field in schema:
        values = frame[field.name]
        if pa.types.is_string(field.type):
            values = values.astype(object).where(values.notna(), None)
        elif isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_convert(None)  # naive UTC: Arrow reads it as UTC
        arrays.append(pa.array(values.to_numpy(), type=field.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=schema)


def _timestamps_as_text(table: pa.Table) -> pa.Table:
    """ISO 8601 with a `T` and a `Z`, the form the contract shows."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            text = pc.strftime(table.column(i), format="%Y-%m-%dT%H:%M:%SZ")
            table = table.set_column(i, field.name, text)
    return table


def _truth_schema(frame: pd.DataFrame) -> pa.Schema:
    fields = []
    for name, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            type_: pa.DataType = pa.timestamp("s", tz="UTC")
        elif pd.api.types.is_bool_dtype(dtype):
            type_ = pa.bool_()
        elif pd.api.types.is_integer_dtype(dtype):
            type_ = pa.int64()
        elif pd.api.types.is_float_dtype(dtype):
            type_ = pa.float64()
        else:
            type_ = pa.string()
        fields.append(pa.field(str(name), type_))
    return pa.schema(fields)


def generate_crm(
    cfg: GeneratorConfig,
    out: str | Path,
    fmt: Format = "csv",
    progress: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Simulate a CRM and write it to ``out``; returns the manifest it also writes.

    ``out`` must be empty or absent unless ``overwrite`` is set, so a typo never
    replaces someone's real export.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty; choose an empty folder or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written into a staging folder beside `out` and moved in when complete: an
    # interrupted run leaves no half export behind.
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        manifest = _write(cfg, staging, fmt, progress)
        if out.exists():
            for name in [f"{s.name}.{ext}" for s in TABLES for ext in ("csv", "parquet")]:
                (out / name).unlink(missing_ok=True)
            shutil.rmtree(out / TRUTH_DIR, ignore_errors=True)
        out.mkdir(exist_ok=True)
        for item in staging.iterdir():
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("wrote a synthetic CRM to %s: %s", out, manifest["rows"])
    return manifest


def _write(cfg: GeneratorConfig, out: Path, fmt: Format, progress: bool) -> dict[str, Any]:
    """The tables, the truth and the manifest, into the (empty) folder ``out``."""
    (out / TRUTH_DIR).mkdir(parents=True, exist_ok=True)
    writers = {
        s.name: _TableWriter(out / f"{s.name}.{fmt}", contract_schema(s), fmt) for s in TABLES
    }
    truth_writers: dict[str, _TableWriter] = {}
    try:
        for chunk in iter_chunks(cfg, progress=progress):
            for name, frame in chunk.tables.items():
                writers[name].write(frame)
            for name, frame in chunk.truth.items():
                if name not in truth_writers:
                    path = out / TRUTH_DIR / f"{name}.{fmt}"
                    truth_writers[name] = _TableWriter(path, _truth_schema(frame), fmt)
                truth_writers[name].write(frame)
    finally:
        for writer in (*writers.values(), *truth_writers.values()):
            writer.close()
    manifest = {
        "generator": "leadscore synthetic CRM",
        "contract_version": CONTRACT_VERSION,
        "config": asdict(cfg),
        "format": fmt,
        "rows": {name: w.rows for name, w in writers.items()},
        "truth_rows": {name: w.rows for name, w in truth_writers.items()},
        "end": (pd.Timestamp(cfg.start, tz="UTC") + pd.DateOffset(months=cfg.months)).isoformat(),
    }
    (out / TRUTH_DIR / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
