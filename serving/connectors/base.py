"""What every delivery format shares: the message it reads, the request it makes."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from serving.webhooks.targets import Target


class ConnectorError(RuntimeError):
    """A connector that cannot make its request (a missing credential, a bad config):
    the attempt fails and is retried, and the log says why."""


@dataclass(frozen=True)
class Message:
    """An outbox message as the dispatcher hands it to a format."""

    message_id: int
    msg_id: str
    event_type: str
    lead_key: str
    body: str  # the event as JSON: {"type", "timestamp", "data"}

    @cached_property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)
        return event

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.event["data"]
        return data


@dataclass(frozen=True)
class Outbound:
    """One HTTP request, and the messages it delivers (several: a batch update)."""

    method: str
    url: str
    content: bytes
    message_ids: tuple[int, ...]
    headers: dict[str, str] = field(default_factory=dict)


class Format(Protocol):
    #: messages one request may carry (1: a request each)
    batch_size: int

    def requests(self, target: Target, messages: Sequence[Message]) -> list[Outbound]:
        """The requests that deliver `messages` (a message none of them carries is
        delivered by having nothing to say, e.g. an event the CRM has no field for)."""
        ...

    def failure(self, status: int, body: bytes) -> str | None:
        """Why an answer is not a delivery (None: delivered)."""
        ...


def http_failure(status: int) -> str | None:
    return None if 200 <= status < 300 else f"HTTP {status}"


def score_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The values every CRM field mapping picks from (names as in connectors.yaml)."""
    reasons = data.get("reasons") or []
    said = [f"{r['label']} ({'+' if r['contribution'] >= 0 else '-'})" for r in reasons]
    return {
        "probability": round(float(data["probability"]), 4),
        "points": None if data["points"] is None else round(float(data["points"]), 2),
        "grade": data["grade"],
        "mql": bool(data["mql"]),
        "scored_at": data["scored_at"],
        "model_version": data["model"]["version"],
        "reasons": "; ".join(said),
    }


def text_of(value: Any) -> str | None:
    """A CRM's cell as trimmed text (None: empty, missing, or not a single value)."""
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def moment_of(value: Any) -> str | None:
    """A CRM's ISO 8601 timestamp with an offset, as UTC text (None: none or unreadable)."""
    text = text_of(value)
    if text is None:
        return None
    try:
        return dt.datetime.fromisoformat(text).astimezone(dt.UTC).isoformat()
    except ValueError:
        return None
