"""Bitrix24: scores into a lead's `UF_CRM_*` fields, and the CRM's lead events in.

Out: `crm.lead.update` through an inbound webhook URL (`https://yours.bitrix24.ru/rest/
{user}/{code}/`), the body as Bitrix24's documentation shows it: `{"id", "fields",
"params"}`; the lead's id is the contact id without the connector's prefix (`b24-lead-`).
Bitrix24 answers 200 with `{"result": true}`, or an `error` with its description.

In: Bitrix24 posts `ONCRMLEADADD` / `ONCRMLEADUPDATE` form-encoded (PHP brackets:
`data[FIELDS][ID]=…&auth[application_token]=…`), carrying only the lead's id and no
signature: the `application_token` is compared with the one Bitrix24 showed when the
handler was set up. The lead is then read with `crm.lead.get` and mapped to the data
contract (`lead_records`).

Loop guard: our own `crm.lead.update` makes Bitrix24 send `ONCRMLEADUPDATE`. The mapping
reads none of the fields we write, so the lead maps to the records already stored: the
intake counts them as duplicates and nothing is rescored or sent again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import parse_qsl

from serving.connectors.base import (
    ConnectorError,
    Message,
    Outbound,
    http_failure,
    moment_of,
    score_fields,
    text_of,
)
from serving.connectors.config import credential
from serving.webhooks.targets import Target

#: Bitrix24's lead sources (SOURCE_ID) -> the contract's lead_source
SOURCES: Final = {
    "CALL": "inbound_call",
    "EMAIL": "email",
    "WEB": "web_form",
    "WEBFORM": "web_form",
    "CALLBACK": "web_form",
    "ADVERTISING": "paid_ads",
    "PARTNER": "partner",
    "RECOMMENDATION": "referral",
    "TRADE_SHOW": "event",
    "RC_GENERATOR": "outbound",
    "STORE": "store",
    "OTHER": "other",
}
#: how a lead came in (SOURCE_ID) -> the touchpoint its creation is (a web form can be
#: anything from a newsletter to a demo request, and the lead does not say which form:
#: `other` unless the connector's `touchpoint_types` option says better)
TOUCHPOINT_TYPES: Final = {
    "CALL": "contact_sales",
    "EMAIL": "contact_sales",
    "CALLBACK": "contact_sales",
    "TRADE_SHOW": "event_attendance",
    "ADVERTISING": "ad_click",
}
#: utm_medium -> the contract's channel
MEDIUMS: Final = {
    "cpc": "paid_search",
    "ppc": "paid_search",
    "paid": "paid_search",
    "email": "email",
    "social": "social",
    "organic": "organic",
    "referral": "referral",
}
LEAD_EVENTS: Final = ("ONCRMLEADADD", "ONCRMLEADUPDATE")


def _value(name: str, value: Any) -> Any:
    if name == "mql":
        return "Y" if value else "N"  # a Bitrix24 yes/no field
    if name == "probability":
        return round(value * 100, 1)  # percent: what a CRM user reads
    return value


class Bitrix24:
    batch_size = 1

    def requests(self, target: Target, messages: Sequence[Message]) -> list[Outbound]:
        config = target.config
        base = credential(config, "url").rstrip("/") + "/"
        prefix = config.get("prefix", "")
        out = []
        for message in messages:
            lead_id = message.lead_key[len(prefix) :]
            if not lead_id.isdigit():
                raise ConnectorError(
                    f"{message.lead_key!r} is not a Bitrix24 lead id after {prefix!r}"
                )
            values = score_fields(message.data)
            fields = {field: _value(name, values[name]) for name, field in config["fields"].items()}
            body = {"id": int(lead_id), "fields": fields, "params": {"REGISTER_SONET_EVENT": "N"}}
            out.append(
                Outbound(
                    "POST",
                    base + "crm.lead.update.json",
                    json.dumps(body, ensure_ascii=False).encode(),
                    (message.message_id,),
                    {"content-type": "application/json"},
                )
            )
        return out

    def failure(self, status: int, body: bytes) -> str | None:
        try:
            answer = json.loads(body or b"{}")
        except ValueError:
            answer = {}
        if isinstance(answer, dict) and answer.get("error"):
            return f"HTTP {status}: Bitrix24 error {str(answer['error'])[:80]}"
        return http_failure(status)


# --- in ---------------------------------------------------------------------------------


def parse_form(body: bytes) -> dict[str, Any]:
    """A PHP-style form body (`a[b][c]=v`) as nested dicts, as Bitrix24 sends events."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        head, _, rest = key.partition("[")
        path = [head] + ([p.rstrip("]") for p in ("[" + rest).split("[")[1:]] if rest else [])
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
    return out


def lead_get(config: dict[str, Any], lead_id: str, client: Any) -> dict[str, Any]:
    """The lead's fields by `crm.lead.get` (ConnectorError when Bitrix24 says no)."""
    base = credential(config, "url").rstrip("/") + "/"
    try:
        response = client.post(base + "crm.lead.get.json", json={"ID": int(lead_id)})
    except Exception as exc:
        raise ConnectorError(f"Bitrix24 crm.lead.get failed: {type(exc).__name__}") from None
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code != 200 or not isinstance(answer.get("result"), dict):
        error = answer.get("error") if isinstance(answer, dict) else None
        raise ConnectorError(
            f"Bitrix24 crm.lead.get answered HTTP {response.status_code} {error or ''}".strip()
        )
    result: dict[str, Any] = answer["result"]
    return result


def _first_value(items: Any) -> str | None:
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and text_of(item.get("VALUE")):
                return text_of(item["VALUE"])
    return None


def lead_records(
    lead: dict[str, Any], config: dict[str, Any], lead_id: str
) -> dict[str, list[dict[str, Any]]]:
    """A Bitrix24 lead as the contract's records: the contact (position, source, e-mail,
    created), its company as an account, and the lead's arrival as a touchpoint (its type
    from the source, its channel from utm_medium). What we write back
    (UF_CRM_*) is not read: see the loop guard in the module."""
    options = config.get("options", {})
    prefix = config.get("prefix", "b24-lead-")
    # (the id asked for: the event's, whatever the answer echoes)
    source = (text_of(lead.get("SOURCE_ID")) or "").upper()
    sources = {**SOURCES, **options.get("sources", {})}
    types = {**TOUCHPOINT_TYPES, **options.get("touchpoint_types", {})}
    created = moment_of(lead.get("DATE_CREATE"))
    contact: dict[str, Any] = {
        "contact_id": prefix + lead_id,
        "created_at": created,
        "job_title": text_of(lead.get("POST")),
        "lead_source": sources.get(source, source.lower() or None),
        "email": _first_value(lead.get("EMAIL")),
    }
    records: dict[str, list[dict[str, Any]]] = {"accounts": [], "contacts": [], "touchpoints": []}
    company_id = text_of(lead.get("COMPANY_ID"))
    company_title = text_of(lead.get("COMPANY_TITLE"))
    account_id = None
    if company_id and company_id != "0":
        account_id = f"b24-company-{company_id}"
    elif company_title:  # a company typed on the lead: the same title is the same account
        digest = hashlib.sha256(company_title.casefold().encode()).hexdigest()[:16]
        account_id = f"b24-company-title-{digest}"
    if account_id is not None:
        records["accounts"].append({"account_id": account_id})
        contact["account_id"] = account_id
    records["contacts"].append({k: v for k, v in contact.items() if v is not None})
    if created is not None:
        medium = (text_of(lead.get("UTM_MEDIUM")) or "").lower()
        records["touchpoints"].append(
            {
                "touchpoint_id": f"{prefix}{lead_id}-created",
                "contact_id": prefix + lead_id,
                "occurred_at": created,
                "type": types.get(source, "other"),
                "channel": MEDIUMS.get(medium, medium or "direct"),
            }
        )
    return records
