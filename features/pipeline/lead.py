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

import pandas as pd

from features.crm.load import CRM


@dataclass(frozen=True)
class LeadContext:
    """One lead and what is known around it (timestamps: ISO 8601 text or datetimes)."""

    contact: Mapping[str, Any]
    account: Mapping[str, Any] | None = None
    touchpoints: Sequence[Mapping[str, Any]] = ()
    committee: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]] = ()
    opportunities: Sequence[Mapping[str, Any]] = ()


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
