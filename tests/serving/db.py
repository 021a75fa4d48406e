"""Small helpers of the live store's tests: read the store directly, wait for a thing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa


def count(url: str, table: sa.Table, *where: Any) -> int:
    """Rows of `table` in the store at `url` (matching `where`)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            query = sa.select(sa.func.count()).select_from(table)
            return int(connection.execute(query.where(*where) if where else query).scalar_one())
    finally:
        engine.dispose()


def rows(url: str, query: Any) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(query).all())
    finally:
        engine.dispose()


def wait_for(check: Callable[[], bool], seconds: float = 30) -> None:
    """Until `check()` holds (an AssertionError after `seconds`)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:g} s")
        time.sleep(0.05)
