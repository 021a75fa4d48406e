"""Reading the live store: a lead's latest score, its history, the lists, an account.

Ledger rows keep the model's input row; the reasons (TreeSHAP, ~1 ms a contact) are
computed when a row is first read and saved into it, by the model version that scored
it (`ExplainModels` finds older versions in the registry). The lists read
`current_scores` with keyset pagination: a cursor names the last row seen, so a page is
as fast on row 100,000 as on row 1 and a lead cannot appear twice while scores change.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime as dt
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from sqlalchemy import Connection, and_, bindparam, func, or_, select, update

from features.crm.database import accounts
from features.model.scorer import LeadScorer
from serving.scoring import explain
from serving.state import LoadedModel
from serving.store.engine import Store
from serving.store.intake import from_us
from serving.store.tables import current_scores, scores

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LedgerRow:
    score_id: int
    contact_id: str
    account_id: str | None
    scored_us: int
    as_of_us: int
    model_name: str
    model_version: str
    trigger: str
    trigger_id: str | None
    answer: dict[str, Any]
    explained: bool
    features: bytes | None


_LEDGER_COLUMNS: Final = (
    scores.c.score_id,
    scores.c.contact_id,
    scores.c.account_id,
    scores.c.scored_us,
    scores.c.as_of_us,
    scores.c.model_name,
    scores.c.model_version,
    scores.c.trigger,
    scores.c.trigger_id,
    scores.c.answer,
    scores.c.explained,
    scores.c.features,
)


def _ledger(row: Any) -> LedgerRow:
    values = dict(row._mapping)
    values["answer"] = json.loads(values["answer"])
    return LedgerRow(**values)


def latest(connection: Connection, contact_id: str) -> LedgerRow | None:
    """The contact's current score (its newest ledger row)."""
    row = connection.execute(
        select(*_LEDGER_COLUMNS)
        .join(current_scores, current_scores.c.score_id == scores.c.score_id)
        .where(current_scores.c.contact_id == contact_id)
    ).first()
    return None if row is None else _ledger(row)


def history(
    connection: Connection,
    contact_id: str,
    since_us: int | None,
    until_us: int | None,
    after: int | None,
    limit: int,
) -> list[LedgerRow]:
    """Ledger rows of a contact in ledger order, as_of within [since, until]."""
    query = select(*_LEDGER_COLUMNS).where(scores.c.contact_id == contact_id)
    if since_us is not None:
        query = query.where(scores.c.as_of_us >= since_us)
    if until_us is not None:
        query = query.where(scores.c.as_of_us <= until_us)
    if after is not None:
        query = query.where(scores.c.score_id > after)
    rows = connection.execute(query.order_by(scores.c.score_id).limit(limit)).all()
    return [_ledger(r) for r in rows]


def known_contact(connection: Connection, contact_id: str) -> bool:
    from features.crm.database import contacts

    found = connection.execute(
        select(contacts.c.contact_id).where(contacts.c.contact_id == contact_id)
    ).first()
    return found is not None


# --- reasons on first read --------------------------------------------------------------


class ExplainModels:
    """The scorer of each model version that wrote ledger rows: the one served, or an
    older version read from the registry (a few kept in memory)."""

    def __init__(self, current: Callable[[], LoadedModel | None], keep: int = 4) -> None:
        self._current = current
        self._cache: OrderedDict[tuple[str, str], LeadScorer] = OrderedDict()
        self._keep = keep

    def scorer(self, name: str, version: str) -> LeadScorer | None:
        served = self._current()
        if served is not None and served.name == name and served.version == version:
            return served.scorer
        key = (name, version)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        from features.model.pyfunc import load_scorer

        try:
            scorer, _ = load_scorer(f"models:/{name}/{version}")
        except Exception as exc:  # deleted from the registry: the numbers stay, no reasons
            logger.warning(
                "cannot load %s version %s to explain old scores: %s", name, version, exc
            )
            return None
        self._cache[key] = scorer
        while len(self._cache) > self._keep:
            self._cache.popitem(last=False)
        return scorer


def with_reasons(
    store: Store, rows: Sequence[LedgerRow], models: ExplainModels, k: int
) -> list[dict[str, Any]]:
    """The rows' answers, reasons included: computed for rows that lack them (by the
    model version that scored them, from the inputs it saw) and saved into the rows."""
    answers = [dict(r.answer) for r in rows]
    missing = [i for i, r in enumerate(rows) if not r.explained and r.features is not None]
    if not missing or k == 0:
        return answers
    groups: dict[tuple[str, str], list[int]] = {}
    for i in missing:
        groups.setdefault((rows[i].model_name, rows[i].model_version), []).append(i)
    filled: list[dict[str, Any]] = []
    for (name, version), positions in groups.items():
        scorer = models.scorer(name, version)
        if scorer is None:
            continue
        x = np.stack([np.frombuffer(rows[i].features or b"", dtype="<f8") for i in positions])
        for i, reasons in zip(positions, explain(scorer, x, k), strict=True):
            answers[i]["reasons"] = [r.model_dump() for r in reasons]
            filled.append({"v_id": rows[i].score_id, "v_answer": json.dumps(answers[i])})
    if filled:
        try:
            with store.write() as connection:
                connection.execute(
                    update(scores)
                    .where(scores.c.score_id == bindparam("v_id"))
                    .values(answer=bindparam("v_answer"), explained=True),
                    filled,
                )
        except Exception as exc:  # a busy store: the reasons are computed again next time
            logger.warning("could not save reasons of %d scores: %s", len(filled), exc)
    return answers


