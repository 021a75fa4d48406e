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
import functools
import itertools
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from sqlalchemy import Connection, Select, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from features.crm.database import CONTRACT_COLUMNS, accounts, contacts, opportunities, touchpoints
from features.pipeline.lead import LeadContext, TouchColumns
from serving.scoring import ContactScore, explain, score_accounts
from serving.state import LoadedModel
from serving.store import outbox
from serving.store.engine import Store, now_us
from serving.store.intake import (
    CHUNK,
    Events,
    Ingest,
    Outcome,
    from_us,
    rows_by_id,
    select_in,
    to_us,
)
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


@functools.cache
def _unit_queries() -> dict[str, Select[Any]]:
    """The queries that read units back, built once (see `intake.select_in`)."""
    names = CONTRACT_COLUMNS
    lone = contacts.c.contact_id.in_(bindparam("ids", expanding=True))
    deal = or_(
        opportunities.c.account_id.in_(bindparam("accounts", expanding=True)),
        opportunities.c.contact_id.in_(bindparam("contacts", expanding=True)),
    )
    return {
        "accounts": select_in(accounts, "account_id", names["accounts"]),
        "members": select_in(contacts, "account_id", names["contacts"]),
        "lone": select(*(contacts.c[c] for c in names["contacts"])).where(
            lone, contacts.c.account_id.is_(None)
        ),
        "touches": select_in(touchpoints, "contact_id", names["touchpoints"]).order_by(
            touchpoints.c.occurred_at, touchpoints.c.touchpoint_id
        ),
        "deals": select(*(opportunities.c[c] for c in names["opportunities"])).where(deal),
    }


def _chunks(values: list[str]) -> list[list[str]]:
    return [values[i : i + CHUNK] for i in range(0, len(values), CHUNK)] or [[]]


