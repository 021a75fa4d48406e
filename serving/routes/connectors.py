"""POST /v1/connectors/{name}/events: a CRM's own events in (Bitrix24, HubSpot, Mautic).

A CRM cannot send our API key, so each connector checks the CRM's own proof instead:
Bitrix24's application token, HubSpot's v3 signature, Mautic's Webhook-Signature. A
request that fails it gets 401 and changes nothing. What passes is mapped to the data
contract's records (`serving.connectors.<crm>`) and goes through the intake every other
door uses (`apply_events`): the same checks, idempotency and rescoring.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool

from serving.bodies import BodyError, parse_json
from serving.connectors import bitrix24, hubspot, mautic
from serving.connectors.base import ConnectorError
from serving.connectors.config import ConnectorSpec, credential
from serving.dependencies import live_model, live_store, wake_dispatcher
from serving.errors import error_responses
from serving.routes.live import rescored_of
from serving.routes.scoring import as_json
from serving.schemas import ConnectorIntake, Rejected
from serving.state import LoadedModel
from serving.store.engine import Store
from serving.store.intake import parse_events
from serving.store.live import apply_events

logger = logging.getLogger(__name__)
router = APIRouter(tags=["connectors"])

StoreDep = Annotated[Store, Depends(live_store)]
ModelDep = Annotated[LoadedModel, Depends(live_model)]


def _intake_secret(spec: ConnectorSpec, config: dict[str, Any], key: str) -> str:
    try:
        return credential(config, key)
    except ConnectorError:
        raise HTTPException(
            status_code=503,
            detail=f"the {spec.kind} intake of connector {spec.name!r} is off: name the "
            f"environment variable of its {key} under env.{key} in the connectors file",
        ) from None


def _unauthorized(why: str) -> HTTPException:
    return HTTPException(status_code=401, detail=why)


@router.post(
    "/v1/connectors/{name}/events",
    response_model=ConnectorIntake,
    responses=error_responses(401, 404, 422, 502, 503),
)
async def connector_events(
    name: str, request: Request, store: StoreDep, model: ModelDep
) -> Response:
    """A CRM's event (see docs/integrations.md for the URL to paste into each CRM)."""
    specs: dict[str, ConnectorSpec] = request.app.state.connectors
    spec = specs.get(name)
    if spec is None:
        raise HTTPException(status_code=404, detail=f"no connector {name!r} in the connectors file")
    body = await request.body()
    config = spec.stored()
    if spec.kind == "bitrix24":
        translated = await run_in_threadpool(_bitrix24, spec, config, body, request)
    elif spec.kind == "hubspot":
        translated = _hubspot(spec, config, body, request)
    elif spec.kind == "mautic":
        translated = _mautic(spec, config, body, request)
    else:
        raise HTTPException(status_code=404, detail=f"{spec.kind} connectors take no events")
    event_name, records, defaults, ignored = translated
    limit = request.app.state.settings.max_events

    def work() -> ConnectorIntake:
        events = parse_events(records, limit * 3, defaults)
        applied = apply_events(store, events, model, dt.datetime.now(dt.UTC))
        outcome = applied.outcome
        wake_dispatcher(request)
        return ConnectorIntake(
            connector=name,
            event=event_name,
            accepted=outcome.accepted,
            duplicates=outcome.duplicates,
            ignored=ignored,
            rejected=[
                Rejected(table=x.table, index=x.index, id=x.id, field=x.field, msg=x.msg)  # type: ignore[arg-type]
                for x in sorted(outcome.rejected, key=lambda x: (x.table, x.index))
            ],
            rescored=rescored_of(applied, request.app.state.metrics),
        )

    return as_json(await run_in_threadpool(work))


Translated = tuple[str | None, dict[str, Any], dict[tuple[str, int], dict[str, Any]], int]


def _bitrix24(
    spec: ConnectorSpec, config: dict[str, Any], body: bytes, request: Request
) -> Translated:
    token = _intake_secret(spec, config, "application_token")
    form = bitrix24.parse_form(body)
    given = (
        form.get("auth", {}).get("application_token")
        if isinstance(form.get("auth"), dict)
        else None
    )
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), token.encode()):
        raise _unauthorized("auth[application_token] does not match the connector's token")
    event = str(form.get("event") or "").upper()
    fields = (form.get("data") or {}).get("FIELDS") if isinstance(form.get("data"), dict) else None
    lead_id = str((fields or {}).get("ID") or "")
    if event not in bitrix24.LEAD_EVENTS or not lead_id.isdigit():
        return event or None, {}, {}, 1
    client: httpx.Client = request.app.state.http_client
    try:
        lead = bitrix24.lead_get(config, lead_id, client)
    except ConnectorError as exc:
        logger.warning("bitrix24 connector %s: %s", spec.name, exc)
        raise HTTPException(status_code=502, detail=str(exc)) from None
    return event, bitrix24.lead_records(lead, config, lead_id), {}, 0


def _hubspot(
    spec: ConnectorSpec, config: dict[str, Any], body: bytes, request: Request
) -> Translated:
    secret = _intake_secret(spec, config, "client_secret")
    public = spec.options.get("public_url")
    uri = str(public).rstrip("/") + request.url.path if public else str(request.url)
    why = hubspot.verify_v3(
        secret,
        request.method,
        uri,
        body,
        request.headers.get("x-hubspot-signature-v3"),
        request.headers.get("x-hubspot-request-timestamp"),
    )
    if why is not None:
        raise _unauthorized(why)
    events = _json(body)
    if not isinstance(events, list):
        raise HTTPException(status_code=422, detail="expected HubSpot's JSON array of events")
    records, defaults, ignored = hubspot.event_records(events, config)
    return "hubspot", records, defaults, ignored


def _mautic(
    spec: ConnectorSpec, config: dict[str, Any], body: bytes, request: Request
) -> Translated:
    secret = _intake_secret(spec, config, "webhook_secret")
    why = mautic.verify(secret, body, request.headers.get("webhook-signature"))
    if why is not None:
        raise _unauthorized(why)
    mapping = request.app.state.segment_mapping
    page_type = mapping.page_type if mapping is not None else (lambda _path: None)
    data = _json(body)
    try:
        records, defaults, ignored = mautic.webhook_records(data, config, page_type)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    events = sorted(k for k in data if str(k).startswith("mautic."))
    return ",".join(events) or None, records, defaults, ignored


def _json(body: bytes) -> Any:
    """The body as JSON (a 422 with the field errors of `parse_json` when it is not)."""
    try:
        return parse_json(body)
    except BodyError as exc:
        raise HTTPException(status_code=422, detail=exc.errors) from None
