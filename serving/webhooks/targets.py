"""Where messages go: Standard Webhooks subscriptions and CRM connectors, one table.

A subscription is registered through the API (`POST /v1/webhooks`): a URL, the events
it wants and a secret. A connector is declared in the connectors file
(LEADSCORE_CONNECTORS, see `serving/connectors/`) and synced into the same table at
start-up under the id `conn_{name}`, so both share the outbox, the dispatcher, the
delivery log and redelivery. Credentials never enter the table: a connector's config
names the environment variables that hold them, read when a request is made.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from serving.store.engine import Store, now_us
from serving.store.outbox import EVENT_TYPES
from serving.store.tables import outbox, webhooks


@dataclass(frozen=True)
class Target:
    webhook_id: str
    kind: str
    url: str | None
    events: tuple[str, ...]
    min_change: float
    contact_prefix: str | None
    secret: str | None
    config: dict[str, Any]
    description: str | None
    created_us: int
    active: bool


def _target(row: Any) -> Target:
    values = dict(row._mapping)
    values["events"] = tuple(json.loads(values["events"]))
    values["config"] = json.loads(values["config"] or "{}")
    return Target(**values)


def new_webhook_id() -> str:
    return "wh_" + secrets.token_hex(12)


def check_events(events: list[str]) -> str | None:
    """What is wrong with a list of event types (None: nothing)."""
    if not events:
        return "at least one event type"
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        return f"unknown event type {unknown[0]!r}; expected some of {', '.join(EVENT_TYPES)}"
    return None


def create(
    store: Store,
    url: str,
    events: list[str],
    min_change: float,
    secret: str,
    description: str | None,
) -> Target:
    row = {
        "webhook_id": new_webhook_id(),
        "kind": "standard",
        "url": url,
        "events": json.dumps(sorted(set(events))),
        "min_change": min_change,
        "contact_prefix": None,
        "secret": secret,
        "config": None,
        "description": description,
        "created_us": now_us(),
        "active": True,
    }
    with store.write() as connection:
        connection.execute(webhooks.insert().values(row))
        found = get(connection, str(row["webhook_id"]))
    assert found is not None
    return found


def get(connection: Connection, webhook_id: str) -> Target | None:
    row = connection.execute(select(webhooks).where(webhooks.c.webhook_id == webhook_id)).first()
    return None if row is None else _target(row)


def listed(store: Store) -> list[Target]:
    with store.read() as connection:
        rows = connection.execute(
            select(webhooks).where(webhooks.c.active.is_(True)).order_by(webhooks.c.created_us)
        ).all()
    return [_target(r) for r in rows]


def active_by_id(connection: Connection, ids: set[str]) -> dict[str, Target]:
    rows = connection.execute(
        select(webhooks).where(webhooks.c.webhook_id.in_(ids), webhooks.c.active.is_(True))
    ).all()
    return {r.webhook_id: _target(r) for r in rows}


def remove(store: Store, webhook_id: str) -> int | None:
    """Deactivate a target and cancel what it had pending; returns how many messages were
    cancelled (None: no such active target). Its delivery log stays."""
    with store.write() as connection:
        done = connection.execute(
            update(webhooks)
            .where(webhooks.c.webhook_id == webhook_id, webhooks.c.active.is_(True))
            .values(active=False)
        )
        if done.rowcount == 0:
            return None
        cancelled = connection.execute(
            update(outbox)
            .where(outbox.c.webhook_id == webhook_id, outbox.c.status == "pending")
            .values(status="cancelled", claimed_until_us=None, claimed_by=None)
        )
    return int(cancelled.rowcount)


def sync_connector(
    connection: Connection,
    name: str,
    kind: str,
    events: list[str],
    min_change: float,
    contact_prefix: str | None,
    config: dict[str, Any],
) -> str:
    """Create or update the row of a connector of the connectors file (id `conn_{name}`)."""
    webhook_id = f"conn_{name}"
    values = {
        "kind": kind,
        "url": None,
        "events": json.dumps(sorted(set(events))),
        "min_change": min_change,
        "contact_prefix": contact_prefix,
        "secret": None,
        "config": json.dumps(config, sort_keys=True),
        "description": f"connector {name} ({kind}) from the connectors file",
        "active": True,
    }
    # (an upsert: every worker syncs at start-up, at the same moment)
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(webhooks).values(
        webhook_id=webhook_id, created_us=now_us(), **values
    )
    connection.execute(statement.on_conflict_do_update(index_elements=["webhook_id"], set_=values))
    return webhook_id


def retire_connectors(connection: Connection, keep: set[str]) -> None:
    """Connectors no longer in the file stop receiving messages."""
    connection.execute(
        update(webhooks)
        .where(
            webhooks.c.webhook_id.like("conn\\_%", escape="\\"),
            webhooks.c.webhook_id.not_in(keep) if keep else webhooks.c.webhook_id.is_not(None),
            webhooks.c.active.is_(True),
        )
        .values(active=False)
    )
