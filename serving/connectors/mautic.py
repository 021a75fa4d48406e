"""Mautic: its webhooks in (form submits, page hits, e-mail opens, contact saves), and
the score written back into contact fields.

In: Mautic posts `{"mautic.<event>": [values...], "timestamp": ...}` (Mautic 1.x sent a
single value instead of a list; both are read), signed with `Webhook-Signature`:
base64(HMAC-SHA256(the webhook's secret, the raw body)). Form submits become touchpoints
typed by the form's name (a demo form is not a newsletter form: `FORM_TYPES`, or the
connector's `form_types` option), page hits by the page's path (the Segment door's
mapping), e-mail opens `email_open`; contact saves update the contact (position, e-mail,
company). Mautic's own points changes and deletes are ignored.

Out: `PATCH /api/contacts/{id}/edit` with the custom fields' aliases (HTTP basic auth of
an API user), as Mautic's REST API documents it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from typing import Any, Final
from urllib.parse import urlparse

from serving.connectors.base import (
    Message,
    Outbound,
    http_failure,
    moment_of,
    score_fields,
    text_of,
)
from serving.connectors.config import credential
from serving.webhooks.targets import Target

#: words of a form's name or alias -> the touchpoint a submit of it is (first match)
FORM_TYPES: Final = (
    ("demo", "demo_request"),
    ("trial", "trial_signup"),
    ("pricing", "contact_sales"),
    ("quote", "contact_sales"),
    ("contact", "contact_sales"),
    ("sales", "contact_sales"),
    ("webinar", "webinar_registration"),
    ("newsletter", "newsletter_signup"),
    ("subscribe", "newsletter_signup"),
    ("case", "case_study_download"),
    ("roi", "roi_calculator"),
    ("ebook", "content_download"),
    ("whitepaper", "content_download"),
    ("download", "content_download"),
    ("guide", "content_download"),
)
IGNORED: Final = (
    "mautic.lead_points_change",
    "mautic.lead_post_delete",
    "mautic.lead_channel_subscription_changed",
)


def signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(secret: str, body: bytes, given: str | None) -> str | None:
    """Why the body is not Mautic's (None: it is)."""
    if not given:
        return "missing Webhook-Signature"
    if not hmac.compare_digest(signature(secret, body).encode(), given.strip().encode()):
        return "the signature does not match"
    return None


class Mautic:
    batch_size = 1

    def requests(self, target: Target, messages: Sequence[Message]) -> list[Outbound]:
        config = target.config
        base = credential(config, "url").rstrip("/")
        user, password = credential(config, "user"), credential(config, "password")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        prefix = config.get("prefix", "")
        out = []
        for message in messages:
            values = score_fields(message.data)
            body = {}
            for name, alias in config["fields"].items():
                value = values[name]
                body[alias] = round(value * 100, 1) if name == "probability" else value
            contact = message.lead_key[len(prefix) :]
            out.append(
                Outbound(
                    "PATCH",
                    f"{base}/api/contacts/{contact}/edit",
                    json.dumps(body).encode(),
                    (message.message_id,),
                    {"authorization": "Basic " + token, "content-type": "application/json"},
                )
            )
        return out

    def failure(self, status: int, body: bytes) -> str | None:
        return http_failure(status)


# --- in ---------------------------------------------------------------------------------


def _field(person: dict[str, Any], alias: str) -> Any:
    fields = person.get("fields")
    if not isinstance(fields, dict):
        return None
    flat = fields.get("all")
    if isinstance(flat, dict) and alias in flat:
        return flat[alias]
    for group in fields.values():
        if isinstance(group, dict) and isinstance(group.get(alias), dict):
            return group[alias].get("value")
    return None


def form_type(form: dict[str, Any], overrides: dict[str, str]) -> str:
    name = f"{form.get('name') or ''} {form.get('alias') or ''}".casefold()
    for word, kind in (*overrides.items(), *FORM_TYPES):
        if word.casefold() in name:
            return kind
    return "other"


