"""Segment-spec messages into the data contract's records.

Segment (and RudderStack, and anything that speaks the spec) sends `identify`, `group`,
`track` and `page` messages, one per request (a Webhooks destination) or many
(`{"batch": [...]}`). Each becomes records of the four tables, in the same shape as a
`POST /v1/events` body, and goes through the same checks and the same intake: this
module only translates. The mapping (event names and page paths to touchpoint types) is
`mapping.yaml` beside it, or the user's own (`LEADSCORE_SEGMENT_MAPPING`).

Who a message is about is its `userId` (a message with only an `anonymousId` is a
visitor, not a lead yet, and is refused with a reason). The touchpoint id is the
`messageId`, so Segment's retries are duplicates; a message without one gets a hash of
its content. When a contact or account the message names is not in the store, it is
created, with the message's timestamp as its created_at (`defaults`: values that only a
new record takes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from features.crm.records import parse_timestamp
from features.crm.taxonomy import TOUCHPOINT_TYPES

DEFAULT_MAPPING: Final = Path(__file__).with_name("mapping.yaml")
KINDS: Final = ("identify", "group", "track", "page")


def _key(name: str) -> str:
    """An event name as compared: no case, spaces, dashes or underscores."""
    return re.sub(r"[\s_\-]+", "", name).lower()


class Mapping_(BaseModel):
    """The mapping file, checked: every type is one of the taxonomy's."""

    model_config = ConfigDict(extra="forbid")

    track: dict[str, str] = Field(default_factory=dict)
    unmapped_track: str | None = "other"
    page: dict[str, str] = Field(default_factory=dict)
    other_page: str | None = "page_view"
    channels: dict[str, str] = Field(default_factory=dict)

    @field_validator("track", "page")
    @classmethod
    def _types(cls, value: dict[str, str]) -> dict[str, str]:
        for name, kind in value.items():
            if kind not in TOUCHPOINT_TYPES:
                raise ValueError(
                    f"{name!r} maps to {kind!r}, which is not a touchpoint type of the data "
                    f"contract (expected one of {', '.join(TOUCHPOINT_TYPES)})"
                )
        return value

    @field_validator("unmapped_track", "other_page")
    @classmethod
    def _type(cls, value: str | None) -> str | None:
        if value is not None and value not in TOUCHPOINT_TYPES:
            raise ValueError(f"{value!r} is not a touchpoint type of the data contract")
        return value

    def track_type(self, event: str) -> str | None:
        wanted = _key(event)
        for name, kind in self.track.items():
            if _key(name) == wanted:
                return kind
        return self.unmapped_track

    def page_type(self, path: str | None) -> str | None:
        path = (path or "/").lower()
        for prefix, kind in self.page.items():
            if path.startswith(prefix.lower()):
                return kind
        return self.other_page


class MappingError(ValueError):
    """The mapping file cannot be used (its path, and what is wrong)."""


def load_mapping(path: str | Path | None = None) -> Mapping_:
    """The defaults, with the user's file (if any) over them."""
    defaults = yaml.safe_load(DEFAULT_MAPPING.read_text(encoding="utf-8"))
    where = Path(path) if path else DEFAULT_MAPPING
    if path:
        try:
            mine = yaml.safe_load(where.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise MappingError(f"cannot read the Segment mapping {where}: {exc}") from None
        if not isinstance(mine, dict):
            raise MappingError(f"the Segment mapping {where} is not a YAML mapping of keys")
        defaults.update(mine)
    try:
        return Mapping_.model_validate(defaults)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise MappingError(f"the Segment mapping {where} is refused: {problems}") from None


# --- messages -----------------------------------------------------------------------


@dataclass
class Translated:
    """A `POST /v1/events` body made of messages, and where each record came from."""

    body: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"accounts": [], "contacts": [], "touchpoints": []}
    )
    #: (table, index in the body) -> values the record takes only when it is new
    defaults: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    #: (table, index in the body) -> fields not compared when the id is stored already
    #: (the moment of a message that gave none is when it first arrived)
    loose: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    #: (table, index in the body) -> the message's index
    source: dict[tuple[str, int], int] = field(default_factory=dict)
    #: (message index, message id or None, field, what is wrong)
    refused: list[tuple[int, str | None, str | None, str]] = field(default_factory=list)
    #: messages that asked for nothing to be stored (an unmapped track with null)
    ignored: int = 0

    def add(self, table: str, record: dict[str, Any], message: int, **defaults: Any) -> None:
        rows = self.body[table]
        self.source[(table, len(rows))] = message
        if defaults:
            self.defaults[(table, len(rows))] = defaults
        rows.append(record)


def messages_of(data: Any) -> list[Any] | None:
    """The messages of a body: one message, or a `{"batch": [...]}` (None: neither)."""
    if isinstance(data, Mapping) and isinstance(data.get("batch"), list):
        return list(data["batch"])
    if isinstance(data, Mapping) and "type" in data:
        return [data]
    return None


