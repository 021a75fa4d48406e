"""A CRM export split by account, processed partition by partition on Dask.

Every feature, label and eligibility flag of a contact depends only on its own account's
contacts, touchpoints and deals (and a contact without an account on itself alone). So
an export split by a hash of `account_id` can go through the single-node code (the
loader's checks, the event store, the kernel, the points engine) one partition at a
time, with no exchange between partitions, and give the same rows:

- accounts and opportunities go to `hash(account_id) % N`;
- a contact goes with its account, or, without one, to `hash("contact:" + contact_id)`;
- a touchpoint goes with its contact (one join on `contact_id`).

What must be the same everywhere is computed over the whole export first: the snapshot
dates (from the first touchpoint) and the moment the export was taken (its latest
timestamp), which decides which outcome windows are closed.

Dask is imported only here (and only by commands given `--engine dask`): without
`--scheduler`, a `LocalCluster` on this machine (one worker per core, one thread each:
the kernel and LightGBM parallelise inside a worker already).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from features.crm.contract import TABLES
from features.crm.load import (
    CONTRACT_CSV,
    CRM,
    TIMESTAMP_DTYPE,
    CsvFormat,
    crm_from_frames,
    find_table_file,
    parse_timestamps,
)
from features.crm.validation import InvalidCRMError
from features.files import folder_written_whole
from features.pipeline.snapshots import (
    SnapshotConfig,
    SnapshotReport,
    build_snapshots,
    dates_between,
)
from features.pipeline.store import EventStore

logger = logging.getLogger(__name__)

PART: Final = "_partition"
DEAL_ACCOUNT: Final = "_deal_account"
TABLE_NAMES: Final = tuple(spec.name for spec in TABLES)


class PartitionError(ValueError):
    """An export that cannot be partitioned or a partition the loader refused."""


def partition_of(keys: pd.Series, n: int) -> np.ndarray:
    """A stable partition per key (the same in every process and on every machine)."""
    hashed = pd.util.hash_pandas_object(keys.astype(str), index=False).to_numpy()
    return (hashed % np.uint64(n)).astype(np.int64)


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A client of the cluster at ``scheduler``, or of a LocalCluster on this machine."""
    from distributed import Client, LocalCluster

    # (a warning per shuffle started and ended, from the scheduler: not the user's business)
    logging.getLogger("distributed.shuffle").setLevel(logging.ERROR)
    if scheduler:
        with Client(scheduler) as client:  # type: ignore[no-untyped-call]
            yield client
        return
    n = workers or max(1, os.cpu_count() or 1)
    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        yield client