class Records:
    """Contract records gathered from one body (contacts by id, in order)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.accounts: dict[str, dict[str, Any]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.defaults: dict[str, dict[str, Any]] = {}
        self.touchpoints: list[dict[str, Any]] = []

    def person(self, person: Any, moment: str | None) -> str | None:
        if not isinstance(person, dict) or person.get("id") is None:
            return None
        contact_id = f"{self.prefix}{person['id']}"
        record = self.contacts.setdefault(contact_id, {"contact_id": contact_id})
        for alias, name in (("position", "job_title"), ("email", "email")):
            value = text_of(_field(person, alias))
            if value is not None:
                record[name] = value
        company = text_of(_field(person, "company"))
        if company is not None:
            digest = hashlib.sha256(company.casefold().encode()).hexdigest()[:16]
            account_id = f"mautic-company-{digest}"
            self.accounts[account_id] = {"account_id": account_id}
            record["account_id"] = account_id
        created = moment_of(person.get("dateAdded")) or moment_of(person.get("dateIdentified"))
        if created or moment:
            self.defaults.setdefault(contact_id, {"created_at": created or moment})
        return contact_id

    def body(self) -> tuple[dict[str, Any], dict[tuple[str, int], dict[str, Any]]]:
        contacts = list(self.contacts.values())
        defaults = {
            ("contacts", i): self.defaults[c["contact_id"]]
            for i, c in enumerate(contacts)
            if c["contact_id"] in self.defaults
        }
        body = {
            "accounts": list(self.accounts.values()),
            "contacts": contacts,
            "touchpoints": self.touchpoints,
        }
        return body, defaults


def webhook_records(
    data: Any, config: dict[str, Any], page_type: Callable[[str | None], str | None]
) -> tuple[dict[str, Any], dict[tuple[str, int], dict[str, Any]], int]:
    """A Mautic webhook body as contract records, the values new contacts take, and the
    number of event values dropped (ignored events, values without a contact)."""
    if not isinstance(data, dict):
        raise ValueError('expected an object of Mautic events: {"mautic.<event>": [...]}')
    options = config.get("options", {})
    records = Records(config.get("prefix", "mautic-"))
    dropped = 0
    for name, values in data.items():
        if not name.startswith("mautic."):
            continue
        items = values if isinstance(values, list) else [values]
        for value in items:
            if name in IGNORED or not isinstance(value, dict):
                dropped += 1
                continue
            if not _one(name, value, records, options, page_type):
                dropped += 1
    body, defaults = records.body()
    return body, defaults, dropped


def _one(  # noqa: PLR0911 (a return per event kind and per missing part)
    name: str,
    value: dict[str, Any],
    records: Records,
    options: dict[str, Any],
    page_type: Callable[[str | None], str | None],
) -> bool:
    if name == "mautic.form_on_submit":
        sub = value.get("submission") or {}
        moment = moment_of(sub.get("dateSubmitted"))
        contact = records.person(sub.get("lead") or sub.get("contact"), moment)
        if contact is None or moment is None or sub.get("id") is None:
            return False
        kind = form_type(sub.get("form") or {}, options.get("form_types", {}))
        records.touchpoints.append(_touch(f"form-{sub['id']}", contact, moment, kind, "direct"))
        return True
    if name == "mautic.page_on_hit":
        hit = value.get("hit") or {}
        moment = moment_of(hit.get("dateHit"))
        contact = records.person(hit.get("lead") or hit.get("contact"), moment)
        if contact is None or moment is None:
            return False
        url = text_of(hit.get("url"))
        path = urlparse(url).path if url else None
        kind = page_type(path) or "page_view"
        key = hashlib.sha256(f"{contact}|{moment}|{url}".encode()).hexdigest()[:24]
        records.touchpoints.append(_touch(f"hit-{key}", contact, moment, kind, "organic"))
        return True
    if name == "mautic.email_on_open":
        stat = value.get("stat") or {}
        moment = moment_of(stat.get("dateRead")) or moment_of(stat.get("lastOpened"))
        contact = records.person(stat.get("lead") or stat.get("contact"), moment)
        if contact is None or moment is None or stat.get("id") is None:
            return False
        records.touchpoints.append(
            _touch(f"open-{stat['id']}", contact, moment, "email_open", "email")
        )
        return True
    if name in ("mautic.lead_post_save_new", "mautic.lead_post_save_update"):
        person = value.get("contact") or value.get("lead")
        return records.person(person, moment_of(value.get("timestamp"))) is not None
    return False


def _touch(key: str, contact: str, moment: str, kind: str, channel: str) -> dict[str, Any]:
    return {
        "touchpoint_id": f"mautic-{key}",
        "contact_id": contact,
        "occurred_at": moment,
        "type": kind,
        "channel": channel,
    }
