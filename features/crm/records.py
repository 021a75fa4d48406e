"""The contract's rules for records that arrive one at a time (the API, live events).

An export is checked table by table (`features.crm.validation`); a lead sent to the API
is a handful of records. Both must refuse the same things with the same words, so the
expectations live here and the export validator reads them too: a timestamp is ISO 8601
text, a closed deal has a `closed_at` that is not before its `created_at`.

Messages never repeat the value that was sent (it may be a name or an email); they say
which field is wrong and what was expected.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

from features.crm.contract import CONTACTS
from features.crm.taxonomy import CLOSED_STAGES

#: what a timestamp must look like (the contract's words, as the export validator says them)
TIMESTAMP_EXPECTED: Final = CONTACTS.column("created_at").expected
#: a deal cannot close before it was opened
CLOSE_AFTER_CREATE: Final = "closed_at >= created_at"
#: a closed deal says when it closed
CLOSED_NEEDS_CLOSED_AT: Final = (
    "a closed_at timestamp for every closed_won or closed_lost opportunity"
)


def parse_timestamp(value: Any) -> dt.datetime:
    """ISO 8601 text (or a datetime) as an aware datetime; no offset means UTC.

    Numbers are refused: an epoch in seconds, milliseconds or days cannot be told apart,
    and the export validator refuses them too. Raises ValueError with the contract's words.
    """
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"expected {TIMESTAMP_EXPECTED}") from None
    else:
        raise ValueError(f"expected {TIMESTAMP_EXPECTED}, not a {type(value).__name__}")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def opportunity_problems(opportunity: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for an opportunity that breaks the contract's date rules."""
    stage = str(opportunity.get("stage") or "").lower()
    created, closed = opportunity.get("created_at"), opportunity.get("closed_at")
    problems = []
    if stage in CLOSED_STAGES and closed is None:
        message = f"missing for a {stage} opportunity; expected {CLOSED_NEEDS_CLOSED_AT}"
        problems.append(("closed_at", message))
    if created is not None and closed is not None and closed < created:
        problems.append(("closed_at", f"is before created_at; expected {CLOSE_AFTER_CREATE}"))
    return problems
