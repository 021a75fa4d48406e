"""Events into the store: each item checked on its own, ids as idempotency keys.

A body of events (`EventsRequest`: any of the four tables) is parsed item by item, so a
mistake rejects that item only, with its table, index, id, field and what was expected.
The good items are applied in the order a CRM's data hangs together (accounts, then
contacts, then deals, then touchpoints), so a contact may name an account sent in the
same body. What an id means:

- a touchpoint id seen before is a *duplicate* when its values are the same, and
  *rejected* when they differ (a touchpoint is a fact that happened; send a new id);
- an account, contact or deal with a known id is an *update* of the fields sent (an
  omitted field keeps its value, null clears it); sent again unchanged it is a duplicate;
- a deal's stage only moves forward: open, then closed_won or closed_lost.

A reference must resolve (a contact's account, a touchpoint's contact, a deal's account
and primary contact): to a stored row or one accepted earlier in the same body. An item
whose reference does not resolve is rejected and leaves nothing behind.

The result says which accounts (or account-less contacts) changed: their contacts are
rescored by `serving.store.live` in the same transaction. On PostgreSQL the accounts are
locked first (`Store.lock_accounts`), so two workers never interleave one account's
events and rescoring.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, Select, Table, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from features.crm.database import CONTRACT_COLUMNS, accounts, contacts, opportunities, touchpoints
from features.crm.records import opportunity_problems, parse_timestamp
from serving.bodies import BodyError, parse_json
from serving.errors import field_error, pydantic_errors
from serving.schemas import Account, ContactEvent, OpportunityEvent, TouchpointEvent
from serving.store.engine import Store, now_us

#: the order items are applied in: what a later table refers to comes first
TABLES: Final = ("accounts", "contacts", "opportunities", "touchpoints")
MODELS: Final[dict[str, type[BaseModel]]] = {
    "accounts": Account,
    "contacts": ContactEvent,
    "opportunities": OpportunityEvent,
    "touchpoints": TouchpointEvent,
}
ID: Final = {
    "accounts": "account_id",
    "contacts": "contact_id",
    "opportunities": "opportunity_id",
    "touchpoints": "touchpoint_id",
}
STORE_TABLES: Final[dict[str, Table]] = {
    "accounts": accounts,
    "contacts": contacts,
    "opportunities": opportunities,
    "touchpoints": touchpoints,
}
TIME_FIELDS: Final = ("created_at", "closed_at", "occurred_at")
#: how far ahead of the server's clock a touchpoint may say it happened (clock skew)
FUTURE_SLACK_US: Final = 24 * 3600 * 1_000_000
#: ids per IN (...) list (SQLite allows 32,766 parameters; PostgreSQL 65,535)
CHUNK: Final = 5_000
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND: Final = dt.timedelta(microseconds=1)


def to_us(moment: dt.datetime) -> int:
    """An aware datetime as epoch microseconds, exactly (no float on the way)."""
    return (moment - _EPOCH) // _MICROSECOND


def from_us(value: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=value)


def account_key(account_id: str) -> str:
    """The lock and rescoring unit of an account: its contacts are scored together."""
    return "a:" + account_id


def contact_key(contact_id: str) -> str:
    """A contact without an account is a unit of its own (its personal account)."""
    return "c:" + contact_id


# --- parsing -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejection:
    table: str
    index: int
    id: str | None
    field: str | None
    msg: str


@dataclass(frozen=True)
class Item:
    """A valid item: the fields that were sent (timestamps as epoch microseconds)."""

    table: str
    index: int
    id: str
    fields: dict[str, Any]
    #: values the record takes only when it is new (e.g. a Segment message's moment as a
    #: new contact's created_at), never over a stored value
    defaults: dict[str, Any] = field(default_factory=dict)
    #: fields not compared with a stored record of the same id (a touchpoint resent
    #: without its own timestamp is the same touchpoint)
    loose: frozenset[str] = frozenset()


@dataclass
class Events:
    items: dict[str, list[Item]]
    rejected: list[Rejection]
    as_of: dt.datetime | None

    @property
    def count(self) -> int:
        return sum(map(len, self.items.values())) + len(self.rejected)


def parse_events(
    body: bytes | Mapping[str, Any],
    limit: int,
    defaults: Mapping[tuple[str, int], Mapping[str, Any]] | None = None,
    loose: Mapping[tuple[str, int], set[str]] | None = None,
) -> Events:
    """A body's items, each valid or rejected; a `BodyError` when the envelope is wrong
    (not an object, an unknown key, a list that is not a list, more items than `limit`).
    `defaults`: per (table, index), values an item takes only when it is new."""
    data = body if isinstance(body, Mapping) else parse_json(body)
    if not isinstance(data, Mapping):
        raise BodyError(
            [field_error(("body",), "expected an object with lists of events", "model_type")]
        )
    allowed = (*TABLES, "as_of")
    errors = [
        field_error(("body", str(name)), _unknown_key(str(name)), "extra_forbidden")
        for name in data
        if name not in allowed
    ]
    lists: dict[str, list[Any]] = {}
    for table in TABLES:
        value = data.get(table, [])
        if not isinstance(value, list):
            errors.append(field_error(("body", table), "expected a list", "list_type"))
        else:
            lists[table] = value
    as_of = None
    if data.get("as_of") is not None:
        try:
            as_of = parse_timestamp(data["as_of"])
        except ValueError as exc:
            errors.append(field_error(("body", "as_of"), str(exc), "value_error"))
    total = sum(map(len, lists.values()))
    if total > limit:
        errors.append(
            field_error(
                ("body",),
                f"at most {limit:,} items per call (LEADSCORE_MAX_EVENTS), got {total:,}",
                "too_long",
            )
        )
    if errors:
        raise BodyError(errors)
    items: dict[str, list[Item]] = {table: [] for table in TABLES}
    rejected: list[Rejection] = []
    for table in TABLES:
        model = MODELS[table]
        for index, raw in enumerate(lists[table]):
            raw_id = raw.get(ID[table]) if isinstance(raw, Mapping) else None
            item_id = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= 200 else None
            try:
                parsed = model.model_validate(raw)
            except ValidationError as exc:
                for error in pydantic_errors(exc, model, ()):
                    loc = error["loc"]
                    rejected.append(
                        Rejection(
                            table, index, item_id, ".".join(map(str, loc)) or None, error["msg"]
                        )
                    )
                continue
            fields = parsed.model_dump(include=parsed.model_fields_set)
            for name in TIME_FIELDS:
                if isinstance(fields.get(name), dt.datetime):
                    fields[name] = to_us(fields[name])
            extra = dict((defaults or {}).get((table, index), {}))
            for name in TIME_FIELDS:
                if isinstance(extra.get(name), str):
                    extra[name] = to_us(parse_timestamp(extra[name]))
            free = frozenset((loose or {}).get((table, index), ()))
            items[table].append(Item(table, index, fields[ID[table]], fields, extra, free))
    return Events(items, rejected, as_of)


def _unknown_key(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, [*TABLES, "as_of"], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; expected {', '.join(TABLES)}, as_of"
    return f"unknown field {name!r}{hint}"


# --- applying ------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a body did to the store, and which units (accounts, lone contacts) to rescore."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    units: set[str] = field(default_factory=set)
    #: (table, index) -> "accepted" or "duplicate" (rejected items are in `rejected`)
    statuses: dict[tuple[str, int], str] = field(default_factory=dict)

    def accept(self, item: Item) -> None:
        self.accepted += 1
        self.statuses[(item.table, item.index)] = "accepted"

    def duplicate(self, item: Item) -> None:
        self.duplicates += 1
        self.statuses[(item.table, item.index)] = "duplicate"


@functools.cache
def select_in(table: Table, key: str, columns: tuple[str, ...]) -> Select[Any]:
    """`SELECT columns FROM table WHERE key IN (:ids)`, built once: a statement built per
    call costs more than the query (SQLAlchemy coerces every id of a literal IN list)."""
    wanted = table.c[key].in_(bindparam("ids", expanding=True))
    return select(*(table.c[c] for c in columns)).where(wanted)


def rows_by_id(
    connection: Connection, table: Table, key: str, ids: Iterable[str], columns: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Stored rows of `table` whose `key` is one of `ids`, as dicts of `columns`."""
    wanted = sorted(set(ids))
    out: dict[str, dict[str, Any]] = {}
    names = tuple(columns)
    statement = select_in(table, key, names)
    at = names.index(key)
    for start in range(0, len(wanted), CHUNK):
        for row in connection.execute(statement, {"ids": wanted[start : start + CHUNK]}).all():
            out[row[at]] = dict(zip(names, row, strict=True))
    return out


