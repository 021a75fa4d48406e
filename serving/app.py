"""The scoring API: FastAPI app factory, lifespan, routes.

The model is loaded once, in the lifespan, from its URI (`models:/lead-scorer@champion`
by default), and swapped without downtime when the alias moves or on an admin call.
A request holds its model reference from start to end.

Speed (budget: p50 under 2 ms server-side for one lead with reasons) decides three
things here. Dependencies and the single-lead route are `async def`: FastAPI runs a
plain `def` in its thread pool, and each hop costs more than scoring a typical lead
(~1 ms of CPU, which the event loop can afford). A batch is scored in the thread pool,
so health checks answer while it runs. Routes return ready JSON bytes: FastAPI would
otherwise validate our own response models a second time. The body limit, metrics and
the Server-Timing header live in one pure ASGI middleware (`_Guard`), which also counts
the bytes of a chunked upload that has no Content-Length.

Bad input gets a 4xx that names the field and what was expected; request bodies, names
and emails are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from features.pipeline.registry import FEATURES_BY_NAME, label
from serving.config import Settings, get_settings
from serving.schemas import (
    BatchRequest,
    BatchResponse,
    FeatureImportance,
    FeatureImportanceItem,
    ModelInfo,
    ModelRef,
    ScoreRequest,
    ScoreResponse,
)
from serving.scoring import InputError, score_requests
from serving.state import LoadedModel, ModelHolder

logger = logging.getLogger(__name__)
_Body = TypeVar("_Body", bound=BaseModel)


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "leadscore_requests_total", "HTTP requests", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "leadscore_request_seconds",
            "Request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.probability = Histogram(
            "leadscore_probability",
            "Scored probabilities",
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0),
        )


class _Guard:
    """Pure ASGI middleware: body-size limit, Prometheus metrics, Server-Timing.

    The limit is checked twice: on the Content-Length header before the app runs, and
    on the bytes actually received, for chunked uploads that declare no length. Going
    over inside `receive` raises Starlette's HTTPException(413) from within the route's
    body read, where FastAPI lets it through to become the 413 answer (any other
    exception there would become a 400).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, metrics: _Metrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_body_bytes:,} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(status_code=413, detail=self._too_large())
            return message

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                elapsed = (time.perf_counter() - started) * 1000
                timing = (b"server-timing", f"app;dur={elapsed:.3f}".encode())
                message = {**message, "headers": [*message.get("headers", ()), timing]}
            await send(message)

        try:
            length = Headers(scope=scope).get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
                answer = JSONResponse(status_code=413, content={"detail": self._too_large()})
                await answer(scope, receive, timed_send)
            else:
                await self.app(scope, limited_receive, timed_send)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that parses its own JSON (see `_parse`)."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def _parse(request: Request, model: type[_Body]) -> _Body:
    """The request body validated by pydantic-core straight from the JSON bytes.

    FastAPI would decode the JSON into Python objects first and validate those: for a
    lead with a hundred touchpoints that is ~0.1 ms more. Errors keep FastAPI's 422
    shape, each located under `body` like FastAPI's own; a body that is not JSON is
    reported without echoing it back (its `input` would be the whole body).
    """
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = []
        for e in exc.errors(include_url=False):
            error = {**e, "loc": ("body", *e["loc"])}
            if e["type"] == "json_invalid":
                error.pop("input", None)
            errors.append(error)
        raise RequestValidationError(errors) from None


def _unprocessable(exc: InputError, batch: bool) -> RequestValidationError:
    """Leads that do not fit the model, as FastAPI's 422 (a batch names the lead's index)."""
    errors = [
        {
            "loc": ("body", "leads", k, *path) if batch else ("body", *path),
            "msg": message,
            "type": "value_error",
        }
        for k, path, message in exc.problems
    ]
    return RequestValidationError(errors)


def _json(model: BaseModel) -> Response:
    """Our own response model as JSON, without FastAPI validating it a second time."""
    return Response(model.model_dump_json(), media_type="application/json")


async def _holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.holder
    return holder


async def require_key(request: Request) -> None:
    """X-API-Key must match one of the configured keys (constant-time), when any are set.

    The settings come from `app.state`, not from `Depends(get_settings)` with an
    override: FastAPI re-inspects an overriding callable on every request (~0.5 ms).
    """
    settings: Settings = request.app.state.settings
    if not settings.api_keys:
        return
    given = request.headers.get("x-api-key", "")
    if not any(hmac.compare_digest(given.encode(), key.encode()) for key in settings.api_keys):
        raise HTTPException(status_code=401, detail="missing or unknown X-API-Key header")


