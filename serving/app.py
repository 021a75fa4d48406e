"""The scoring API: FastAPI app factory, lifespan, routes.

The model is loaded once, in the lifespan, from its URI (`models:/lead-scorer@champion`
by default), and swapped without downtime when the alias moves or on an admin call.
Scoring is CPU-bound, so the routes are plain functions: FastAPI runs them in its
thread pool, and a request holds its model reference from start to end.

Bad input gets a 4xx that names the field and what was expected; request bodies, names
and emails are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from features.registry import FEATURES_BY_NAME, label
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
from serving.scoring import score_requests
from serving.state import LoadedModel, ModelHolder

logger = logging.getLogger(__name__)


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


def _holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.holder
    return holder


def require_key(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    """X-API-Key must match one of the configured keys (constant-time), when any are set."""
    if not settings.api_keys:
        return
    given = request.headers.get("x-api-key", "")
    if not any(hmac.compare_digest(given.encode(), key.encode()) for key in settings.api_keys):
        raise HTTPException(status_code=401, detail="missing or unknown X-API-Key header")


def model_now(holder: Annotated[ModelHolder, Depends(_holder)]) -> LoadedModel:
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
    app.dependency_overrides[get_settings] = lambda: settings

    @app.middleware("http")
    async def limit_and_measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > settings.max_body_bytes):
            return JSONResponse(
                status_code=413,
                content={
                    "detail": f"the request body is larger than {settings.max_body_bytes:,} bytes"
                },
            )
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        elapsed = time.perf_counter() - started
        metrics.requests.labels(path, str(response.status_code)).inc()
        metrics.latency.labels(path).observe(elapsed)
        response.headers["Server-Timing"] = f"app;dur={elapsed * 1000:.3f}"
        return response

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "no model loaded"}})
    def readyz(holder: Annotated[ModelHolder, Depends(_holder)]) -> JSONResponse:
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

    @app.post("/v1/score", tags=["scoring"], dependencies=[Depends(require_key)])
    def score(
        body: ScoreRequest, model: Annotated[LoadedModel, Depends(model_now)]
    ) -> ScoreResponse:
        """Score one lead: probability, points with every rule that fired, and the reasons."""
        (result,) = score_requests([body], model, settings.reasons)
        metrics.probability.observe(result.probability)
        return result

    @app.post(
        "/v1/score/batch",
        tags=["scoring"],
        dependencies=[Depends(require_key)],
        responses={422: {"description": "invalid leads, or more than the batch limit"}},
    )
    def score_batch(
        body: BatchRequest, model: Annotated[LoadedModel, Depends(model_now)]
    ) -> BatchResponse:
        """Score many leads in one call; the results come in the order of the leads."""
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
        results = score_requests(body.leads, model, settings.reasons)
        for r in results:
            metrics.probability.observe(r.probability)
        return BatchResponse(results=results)

    @app.get("/v1/model", tags=["model"], dependencies=[Depends(require_key)])
    def model_info(model: Annotated[LoadedModel, Depends(model_now)]) -> ModelInfo:
        """Which model answers: name, version, training window, holdout metrics, features."""
        meta = model.scorer.metadata
        return ModelInfo(
            name=model.name,
            version=model.version,
            alias=model.alias,
            uri=model.uri,
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
