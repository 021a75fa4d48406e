"""Admin routes of the webhooks: subscribe, list, remove, see deliveries, redeliver.

Subscriptions and connectors share the outbox and its log, so an admin sees a Bitrix24
write-back and a Standard Webhooks POST the same way. All of these need an admin key.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool

from serving.dependencies import live_store, require_admin, wake_dispatcher
from serving.errors import error_responses
from serving.schemas import (
    Deliveries,
    Delivery,
    DeliveryAttempt,
    Redeliver,
    Redelivered,
    Webhook,
    WebhookCreate,
    WebhookList,
)
from serving.store.engine import Store
from serving.store.intake import from_us
from serving.store.outbox import MODEL_KEY
from serving.webhooks import dispatch, signing, targets
from serving.webhooks.targets import Target

router = APIRouter(tags=["webhooks"], dependencies=[Depends(require_admin)])
StoreDep = Annotated[Store, Depends(live_store)]


def _webhook(target: Target, secret: str | None = None) -> Webhook:
    return Webhook(
        webhook_id=target.webhook_id,
        kind=target.kind,
        url=target.url,
        events=list(target.events),
        min_change=target.min_change,
        contact_prefix=target.contact_prefix,
        description=target.description,
        created_at=from_us(target.created_us),
        secret=secret,
    )


@router.post(
    "/v1/webhooks",
    status_code=201,
    response_model=Webhook,
    responses=error_responses(401, 403, 422, 503),
)
async def create_webhook(body: WebhookCreate, store: StoreDep) -> Webhook:
    """Subscribe a URL to events. Deliveries are signed per Standard Webhooks with the
    secret (shown in this answer only): verify them with the `standardwebhooks` library
    or Svix. The first message goes out with the next score change that matches."""
    secret = body.secret or signing.new_secret()
    try:
        signing.secret_key(secret)
    except ValueError as exc:
        raise HTTPException(
            status_code=422,
            detail=[{"loc": ["body", "secret"], "msg": str(exc), "type": "value_error"}],
        ) from None
    target = await run_in_threadpool(
        targets.create,
        store,
        str(body.url),
        list(body.events),
        body.min_change,
        secret,
        body.description,
    )
    return _webhook(target, secret)


@router.get("/v1/webhooks", response_model=WebhookList, responses=error_responses(401, 403, 503))
async def list_webhooks(store: StoreDep) -> WebhookList:
    """Every active target: subscriptions and the connectors of the connectors file."""
    found = await run_in_threadpool(targets.listed, store)
    return WebhookList(webhooks=[_webhook(t) for t in found])


@router.delete(
    "/v1/webhooks/{webhook_id}",
    responses=error_responses(401, 403, 404, 409, 503),
)
async def delete_webhook(webhook_id: str, store: StoreDep) -> dict[str, Any]:
    """Stop a subscription: its pending messages are cancelled; its log stays."""
    if webhook_id.startswith("conn_"):
        raise HTTPException(
            status_code=409,
            detail="a connector is removed from the connectors file (LEADSCORE_CONNECTORS)",
        )
    cancelled = await run_in_threadpool(targets.remove, store, webhook_id)
    if cancelled is None:
        raise HTTPException(status_code=404, detail="no such webhook")
    return {"webhook_id": webhook_id, "removed": True, "cancelled": cancelled}


async def _known(store: Store, webhook_id: str) -> Target:
    def find() -> Target | None:
        with store.read() as connection:
            return targets.get(connection, webhook_id)

    found = await run_in_threadpool(find)
    if found is None:
        raise HTTPException(status_code=404, detail="no such webhook")
    return found


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries",
    response_model=Deliveries,
    responses=error_responses(401, 403, 404, 503),
)
async def list_deliveries(
    webhook_id: str,
    store: StoreDep,
    status: Literal["pending", "delivered", "dead", "cancelled"] | None = None,
    before: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Deliveries:
    """A target's messages, newest first, each with every attempt (status code, error,
    time taken). Page with `before`."""
    await _known(store, webhook_id)

    def read() -> Deliveries:
        rows = dispatch.messages_of(store, webhook_id, status, before, limit)
        history = dispatch.attempts_of(store, [r["message_id"] for r in rows])
        items = [
            Delivery(
                message_id=r["message_id"],
                webhook_msg_id=r["msg_id"],
                event_type=r["event_type"],
                contact_id=None if r["lead_key"] == MODEL_KEY else r["lead_key"],
                created_at=from_us(r["created_us"]),
                status=r["status"],
                attempts=r["attempts"],
                next_attempt_at=from_us(r["next_attempt_us"]) if r["status"] == "pending" else None,
                delivered_at=from_us(r["delivered_us"]) if r["delivered_us"] else None,
                last_status=r["last_status"],
                last_error=r["last_error"],
                history=[
                    DeliveryAttempt(
                        attempted_at=from_us(a["attempted_us"]),
                        status_code=a["status_code"],
                        error=a["error"],
                        duration_ms=a["duration_ms"],
                    )
                    for a in history.get(r["message_id"], [])
                ],
            )
            for r in rows
        ]
        more = len(rows) == limit
        return Deliveries(
            webhook_id=webhook_id,
            deliveries=items,
            next_before=rows[-1]["message_id"] if more and rows else None,
        )

    return await run_in_threadpool(read)


@router.post(
    "/v1/webhooks/{webhook_id}/redeliver",
    response_model=Redelivered,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def redeliver(
    webhook_id: str, request: Request, store: StoreDep, body: Redeliver | None = None
) -> Redelivered:
    """Send again, with their own webhook-id: the named messages, or every dead one."""
    await _known(store, webhook_id)
    ids = body.message_ids if body is not None else None
    count = await run_in_threadpool(dispatch.redeliver, store, webhook_id, ids)
    wake_dispatcher(request)
    return Redelivered(webhook_id=webhook_id, redelivered=count)