class Ingest:
    """Applies one parsed body inside one write transaction (see the module)."""

    def __init__(self, store: Store, connection: Connection, events: Events, now_us: int) -> None:
        self.store, self.connection, self.events, self.now_us = store, connection, events, now_us
        self.outcome = Outcome(rejected=list(events.rejected))
        #: contact id -> its account id (None: no account), as stored or as sent here
        self.contact_account: dict[str, str | None] = {}
        self.known_accounts: set[str] = set()

    def run(self) -> Outcome:
        if self.store.dialect == "postgresql":
            locked = self._candidate_units()
            self.store.lock_accounts(self.connection, locked)
            # the clock read after the locks: per account, ledger order is time order
            self.now_us = now_us()
        self._accounts()
        self._contacts()
        self._opportunities()
        self._touchpoints()
        if self.store.dialect == "postgresql":
            late = self.outcome.units - locked  # a contact moved meanwhile (rare)
            self.store.lock_accounts(self.connection, late)
        return self.outcome

    # -- locks (PostgreSQL) --

    def _candidate_units(self) -> set[str]:
        """Every unit the body may touch, read before taking the locks."""
        items = self.events.items
        units = {account_key(i.id) for i in items["accounts"]}
        contact_ids = {i.id for i in items["contacts"]}
        contact_ids |= {i.fields["contact_id"] for i in items["touchpoints"]}
        contact_ids |= {
            i.fields["contact_id"] for i in items["opportunities"] if i.fields.get("contact_id")
        }
        stored = rows_by_id(
            self.connection, contacts, "contact_id", contact_ids, ("contact_id", "account_id")
        )
        for item in items["contacts"]:
            if item.fields.get("account_id"):
                units.add(account_key(item.fields["account_id"]))
        for contact_id in contact_ids:
            account = stored.get(contact_id, {}).get("account_id")
            units.add(account_key(account) if account else contact_key(contact_id))
        opps = rows_by_id(
            self.connection,
            opportunities,
            "opportunity_id",
            [i.id for i in items["opportunities"]],
            ("opportunity_id", "account_id"),
        )
        for item in items["opportunities"]:
            account = item.fields.get("account_id") or opps.get(item.id, {}).get("account_id")
            if account:
                units.add(account_key(account))
        return units

    # -- helpers --

    def _reject(self, item: Item, field_name: str | None, msg: str) -> None:
        self.outcome.rejected.append(Rejection(item.table, item.index, item.id, field_name, msg))

    def _resolve_accounts(self, ids: Iterable[str | None]) -> None:
        missing = {i for i in ids if i is not None and i not in self.known_accounts}
        if missing:
            found = rows_by_id(self.connection, accounts, "account_id", missing, ("account_id",))
            self.known_accounts |= set(found)

    def _resolve_contacts(self, ids: Iterable[str | None]) -> None:
        missing = {i for i in ids if i is not None and i not in self.contact_account}
        if missing:
            found = rows_by_id(
                self.connection, contacts, "contact_id", missing, ("contact_id", "account_id")
            )
            for contact_id, row in found.items():
                self.contact_account[contact_id] = row["account_id"]

    def _unit_of_contact(self, contact_id: str) -> str:
        account = self.contact_account.get(contact_id)
        return account_key(account) if account else contact_key(contact_id)

    def _upsert(
        self, name: str, items: list[Item], check: Any = None
    ) -> dict[str, tuple[dict[str, Any] | None, dict[str, Any]]]:
        """Merge items into stored rows (updates of the fields sent); `check(item, old,
        merged)` returns (field, message) to reject an item. Returns, per id written,
        (the row before this body, the row after)."""
        table, key = STORE_TABLES[name], ID[name]
        columns = CONTRACT_COLUMNS[name]
        stored = rows_by_id(self.connection, table, key, [i.id for i in items], columns)
        current: dict[str, dict[str, Any]] = dict(stored)
        for item in items:
            old = current.get(item.id)
            merged = {c: None for c in columns} | item.defaults if old is None else dict(old)
            merged.update(item.fields)
            problem = check(item, old, merged) if check is not None else None
            if problem is not None:
                self._reject(item, *problem)
                continue
            if old is not None and merged == old:
                self.outcome.duplicate(item)
                continue
            current[item.id] = merged
            self.outcome.accept(item)
        changed = {k: v for k, v in current.items() if stored.get(k) != v}
        new = [row for k, row in changed.items() if k not in stored]
        updated = [row for k, row in changed.items() if k in stored]
        if new:
            self.connection.execute(
                insert(table), [{**row, "updated_us": self.now_us} for row in new]
            )
        if updated:
            values: dict[str, Any] = {
                c: bindparam("v_" + c) for c in (*columns, "updated_us") if c != key
            }
            statement = update(table).where(table.c[key] == bindparam("v_" + key)).values(values)
            self.connection.execute(
                statement,
                [
                    {"v_" + c: v for c, v in {**row, "updated_us": self.now_us}.items()}
                    for row in updated
                ],
            )
        return {k: (stored.get(k), v) for k, v in changed.items()}

    # -- tables --

    def _accounts(self) -> None:
        written = self._upsert("accounts", self.events.items["accounts"])
        for account_id in written:
            self.known_accounts.add(account_id)
            self.outcome.units.add(account_key(account_id))

    def _contacts(self) -> None:
        items = self.events.items["contacts"]
        self._resolve_accounts(i.fields.get("account_id") for i in items)

        def check(item: Item, old: dict[str, Any] | None, merged: dict[str, Any]) -> Any:
            # (a stored reference was checked when it was sent)
            account = item.fields.get("account_id")
            if account is not None and account not in self.known_accounts:
                return ("account_id", _UNKNOWN_ACCOUNT)
            if merged["created_at"] is None:
                return ("created_at", "required for a new contact: when the lead entered the CRM")
            return None

        written = self._upsert("contacts", items, check)
        for contact_id, (old, new) in written.items():
            if old is not None:
                self.outcome.units.add(_unit(old["account_id"], contact_id))
            self.outcome.units.add(_unit(new["account_id"], contact_id))
            self.contact_account[contact_id] = new["account_id"]
        # contacts sent unchanged or rejected keep their stored account
        self._resolve_contacts(i.id for i in items)

    def _opportunities(self) -> None:
        items = self.events.items["opportunities"]
        self._resolve_accounts(i.fields.get("account_id") for i in items)
        self._resolve_contacts(i.fields.get("contact_id") for i in items)

        def check(item: Item, old: dict[str, Any] | None, merged: dict[str, Any]) -> Any:
            if old is None:
                for name in ("account_id", "created_at", "stage"):
                    if merged[name] is None:
                        return (name, "required for a new opportunity")
            elif old["stage"] != "open" and merged["stage"] != old["stage"]:
                return (
                    "stage",
                    f"this opportunity is {old['stage']} already; a stage only moves forward "
                    "(open, then closed_won or closed_lost)",
                )
            # (a stored reference was checked when it was sent)
            if "account_id" in item.fields and merged["account_id"] not in self.known_accounts:
                return ("account_id", _UNKNOWN_ACCOUNT)
            primary = item.fields.get("contact_id")
            if primary is not None and primary not in self.contact_account:
                return ("contact_id", _UNKNOWN_CONTACT)
            for name, message in opportunity_problems(merged):
                return (name, message)
            return None

        written = self._upsert("opportunities", items, check)
        rows = [row for pair in written.values() for row in pair if row is not None]
        self._resolve_contacts(row["contact_id"] for row in rows)
        for old, new in written.values():
            for row in (old, new):
                if row is None:
                    continue
                self.outcome.units.add(account_key(row["account_id"]))
                if row["contact_id"] is not None:
                    self.outcome.units.add(self._unit_of_contact(row["contact_id"]))

    def _touchpoints(self) -> None:
        items = self.events.items["touchpoints"]
        self._resolve_contacts(i.fields["contact_id"] for i in items)
        columns = CONTRACT_COLUMNS["touchpoints"]
        stored = rows_by_id(
            self.connection, touchpoints, "touchpoint_id", [i.id for i in items], columns
        )
        fresh: dict[str, dict[str, Any]] = {}
        latest = self.now_us + FUTURE_SLACK_US
        for item in items:
            row: dict[str, Any] = {c: item.fields.get(c) for c in columns}
            before = stored.get(item.id) or fresh.get(item.id)
            if before is not None:
                if all(before[c] == row[c] for c in columns if c not in item.loose):
                    self.outcome.duplicate(item)
                else:
                    self._reject(item, "touchpoint_id", _TOUCHPOINT_CHANGED)
                continue
            if row["contact_id"] not in self.contact_account:
                self._reject(item, "contact_id", _UNKNOWN_CONTACT)
                continue
            if row["occurred_at"] > latest:
                self._reject(item, "occurred_at", "is more than a day ahead of the server's clock")
                continue
            fresh[item.id] = row
            self.outcome.accept(item)
            self.outcome.units.add(self._unit_of_contact(row["contact_id"]))
        if fresh:
            rows = [{**row, "received_us": self.now_us} for row in fresh.values()]
            self.connection.execute(_insert_new(self.store.dialect, touchpoints), rows)


def _unit(account_id: str | None, contact_id: str) -> str:
    return account_key(account_id) if account_id else contact_key(contact_id)


@functools.cache
def _insert_new(dialect_name: str, table: Table) -> Any:
    """INSERT that leaves an existing row alone (a duplicate racing in from elsewhere)."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


_UNKNOWN_ACCOUNT: Final = (
    "unknown account; send it first (in `accounts`, in this body or an earlier one)"
)
_UNKNOWN_CONTACT: Final = (
    "unknown contact; send it first (in `contacts`, in this body or an earlier one)"
)
_TOUCHPOINT_CHANGED: Final = (
    "is stored already with other values; a touchpoint does not change (send a new id)"
)