def translate(messages: list[Any], mapping: Mapping_, now: dt.datetime) -> Translated:
    out = Translated()
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            out.refused.append((index, None, None, "expected a message (a JSON object)"))
            continue
        message_id = _text(message.get("messageId"))
        kind = _text(message.get("type"))
        if kind not in KINDS:
            out.refused.append(
                (index, message_id, "type",
                 f"expected one of {', '.join(KINDS)} (other messages carry no lead data)")
            )  # fmt: skip
            continue
        user = _text(message.get("userId"))
        if user is None and kind == "group" and _text(message.get("groupId")) is not None:
            pass  # an account's traits, linked to no one yet
        elif user is None:
            out.refused.append(
                (index, message_id, "userId",
                 "required: a message with only an anonymousId is a visitor, not a lead; "
                 "send it again once identify has given the visitor a userId")
            )  # fmt: skip
            continue
        try:
            when, timed = _moment(message, now)
        except ValueError as exc:
            out.refused.append((index, message_id, "timestamp", str(exc)))
            continue
        context = _object(message, "context")
        traits = _traits(message, context)
        contact: dict[str, Any] = {"contact_id": user}
        group = _text(context.get("groupId")) or _company(traits)
        if kind == "identify":
            for trait, column in (("email", "email"), ("title", "job_title")):
                if _text(traits.get(trait)) is not None:
                    contact[column] = _text(traits.get(trait))
        if kind == "group":
            group = _text(message.get("groupId"))
            if group is None:
                out.refused.append((index, message_id, "groupId", "required for a group message"))
                continue
            out.add("accounts", {"account_id": group, **_account(traits)}, index)
        elif group is not None:
            out.add("accounts", {"account_id": group}, index)  # known, or created bare
        if user is None:
            continue
        if group is not None:
            contact["account_id"] = group
        out.add("contacts", contact, index, created_at=_created(traits, when))
        if kind in ("track", "page"):
            touch = _touchpoint(message, kind, context, mapping, user, when)
            if touch is None:
                out.ignored += 1
                continue
            out.add("touchpoints", touch, index)
            if not timed:  # a retry arrives later: the same message, not a changed one
                out.loose[("touchpoints", len(out.body["touchpoints"]) - 1)] = {"occurred_at"}
    return out


def _touchpoint(
    message: Mapping[str, Any],
    kind: str,
    context: Mapping[str, Any],
    mapping: Mapping_,
    user: str,
    when: dt.datetime,
) -> dict[str, Any] | None:
    properties = _object(message, "properties")
    if kind == "track":
        touch_type = mapping.track_type(_text(message.get("event")) or "")
    else:
        page = _object(context, "page")
        path = _text(properties.get("path")) or _text(page.get("path"))
        url = _text(properties.get("url")) or _text(page.get("url"))
        if path is None and url is not None:
            path = urlparse(url).path or "/"
        touch_type = mapping.page_type(path)
    if touch_type is None:
        return None
    campaign = _object(context, "campaign")
    medium = _text(campaign.get("medium"))
    channel = mapping.channels.get(medium.lower(), medium) if medium else None
    topic = _text(properties.get("topic"))
    return {
        "touchpoint_id": _text(message.get("messageId")) or _content_id(message),
        "contact_id": user,
        "occurred_at": when.isoformat(),
        "type": touch_type,
        "channel": channel,
        "topic": topic if topic in ("product", "general") else None,
    }


def _account(traits: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if _text(traits.get("industry")) is not None:
        out["industry"] = _text(traits.get("industry"))
    if traits.get("employees") is not None:
        out["employees"] = traits.get("employees")
    revenue = traits.get("annual_revenue", traits.get("annualRevenue", traits.get("revenue")))
    if revenue is not None:
        out["annual_revenue"] = revenue
    address = _object(traits, "address")
    if _text(address.get("country")) is not None:
        out["country"] = _text(address.get("country"))
    return out


def _traits(message: Mapping[str, Any], context: Mapping[str, Any]) -> Mapping[str, Any]:
    """The message's traits (RudderStack's webhooks put them under context.traits)."""
    for where in (message.get("traits"), context.get("traits")):
        if isinstance(where, Mapping) and where:
            return where
    return {}


def _company(traits: Mapping[str, Any]) -> str | None:
    company = traits.get("company")
    return _text(company.get("id")) if isinstance(company, Mapping) else None


def _created(traits: Mapping[str, Any], when: dt.datetime) -> str:
    """The createdAt trait when it is ISO 8601, else the message's moment."""
    value = traits.get("createdAt") or traits.get("created_at")
    if isinstance(value, str):
        try:
            return parse_timestamp(value).isoformat()
        except ValueError:
            pass  # e.g. "Thu Mar 24 2016 17:46:45 GMT+0000 (UTC)": not a contract timestamp
    return when.isoformat()


def _moment(message: Mapping[str, Any], now: dt.datetime) -> tuple[dt.datetime, bool]:
    """When it happened: timestamp, else originalTimestamp, sentAt, receivedAt, else now
    (and whether the message said)."""
    for name in ("timestamp", "originalTimestamp", "sentAt", "receivedAt"):
        value = message.get(name)
        if value is not None:
            return parse_timestamp(value), True
    return now, False


def _content_id(message: Mapping[str, Any]) -> str:
    raw = json.dumps(message, sort_keys=True, separators=(",", ":"), default=str)
    return "seg-" + hashlib.sha256(raw.encode()).hexdigest()[:32]


def _object(parent: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A nested object of a message, or an empty one when absent or not an object."""
    value = parent.get(name)
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, Mapping | list):
        return None
    text = str(value).strip()
    return text[:200] or None
