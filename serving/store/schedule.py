"""When the live store is rescored by the server: on a schedule, and after a new
champion is served (the alias moved, or an admin reload). Each worker asks; the lease
in `serving.store.rescore` lets one run at a time, and a champion is rescored once.
Runs go to a thread: the event loop keeps answering (the run shares the CPU)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from serving.store.engine import Store
from serving.store.rescore import RescoreBusy, last_run_version, rescore

logger = logging.getLogger(__name__)


async def model_changed(app: FastAPI) -> None:
    """A new model is served: rescore the live store with it (once, whichever worker
    gets there first; the ledger then shows the new version)."""
    store: Store | None = app.state.store
    current = app.state.holder.current
    if store is None or app.state.store_problem or current is None:
        return
    if current.scorer.kind != "touchpoint":
        return
    if await asyncio.to_thread(last_run_version, store, "model") == current.version:
        return
    await rescore_now(app, "model")


async def rescore_now(app: FastAPI, reason: str) -> None:
    store: Store = app.state.store
    current = app.state.holder.current
    if current is None or current.scorer.kind != "touchpoint":
        return
    try:
        run = await asyncio.to_thread(rescore, store, current, reason)
    except RescoreBusy:
        logger.info("a rescoring run is going on elsewhere; this worker skips its turn")
        return
    except Exception as exc:  # the next turn tries again; the API keeps answering
        logger.error("rescoring failed: %s", exc)
        return
    logger.info("rescored %d active leads (%s) in %.1f s", run.active, reason, run.seconds)


async def rescore_schedule(app: FastAPI) -> None:
    """Every LEADSCORE_RESCORE_EVERY_SECONDS, rescore every active lead (one worker)."""
    seconds = app.state.settings.rescore_every_seconds
    if seconds <= 0:
        return
    while True:
        await asyncio.sleep(seconds)
        await rescore_now(app, "schedule")
