"""One lead and its context, as the scoring API receives it.

A `LeadContext` holds plain values in the data contract's field names: the contact, its
account, its touchpoints, the other contacts of the account (the buying committee) with
their touchpoints, and the account's opportunities. `EventStore.from_leads` turns it into
the kernel's arrays. `lead_from_crm` cuts the same context out of a loaded export, which
is how tests prove that a lead scored online gets the features of its training row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.crm.load import CRM
from features.crm.records import opportunity_problems


@dataclass(frozen=True)
class TouchColumns:
    """The touchpoints of a lead and its committee as columns, for many at once (the
    live store reads thousands per event batch; a dict per touchpoint was most of the
    cost). `member` is 0 for the lead, k for the k-th committee member; `seconds` UTC
    seconds since the epoch; ids are unique already (the store's primary key)."""

    member: np.ndarray  # int64
    seconds: np.ndarray  # int64
    type: np.ndarray | Sequence[Any]
    channel: np.ndarray | Sequence[Any]
    topic: np.ndarray | Sequence[Any]


@dataclass(frozen=True)
class LeadContext:
    """One lead and what is known around it (timestamps: ISO 8601 text or datetimes).

    Touchpoints come as dicts (`touchpoints` and the committee's lists, as the API
    receives them) or, from the live store, as `touch_columns` (the lists are empty)."""

    contact: Mapping[str, Any]
    account: Mapping[str, Any] | None = None
    touchpoints: Sequence[Mapping[str, Any]] = ()
    committee: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]] = ()
    opportunities: Sequence[Mapping[str, Any]] = ()
    touch_columns: TouchColumns | None = None


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with None for missing values and Timestamps kept as they are."""
    out = []
    for row in frame.to_dict(orient="records"):
        out.append({str(k): (None if _missing(v) else v) for k, v in row.items()})
    return out


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def lead_from_crm(crm: CRM, contact_id: str) -> LeadContext:
    """The context of one contact as a CRM would send it to the API.

    Everything known is included, also what happened after any as_of: the kernel, not
    the caller, is responsible for looking only at the past.
    """
    contacts = crm.contacts
    match = contacts[contacts["contact_id"] == contact_id]
    if match.empty:
        raise KeyError(f"no contact {contact_id!r} in the export")
    contact = _records(match)[0]
    account_id = contact.get("account_id")
    tp = crm.touchpoints

    def touches(cid: str) -> list[dict[str, Any]]:
        return _records(tp[tp["contact_id"] == cid])

    account = None
    committee: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    opps = crm.opportunities
    if account_id is not None:
        account = _records(crm.accounts[crm.accounts["account_id"] == account_id])[0]
        others = contacts[
            (contacts["account_id"] == account_id) & (contacts["contact_id"] != contact_id)
        ]
        committee = [(c, touches(c["contact_id"])) for c in _records(others)]
        related = opps[(opps["account_id"] == account_id) | (opps["contact_id"] == contact_id)]
    else:
        related = opps[opps["contact_id"] == contact_id]
    return LeadContext(
        contact=contact,
        account=account,
        touchpoints=touches(contact_id),
        committee=committee,
        opportunities=_records(related),
    )


def lead_problems(lead: LeadContext, as_of: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """What in a lead's context breaks the data contract: (field path, message) each.

    The rules an export is held to, applied to one lead (`features.crm.records` has the
    shared words): the contact exists at as_of (a lead is not scored before it entered
    the CRM; an export's snapshot would not hold it either); the contact and its
    committee belong to the account sent; contact ids are unique; an opportunity is the
    account's (or has the contact as primary) and does not close before it opened. Values
    are never repeated in the messages. Timestamps are aware datetimes (the API's
    validation makes them so).
    """
    problems: list[tuple[tuple[str | int, ...], str]] = []
    contact = lead.contact
    created = contact.get("created_at")
    if created is not None and as_of is not None and created > as_of:
        problems.append(
            (("contact", "created_at"), "is after as_of; a lead is scored from when it exists")
        )
    account_id = lead.account.get("account_id") if lead.account is not None else None
    if account_id is not None and contact.get("account_id") not in (None, account_id):
        problems.append(
            (("contact", "account_id"), "differs from account.account_id; expected the same id")
        )
    problems += _touch_owner_problems(("touchpoints",), contact, lead.touchpoints)
    seen = {contact.get("contact_id")}
    for i, (member, touches) in enumerate(lead.committee):
        problems += _touch_owner_problems(("committee", i, "touchpoints"), member, touches)
        where: tuple[str | int, ...] = ("committee", i, "contact")
        if account_id is None:
            problems.append(
                (
                    (*where, "account_id"),
                    "a buying committee needs the lead's account; send account",
                )
            )
        elif member.get("account_id") not in (None, account_id):
            problems.append(
                ((*where, "account_id"), "differs from account.account_id; expected the same id")
            )
        if member.get("contact_id") in seen:
            problems.append(
                (
                    (*where, "contact_id"),
                    "repeats a contact_id; expected every contact to be unique",
                )
            )
        seen.add(member.get("contact_id"))
    for i, opportunity in enumerate(lead.opportunities):
        own = account_id is not None and opportunity.get("account_id") == account_id
        if not own and opportunity.get("contact_id") != contact.get("contact_id"):
            problems.append(
                (
                    ("opportunities", i, "account_id"),
                    "names neither the lead's account nor the contact as primary; "
                    "expected a deal of account.account_id",
                )
            )
        for field, message in opportunity_problems(opportunity):
            problems.append((("opportunities", i, field), message))
    return problems


def _touch_owner_problems(
    where: tuple[str | int, ...], contact: Mapping[str, Any], touches: Sequence[Mapping[str, Any]]
) -> list[tuple[tuple[str | int, ...], str]]:
    """A touchpoint that names a contact names the one it is listed under."""
    owner = contact.get("contact_id")
    return [
        ((*where, j, "contact_id"), "differs from the contact it is listed under")
        for j, touch in enumerate(touches)
        if touch.get("contact_id") not in (None, owner)
    ]
