"""Seeding the store from a CRM export (`leadscore load --data DIR`).

The export has passed the loader's validation (the same as `leadscore validate`); its
rows are upserted in one transaction, so a load is all or nothing. The export is the
CRM's truth for accounts and contacts (a changed attribute is updated), a touchpoint is
a fact (stored once, never changed), and a deal's stage only moves forward, as with
events. Loading the same export twice changes nothing: an upsert only writes a row
whose values differ, and `updated_us` says which ones were written.

What the CRM left empty stays empty: seniority and department derived from the job
title during validation are not stored, so a title changed by a later event is read
again (the loader derives them when the store is read as an export).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table, and_, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from features.crm.database import CONTRACT_COLUMNS, TIME_COLUMNS, to_us
from features.crm.load import CRM
from serving.store.engine import Store, now_us
from serving.store.intake import ID, STORE_TABLES, TABLES

#: rows per INSERT round trip
BATCH: Final = 20_000


@dataclass
class TableLoad:
    table: str
    rows: int
    new: int
    updated: int

    @property
    def unchanged(self) -> int:
        return self.rows - self.new - self.updated


@dataclass
class LoadReport:
    tables: list[TableLoad] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        for t in self.tables:
            kept = "kept as stored" if t.table in ("touchpoints", "opportunities") else "unchanged"
            out.append(
                f"  {t.table:<14} {t.rows:>12,} rows: {t.new:,} new, {t.updated:,} updated, "
                f"{t.unchanged:,} {kept}"
            )
        return out


def _records(
    frame: pd.DataFrame, columns: tuple[str, ...], stamp: str, now: int
) -> Iterator[list[dict[str, Any]]]:
    """The frame's rows as dicts of plain Python values (timestamps as epoch µs, a
    missing value as None), a batch at a time."""
    for start in range(0, len(frame), BATCH):
        chunk = frame.iloc[start : start + BATCH]
        values: list[list[Any]] = []
        for column in columns:
            series = chunk[column]
            missing = series.isna().to_numpy()
            if column in TIME_COLUMNS:
                plain = np.zeros(len(series), dtype=np.int64)
                plain[~missing] = to_us(series[~missing])
                items = plain.tolist()
            else:
                items = series.tolist()  # Python ints, floats and strings
            values.append([None if m else v for v, m in zip(items, missing, strict=True)])
        names = (*columns, stamp)
        stamps = [now] * len(chunk)
        yield [dict(zip(names, row, strict=True)) for row in zip(*values, stamps, strict=True)]


def _statement(store: Store, table: Table, name: str) -> Any:
    dialect = postgresql if store.dialect == "postgresql" else sqlite
    statement = dialect.insert(table)
    if name == "touchpoints":
        return statement.on_conflict_do_nothing(index_elements=[ID[name]])
    columns = [c for c in CONTRACT_COLUMNS[name] if c != ID[name]]
    differs = or_(*(table.c[c].is_distinct_from(statement.excluded[c]) for c in columns))
    where = differs
    if name == "opportunities":  # a stage moves forward only
        forward = or_(table.c.stage == "open", table.c.stage == statement.excluded.stage)
        where = and_(forward, differs)
    updates = {c: statement.excluded[c] for c in (*columns, "updated_us")}
    return statement.on_conflict_do_update(index_elements=[ID[name]], set_=updates, where=where)


def load_export(store: Store, crm: CRM, derived: dict[str, np.ndarray]) -> LoadReport:
    """Upsert a validated export (`derived`: the contacts whose seniority / department
    the validation filled in from the title, left empty here)."""
    now = now_us()
    report = LoadReport()
    contacts = crm.contacts.copy()
    for column, mask in derived.items():
        if len(mask) == len(contacts):
            contacts.loc[mask, column] = None
    frames = {
        "accounts": crm.accounts,
        "contacts": contacts,
        "opportunities": crm.opportunities,
        "touchpoints": crm.touchpoints,
    }
    with store.write() as connection:
        for name in TABLES:
            table = STORE_TABLES[name]
            stamp = "received_us" if name == "touchpoints" else "updated_us"
            before = _count(connection, table)
            statement = _statement(store, table, name)
            for rows in _records(frames[name], CONTRACT_COLUMNS[name], stamp, now):
                connection.execute(statement, rows)
            new = _count(connection, table) - before
            written = connection.execute(
                select(func.count()).select_from(table).where(table.c[stamp] == now)
            ).scalar_one()
            report.tables.append(TableLoad(name, len(frames[name]), new, written - new))
    return report


def _count(connection: Connection, table: Table) -> int:
    return int(connection.execute(select(func.count()).select_from(table)).scalar_one())
