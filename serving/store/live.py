"""Rescoring in the store: read a unit's history, score it, append what changed.

A *unit* is what one event can change the features of: an account (all its contacts,
because a committee member's touch moves everyone's committee features) or a contact
without an account (its personal account). A unit is read back from the store as one
`LeadContext` (the first contact as the lead, the rest as its committee, the account's
deals and the deals its contacts are primary on) and scored by
`serving.scoring.score_accounts`: the code `/v1/score` runs, with the same model.

Each contact's new score is compared with its current one; a score that changed (the
probability, the points, the grade, the MQL flag or the model version) is appended to
the ledger and becomes current. Everything happens in the caller's transaction, so a
ledger row exists exactly when the events that caused it are committed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, Table, bindparam, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from features.crm.database import CONTRACT_COLUMNS, accounts, contacts, opportunities, touchpoints
from features.pipeline.lead import LeadContext
from serving.scoring import ContactScore, score_accounts
from serving.state import LoadedModel
from serving.store.engine import Store, now_us
from serving.store.intake import CHUNK, Events, Ingest, Outcome, from_us, rows_by_id, to_us
from serving.store.tables import current_scores, scores

TIMES: Final = ("created_at", "closed_at", "occurred_at")
#: what makes a new ledger row; and what the lists filter on (kept current without one)
_SCORE: Final = ("probability", "points", "grade", "mql", "model_version")
_LISTED: Final = ("account_id", "lead_source", "open_deal")


@dataclass(frozen=True)
class Recorded:
    """A contact's new score, and whether it differs from the one before (a ledger row)."""

    score: ContactScore
    changed: bool


def _in(table: Table, column: str, values: Sequence[str]) -> Iterable[Any]:
    """`column IN values`, a chunk at a time."""
    for start in range(0, len(values), CHUNK):
        yield table.c[column].in_(values[start : start + CHUNK])


def _plain(row: Any, names: Sequence[str]) -> dict[str, Any]:
    """A stored row as the API would have received it (timestamps as datetimes)."""
    out = dict(zip(names, row, strict=True))
    for name in TIMES:
        if name in out and out[name] is not None:
            out[name] = from_us(out[name])
    return out


def read_units(connection: Connection, units: Iterable[str]) -> list[LeadContext]:
    """Each unit's context, as the scoring code takes it (units without a contact that
    exists are left out: there is no one to score)."""
    account_ids = sorted(u[2:] for u in units if u.startswith("a:"))
    lone_ids = sorted(u[2:] for u in units if u.startswith("c:"))
    names = {t: CONTRACT_COLUMNS[t] for t in CONTRACT_COLUMNS}
    account_rows = {
        a["account_id"]: a
        for a in (
            _plain(r, names["accounts"])
            for clause in _in(accounts, "account_id", account_ids)
            for r in connection.execute(
                select(*(accounts.c[c] for c in names["accounts"])).where(clause)
            )
        )
    }
    people: list[dict[str, Any]] = []
    contact_columns = [contacts.c[c] for c in names["contacts"]]
    for clause in _in(contacts, "account_id", account_ids):
        rows = connection.execute(select(*contact_columns).where(clause))
        people += [_plain(r, names["contacts"]) for r in rows]
    for clause in _in(contacts, "contact_id", lone_ids):
        people += [
            _plain(r, names["contacts"])
            for r in connection.execute(
                select(*contact_columns).where(clause, contacts.c.account_id.is_(None))
            )
        ]
    if not people:
        return []
    contact_ids = sorted({p["contact_id"] for p in people})
    touches: dict[str, list[dict[str, Any]]] = defaultdict(list)
    touch_columns = [touchpoints.c[c] for c in names["touchpoints"]]
    for clause in _in(touchpoints, "contact_id", contact_ids):
        statement = select(*touch_columns).where(clause)
        for r in connection.execute(
            statement.order_by(touchpoints.c.occurred_at, touchpoints.c.touchpoint_id)
        ):
            touch = _plain(r, names["touchpoints"])
            touches[touch["contact_id"]].append(touch)
    deals: dict[str, dict[str, Any]] = {}
    opp_columns = [opportunities.c[c] for c in names["opportunities"]]
    for chunk in (account_ids[i : i + CHUNK] for i in range(0, max(len(account_ids), 1), CHUNK)):
        for people_chunk in (contact_ids[i : i + CHUNK] for i in range(0, len(contact_ids), CHUNK)):
            where = or_(
                opportunities.c.account_id.in_(chunk), opportunities.c.contact_id.in_(people_chunk)
            )
            for r in connection.execute(select(*opp_columns).where(where)):
                deal = _plain(r, names["opportunities"])
                deals[deal["opportunity_id"]] = deal
    by_account: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for person in sorted(people, key=lambda p: p["contact_id"]):
        by_account[person["account_id"]].append(person)
    ordered_deals = sorted(deals.values(), key=lambda d: d["opportunity_id"])
    contexts: list[LeadContext] = []
    for account_id, members in by_account.items():
        groups = [members] if account_id is not None else [[m] for m in members]
        for group in groups:
            ids = {m["contact_id"] for m in group}
            related = [
                d
                for d in ordered_deals
                if (account_id is not None and d["account_id"] == account_id)
                or d["contact_id"] in ids
            ]
            lead, *committee = group
            contexts.append(
                LeadContext(
                    contact=lead,
                    account=account_rows.get(account_id) if account_id is not None else None,
                    touchpoints=touches.get(lead["contact_id"], []),
                    committee=[(m, touches.get(m["contact_id"], [])) for m in committee],
                    opportunities=related,
                )
            )
    return contexts


