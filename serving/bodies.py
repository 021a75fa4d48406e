"""Request bodies in: the content type, the JSON, and each lead validated on its own.

The JSON is parsed once by pydantic-core, then validated as Python objects. For a batch
that is lead by lead, so one bad lead is one `LeadFailure` and the others are scored.
Limits are enforced as early as they can be: a batch longer than the limit is refused
by its length before any lead is validated, a lead with more touchpoints than allowed
fails on the list's length. Large bodies are parsed off the event loop (see the routes):
validation lead by lead lets the loop's thread take the interpreter back between leads,
so health checks keep answering while a big batch is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pydantic_core
from fastapi import HTTPException, Request
from pydantic import BaseModel, ValidationError

from serving.errors import field_error, pydantic_errors
from serving.schemas import BatchRequest, ScoreRequest

#: bodies above this many bytes are parsed and scored in the thread pool
LARGE_BODY = 64_000
JSON_TYPES = ("application/json",)


@dataclass(frozen=True)
class ParsedLead:
    """A lead of a batch: its request, or its field errors (and its contact_id if readable)."""

    request: ScoreRequest | None
    errors: list[dict[str, Any]]
    contact_id: str | None = None


class BodyError(Exception):
    """The body cannot be used at all: a 422 with these field errors."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} field errors")
        self.errors = errors


def require_json(request: Request) -> None:
    """415 unless the body is declared as JSON (`application/json`, or a `+json` type)."""
    declared = request.headers.get("content-type", "")
    media = declared.split(";")[0].strip().lower()
    if media not in JSON_TYPES and not media.endswith("+json"):
        raise HTTPException(
            status_code=415,
            detail="send the body as JSON with the header Content-Type: application/json",
        )


def parse_json(body: bytes) -> Any:
    """The body as JSON values, or a `BodyError` that says it is not JSON (without it)."""
    try:
        return pydantic_core.from_json(body)
    except ValueError:
        # (the parser's message quotes the body around the error: never echo it)
        raise BodyError(
            [field_error(("body",), "the body is not valid JSON", "json_invalid")]
        ) from None


def _validate(model: type[BaseModel], data: Any, prefix: tuple[str | int, ...]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BodyError(pydantic_errors(exc, model, prefix)) from None


def parse_lead(body: bytes) -> ScoreRequest:
    """One lead's request, or a `BodyError` naming every field at fault.

    A typical lead is validated by pydantic-core straight from the JSON bytes (half the
    time of parsing, then validating Python objects); a large body is parsed first, so
    that a list over its limit fails on its length before its items are read. The same
    validators run either way.
    """
    if len(body) > LARGE_BODY:
        request: ScoreRequest = _validate(ScoreRequest, parse_json(body), ("body",))
        return request
    try:
        return ScoreRequest.model_validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors(include_url=False)):
            raise BodyError(
                [field_error(("body",), "the body is not valid JSON", "json_invalid")]
            ) from None
        raise BodyError(pydantic_errors(exc, ScoreRequest, ("body",))) from None


def parse_batch(body: bytes, max_batch: int) -> list[ParsedLead]:
    """Each lead of a batch: its request, or its field errors (under body.leads.i).

    The envelope itself (an object with `leads`, a list of 1 to ``max_batch`` items, no
    other field) must be right, else the whole body is refused.
    """
    data = parse_json(body)
    if not isinstance(data, dict):
        raise BodyError(
            [field_error(("body",), "expected an object with leads: [...]", "model_type")]
        )
    extra = sorted(set(data) - {"leads"})
    if extra:
        raise BodyError(
            [
                field_error(
                    ("body", name),
                    f"unknown field {name!r}; expected leads",
                    "extra_forbidden",
                )
                for name in extra
            ]
        )
    leads = data.get("leads")
    if not isinstance(leads, list) or not leads:
        raise BodyError(
            [field_error(("body", "leads"), "expected a list of at least 1 lead", "list_type")]
        )
    if len(leads) > max_batch:
        raise BodyError(
            [
                field_error(
                    ("body", "leads"),
                    f"at most {max_batch} leads per batch, got {len(leads)}",
                    "too_long",
                )
            ]
        )
    out: list[ParsedLead] = []
    for i, lead in enumerate(leads):
        try:
            out.append(ParsedLead(_validate(ScoreRequest, lead, ("body", "leads", i)), []))
        except BodyError as exc:
            out.append(ParsedLead(None, exc.errors, contact_id_of(lead)))
    return out


def contact_id_of(raw: Any) -> str | None:
    """The contact_id of a lead that failed validation, when it can be read (to help a CRM)."""
    contact = raw.get("contact") if isinstance(raw, dict) else None
    value = contact.get("contact_id") if isinstance(contact, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 200 else None


__all__ = ["BatchRequest", "BodyError", "parse_batch", "parse_lead", "require_json"]