def _dicts(rows: Iterable[Any], names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows as the API would have received them (timestamps as datetimes)."""
    times = [i for i, n in enumerate(names) if n in TIMES]
    out = []
    for row in rows.all() if hasattr(rows, "all") else rows:
        values = list(row)
        for i in times:
            if values[i] is not None:
                values[i] = from_us(values[i])
        out.append(dict(zip(names, values, strict=True)))
    return out


def read_units(connection: Connection, units: Iterable[str]) -> list[LeadContext]:
    """Each unit's context, as the scoring code takes it (units without a contact that
    exists are left out: there is no one to score)."""
    account_ids = sorted(u[2:] for u in units if u.startswith("a:"))
    lone_ids = sorted(u[2:] for u in units if u.startswith("c:"))
    q, names = _unit_queries(), CONTRACT_COLUMNS
    account_rows: dict[str, dict[str, Any]] = {}
    people: list[dict[str, Any]] = []
    for chunk in _chunks(account_ids):
        if chunk:
            for a in _dicts(connection.execute(q["accounts"], {"ids": chunk}), names["accounts"]):
                account_rows[a["account_id"]] = a
            people += _dicts(connection.execute(q["members"], {"ids": chunk}), names["contacts"])
    for chunk in _chunks(lone_ids):
        if chunk:
            people += _dicts(connection.execute(q["lone"], {"ids": chunk}), names["contacts"])
    if not people:
        return []
    contact_ids = sorted({p["contact_id"] for p in people})
    rows: list[Any] = []  # (touchpoint_id, contact_id, occurred_at, type, channel, topic)
    for chunk in _chunks(contact_ids):
        rows += [tuple(r) for r in connection.execute(q["touches"], {"ids": chunk}).all()]
    deals: dict[str, dict[str, Any]] = {}
    for accounts_chunk in _chunks(account_ids):
        for people_chunk in _chunks(contact_ids):
            found = connection.execute(
                q["deals"], {"accounts": accounts_chunk, "contacts": people_chunk}
            )
            for deal in _dicts(found, names["opportunities"]):
                deals[deal["opportunity_id"]] = deal

    # units: an account's contacts (sorted by id, the first is the "lead"), or one contact
    by_account: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for person in sorted(people, key=lambda p: p["contact_id"]):
        by_account[person["account_id"]].append(person)
    groups: list[tuple[str | None, list[dict[str, Any]]]] = []
    for account_id, members in by_account.items():
        if account_id is None:
            groups += [(None, [m]) for m in members]
        else:
            groups.append((account_id, members))
    where = {
        m["contact_id"]: (g, k)
        for g, (_, members) in enumerate(groups)
        for k, m in enumerate(members)
    }
    columns = _touch_columns(rows, where, len(groups))
    by_deal_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_deal_contact: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for deal in sorted(deals.values(), key=lambda d: d["opportunity_id"]):
        by_deal_account[deal["account_id"]].append(deal)
        if deal["contact_id"] is not None:
            by_deal_contact[deal["contact_id"]].append(deal)
    contexts: list[LeadContext] = []
    for g, (account_id, members) in enumerate(groups):
        related = {d["opportunity_id"]: d for d in by_deal_account.get(account_id or "", [])}
        for m in members:
            related.update(
                (d["opportunity_id"], d) for d in by_deal_contact.get(m["contact_id"], [])
            )
        lead, *committee = members
        contexts.append(
            LeadContext(
                contact=lead,
                account=account_rows.get(account_id) if account_id is not None else None,
                committee=[(m, ()) for m in committee],
                opportunities=sorted(related.values(), key=lambda d: d["opportunity_id"]),
                touch_columns=columns[g],
            )
        )
    return contexts


def _touch_columns(
    rows: list[Any], where: dict[str, tuple[int, int]], n_groups: int
) -> list[TouchColumns]:
    """Each unit's touchpoints as columns, in the store's order (time, then id)."""
    if not rows:
        empty = np.empty(0, dtype=np.int64)
        return [TouchColumns(empty, empty, [], [], []) for _ in range(n_groups)]
    n = len(rows)
    contact = [r[1] for r in rows]
    unit = {c: g for c, (g, _) in where.items()}
    place = {c: k for c, (_, k) in where.items()}
    groups = np.fromiter(map(unit.__getitem__, contact), dtype=np.int64, count=n)
    order = np.argsort(groups, kind="stable")
    group = groups[order]
    member = np.fromiter(map(place.__getitem__, contact), dtype=np.int64, count=n)[order]
    seconds = np.fromiter((r[2] for r in rows), dtype=np.int64, count=n)[order] // 1_000_000

    def column(i: int) -> np.ndarray:
        out = np.empty(n, dtype=object)
        out[:] = [r[i] for r in rows]
        return out[order]

    kind_a, channel_a, topic_a = column(3), column(4), column(5)
    bounds = np.searchsorted(group, np.arange(n_groups + 1))
    return [
        TouchColumns(member[lo:hi], seconds[lo:hi], kind_a[lo:hi], channel_a[lo:hi], topic_a[lo:hi])
        for lo, hi in itertools.pairwise(bounds)
    ]


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
    ids = [s.contact_id for s in scored]
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
        rules = s.rules
        score = {
            "probability": s.probability,
            "points": rules["points"],
            "grade": rules["grade"],
            "mql": rules["mql"],
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
            as_of_us = to_us(s.answer["as_of"])
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
                    "answer": s.json().decode(),
                    "features": s.features.astype("<f8").tobytes(),
                    "explained": bool(s.answer["reasons"]),
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
        _announce(connection, ledger, before, model, now_us)
        statements = _ledger_statements(store.dialect)
        connection.execute(statements["append"], ledger)
        # (each current row points to its contact's newest ledger row, found by the
        # index: RETURNING the ids in order made the driver insert row by row)
        connection.execute(statements["current"], fresh)
    if relisted:
        connection.execute(_ledger_statements(store.dialect)["relist"], relisted)
    return out


#: reasons a message carries (the answer's default; the ledger row keeps them too)
MESSAGE_REASONS: Final = 5


def _announce(
    connection: Connection,
    ledger: list[dict[str, Any]],
    before: dict[str, dict[str, Any]],
    model: LoadedModel,
    now_us: int,
) -> None:
    """Write the outbox messages the ledger rows cause (same transaction). The contacts
    with a message to a target that shows reasons get them now, saved in the row too;
    a connector that writes no reasons costs no TreeSHAP."""
    subs = outbox.subscriptions(connection)
    if not subs:
        return
    changes = [
        outbox.Change(
            row["contact_id"],
            before.get(row["contact_id"]),
            {k: row[k] for k in _SCORE},
        )
        for row in ledger
    ]
    planned = outbox.plan(changes, subs)
    if not planned:
        return
    told = sorted({i for i, _, _ in planned})
    answers = {i: json.loads(ledger[i]["answer"]) for i in told}
    explain_for = {i for i, sub, _ in planned if sub.reasons}
    missing = [i for i in told if i in explain_for and not answers[i]["reasons"]]
    if missing:
        x = np.stack([np.frombuffer(ledger[i]["features"], dtype="<f8") for i in missing])
        for i, reasons in zip(missing, explain(model.scorer, x, MESSAGE_REASONS), strict=True):
            answers[i]["reasons"] = [r.model_dump() for r in reasons]
            ledger[i]["answer"] = json.dumps(answers[i])
            ledger[i]["explained"] = True
    rows = []
    for i, target, event_type in planned:
        row, answer, old = ledger[i], answers[i], changes[i].before
        data = {
            "contact_id": row["contact_id"],
            "account_id": row["account_id"],
            "scored_at": outbox.timestamp(row["scored_us"]),
            "as_of": outbox.timestamp(row["as_of_us"]),
            "probability": row["probability"],
            "points": row["points"],
            "grade": row["grade"],
            "mql": row["mql"],
            "previous": None if old is None else {k: old[k] for k in _SCORE},
            "model": {"name": row["model_name"], "version": row["model_version"]},
            "trigger": row["trigger"],
            "trigger_id": row["trigger_id"],
            "reasons": answer["reasons"],
            "rules": answer["rules"],
            "account": answer["account"],
        }
        rows.append(
            outbox.message_row(target.webhook_id, event_type, row["contact_id"], data, now_us)
        )
    outbox.write(connection, rows)


@functools.cache
def _ledger_statements(dialect_name: str) -> dict[str, Any]:
    """The ledger's writes, built once per dialect."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    newest = (
        select(func.max(scores.c.score_id))
        .where(scores.c.contact_id == bindparam("contact_id"))
        .scalar_subquery()
    )
    upsert = dialect.insert(current_scores).values(
        score_id=newest,
        **{c: bindparam(c) for c in ("contact_id", *_SCORE, *_LISTED, "scored_us", "as_of_us")},
    )
    columns = ("score_id", *_SCORE, *_LISTED, "scored_us", "as_of_us")
    return {
        "append": insert(scores),
        "current": upsert.on_conflict_do_update(
            index_elements=["contact_id"], set_={c: upsert.excluded[c] for c in columns}
        ),
        "relist": update(current_scores)
        .where(current_scores.c.contact_id == bindparam("v_contact_id"))
        .values({k: bindparam("v_" + k) for k in _LISTED}),
    }


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