def rescore_units(
    connection: Connection,
    store: Store,
    units: Iterable[str],
    model: LoadedModel,
    as_of: dt.datetime,
    trigger: str,
    trigger_id: str | None,
    now_us: int,
) -> list[Recorded]:
    """Score every contact of the units at as_of; append the changed scores."""
    contexts = read_units(connection, units)
    # (no reasons now: they are made from the stored inputs when the row is read)
    scored = score_accounts(contexts, model, 0, as_of)
    return record(connection, store, scored, model, trigger, trigger_id, now_us)


def record(
    connection: Connection,
    store: Store,
    scored: Sequence[ContactScore],
    model: LoadedModel,
    trigger: str,
    trigger_id: str | None,
    now_us: int,
    newer_than: int | None = None,
) -> list[Recorded]:
    """Append the scores that changed to the ledger and make them current (a change of
    what the lists filter on alone, such as a deal opening, updates the current row).

    With `newer_than` (a rescoring run's start), a contact whose current score was
    computed after that moment (by an event, from newer data) is left alone and left
    out of the result."""
    if not scored:
        return []
    ids = [s.answer.contact_id or "" for s in scored]
    before = rows_by_id(
        connection,
        current_scores,
        "contact_id",
        ids,
        ("contact_id", "scored_us", *_SCORE, *_LISTED),
    )
    if newer_than is not None:
        keep = [
            i
            for i, contact_id in enumerate(ids)
            if contact_id not in before or before[contact_id]["scored_us"] <= newer_than
        ]
        scored = [scored[i] for i in keep]
        ids = [ids[i] for i in keep]
    out: list[Recorded] = []
    ledger: list[dict[str, Any]] = []
    fresh: list[dict[str, Any]] = []  # current rows of the ledger rows, in the same order
    relisted: list[dict[str, Any]] = []  # current rows whose list fields alone changed
    for s, contact_id in zip(scored, ids, strict=True):
        answer, rules = s.answer, s.answer.rules
        score = {
            "probability": answer.probability,
            "points": None if rules is None else rules.points,
            "grade": None if rules is None else rules.grade,
            "mql": None if rules is None else rules.mql,
            "model_version": model.version,
        }
        listed = {
            "account_id": s.account_id,
            "lead_source": s.lead_source,
            "open_deal": s.open_deal,
        }
        old = before.get(contact_id)
        changed = old is None or any(old[k] != v for k, v in score.items())
        out.append(Recorded(s, changed))
        if changed:
            as_of_us = to_us(answer.as_of)
            ledger.append(
                {
                    "contact_id": contact_id,
                    "account_id": s.account_id,
                    "scored_us": now_us,
                    "as_of_us": as_of_us,
                    **score,
                    "model_name": model.name,
                    "trigger": trigger,
                    "trigger_id": trigger_id,
                    "answer": answer.model_dump_json(),
                    "features": s.features.astype("<f8").tobytes(),
                    "explained": bool(answer.reasons),
                }
            )
            fresh.append(
                {
                    "contact_id": contact_id,
                    **score,
                    **listed,
                    "scored_us": now_us,
                    "as_of_us": as_of_us,
                }
            )
        elif old is not None and any(old[k] != v for k, v in listed.items()):
            relisted.append(
                {"v_contact_id": contact_id, **{"v_" + k: v for k, v in listed.items()}}
            )
    if ledger:
        returned = connection.execute(
            insert(scores).returning(scores.c.score_id, sort_by_parameter_order=True), ledger
        )
        for row, (score_id,) in zip(fresh, returned, strict=True):
            row["score_id"] = score_id
        dialect = postgresql if store.dialect == "postgresql" else sqlite
        upsert = dialect.insert(current_scores)
        updates = {c: upsert.excluded[c] for c in fresh[0] if c != "contact_id"}
        connection.execute(
            upsert.on_conflict_do_update(index_elements=["contact_id"], set_=updates), fresh
        )
    if relisted:
        connection.execute(
            update(current_scores)
            .where(current_scores.c.contact_id == bindparam("v_contact_id"))
            .values({k: bindparam("v_" + k) for k in _LISTED}),
            relisted,
        )
    return out


def unit_of(connection: Connection, contact_id: str) -> str | None:
    """The unit a contact is scored in (None: no such contact)."""
    row = connection.execute(
        select(contacts.c.account_id).where(contacts.c.contact_id == contact_id)
    ).first()
    if row is None:
        return None
    return "a:" + row[0] if row[0] else "c:" + contact_id


@dataclass(frozen=True)
class Applied:
    """What one call to `POST /v1/events` did (see `apply_events`)."""

    event_id: str
    as_of: dt.datetime
    outcome: Outcome
    recorded: list[Recorded]


def apply_events(
    store: Store,
    events: Events,
    model: LoadedModel,
    now: dt.datetime | None = None,
) -> Applied:
    """Store the events and rescore what they change, in one transaction: when this
    returns, the items accepted and their ledger rows are committed (and on disk)."""
    as_of = events.as_of or now or dt.datetime.now(dt.UTC)
    event_id = uuid.uuid4().hex

    def work() -> tuple[Outcome, list[Recorded]]:
        with store.write() as connection:
            # (SQLite: the clock is read holding the write lock; PostgreSQL: the intake
            # reads it again once it holds its accounts' locks)
            ingest = Ingest(store, connection, events, to_us(now) if now else now_us())
            outcome = ingest.run()
            recorded = rescore_units(
                connection, store, outcome.units, model, as_of, "event", event_id, ingest.now_us
            )
        return outcome, recorded

    outcome, recorded = store.retrying(work)
    return Applied(event_id, as_of, outcome, recorded)
