"""One engine per lead store, set up so that what is acknowledged is durable and serial.

SQLite (the embedded default): WAL, so readers never wait for the writer;
`synchronous=FULL`, so a commit is on disk before the answer leaves (a 2xx survives a
power cut, not only a killed process: 0.4 ms a commit here); `BEGIN IMMEDIATE` for
writes, so two workers never interleave a read-then-write (the second waits, up to the
busy timeout, instead of failing at commit). pysqlite's own transaction handling is
switched off: it begins lazily, at the first write, which would let a rescoring read a
state another writer is about to change (SQLAlchemy's documented recipe).

PostgreSQL (production): several workers and servers write at once; what keeps an
account's ledger in order is a transaction-scoped advisory lock per account, taken in
sorted order (`lock_accounts`), held until commit.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError

from features.crm.database import engine_url, safe_url

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: ms a SQLite writer waits for another one (several workers share one file)
BUSY_TIMEOUT_MS: Final = 30_000
#: PostgreSQL error codes worth a retry: deadlock detected, serialization failure
_RETRY_CODES: Final = ("40P01", "40001")


class Store:
    """The lead store at `url`: `write()` and `read()` hand out transactions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = _engine(url)
        self.dialect = self.engine.dialect.name
        self._writer = self.engine.execution_options(leadscore_write=True)

    def __repr__(self) -> str:
        return f"Store({safe_url(self.url)})"

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed on leaving (SQLite: the database's write lock
        from the start; PostgreSQL: take `lock_accounts` before reading what you change)."""
        with self._writer.begin() as connection:
            yield connection

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction: one consistent snapshot of the store."""
        with self.engine.connect() as connection, connection.begin():
            yield connection

    def lock_accounts(self, connection: Connection, keys: Iterable[str]) -> None:
        """Serialize writers per account (PostgreSQL), in sorted order so two writers
        never wait for each other in a circle. SQLite writers are serial already."""
        if self.dialect != "postgresql":
            return
        for key in sorted(set(keys)):
            connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 7))"), {"key": key}
            )

    def retrying(self, work: Callable[[], T], attempts: int = 5) -> T:
        """`work()` again when PostgreSQL chose it as a deadlock's or a serialization
        conflict's victim (nothing of it was committed); other errors pass."""
        for attempt in range(attempts):
            try:
                return work()
            except OperationalError as exc:
                code = getattr(getattr(exc, "orig", None), "sqlstate", None)
                if code not in _RETRY_CODES or attempt == attempts - 1:
                    raise
                logger.info("write conflict (%s), retrying", code)
                time.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()


def _engine(url: str) -> Engine:
    name = engine_url(url)
    if name.startswith("sqlite"):
        engine = create_engine(name, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(name, pool_pre_ping=True, pool_size=8, max_overflow=8)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we say BEGIN ourselves (see the module)
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        "synchronous=FULL",
        f"busy_timeout={BUSY_TIMEOUT_MS}",
        "foreign_keys=OFF",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    write = connection.get_execution_options().get("leadscore_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def now_us() -> int:
    """The server's clock, in epoch microseconds (the store's time unit)."""
    return time.time_ns() // 1_000
