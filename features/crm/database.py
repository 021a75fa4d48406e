"""The live lead store's tables, and reading the store back as a CRM export.

The store (written by `serving.store`) holds the data contract's four tables plus the
score ledger, in SQLite (embedded default) or PostgreSQL. The contract's tables are
declared here (SQLAlchemy Core), because reading them is a door of the loader:
`read_database(url)` returns the four tables as the frames an export folder would give,
so `train`, `score` and `build-dataset` work on the live store through the same parsing
and validation. The ledger's tables join the same `metadata` in `serving.store.tables`;
Alembic's migrations (`serving/store/migrations/`) create both.

Timestamps are stored as whole microseconds since the epoch (UTC) in 64-bit integers:
the project's internal resolution, identical in SQLite and PostgreSQL, and cheap to
compare and sort.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    MetaData,
    String,
    Table,
    create_engine,
    make_url,
    select,
)

metadata = MetaData()

#: URL schemes that name a lead store rather than an export folder
DATABASE_SCHEMES: Final = ("sqlite://", "postgresql://", "postgresql+psycopg://", "postgres://")

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", String(200), primary_key=True),
    Column("industry", String(100)),
    Column("employees", BigInteger),
    Column("annual_revenue", Float),
    Column("country", String(100)),
    Column("updated_us", BigInteger, nullable=False),
)

contacts = Table(
    "contacts",
    metadata,
    Column("contact_id", String(200), primary_key=True),
    Column("account_id", String(200), index=True),
    Column("created_at", BigInteger, nullable=False),
    Column("job_title", String(300)),
    Column("seniority", String(40)),
    Column("department", String(40)),
    Column("lead_source", String(100)),
    Column("email", String(320)),
    Column("updated_us", BigInteger, nullable=False),
)

touchpoints = Table(
    "touchpoints",
    metadata,
    Column("touchpoint_id", String(200), primary_key=True),
    Column("contact_id", String(200), nullable=False),
    Column("occurred_at", BigInteger, nullable=False),
    Column("type", String(100), nullable=False),
    Column("channel", String(100)),
    Column("topic", String(100)),
    Column("received_us", BigInteger, nullable=False),
    Index("ix_touchpoints_contact_time", "contact_id", "occurred_at"),
    Index("ix_touchpoints_time", "occurred_at"),
)

opportunities = Table(
    "opportunities",
    metadata,
    Column("opportunity_id", String(200), primary_key=True),
    Column("account_id", String(200), nullable=False, index=True),
    Column("contact_id", String(200), index=True),
    Column("created_at", BigInteger, nullable=False),
    Column("closed_at", BigInteger),
    Column("stage", String(20), nullable=False),
    Column("amount", Float),
    Column("updated_us", BigInteger, nullable=False),
)

CONTRACT_TABLES: Final = {
    "accounts": accounts,
    "contacts": contacts,
    "touchpoints": touchpoints,
    "opportunities": opportunities,
}
#: bookkeeping columns of the store (when a row was last written), not the contract's
BOOKKEEPING: Final = ("updated_us", "received_us")
#: the columns of each table that are the contract's
CONTRACT_COLUMNS: Final = {
    name: tuple(c.name for c in table.columns if c.name not in BOOKKEEPING)
    for name, table in CONTRACT_TABLES.items()
}
TIME_COLUMNS: Final = ("created_at", "occurred_at", "closed_at")


def is_database_url(text: object) -> bool:
    """True for a lead store's URL (`sqlite:///...`, `postgresql://...`), not a folder."""
    return isinstance(text, str) and text.startswith(DATABASE_SCHEMES)


def engine_url(url: str) -> str:
    """SQLAlchemy's name for a URL (plain `postgresql://` means the psycopg 3 driver)."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url.removeprefix(plain)
    return url


def absolute_url(url: str) -> str:
    """The URL with a relative SQLite path made absolute (a model remembers where its
    data came from, and `promote` may run from another folder)."""
    parsed = make_url(engine_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return str(parsed.set(database=str(Path(parsed.database).resolve())))
    return url


def safe_url(url: str) -> str:
    """The URL as it may be printed or logged: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can read: say nothing of it
        return "(a database URL)"


def to_us(values: pd.Series) -> np.ndarray:
    """UTC timestamps as epoch microseconds (int64; missing values are not allowed)."""
    return np.asarray((values - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1))


def from_us(values: pd.Series | np.ndarray | list[Any]) -> pd.Series:
    """Epoch microseconds (possibly missing) as UTC timestamps."""
    numbers = pd.to_numeric(pd.Series(values), errors="coerce")
    return pd.to_datetime(numbers, unit="us", utc=True).astype("datetime64[us, UTC]")


#: rows fetched per round trip when reading a whole table
_CHUNK: Final = 250_000


def read_database(url: str) -> dict[str, pd.DataFrame]:
    """The store's four contract tables as raw frames, for `parse_tables`.

    Raises `DatabaseReadError` (a ValueError) naming the store, never its password, when
    it cannot be opened or holds no lead store yet.
    """
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(engine_url(url))
    try:
        frames = {}
        with engine.connect() as connection:
            for name, table in CONTRACT_TABLES.items():
                names = list(CONTRACT_COLUMNS[name])
                result = connection.execution_options(stream_results=True).execute(
                    select(*(table.c[c] for c in names)).order_by(table.primary_key.columns[0])
                )
                # rows as plain tuples: pandas reads SQLAlchemy's Row objects three times
                # slower, and millions of rows go through here
                parts = [
                    pd.DataFrame.from_records([tuple(r) for r in rows], columns=names)
                    for rows in result.partitions(_CHUNK)
                ]
                frame = (
                    pd.concat(parts, ignore_index=True)
                    if parts
                    else pd.DataFrame({c: pd.Series(dtype=object) for c in names})
                )
                for column in TIME_COLUMNS:
                    if column in frame.columns:
                        frame[column] = from_us(frame[column].to_numpy())
                if "employees" in frame.columns:
                    frame["employees"] = pd.to_numeric(frame["employees"]).astype("Int64")
                for column in ("annual_revenue", "amount"):
                    if column in frame.columns:
                        frame[column] = pd.to_numeric(frame[column]).astype("float64")
                frames[name] = frame
        return frames
    except SQLAlchemyError as exc:
        raise DatabaseReadError(
            f"cannot read the lead store at {safe_url(url)}: {_short(exc)} "
            "(run `leadscore db upgrade` to create it, then `leadscore load --data DIR`)"
        ) from None
    finally:
        engine.dispose()


class DatabaseReadError(ValueError):
    """The lead store cannot be read as a CRM export (not there, no schema, no access)."""


def _short(exc: Exception) -> str:
    """The driver's first line (SQLAlchemy appends SQL and a link; neither helps here)."""
    original = getattr(exc, "orig", None) or exc
    return str(original).strip().splitlines()[0] if str(original).strip() else type(exc).__name__
