"""The lead store's schema, migrated with Alembic: `leadscore db upgrade`, and the check
`leadscore serve` runs before it starts.

The migration scripts live in `migrations/versions/`, written out by hand (a migration
is a frozen record of a change, not a copy of today's tables). The store's revision is
Alembic's `alembic_version` table; a store that is behind the code is refused with the
command that fixes it, because a server writing rows the schema does not have would
fail on the first event instead of at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import SQLAlchemyError

from features.crm.database import safe_url
from serving.store.engine import Store

MIGRATIONS: Final = Path(__file__).with_name("migrations")
#: the store's revision lives here, not in Alembic's default `alembic_version`, which
#: MLflow's tracking store uses when both share one PostgreSQL database
VERSION_TABLE: Final = "leadscore_schema_version"


class SchemaError(RuntimeError):
    """The store cannot be used as it is (behind the code, ahead of it, or unreachable)."""


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # None: an empty database
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def schema_state(store: Store) -> SchemaState:
    """The store's revision and the code's (a SQLite file that is not there is empty;
    asking does not create it)."""
    url = store.engine.url
    file = url.database if url.get_backend_name() == "sqlite" else None
    if file not in (None, "", ":memory:") and not Path(str(file)).exists():
        return SchemaState(None, head_revision())
    try:
        with store.engine.connect() as connection:
            current = MigrationContext.configure(
                connection, opts={"version_table": VERSION_TABLE}
            ).get_current_revision()
    except SQLAlchemyError as exc:
        raise SchemaError(f"cannot open the lead store at {safe_url(store.url)}: {exc}") from None
    return SchemaState(current, head_revision())


def upgrade(store: Store) -> tuple[str | None, str]:
    """Apply every migration the store lacks; returns (revision before, revision after)."""
    before = schema_state(store).current
    config = _config()
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return before, schema_state(store).current or ""


def require_current(store: Store) -> None:
    """Refuse a store whose schema is not the code's, saying what to run."""
    state = schema_state(store)
    if state.up_to_date:
        return
    where = safe_url(store.url)
    if state.current is None:
        raise SchemaError(
            f"the lead store at {where} has no schema yet: run `leadscore db upgrade` "
            "(then `leadscore load --data DIR` to seed it)"
        )
    known = {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}
    if state.current not in known:
        raise SchemaError(
            f"the lead store at {where} is at revision {state.current}, which this version "
            "of leadscore does not know (a newer version migrated it); upgrade leadscore"
        )
    raise SchemaError(
        f"the lead store at {where} is at revision {state.current}, the code needs "
        f"{state.head}: run `leadscore db upgrade`"
    )
