"""Fixtures of the live store's tests: fresh stores on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

#: the machine's PostgreSQL (trust auth); a fresh database is made per test and dropped
POSTGRES_ADMIN = os.environ.get(
    "LEADSCORE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


def _postgres_admin() -> str | None:
    try:
        import psycopg

        psycopg.connect(POSTGRES_ADMIN, connect_timeout=2).close()
    except Exception:  # no server (or no driver): the PostgreSQL tests skip, loudly
        return None
    return POSTGRES_ADMIN


def fresh_store(url: str) -> str:
    """`url` with the lead store's schema (migrated as `leadscore db upgrade` does)."""
    from serving.store.engine import Store
    from serving.store.schema import upgrade

    store = Store(url)
    try:
        upgrade(store)
    finally:
        store.dispose()
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return fresh_store(f"sqlite:///{tmp_path / 'leadscore.db'}")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, migrated PostgreSQL database for one test (dropped afterwards)."""
    admin = _postgres_admin()
    if admin is None:
        pytest.skip(
            "PostgreSQL is not reachable at 127.0.0.1:5432 (set LEADSCORE_TEST_POSTGRES): "
            "the production store was NOT tested"
        )
    import psycopg

    name = f"leadscore_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield fresh_store(f"{base}/{name}")
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs on SQLite and on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def tracking(champion: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The session's champion, reachable through MLFLOW_TRACKING_URI."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion["tracking_uri"])
    return champion


@pytest.fixture
def make_app(tracking: dict[str, str], sqlite_url: str) -> Iterator[Callable[..., Any]]:
    """`make(**settings)`: the app on this test's fresh store, as an entered TestClient
    (lifespan run: the model loaded, the dispatcher started), closed at the end. Retries
    and polls are fast; nothing runs on a schedule."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.config import Settings

    made: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "alias_poll_seconds": 0,
            "database_url": sqlite_url,
            "rescore_every_seconds": 0,
            "webhook_retry_base_seconds": 0.05,
            "webhook_retry_cap_seconds": 0.2,
            "dispatch_poll_seconds": 0.05,
        }
        client = TestClient(create_app(Settings(**(values | overrides))))
        client.__enter__()
        made.append(client)
        return client

    yield make
    for client in made:
        client.__exit__(None, None, None)


@pytest.fixture(scope="session")
def seeded_store(champion: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite lead store with the champion's CRM loaded and scored, as a user makes one
    (`leadscore db upgrade`, `leadscore load`). Tests copy it before they write."""
    import os
    import subprocess
    import sys

    path = tmp_path_factory.mktemp("seeded") / "seeded.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": champion["tracking_uri"]}
    leadscore = str(Path(sys.executable).parent / "leadscore")
    for command in (["db", "upgrade"], ["load", "--data", champion["data"]]):
        done = subprocess.run(
            [leadscore, *command, "--database", f"sqlite:///{path}"],
            check=False,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    return path
