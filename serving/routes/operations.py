"""Health, readiness, Prometheus metrics, and the admin reload."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.dependencies import holder, require_admin
from serving.errors import error_responses
from serving.guard import Metrics
from serving.schemas import ModelRef
from serving.state import ModelHolder
from serving.store.schedule import model_changed

logger = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "no model loaded"}})
async def readyz(request: Request, found: Annotated[ModelHolder, Depends(holder)]) -> JSONResponse:
    """Ready only with a model loaded; says whether the live store can be used (`store`:
    "ok", "off", or why not; `leadscore serve` refuses to start with a store it cannot
    use, an app built otherwise answers 503 on the live routes)."""
    current = found.current
    store = "off" if request.app.state.store is None else request.app.state.store_problem or "ok"
    if current is None:
        return JSONResponse(
            status_code=503, content={"ready": False, "model_uri": found.uri, "store": store}
        )
    return JSONResponse(
        {
            "ready": True,
            "model": {"name": current.name, "version": current.version, "alias": current.alias},
            "store": store,
        }
    )


@router.get("/metrics", response_class=Response)
async def prometheus(request: Request) -> Response:
    """Requests, latency and the distribution of scores, in Prometheus' text format."""
    metrics: Metrics = request.app.state.metrics
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.post(
    "/v1/admin/reload",
    dependencies=[Depends(require_admin)],
    responses=error_responses(401, 403, 503),
)
async def reload(request: Request, found: Annotated[ModelHolder, Depends(holder)]) -> ModelRef:
    """Load what the model URI points to now (e.g. after `leadscore promote`) and swap it in.

    This worker swaps at once; the other workers (and servers) follow within
    LEADSCORE_ALIAS_POLL_SECONDS, when they see the alias moved.
    """
    try:
        loaded = await asyncio.to_thread(found.load)
    except Exception as exc:  # the reason goes to the log, never a path or SQL to the client
        logger.error("reload of %s failed: %s", found.uri, exc)
        raise HTTPException(
            status_code=503, detail="the model could not be loaded; see the server log"
        ) from None
    task = asyncio.create_task(model_changed(request.app))  # the live store follows
    background.add(task)
    task.add_done_callback(background.discard)
    return ModelRef(name=loaded.name, version=loaded.version, alias=loaded.alias)


#: tasks started by a request that outlive it (a reference keeps them from being collected)
background: set[asyncio.Task[None]] = set()
