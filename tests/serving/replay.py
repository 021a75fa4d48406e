"""A CRM export told as it happened: the state at a cut date, then every later change as
an event, in time order (for the replay, durability and concurrency tests).

What the CRM knew at the cut is an export of its own (contacts created by then, the
touchpoints that had occurred, deals with their stage at that moment); every later
change is an event at the moment it happened: an account when its first contact or
deal appears, a contact when it is created, a touchpoint when it occurs (not before its
contact exists), a deal when it is opened, and its closing when it closes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from features.crm.load import CRM

#: the order tables are applied in within one moment (what is referred to comes first)
ORDER = {"accounts": 0, "contacts": 1, "opportunities": 2, "touchpoints": 3}


@dataclass(frozen=True)
class Event:
    at: pd.Timestamp
    table: str
    record: dict[str, Any]


def _plain(value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def split(crm: CRM, cut: pd.Timestamp) -> tuple[dict[str, pd.DataFrame], list[Event]]:
    """(the export at `cut`, the events after it in time order)."""
    contacts = crm.contacts
    created = dict(zip(contacts["contact_id"], contacts["created_at"], strict=True))
    events: list[Event] = []

    late_contacts = contacts[contacts["created_at"] > cut]
    for record in _records(late_contacts):
        events.append(Event(pd.Timestamp(record["created_at"]), "contacts", record))

    deals_cut, opp_rows = [], _records(crm.opportunities)
    for record, row in zip(opp_rows, crm.opportunities.itertuples(), strict=True):
        primary = record["contact_id"]
        opened = max(row.created_at, created.get(primary, row.created_at))
        closed = row.closed_at if record["stage"] != "open" else None
        at = opened
        if opened > cut:
            first = dict(record)
            if closed is not None and closed > opened:
                first.update(stage="open", closed_at=None)
            events.append(Event(opened, "opportunities", first))
        else:
            first = dict(record)
            if closed is not None and closed > cut:
                first.update(stage="open", closed_at=None)
            deals_cut.append(first)
            at = cut
        if closed is not None and closed > at:
            events.append(
                Event(
                    closed,
                    "opportunities",
                    {"opportunity_id": record["opportunity_id"], "stage": record["stage"],
                     "closed_at": _plain(closed)},
                )
            )  # fmt: skip

    # an account arrives with the first contact or deal that needs it
    needed: dict[str, pd.Timestamp] = {}
    for event in events:
        account = event.record.get("account_id")
        if (
            account
            and event.table in ("contacts", "opportunities")
            and "created_at" in event.record
        ):
            needed[account] = min(needed.get(account, event.at), event.at)
    early = set(contacts.loc[contacts["created_at"] <= cut, "account_id"].dropna())
    early |= {d["account_id"] for d in deals_cut}
    accounts = crm.accounts
    in_cut = accounts["account_id"].isin(early) | ~accounts["account_id"].isin(list(needed))
    for record in _records(accounts[~in_cut]):
        events.append(Event(needed[record["account_id"]], "accounts", record))

    touches = crm.touchpoints
    owner_created = touches["contact_id"].map(created)
    at = touches["occurred_at"].where(touches["occurred_at"] >= owner_created, owner_created)
    late = (at > cut).to_numpy()
    for record, moment in zip(_records(touches[late]), at[late], strict=True):
        events.append(Event(moment, "touchpoints", record))

    events.sort(key=lambda e: (e.at, ORDER[e.table]))
    export = {
        "accounts": accounts[in_cut].reset_index(drop=True),
        "contacts": contacts[contacts["created_at"] <= cut].reset_index(drop=True),
        "touchpoints": touches[~late].reset_index(drop=True),
        "opportunities": pd.DataFrame(deals_cut, columns=list(crm.opportunities.columns)),
    }
    return export, events


def bodies(events: list[Event], size: int, as_of: str | None = None) -> list[dict[str, Any]]:
    """The events as `POST /v1/events` bodies of `size` items, in order."""
    out = []
    for start in range(0, len(events), size):
        body: dict[str, Any] = {}
        for event in events[start : start + size]:
            body.setdefault(event.table, []).append(event.record)
        if as_of is not None:
            body["as_of"] = as_of
        out.append(body)
    return out
