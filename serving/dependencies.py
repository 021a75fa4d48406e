"""What a route depends on: the loaded model, and a key that opens it.

Settings and the model holder live on `app.state` and are read there: FastAPI
re-inspects an overriding settings callable on every request (~0.5 ms), more than a
typical lead takes to score. Dependencies are `async def`: a plain `def` would run in
the thread pool, a hop that costs more than it saves.

Keys: scoring and reading routes take one of `LEADSCORE_API_KEYS`; admin routes take one
of `LEADSCORE_ADMIN_KEYS` and nothing else. With no key configured at all the API is
open (development), which the server says loudly at start-up; with scoring keys but no
admin keys, the admin routes stay closed.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from serving.config import Settings
from serving.state import LoadedModel, ModelHolder
from serving.store.engine import Store

API_KEY_HEADER = "X-API-Key"
#: the OpenAPI security scheme (added to the document by the app: declaring it through
#: FastAPI's `Security` costs ~0.2 ms of dependency solving on every request)
SECURITY_SCHEME = {
    "APIKey": {
        "type": "apiKey",
        "in": "header",
        "name": API_KEY_HEADER,
        "description": (
            "One of LEADSCORE_API_KEYS (scoring, reading) or LEADSCORE_ADMIN_KEYS (admin)."
        ),
    }
}


def _matches(given: str | None, keys: list[str]) -> bool:
    """Constant-time comparison with every configured key."""
    encoded = (given or "").encode()
    return any(hmac.compare_digest(encoded, key.encode()) for key in keys)


async def require_key(request: Request) -> None:
    """A scoring key, when any are configured (an admin key opens the reading routes too)."""
    settings: Settings = request.app.state.settings
    if not settings.api_keys:
        return
    given = request.headers.get(API_KEY_HEADER)
    if not _matches(given, [*settings.api_keys, *settings.admin_keys]):
        raise HTTPException(status_code=401, detail=f"missing or unknown {API_KEY_HEADER} header")


async def require_admin(request: Request) -> None:
    """An admin key; scoring keys never open admin routes."""
    settings: Settings = request.app.state.settings
    if settings.admin_keys:
        if not _matches(request.headers.get(API_KEY_HEADER), settings.admin_keys):
            raise HTTPException(
                status_code=401, detail=f"missing or unknown admin {API_KEY_HEADER} header"
            )
        return
    if settings.api_keys:
        raise HTTPException(
            status_code=403,
            detail="admin routes are closed: set LEADSCORE_ADMIN_KEYS to open them",
        )


def open_access_warnings(settings: Settings) -> list[str]:
    """What the server must say at start-up about who can call it."""
    warnings = []
    if not settings.api_keys:
        warnings.append(
            "NO API KEY IS SET: anyone who can reach this server can score leads and read "
            "models. Set LEADSCORE_API_KEYS (and LEADSCORE_ADMIN_KEYS) outside development."
        )
        if not settings.admin_keys:
            warnings.append(
                "NO ADMIN KEY IS SET: the admin routes (model reload) are open to anyone."
            )
    return warnings


async def holder(request: Request) -> ModelHolder:
    found: ModelHolder = request.app.state.holder
    return found


async def model_now(found: Annotated[ModelHolder, Depends(holder)]) -> LoadedModel:
    """The model a request uses from start to end (a reload swaps the reference)."""
    current = found.current
    if current is None:
        raise HTTPException(status_code=503, detail="no model is loaded yet; see /readyz")
    return current


async def live_model(current: Annotated[LoadedModel, Depends(model_now)]) -> LoadedModel:
    """The model, when it can score the live store's contacts (a touchpoint model)."""
    if current.scorer.kind != "touchpoint":
        raise HTTPException(
            status_code=503,
            detail="the served model scores lead tables; live scores need a touchpoint model "
            "(LEADSCORE_MODEL_URI=models:/lead-scorer@champion)",
        )
    return current


async def live_store(request: Request) -> Store:
    """The live lead store, when it is configured and its schema is the code's."""
    store: Store | None = request.app.state.store
    if store is None:
        raise HTTPException(
            status_code=503,
            detail="the live store is off (LEADSCORE_DATABASE_URL is empty); "
            "POST /v1/score works without it",
        )
    problem: str | None = request.app.state.store_problem
    if problem is not None:
        raise HTTPException(status_code=503, detail=problem)
    return store


def wake_dispatcher(request: Request) -> None:
    """Scores may have changed: the in-server dispatcher looks at the outbox now."""
    dispatcher = getattr(request.app.state, "dispatcher", None)
    if dispatcher is not None:
        dispatcher.poke()
