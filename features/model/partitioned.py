"""`leadscore score --engine dask`: a partitioned export scored partition by partition.

Each partition (accounts and their people, see `features/pipeline/partitions.py`) is
scored with the single-node code (`model_rows`): the same probability, points, grade
and MQL flag as `leadscore score` on the whole export, at the whole export's moment.
Which rows get reasons is decided over the whole export (the MQLs, and the best share by
probability: a threshold found from each partition's best rows), then each partition
computes its reasons and writes its part of the result: a folder of `part-NNNNN.csv`
files with the columns of `leadscore score`'s file, written whole or not at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.crm.load import CONTRACT_CSV, CsvFormat
from features.files import folder_written_whole
from features.model.batch import ReasonsFor, add_reasons, in_utc, model_rows
from features.model.names import DEFAULT_REASONS_FOR
from features.model.scorer import LeadScorer
from features.pipeline.partitions import Partition, dask_client, split_export
from features.points.matrix import RulesConfig


@dataclass(frozen=True)
class PartitionedScores:
    rows: int
    mql: int
    reason_rows: int
    reason_seconds: float
    as_of: pd.Timestamp
    partitions: int
    workers: int


def _score(part: Partition, scorer: LeadScorer, config: RulesConfig, as_of: pd.Timestamp) -> Any:
    if part.crm is None:
        return None
    return model_rows(part.crm, scorer, config, as_of)


def _best(scored: Any, k: int) -> np.ndarray:
    if scored is None or k == 0:
        return np.zeros(0)
    probability = scored[0]["probability"].to_numpy()
    return -np.sort(-probability)[:k]


def _write(
    scored: Any,
    index: int,
    folder: str,
    scorer: LeadScorer,
    reasons: int,
    who: ReasonsFor,
    threshold: float,
) -> tuple[int, int, int, float]:
    if scored is None:
        return 0, 0, 0, 0.0
    table, x = scored
    if reasons > 0:
        p = table["probability"].to_numpy()
        chosen = np.zeros(len(table), dtype=bool)
        if who.all:
            chosen[:] = True
        if who.mql:
            chosen |= table["mql"].to_numpy(bool)
        chosen |= p >= threshold
        add_reasons(table, scorer, x, np.flatnonzero(chosen), reasons)
        cost = table.attrs["reasons"]
        spent, rows = cost.seconds, cost.rows
    else:
        spent, rows = 0.0, 0
    table.to_csv(Path(folder) / f"part-{index:05d}.csv", index=False)
    return len(table), int(table["mql"].sum()), rows, spent


def score_dask(
    data: str | Path,
    out: str | Path,
    scorer: LeadScorer,
    config: RulesConfig,
    as_of: str | pd.Timestamp | None = None,
    reasons: int = 3,
    reasons_for: ReasonsFor | None = None,
    scheduler: str | None = None,
    n_partitions: int | None = None,
    workers: int | None = None,
    csv_format: CsvFormat = CONTRACT_CSV,
) -> PartitionedScores:
    """Score every eligible contact of the export at ``as_of`` (default: the export's
    end) into a folder of CSV parts."""
    who = reasons_for or ReasonsFor.parse(DEFAULT_REASONS_FOR)
    with folder_written_whole(out) as partial, dask_client(scheduler, workers) as client:
        n_workers = len(client.scheduler_info()["workers"])
        n = n_partitions or 2 * max(1, n_workers)
        export = split_export(client, data, n, csv_format)
        moment = export.end if as_of is None else in_utc(as_of)
        shared = client.scatter(scorer, broadcast=True)
        # (each partition's scores are kept for the reasons' threshold; its CRM is not)
        scored = client.compute(export.each(_score, scorer=shared, config=config, as_of=moment))
        threshold = math.inf
        if reasons > 0 and not who.all:
            sizes = client.gather(client.map(lambda s: 0 if s is None else len(s[0]), scored))
            total = sum(sizes)
            k = who.best(total)
            if k:
                best = np.concatenate(client.gather(client.map(_best, scored, k=k)))
                threshold = float(-np.sort(-best)[k - 1])
        written = client.gather(
            client.map(
                _write, scored, range(n), folder=str(partial), scorer=shared,
                reasons=reasons, who=who, threshold=threshold,
            )
        )  # fmt: skip
    return PartitionedScores(
        rows=sum(w[0] for w in written),
        mql=sum(w[1] for w in written),
        reason_rows=sum(w[2] for w in written),
        reason_seconds=sum(w[3] for w in written),
        as_of=moment,
        partitions=n,
        workers=n_workers,
    )