async def model_now(holder: Annotated[ModelHolder, Depends(_holder)]) -> LoadedModel:
    current = holder.current
    if current is None:
        raise HTTPException(
            status_code=503, detail=f"no model is loaded yet ({holder.uri}); see /readyz"
        )
    return current


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app; `settings` replaces LEADSCORE_* environment settings (tests, CLI)."""
    settings = settings or get_settings()
    holder = ModelHolder(settings.model_uri)
    metrics = _Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await asyncio.to_thread(holder.load)
        except Exception as exc:  # the app starts anyway; /readyz reports not ready
            logger.error("could not load the model %s: %s", holder.uri, exc)
        poller = asyncio.create_task(_poll_alias(holder, settings.alias_poll_seconds))
        try:
            yield
        finally:
            poller.cancel()

    app = FastAPI(
        title="leadscore",
        version="1",
        summary="Conversion probability next to a transparent points score, with reasons.",
        lifespan=lifespan,
    )
    app.state.holder = holder
    app.state.settings = settings
    app.add_middleware(_Guard, max_body_bytes=settings.max_body_bytes, metrics=metrics)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "no model loaded"}})
    async def readyz(holder: Annotated[ModelHolder, Depends(_holder)]) -> JSONResponse:
        """Ready only with a model loaded."""
        current = holder.current
        if current is None:
            return JSONResponse(status_code=503, content={"ready": False, "model_uri": holder.uri})
        return JSONResponse(
            {
                "ready": True,
                "model": {"name": current.name, "version": current.version, "alias": current.alias},
            }
        )

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def prometheus() -> Response:
        """Requests, latency and the distribution of scores, in Prometheus' text format."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/v1/score",
        tags=["scoring"],
        dependencies=[Depends(require_key)],
        response_model=ScoreResponse,
        responses={422: {"description": "invalid lead: each error names its field"}},
        openapi_extra=_json_body(ScoreRequest),
    )
    async def score(
        request: Request, model: Annotated[LoadedModel, Depends(model_now)]
    ) -> Response:
        """Score one lead: probability, points with every rule that fired, and the reasons."""
        body = await _parse(request, ScoreRequest)
        try:
            (result,) = score_requests([body], model, settings.reasons)
        except InputError as exc:
            raise _unprocessable(exc, batch=False) from None
        metrics.probability.observe(result.probability)
        return _json(result)

    @app.post(
        "/v1/score/batch",
        tags=["scoring"],
        dependencies=[Depends(require_key)],
        responses={422: {"description": "invalid leads, or more than the batch limit"}},
        response_model=BatchResponse,
        openapi_extra=_json_body(BatchRequest),
    )
    async def score_batch(
        request: Request, model: Annotated[LoadedModel, Depends(model_now)]
    ) -> Response:
        """Score many leads in one call; the results come in the order of the leads."""
        body = await _parse(request, BatchRequest)
        if len(body.leads) > settings.max_batch:
            raise HTTPException(
                status_code=422,
                detail=[
                    {
                        "loc": ["body", "leads"],
                        "type": "too_long",
                        "msg": f"at most {settings.max_batch} leads per batch, "
                        f"got {len(body.leads)}",
                    }
                ],
            )

        def work() -> Response:
            try:
                results = score_requests(body.leads, model, settings.reasons)
            except InputError as exc:
                raise _unprocessable(exc, batch=True) from None
            for r in results:
                metrics.probability.observe(r.probability)
            return _json(BatchResponse(results=results))

        return await run_in_threadpool(work)

    @app.get("/v1/model", tags=["model"], dependencies=[Depends(require_key)])
    def model_info(model: Annotated[LoadedModel, Depends(model_now)]) -> ModelInfo:
        """Which model answers: name, version, training window, holdout metrics, features."""
        meta = model.scorer.metadata
        return ModelInfo(
            name=model.name,
            version=model.version,
            alias=model.alias,
            uri=model.uri,
            kind=model.scorer.kind,
            trained_at=meta.get("trained_at"),
            training_window=list(meta.get("training_window", [])),
            test_window=list(meta.get("test_window", [])),
            horizon_days=int(meta.get("horizon_days", 0)),
            holdout_metrics={k: float(v) for k, v in meta.get("holdout_metrics", {}).items()},
            features=model.scorer.feature_names,
        )

    @app.get("/v1/model/feature-importance", tags=["model"], dependencies=[Depends(require_key)])
    def feature_importance(model: Annotated[LoadedModel, Depends(model_now)]) -> FeatureImportance:
        """Which signals matter, in plain words: mean |SHAP| on the holdout, and gain."""
        items = [
            FeatureImportanceItem(
                feature=row["feature"],
                label=label(row["feature"]),
                definition=FEATURES_BY_NAME[row["feature"]].definition
                if row["feature"] in FEATURES_BY_NAME
                else "",
                mean_abs_shap=float(row["mean_abs_shap"]),
                gain=float(row["gain"]),
            )
            for row in model.scorer.metadata.get("feature_importance", [])
        ]
        return FeatureImportance(
            model=ModelRef(name=model.name, version=model.version, alias=model.alias),
            features=items,
        )

    @app.post("/v1/admin/reload", tags=["operations"], dependencies=[Depends(require_key)])
    def reload(holder: Annotated[ModelHolder, Depends(_holder)]) -> ModelRef:
        """Load what the model URI points to now (e.g. after `leadscore promote`) and swap it in."""
        try:
            loaded = holder.load()
        except Exception as exc:
            raise HTTPException(
                status_code=503, detail=f"could not load {holder.uri}: {exc}"
            ) from exc
        return ModelRef(name=loaded.name, version=loaded.version, alias=loaded.alias)

    def openapi() -> dict[str, Any]:
        """FastAPI's document plus the request models the scoring routes parse themselves."""
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            batch = BatchRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(batch.pop("$defs"))
            schemas["BatchRequest"] = batch
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def _poll_alias(holder: ModelHolder, seconds: float) -> None:
    """Reload when the alias moves to another version (every `seconds`; 0 disables)."""
    if seconds <= 0:
        return
    while True:
        await asyncio.sleep(seconds)
        try:
            if await asyncio.to_thread(holder.alias_moved):
                await asyncio.to_thread(holder.load)
        except Exception as exc:  # a registry hiccup must not take the API down
            logger.warning("alias check failed: %s", exc)


def app_from_env() -> FastAPI:
    """The app with settings from LEADSCORE_* variables (uvicorn's factory for workers)."""
    return create_app(get_settings())
