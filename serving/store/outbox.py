"""The transactional outbox: what a score change must tell the CRMs, written with it.

`record` (the ledger) calls `score_messages` in its own transaction, so a message exists
exactly when the ledger row that causes it is committed: no score change is lost if the
server dies after the commit, and none is announced that was rolled back. Delivery is
someone else's job (`serving.webhooks.dispatch`), at least once, in this table's order
per lead.

Which changes make which events, per subscription:
- `lead.mql_reached` / `lead.mql_lost`: the MQL flag flipped (a first score that is an
  MQL counts as reached);
- `lead.grade_changed`: the points grade changed (not on a first score);
- `lead.score_changed`: the probability moved by at least the subscription's
  `min_change` since the last score (a first score always counts: the CRM has none yet);
- `model.champion_changed`: a new champion is served and the store was rescored by it.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, Select, insert, select

from serving.store.tables import outbox, webhooks

LEAD_EVENTS: Final = (
    "lead.mql_reached",
    "lead.mql_lost",
    "lead.grade_changed",
    "lead.score_changed",
)
MODEL_EVENTS: Final = ("model.champion_changed",)
EVENT_TYPES: Final = (*LEAD_EVENTS, *MODEL_EVENTS)
#: the lead key of model events (their order is kept among themselves)
MODEL_KEY: Final = "model"


@dataclass(frozen=True)
class Subscription:
    """What one target wants (a row of `webhooks`, as the writer needs it)."""

    webhook_id: str
    events: frozenset[str]
    min_change: float
    contact_prefix: str | None
    #: its messages carry reasons (TreeSHAP, ~1 ms a contact, paid in the event's
    #: transaction): a Standard Webhooks body always; a connector when it writes them
    reasons: bool = True

    def wants(self, contact_id: str) -> bool:
        return self.contact_prefix is None or contact_id.startswith(self.contact_prefix)


@dataclass(frozen=True)
class Change:
    """A contact's score before (None: its first) and now, as `record` sees them."""

    contact_id: str
    before: dict[str, Any] | None  # probability, points, grade, mql, model_version
    after: dict[str, Any]  # the same keys


@functools.cache
def _active_query() -> Select[Any]:
    return select(
        webhooks.c.webhook_id,
        webhooks.c.events,
        webhooks.c.min_change,
        webhooks.c.contact_prefix,
        webhooks.c.kind,
        webhooks.c.config,
    ).where(webhooks.c.active.is_(True))


def _wants_reasons(kind: str, config: str | None) -> bool:
    if kind in ("standard", "dynamics365"):  # the body promises them; Dynamics' widget shows them
        return True
    fields = json.loads(config or "{}").get("fields", {})
    return "reasons" in fields


def subscriptions(connection: Connection) -> list[Subscription]:
    """The active subscriptions (read in the writer's transaction: one added a moment ago
    gets the next change)."""
    return [
        Subscription(
            row[0],
            frozenset(json.loads(row[1])),
            float(row[2]),
            row[3],
            _wants_reasons(row[4], row[5]),
        )
        for row in connection.execute(_active_query())
    ]


def lead_events(change: Change, subscription: Subscription) -> list[str]:
    """The events `change` makes for `subscription`, in a fixed order."""
    before, after = change.before, change.after
    wanted = subscription.events
    out = []
    was_mql = bool(before and before["mql"])
    if after["mql"] and not was_mql and "lead.mql_reached" in wanted:
        out.append("lead.mql_reached")
    if was_mql and not after["mql"] and "lead.mql_lost" in wanted:
        out.append("lead.mql_lost")
    if before is not None and before["grade"] != after["grade"] and "lead.grade_changed" in wanted:
        out.append("lead.grade_changed")
    if "lead.score_changed" in wanted:
        moved = (
            before is None
            or abs(after["probability"] - before["probability"]) >= subscription.min_change
        )
        if moved:
            out.append("lead.score_changed")
    return out


def plan(
    changes: Sequence[Change], subs: Sequence[Subscription]
) -> list[tuple[int, Subscription, str]]:
    """(index of the change, its target, event type) of every message to write."""
    out = []
    for i, change in enumerate(changes):
        for sub in subs:
            if sub.wants(change.contact_id):
                out += [(i, sub, e) for e in lead_events(change, sub)]
    return out


def new_msg_id() -> str:
    """A webhook id as Standard Webhooks shows them (msg_ + 32 hex digits)."""
    return "msg_" + uuid.uuid4().hex


def timestamp(value_us: int) -> str:
    moment = dt.datetime.fromtimestamp(value_us / 1_000_000, dt.UTC)
    return moment.isoformat().replace("+00:00", "Z")


def message_row(
    webhook_id: str, event_type: str, lead_key: str, data: dict[str, Any], now_us: int
) -> dict[str, Any]:
    body = {"type": event_type, "timestamp": timestamp(now_us), "data": data}
    return {
        "msg_id": new_msg_id(),
        "webhook_id": webhook_id,
        "event_type": event_type,
        "lead_key": lead_key,
        "created_us": now_us,
        "body": json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        "status": "pending",
        "attempts": 0,
        "next_attempt_us": now_us,
    }


def write(connection: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        connection.execute(insert(outbox), rows)


def champion_changed(
    connection: Connection,
    name: str,
    version: str,
    previous: str | None,
    alias: str | None,
    now_us: int,
) -> int:
    """Messages for `model.champion_changed`; returns how many were written."""
    rows = [
        message_row(
            sub.webhook_id,
            "model.champion_changed",
            MODEL_KEY,
            {"name": name, "version": version, "previous_version": previous, "alias": alias},
            now_us,
        )
        for sub in subscriptions(connection)
        if "model.champion_changed" in sub.events
    ]
    write(connection, rows)
    return len(rows)
