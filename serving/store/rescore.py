"""Time passes: rescore every active lead (`leadscore rescore`, the server's schedule,
a new champion).

Points decay and feature windows move without any event, so a score left alone goes
stale. A run reads the whole store back as an export (the loader's door) and scores it
through the batch path (`EventStore.from_crm`, the door training uses) at one as_of:
every contact created by then that was touched, or entered the CRM, in the year before
(`ACTIVE_DAYS`). Scores that changed go to the ledger with trigger `rescore` (or
`model` after a champion change) and the run's id.

One run at a time, whatever the number of workers or servers: a run holds a lease in
the `locks` table (renewed as it goes; a crashed run's lease expires). A contact that an
event rescored after the run read the store keeps that newer score: the run skips it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from features.crm.load import read_crm
from features.pipeline.snapshots import eligibility
from features.pipeline.store import EventStore, to_seconds
from serving.scoring import score_store
from serving.state import LoadedModel
from serving.store import outbox
from serving.store.engine import Store, now_us
from serving.store.intake import account_key, contact_key, to_us
from serving.store.live import record
from serving.store.tables import locks, rescore_runs

logger = logging.getLogger(__name__)

#: a lead is rescored when it was touched (or created) in this many days before as_of
ACTIVE_DAYS: Final = 365
#: contacts written per transaction (PostgreSQL locks each one's account meanwhile)
CHUNK: Final = 2_000
#: seconds a run's lease lasts without renewal
LEASE_SECONDS: Final = 300
LEASE: Final = "rescore"


class RescoreBusy(RuntimeError):
    """Another rescoring run holds the lease."""


@dataclass(frozen=True)
class RescoreRun:
    run_id: str
    reason: str
    as_of: dt.datetime
    active: int
    changed: int
    skipped: int  # rescored by an event while the run was going: newer, kept
    seconds: float


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(store: Store, name: str, holder: str, seconds: float) -> bool:
    """Take (or renew) the lease `name`, unless someone else holds it unexpired."""
    now = now_us()
    expires = now + int(seconds * 1_000_000)
    dialect = postgresql if store.dialect == "postgresql" else sqlite
    statement = dialect.insert(locks).values(name=name, holder=holder, expires_us=expires)
    statement = statement.on_conflict_do_update(
        index_elements=["name"],
        set_={"holder": holder, "expires_us": expires},
        where=(locks.c.expires_us < now) | (locks.c.holder == holder),
    ).returning(locks.c.holder)
    with store.write() as connection:
        return connection.execute(statement).first() is not None


def release(store: Store, name: str, holder: str) -> None:
    with store.write() as connection:
        connection.execute(delete(locks).where(locks.c.name == name, locks.c.holder == holder))


def last_run_version(store: Store, reason: str) -> str | None:
    """The model version of the latest finished run with this reason."""
    with store.read() as connection:
        row = connection.execute(
            select(rescore_runs.c.model_version)
            .where(rescore_runs.c.reason == reason, rescore_runs.c.finished_us.is_not(None))
            .order_by(rescore_runs.c.finished_us.desc())
            .limit(1)
        ).first()
    return None if row is None else str(row[0])


def rescore(
    store: Store,
    model: LoadedModel,
    reason: str = "rescore",
    as_of: dt.datetime | None = None,
    progress: Callable[[str], None] = logger.info,
) -> RescoreRun:
    """One run (see the module); raises `RescoreBusy` when another one holds the lease."""
    holder = holder_name()
    if not acquire(store, LEASE, holder, LEASE_SECONDS):
        raise RescoreBusy("another rescoring run is in progress (one at a time)")
    clock = time.perf_counter()
    run_id = uuid.uuid4().hex
    started = now_us()
    as_of = as_of or dt.datetime.now(dt.UTC)
    previous = last_run_version(store, "model") if reason == "model" else None
    try:
        with store.write() as connection:
            if reason == "model":  # the CRMs hear of it with the run that follows it
                outbox.champion_changed(
                    connection, model.name, model.version, previous, model.alias, started
                )
            connection.execute(
                insert(rescore_runs).values(
                    run_id=run_id,
                    started_us=started,
                    as_of_us=to_us(as_of),
                    reason=reason,
                    model_version=model.version,
                )
            )
        events, targets = _active(store, as_of)
        progress(f"{len(targets):,} leads active in the {ACTIVE_DAYS} days before {as_of:%Y-%m-%d}")
        scored = score_store(events, model, 0, as_of, only=targets) if len(targets) else []
        changed = skipped = 0
        trigger = reason if reason in ("model", "load") else "rescore"
        for start in range(0, len(scored), CHUNK):
            chunk = scored[start : start + CHUNK]
            with store.write() as connection:
                units = {
                    account_key(s.account_id) if s.account_id else contact_key(s.contact_id)
                    for s in chunk
                }
                store.lock_accounts(connection, units)
                recorded = record(
                    connection, store, chunk, model, trigger, run_id, now_us(), started
                )
            changed += sum(r.changed for r in recorded)
            skipped += len(chunk) - len(recorded)
            acquire(store, LEASE, holder, LEASE_SECONDS)  # still working: renew
        with store.write() as connection:
            connection.execute(
                update(rescore_runs)
                .where(rescore_runs.c.run_id == run_id)
                .values(finished_us=now_us(), scored=len(scored), changed=changed)
            )
    finally:
        release(store, LEASE, holder)
    return RescoreRun(
        run_id, reason, as_of, len(scored), changed, skipped, time.perf_counter() - clock
    )


def _active(store: Store, as_of: dt.datetime) -> tuple[EventStore, np.ndarray]:
    """The store as the batch path sees it, and the contacts to rescore."""
    with store.read() as connection:
        from features.crm.database import contacts

        n = connection.execute(select(func.count()).select_from(contacts)).scalar_one()
    if n == 0:
        return EventStore.from_leads([]), np.empty(0, dtype=np.int64)
    crm, report = read_crm(store.url)
    if crm is None:
        raise RuntimeError(
            "the lead store does not read back as a valid export:\n" + report.to_text()
        )
    events = EventStore.from_crm(crm)
    masks = eligibility(events, to_seconds(as_of), active_days=ACTIVE_DAYS)
    return events, np.flatnonzero(masks["created"] & masks["active"])
