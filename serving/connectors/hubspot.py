"""HubSpot: scores into contact properties, and HubSpot's contact webhooks in.

Out: `PATCH /crm/v3/objects/contacts/{id}` with `{"properties": {...}}` for one contact,
`POST /crm/v3/objects/contacts/batch/update` with `{"inputs": [{"id", "properties"}]}`
(up to 100) when a round holds several (a rescoring run), with a private app's token.
HubSpot takes property values as strings.

In: HubSpot posts a JSON array of events, signed with `X-HubSpot-Signature-v3`:
base64(HMAC-SHA256(app secret, method + URI + body + timestamp)) and
`X-HubSpot-Request-Timestamp` (ms; older than 5 minutes is refused). The URI is the one
HubSpot called: behind a proxy, set the connector's `public_url` option.
`contact.creation` makes a contact; `contact.propertyChange` of a mapped property
(`jobtitle`, `company`...) updates it. Changes of the properties we write are dropped
(the loop guard), whoever made them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from typing import Any, Final

from serving.connectors.base import Message, Outbound, http_failure, score_fields
from serving.connectors.config import credential
from serving.webhooks.targets import Target

BASE_URL: Final = "https://api.hubapi.com"
BATCH: Final = 100
#: seconds a signed request stays valid (HubSpot's SDK: MAX_ALLOWED_TIMESTAMP)
MAX_AGE_SECONDS: Final = 300
#: HubSpot contact property -> the contract's contact field
PROPERTIES: Final = {
    "jobtitle": "job_title",
    "email": "email",
    "hs_analytics_source": "lead_source",
}


def _properties(message: Message, fields: dict[str, str]) -> dict[str, str]:
    values = score_fields(message.data)
    out = {}
    for name, prop in fields.items():
        value = values[name]
        if name == "probability":
            value = round(value * 100, 1)
        out[prop] = "" if value is None else str(value).lower() if name == "mql" else str(value)
    return out


class HubSpot:
    batch_size = BATCH

    def requests(self, target: Target, messages: Sequence[Message]) -> list[Outbound]:
        config = target.config
        base = str(config.get("options", {}).get("base_url", BASE_URL)).rstrip("/")
        prefix = config.get("prefix", "")
        headers = {
            "authorization": "Bearer " + credential(config, "token"),
            "content-type": "application/json",
        }
        items = [(m, m.lead_key[len(prefix) :]) for m in messages]
        if len(items) == 1:
            message, object_id = items[0]
            one: dict[str, Any] = {"properties": _properties(message, config["fields"])}
            return [
                Outbound(
                    "PATCH",
                    f"{base}/crm/v3/objects/contacts/{object_id}",
                    json.dumps(one).encode(),
                    (message.message_id,),
                    headers,
                )
            ]
        body: dict[str, Any] = {
            "inputs": [
                {"id": object_id, "properties": _properties(m, config["fields"])}
                for m, object_id in items
            ]
        }
        return [
            Outbound(
                "POST",
                f"{base}/crm/v3/objects/contacts/batch/update",
                json.dumps(body).encode(),
                tuple(m.message_id for m, _ in items),
                headers,
            )
        ]

    def failure(self, status: int, body: bytes) -> str | None:
        if status == 207:  # some inputs failed: the whole batch again (writes are idempotent)
            return "HTTP 207: HubSpot took part of the batch"
        return http_failure(status)


# --- in ---------------------------------------------------------------------------------


def signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    signed = method.encode() + uri.encode() + body + timestamp.encode()
    mac = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def verify_v3(
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: float | None = None,
) -> str | None:
    """Why the request is not HubSpot's (None: it is)."""
    if not signature or not timestamp:
        return "missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp"
    if not timestamp.isdigit():
        return "X-HubSpot-Request-Timestamp is not milliseconds"
    clock = time.time() if now is None else now
    if abs(clock - int(timestamp) / 1000) > MAX_AGE_SECONDS:
        return "X-HubSpot-Request-Timestamp is more than 5 minutes away (a replay?)"
    expected = signature_v3(secret, method, uri, body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return "the signature does not match"
    return None


def event_records(
    events: list[Any], config: dict[str, Any]
) -> tuple[dict[str, list[dict[str, Any]]], dict[tuple[str, int], dict[str, Any]], int]:
    """HubSpot's events as contract records, the values a contact takes when it is new
    (created when the event occurred), and how many events were dropped (not about a
    contact, a property we do not read, or one of our own)."""
    prefix = config.get("prefix", "hubspot-")
    written = set(config.get("fields", {}).values())
    contacts: list[dict[str, Any]] = []
    defaults: dict[tuple[str, int], dict[str, Any]] = {}
    dropped = 0
    for event in events:
        if not isinstance(event, dict):
            dropped += 1
            continue
        kind = event.get("subscriptionType") or event.get("eventType")
        object_id = event.get("objectId")
        if object_id is None or not str(kind).startswith("contact."):
            dropped += 1
            continue
        contact_id = f"{prefix}{object_id}"
        occurred = event.get("occurredAt")
        created = (
            dt.datetime.fromtimestamp(occurred / 1000, dt.UTC).isoformat()
            if isinstance(occurred, int | float) and not isinstance(occurred, bool)
            else None
        )
        if created is not None:
            defaults[("contacts", len(contacts))] = {"created_at": created}
        if kind == "contact.creation":
            contacts.append({"contact_id": contact_id})
        elif kind == "contact.propertyChange":
            prop = event.get("propertyName")
            if prop in written or prop not in PROPERTIES:
                dropped += 1  # (our own write-back coming round: the loop guard)
                continue
            value = event.get("propertyValue")
            contacts.append({"contact_id": contact_id, PROPERTIES[prop]: value or None})
        else:
            defaults.pop(("contacts", len(contacts)), None)
            dropped += 1
    return {"contacts": contacts}, defaults, dropped
