"""The scoring API: the FastAPI app factory and its lifespan.

The model is loaded once, in the lifespan, from its URI (`models:/lead-scorer@champion`
by default), and swapped without downtime when the alias moves (every worker checks)
or on an admin call. A request holds its model reference from start to end.

The routes live by subject in `serving/routes/`; the outer layer (body limits, read
deadline, metrics) in `serving/guard.py`; how a mistake is answered in
`serving/errors.py`. Bad input gets a 4xx that names the field and what was expected;
request bodies, names and emails are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse

from features.points.matrix import RulesConfig
from serving.config import Settings, dispatch_settings, get_settings
from serving.connectors.config import load_connectors, sync_connectors
from serving.connectors.registry import formats
from serving.dependencies import SECURITY_SCHEME, open_access_warnings
from serving.docs import add_offline_docs
from serving.errors import request_validation_handler
from serving.guard import Guard, Metrics
from serving.routes import connectors as connectors_routes
from serving.routes import live, model, operations, scoring, segment, webhooks
from serving.schemas import BatchRequest, ErrorBody, EventsRequest, FieldError, SegmentMessages
from serving.segment.translate import MappingError, load_mapping
from serving.state import ModelHolder
from serving.store.engine import Store
from serving.store.matrices import in_effect, latest_id
from serving.store.reads import ExplainModels
from serving.store.schedule import model_changed, rescore_schedule
from serving.store.schema import SchemaError, require_current
from serving.webhooks.dispatch import Dispatcher
from serving.workspace import routes as workspace
from serving.workspace.analysis import Analyses
from serving.workspace.session import Sessions

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app; `settings` replaces LEADSCORE_* environment settings (tests, CLI)."""
    settings = settings or get_settings()
    holder = ModelHolder(settings.model_uri, evidence=True)  # the workspace reads its holdout
    metrics = Metrics()
    store = Store(settings.database_url) if settings.database_url else None
    connectors = load_connectors(settings.connectors)  # a bad file: refused here, with why
    sessions = Sessions(settings)  # a bad LEADSCORE_UI_USERS entry: refused here, with which

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for warning in open_access_warnings(settings):
            logger.warning("%s", warning)
        try:
            await asyncio.to_thread(holder.load)
        except Exception as exc:  # the app starts anyway; /readyz reports not ready
            logger.error("could not load the model %s: %s", holder.uri, exc)
        if store is not None:
            app.state.store_problem = await asyncio.to_thread(_store_problem, store)
            if app.state.store_problem:
                logger.error("live routes are off: %s", app.state.store_problem)
            else:
                holder.use_matrix(await asyncio.to_thread(in_effect, store))
        if sessions.generated_secret:
            logger.warning(
                "LEADSCORE_UI_SECRET is not set: workspace sessions end when this process "
                "stops and are not shared between workers"
            )
        tasks = [
            asyncio.create_task(_poll_alias(app, settings.alias_poll_seconds)),
            asyncio.create_task(asyncio.to_thread(warm_workspace, app)),
        ]
        stop = threading.Event()
        thread = None
        if store is not None and app.state.store_problem is None:
            tasks.append(asyncio.create_task(rescore_schedule(app)))
            await asyncio.to_thread(sync_connectors, store, connectors)
            if settings.dispatch:
                dispatcher = Dispatcher(store, dispatch_settings(settings), formats())
                app.state.dispatcher = dispatcher
                thread = threading.Thread(
                    target=dispatcher.run, args=(stop,), name="dispatch", daemon=True
                )
                thread.start()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            stop.set()
            if thread is not None:
                app.state.dispatcher.wake.set()
                await asyncio.to_thread(thread.join, settings.webhook_timeout_seconds + 5)
                app.state.dispatcher.close()
            app.state.http_client.close()
            if store is not None:
                store.dispose()

    app = FastAPI(
        title="leadscore",
        version="1",
        summary="Conversion probability next to a transparent points score, with reasons.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.holder = holder
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.store = store
    app.state.store_problem = "the live store has not been checked yet" if store else None
    app.state.explain_models = ExplainModels(lambda: holder.current)
    app.state.connectors = {spec.name: spec for spec in connectors}
    app.state.dispatcher = None
    app.state.sessions = sessions
    app.state.analyses = Analyses()
    app.state.background = set()  # tasks started by requests (a rescore after a new matrix)
    #: calls the connectors make while taking a CRM's event in (Bitrix24's crm.lead.get)
    app.state.http_client = httpx.Client(timeout=settings.webhook_timeout_seconds)
    try:
        app.state.segment_mapping = load_mapping(settings.segment_mapping)
        app.state.segment_problem = None
    except MappingError as exc:  # the other routes work; this one says why it cannot
        logger.error("%s", exc)
        app.state.segment_mapping, app.state.segment_problem = None, str(exc)
    app.add_middleware(
        Guard,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_seconds=settings.body_timeout_seconds,
        metrics=metrics,
    )
    app.add_exception_handler(RequestValidationError, request_validation_handler)

    async def sign_in_first(request: Request, exc: Exception) -> RedirectResponse:
        assert isinstance(exc, workspace.NotSignedIn)
        return RedirectResponse(
            "/ui/login?" + urllib.parse.urlencode({"next": exc.target}), status_code=303
        )

    app.add_exception_handler(workspace.NotSignedIn, sign_in_first)
    for router in (
        operations.router,
        scoring.router,
        live.router,
        segment.router,
        connectors_routes.router,
        webhooks.router,
        model.router,
        workspace.router,
    ):
        app.include_router(router)
    add_offline_docs(app)

    def openapi() -> dict[str, Any]:
        """FastAPI's document plus the request models the scoring routes parse themselves."""
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            components = document.setdefault("components", {})
            schemas = components.setdefault("schemas", {})
            for extra in (
                BatchRequest, ErrorBody, EventsRequest, FieldError, SegmentMessages, RulesConfig
            ):  # fmt: skip
                schema = extra.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[extra.__name__] = schema
            components["securitySchemes"] = SECURITY_SCHEME
            for path, operations in document["paths"].items():
                if path.startswith("/v1/"):  # the keyed routes (probes and metrics are open)
                    for operation in operations.values():
                        operation["security"] = [{name: []} for name in SECURITY_SCHEME]
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def _poll_alias(app: FastAPI, seconds: float) -> None:
    """Reload when the alias moves to another version (every `seconds`; 0 disables),
    then rescore the live store with the new champion."""
    if seconds <= 0:
        return
    holder: ModelHolder = app.state.holder
    store: Store | None = app.state.store
    while True:
        await asyncio.sleep(seconds)
        try:
            if await asyncio.to_thread(holder.alias_moved):
                await asyncio.to_thread(holder.load)
                await model_changed(app)
                await asyncio.to_thread(warm_workspace, app)
        except Exception as exc:  # a registry hiccup must not take the API down
            logger.warning("alias check failed: %s", exc)
        if store is None or app.state.store_problem:
            continue
        try:  # a matrix applied through another worker
            if await asyncio.to_thread(latest_id, store) != holder.matrix_id:
                holder.use_matrix(await asyncio.to_thread(in_effect, store))
        except Exception as exc:
            logger.warning("points matrix check failed: %s", exc)


def warm_workspace(app: FastAPI) -> None:
    """The workspace's analysis of the served model, computed now (~1 s on a demo's
    holdout) rather than by the first person who opens a page."""
    current = app.state.holder.current
    if current is not None:
        try:
            app.state.analyses.of(current.scorer, current.trained_rules)
        except Exception as exc:  # the pages say what they cannot show
            logger.warning("the workspace's analysis failed: %s", exc)


def _store_problem(store: Store) -> str | None:
    try:
        require_current(store)
    except SchemaError as exc:
        return str(exc)
    return None


def app_from_env() -> FastAPI:
    """The app with settings from LEADSCORE_* variables (uvicorn's factory for workers)."""
    return create_app(get_settings())
