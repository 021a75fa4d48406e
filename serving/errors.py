"""How the API says no: a 4xx that names the field and what was expected, and nothing else.

A 422 lists field errors as FastAPI does (`{"detail": [{"loc", "msg", "type"}]}`), with
two differences that matter to a CRM and to whoever reads the server's logs: an error
never carries the value that was sent (`input`, `ctx`): a name, an email or a job title
must not come back in a body or land in a log; and a number that JSON can carry but
JSON cannot answer with (NaN, Infinity) can no longer turn a 422 into a 500. An unknown
field names the closest field the model knows, so a typo (`touchpoint`) is easy to fix.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

Loc = tuple[str | int, ...]


def field_error(loc: Iterable[str | int], msg: str, type_: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": type_}


#: field errors listed per lead (a body with a mistake in every touchpoint would list
#: thousands); the count of the rest is the last entry
MAX_ERRORS = 50


def pydantic_errors(
    exc: ValidationError, model: type[BaseModel], prefix: Loc = ("body",)
) -> list[dict[str, Any]]:
    """A pydantic error's items as field errors under ``prefix``, without their inputs."""
    out = []
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    for error in errors[:MAX_ERRORS]:
        loc = tuple(error["loc"])
        msg = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
            msg = unknown_field_message(model, loc)
        out.append(field_error((*prefix, *loc), msg, error["type"]))
    if len(errors) > MAX_ERRORS:
        more = f"and {len(errors) - MAX_ERRORS:,} more errors like these"
        out.append(field_error(prefix, more, "too_many_errors"))
    return out


def unknown_field_message(model: type[BaseModel], loc: Loc) -> str:
    """'unknown field 'touchpoint'; did you mean 'touchpoints'?' for an extra field at loc."""
    name = str(loc[-1])
    known = sorted(_fields_at(model, loc[:-1]))
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; expected one of {', '.join(known)}"
    return f"unknown field {name!r}{hint}"


def _fields_at(model: type[BaseModel], path: Sequence[str | int]) -> set[str]:
    """The field names of the model found by following ``path`` from ``model``."""
    current: type[BaseModel] = model
    for part in path:
        if isinstance(part, int):  # an item of a list: the list's model is already current
            continue
        field = current.model_fields.get(part)
        inner = _model_in(field.annotation) if field is not None else None
        if inner is None:
            return set()
        current = inner
    return set(current.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as `list[Touchpoint] | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_in(typing.get_args(annotation)[0])
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def unprocessable(errors: Sequence[Mapping[str, Any]]) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": [dict(e) for e in errors]})


async def request_validation_handler(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own validation errors (query and path parameters), without their inputs."""
    assert isinstance(exc, RequestValidationError)
    return unprocessable(
        [
            field_error(e.get("loc", ()), str(e.get("msg", "")), str(e.get("type", "")))
            for e in exc.errors()
        ]
    )


_ERROR_TEXT = {
    401: "no API key, or an unknown one (header X-API-Key)",
    403: "the route is closed with the keys configured (admin routes need LEADSCORE_ADMIN_KEYS)",
    408: "the body did not arrive in time (LEADSCORE_BODY_TIMEOUT_SECONDS)",
    413: "the body is larger than the limit (LEADSCORE_MAX_BODY_BYTES)",
    415: "the body is not declared as JSON (Content-Type: application/json)",
    422: "invalid input: each error names its field (`loc`) and what was expected",
    404: "no such contact, account or webhook in the live store",
    409: "the action conflicts with how the thing is configured (the message says where)",
    502: "the CRM did not answer our call (e.g. Bitrix24's crm.lead.get); it may retry",
    503: "no model is loaded, or the live store is not ready (see /readyz)",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, all with the `ErrorBody` shape."""
    from serving.schemas import ErrorBody

    return {code: {"model": ErrorBody, "description": _ERROR_TEXT[code]} for code in codes}