# --- the lists --------------------------------------------------------------------------

#: sort orders of `GET /v1/leads`: the column, descending?
ORDERS: Final = {
    "-probability": ("probability", True),
    "probability": ("probability", False),
    "-points": ("points", True),
    "points": ("points", False),
    "-as_of": ("as_of_us", True),
}
LIST_COLUMNS: Final = (
    "contact_id",
    "account_id",
    "probability",
    "points",
    "grade",
    "mql",
    "open_deal",
    "lead_source",
    "as_of_us",
    "scored_us",
    "model_version",
)


class CursorError(ValueError):
    """A cursor that this server did not hand out (or for another sort order)."""


def encode_cursor(order: str, value: Any, contact_id: str) -> str:
    raw = json.dumps([order, value, contact_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(order: str, cursor: str) -> tuple[Any, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        got_order, value, contact_id = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError, binascii.Error):
        raise CursorError("not a cursor of this list; use next_cursor as returned") from None
    if got_order != order or not isinstance(contact_id, str):
        raise CursorError("the cursor belongs to another sort order; start without one")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise CursorError("not a cursor of this list; use next_cursor as returned")
    return value, contact_id


@dataclass(frozen=True)
class LeadFilter:
    mql: bool | None = None
    grade: str | None = None
    source: str | None = None
    account_id: str | None = None
    open_deal: bool | None = None


def list_leads(
    connection: Connection, where: LeadFilter, order: str, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of current scores and the cursor of the next page (None: the last page)."""
    column_name, descending = ORDERS[order]
    column = current_scores.c[column_name]
    query = select(*(current_scores.c[c] for c in LIST_COLUMNS))
    c = current_scores.c
    for value, col in (
        (where.mql, c.mql),
        (where.grade, c.grade),
        (where.source, c.lead_source),
        (where.account_id, c.account_id),
        (where.open_deal, c.open_deal),
    ):
        if value is not None:
            query = query.where(col == value)
    query = query.where(column.is_not(None))
    if cursor is not None:
        value, last = decode_cursor(order, cursor)
        beyond = column < value if descending else column > value
        query = query.where(or_(beyond, and_(column == value, c.contact_id > last)))
    query = query.order_by(column.desc() if descending else column.asc(), c.contact_id.asc())
    rows = [dict(r._mapping) for r in connection.execute(query.limit(limit + 1))]
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        encode_cursor(order, rows[-1][column_name], rows[-1]["contact_id"])
        if more and rows
        else None
    )
    return rows, next_cursor


def touches_between(
    connection: Connection, contact_id: str, bounds_us: Sequence[int]
) -> list[list[str]]:
    """The contact's touchpoint types in each interval (bounds[i-1], bounds[i]] (the first:
    everything up to bounds[0]), in time order: what moved each of its scores."""
    from features.crm.database import touchpoints

    found = connection.execute(
        select(touchpoints.c.occurred_at, touchpoints.c.type)
        .where(touchpoints.c.contact_id == contact_id)
        .where(touchpoints.c.occurred_at <= max(bounds_us, default=0))
        .order_by(touchpoints.c.occurred_at)
    ).all()
    out: list[list[str]] = [[] for _ in bounds_us]
    order = sorted(range(len(bounds_us)), key=bounds_us.__getitem__)  # by time
    ordered = [bounds_us[i] for i in order]
    for at, type_ in found:
        i = bisect.bisect_left(ordered, at)  # the first score at or after the touch
        if i < len(order):
            out[order[i]].append(str(type_))
    return out


def lead_sources(connection: Connection, limit: int = 100) -> list[str]:
    """The lead sources of current scores, most common first (the workspace's filter)."""
    column = current_scores.c.lead_source
    rows = connection.execute(
        select(column, func.count())
        .where(column.is_not(None))
        .group_by(column)
        .order_by(func.count().desc(), column)
        .limit(limit)
    ).all()
    return [str(r[0]) for r in rows]


def account_view(connection: Connection, account_id: str) -> dict[str, Any] | None:
    """The account's attributes and its contacts' current scores (best first)."""
    found = connection.execute(select(accounts).where(accounts.c.account_id == account_id)).first()
    if found is None:
        return None
    account = {k: v for k, v in found._mapping.items() if k != "updated_us"}
    people = [
        dict(r._mapping)
        for r in connection.execute(
            select(*(current_scores.c[c] for c in LIST_COLUMNS))
            .where(current_scores.c.account_id == account_id)
            .order_by(current_scores.c.probability.desc(), current_scores.c.contact_id)
        )
    ]
    engaged = None
    if people:
        newest = max(people, key=lambda p: p["as_of_us"])
        row = latest(connection, newest["contact_id"])
        rollup = (row.answer.get("account") or {}) if row is not None else {}
        engaged = rollup.get("engaged_contacts_90d")
    total = connection.execute(
        select(func.count())
        .select_from(current_scores)
        .where(current_scores.c.account_id == account_id)
    ).scalar_one()
    return {**account, "contacts": people, "engaged_contacts_90d": engaged, "scored": total}


def as_datetime(value_us: int | None) -> dt.datetime | None:
    return None if value_us is None else from_us(value_us)