def read_export(
    folder: str | Path,
    csv_format: CsvFormat = CONTRACT_CSV,
    columns: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The tables of an export folder as Dask dataframes, as the loader reads them (CSV
    cells as text, Parquet as typed), in blocks, nothing read yet. ``columns``: only these
    tables, and of each only the columns named that it has."""
    import dask.dataframe as dd

    folder = Path(folder)
    out: dict[str, Any] = {}
    for name in TABLE_NAMES if columns is None else list(columns):
        wanted = None if columns is None else set(columns[name])
        files = find_table_file(folder, name)
        if len(files) != 1:
            raise PartitionError(
                f"{folder}: expected exactly one of {name}.csv or {name}.parquet "
                f"(found {len(files)}); `leadscore validate {folder}` says more"
            )
        path = files[0]
        if path.suffix == ".parquet":
            present = None
            if wanted is not None:
                import pyarrow.parquet as pq

                present = [c for c in pq.read_schema(path).names if c in wanted]
            out[name] = dd.read_parquet(path, columns=present)
        else:
            out[name] = dd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                sep=csv_format.sep,
                encoding="utf-8-sig"
                if csv_format.encoding.lower().replace("_", "-") in ("utf-8", "utf8")
                else csv_format.encoding,
                blocksize="64MB",
                **({} if wanted is None else {"usecols": _among(wanted)}),
            )
            if wanted is not None:
                out[name] = out[name].rename(columns=lambda c: c.strip())
    return out


def _among(names: set[str]) -> Callable[[str], bool]:
    """A CSV header name's test for `usecols` (headers are read stripped, as the loader does)."""
    return lambda column: column.strip() in names


#: the timestamps whose range decides the snapshot dates and the export's end (`data_end`)
TIMESTAMPS: Final = {
    "touchpoints": ("occurred_at",),
    "contacts": ("created_at",),
    "opportunities": ("created_at", "closed_at"),
}


def raw_bounds(
    client: Any, data: str | Path, csv_format: CsvFormat = CONTRACT_CSV
) -> tuple[pd.Timestamp | None, pd.Timestamp]:
    """The whole export's first touchpoint and end (its latest timestamp), read from the
    timestamp columns alone with the loader's own parsing, before any partition is
    loaded: each partition can then be loaded, built and released in one task, so a
    worker holds one partition's CRM at a time, not all of its partitions at once."""
    tables = read_export(data, csv_format, TIMESTAMPS)
    parsed = {
        (table, name): tables[table][name].map_partitions(
            parse_timestamps, meta=(name, TIMESTAMP_DTYPE)
        )
        for table, names in TIMESTAMPS.items()
        for name in names
        if name in tables[table].columns
    }
    if ("touchpoints", "occurred_at") not in parsed:
        raise PartitionError("touchpoints: no occurred_at column; expected when each happened")
    first, *ends = client.compute(
        [parsed["touchpoints", "occurred_at"].min(), *(p.max() for p in parsed.values())],
        sync=True,
    )
    known = [pd.Timestamp(e) for e in ends if pd.notna(e)]
    if not known:
        raise PartitionError("the export holds no timestamps at all (no contacts or touchpoints)")
    return (None if pd.isna(first) else pd.Timestamp(first)), max(known)


def _assign(frame: pd.DataFrame, column: str, n: int, prefix: str = "") -> pd.DataFrame:
    keys = frame[column].astype(str)
    return frame.assign(**{PART: partition_of(prefix + keys if prefix else keys, n)})


def _blank(values: pd.Series) -> pd.Series:
    return values.isna() | (values.astype(str).str.strip() == "")


def _contact_partition(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """With its account; without one, with the account of a deal that names it (the
    deal's checks need it there), else alone."""
    account = frame["account_id"].astype(object)
    deal_account = frame[DEAL_ACCOUNT].astype(object)
    key = account.where(~_blank(account), deal_account)
    alone = partition_of("contact:" + frame["contact_id"].astype(str), n)
    part = np.where(_blank(key).to_numpy(), alone, partition_of(key.astype(str), n))
    return frame.drop(columns=[DEAL_ACCOUNT]).assign(**{PART: part})


def _touch_partition(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """Touchpoints without a known contact go to their contact id's own partition (where
    the loader reports them as referring to an unknown contact)."""
    found = frame[PART]
    alone = partition_of("contact:" + frame["contact_id"].astype(str), n)
    part = np.where(found.isna().to_numpy(), alone, found.fillna(0).to_numpy())
    return frame.assign(**{PART: part.astype(np.int64)})


def by_account(tables: Mapping[str, Any], n: int) -> dict[str, list[Any]]:
    """Each table as n delayed pandas frames: partition i of every table holds the rows
    of the accounts (and lone contacts) hashed to i."""
    divisions = (*range(n), n - 1) if n > 1 else (0, 0)
    deals = tables["opportunities"][["contact_id", "account_id"]].astype(str)
    deals = deals[~deals["contact_id"].isin(["", "None", "nan"])]
    named = deals.groupby("contact_id")["account_id"].min().rename(DEAL_ACCOUNT).reset_index()
    contacts = (
        tables["contacts"]
        .astype({"contact_id": str})
        .merge(named, on="contact_id", how="left")
        .map_partitions(_contact_partition, n)
    )
    lookup = contacts[["contact_id", PART]].astype({"contact_id": str})
    touchpoints = (
        tables["touchpoints"].astype({"contact_id": str}).merge(lookup, on="contact_id", how="left")
    )
    parts = {
        "accounts": tables["accounts"].map_partitions(_assign, "account_id", n),
        "contacts": contacts,
        "touchpoints": touchpoints.map_partitions(_touch_partition, n),
        "opportunities": tables["opportunities"].map_partitions(_assign, "account_id", n),
    }
    out = {}
    for name, frame in parts.items():
        spread = frame.set_index(PART, divisions=divisions, sorted=False)
        out[name] = spread.to_delayed()
        if len(out[name]) != n:
            raise PartitionError(f"{name}: {len(out[name])} partitions, expected {n}")
    return out


@dataclass
class Partition:
    """One partition's CRM (None: no contacts in it)."""

    index: int
    crm: CRM | None


def _check_without_contacts(index: int, tables: Mapping[str, pd.DataFrame]) -> None:
    """What the loader's foreign-key checks would refuse in a partition without contacts:
    touchpoints (their contact would be here) and deals of accounts that do not exist."""
    touches = tables["touchpoints"]
    if len(touches):
        raise PartitionError(
            f"touchpoints: {len(touches):,} rows refer to contacts that are not in contacts "
            f"(e.g. contact_id {touches['contact_id'].iloc[0]!r}); expected every "
            "touchpoint's contact_id in contacts"
        )
    deals = tables["opportunities"]
    known = set(tables["accounts"]["account_id"].astype(str))
    unknown = deals[~deals["account_id"].astype(str).isin(known)]
    if len(unknown):
        raise PartitionError(
            f"opportunities: {len(unknown):,} rows refer to accounts that are not in accounts "
            f"(e.g. account_id {unknown['account_id'].iloc[0]!r}); expected every deal's "
            "account_id in accounts"
        )


def load_partition(index: int, *frames: pd.DataFrame) -> Partition:
    """Partition ``index``'s tables through the loader (parsing, every contract check)."""
    tables = {
        name: frame.reset_index(drop=True) for name, frame in zip(TABLE_NAMES, frames, strict=True)
    }
    if len(tables["contacts"]) == 0:  # accounts without people, deals of such accounts
        _check_without_contacts(index, tables)
        return Partition(index, None)
    try:
        crm = crm_from_frames(tables, source=f"partition {index}")
    except InvalidCRMError as exc:
        raise PartitionError(
            f"partition {index} of the export was refused (row numbers count within the "
            f"partition; `leadscore validate` on the folder names the rows):\n{exc}"
        ) from None
    return Partition(index, crm)


@dataclass
class Export:
    """An export split by account on a cluster: each partition's load (a Dask delayed
    `Partition`: nothing is read until a task needs it), and what every partition needs
    of the whole export: its first touchpoint and its end."""

    loads: list[Any]
    first_touch: pd.Timestamp | None
    end: pd.Timestamp

    def dates(self, cfg: SnapshotConfig) -> list[pd.Timestamp]:
        return dates_between(self.first_touch, self.end, cfg)

    def each(self, task: Callable[..., Any], *args: Any, **kwargs: Any) -> list[Any]:
        """``task(partition, *args, **kwargs)`` per partition as delayed values: a
        partition is loaded, used and released in one go (compute them with the client)."""
        from dask.delayed import delayed

        return [delayed(task)(load, *args, **kwargs) for load in self.loads]


def split_export(
    client: Any, data: str | Path, n: int, csv_format: CsvFormat = CONTRACT_CSV
) -> Export:
    """The export at ``data`` split into ``n`` partitions by account (see the module doc)."""
    from dask.delayed import delayed

    if n < 1:
        raise PartitionError("--partitions must be at least 1")
    first, end = raw_bounds(client, data, csv_format)
    tables = by_account(read_export(data, csv_format), n)
    loads = [
        delayed(load_partition)(i, *(tables[name][i] for name in TABLE_NAMES)) for i in range(n)
    ]
    return Export(loads, first, end)


def _build_part(
    part: Partition,
    cfg: SnapshotConfig,
    dates: list[pd.Timestamp],
    end: pd.Timestamp,
    folder: str,
) -> dict[str, Any]:
    """One partition's training rows, written as one Parquet file of the dataset."""
    if part.crm is None:
        return {"rows": 0, "positives": 0, "excluded": {}}
    frame, report = build_snapshots(
        part.crm, cfg, dates=dates, store=EventStore.from_crm(part.crm), end=end
    )
    frame.to_parquet(Path(folder) / f"part-{part.index:05d}.parquet", index=False)
    return {
        "rows": report.rows,
        "positives": report.positives,
        "excluded": report.excluded,
    }


def build_dataset_dask(
    data: str | Path,
    out: str | Path,
    cfg: SnapshotConfig | None = None,
    scheduler: str | None = None,
    n_partitions: int | None = None,
    csv_format: CsvFormat = CONTRACT_CSV,
    workers: int | None = None,
    say: Callable[[str], None] = logger.info,
) -> SnapshotReport:
    """`build_dataset` on Dask: the same rows, written as a Parquet dataset (a folder of
    `part-NNNNN.parquet` files, one per partition; written whole or not at all)."""
    cfg = cfg or SnapshotConfig()
    with folder_written_whole(out) as partial, dask_client(scheduler, workers) as client:
        n = n_partitions or 2 * max(1, len(client.scheduler_info()["workers"]))
        export = split_export(client, data, n, csv_format)
        end, dates = export.end, export.dates(cfg)
        say(f"{n} partitions by account on {len(client.scheduler_info()['workers'])} workers")
        built = client.compute(
            export.each(_build_part, cfg=cfg, dates=dates, end=end, folder=str(partial)),
            sync=True,
        )
    report = SnapshotReport(data_end=end)
    report.dates = [d for d in dates if d + pd.Timedelta(days=cfg.horizon_days) <= end]
    report.immature_dates = [d for d in dates if d not in report.dates]
    for part in built:
        report.rows += part["rows"]
        report.positives += part["positives"]
        for reason, count in part["excluded"].items():
            report.excluded[reason] += count
    return report
