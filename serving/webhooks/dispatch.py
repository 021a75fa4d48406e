"""The dispatcher: delivers the outbox at least once, in order per lead.

A round claims due messages, sends them, and records each attempt:
- *claim*: pending messages whose time has come, that no live dispatcher holds, and that
  have no earlier message of the same lead and target still pending (order per lead: a
  lead's second message waits for its first to be delivered or given up). Claiming sets
  a lease (`claimed_until_us`); a dispatcher killed mid-delivery lets go of its messages
  when the lease runs out and another one (or itself, restarted) sends them again, with
  the same `webhook-id`. On PostgreSQL several dispatchers claim at once without waiting
  for each other (`FOR UPDATE SKIP LOCKED`); on SQLite claims are serial (the write lock).
- *send*: each target's messages in its format (a Standard Webhooks POST each, or a
  CRM's request, batched where the CRM takes batches), several targets at once.
- *record*: a 2xx (as the format reads it) delivers; anything else is retried after an
  exponential backoff with jitter (`Retry-After` is honoured when longer), and after
  LEADSCORE_WEBHOOK_MAX_ATTEMPTS attempts the message is `dead` until an admin
  redelivers it. Every attempt goes to `deliveries`.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

import httpx
from sqlalchemy import and_, bindparam, insert, or_, select, update

from serving.connectors.base import ConnectorError, Format, Message, Outbound
from serving.store.engine import Store, now_us
from serving.store.tables import deliveries, outbox, webhooks
from serving.webhooks import targets
from serving.webhooks.targets import Target

logger = logging.getLogger(__name__)

#: what an error kept in the log may hold (never a response body: it may echo a lead)
ERROR_CHARS: Final = 300


@dataclass(frozen=True)
class DispatchSettings:
    max_attempts: int = 12
    retry_base_seconds: float = 5.0
    retry_cap_seconds: float = 3600.0
    timeout_seconds: float = 10.0
    #: messages claimed per round
    batch: int = 200
    #: targets sent to at once
    concurrency: int = 8
    poll_seconds: float = 0.5
    #: how long a claim holds; a round stops sending in time to record before it ends
    #: (what it did not send goes back unclaimed), so a live dispatcher's claim never
    #: lapses, and a killed one's messages are free again this long after
    lease_seconds: float = 60.0

    @property
    def lease_us(self) -> int:
        return int(self.lease_seconds * 1_000_000)

    def round_deadline(self) -> float:
        """The moment (monotonic) after which a round starts no new request."""
        margin = max(self.timeout_seconds * 1.5, self.lease_seconds * 0.2)
        return time.monotonic() + max(self.lease_seconds - margin, 0.0)

    def backoff_seconds(self, attempts: int, retry_after: float | None = None) -> float:
        """The wait before the next attempt: base * 2^(attempts-1), capped, with full
        jitter in [0.5, 1.5) so that many failing messages do not retry in lockstep."""
        delay = min(self.retry_cap_seconds, self.retry_base_seconds * 2 ** max(0, attempts - 1))
        delay *= random.uniform(0.5, 1.5)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_cap_seconds))
        return delay


@dataclass(frozen=True)
class Attempt:
    message_id: int
    webhook_id: str
    status_code: int | None
    error: str | None
    duration_ms: float
    retry_after: float | None = None
    #: not sent (the round ran out of time): unclaimed, no attempt counted
    released: bool = False

    @property
    def delivered(self) -> bool:
        return self.error is None and not self.released


def dispatcher_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Dispatcher:
    """Delivers the outbox of `store` (see the module); `run` loops until stopped."""

    def __init__(
        self,
        store: Store,
        settings: DispatchSettings,
        formats: dict[str, Format],
        client: httpx.Client | None = None,
    ) -> None:
        self.store, self.settings, self.formats = store, settings, formats
        self.name = dispatcher_name()
        self.client = client or httpx.Client(
            timeout=settings.timeout_seconds,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=settings.concurrency * 2),
        )
        self.wake = threading.Event()

    def poke(self) -> None:
        """New messages were written: look now rather than at the next poll."""
        self.wake.set()

    # -- one round --

    def run_once(self) -> int:
        """Claim, send, record; returns the number of messages attempted."""
        claimed = self._claim()
        if not claimed:
            return 0
        with self.store.read() as connection:
            found = targets.active_by_id(connection, {w for _, w in claimed})
        by_target: dict[str, list[Message]] = defaultdict(list)
        for message, webhook_id in claimed:
            by_target[webhook_id].append(message)
        attempts: list[Attempt] = []
        deadline = self.settings.round_deadline()
        # a round holds at most one message per lead and target (the claim takes a lead's
        # oldest only), so a target's messages are sent side by side, in slices that keep
        # a format's batches whole
        jobs = []
        for webhook_id, messages in by_target.items():
            target = found.get(webhook_id)
            form = self.formats.get(target.kind) if target is not None else None
            size = max(
                form.batch_size if form else 1, -(-len(messages) // self.settings.concurrency)
            )
            jobs += [
                (target, webhook_id, messages[i : i + size], deadline)
                for i in range(0, len(messages), size)
            ]
        if len(jobs) == 1:
            attempts = self._send(*jobs[0])
        else:
            with ThreadPoolExecutor(min(self.settings.concurrency, len(jobs))) as pool:
                for result in pool.map(lambda job: self._send(*job), jobs):
                    attempts += result
        self._record(attempts)
        return len(claimed)

    def _claim(self) -> list[tuple[Message, str]]:
        now = now_us()
        o = outbox.alias("o")
        p = outbox.alias("p")
        earlier = (
            select(p.c.message_id)
            .where(
                p.c.webhook_id == o.c.webhook_id,
                p.c.lead_key == o.c.lead_key,
                p.c.status == "pending",
                p.c.message_id < o.c.message_id,
            )
            .exists()
        )
        query = (
            select(
                o.c.message_id, o.c.msg_id, o.c.event_type, o.c.lead_key, o.c.body, o.c.webhook_id
            )
            .where(
                o.c.status == "pending",
                o.c.next_attempt_us <= now,
                or_(o.c.claimed_until_us.is_(None), o.c.claimed_until_us < now),
                ~earlier,
            )
            .order_by(o.c.message_id)
            .limit(self.settings.batch)
        )
        # most polls find nothing: look in a read transaction first (a SQLite write
        # transaction would take the lock the events' writers wait for)
        due = (
            select(outbox.c.message_id)
            .where(outbox.c.status == "pending", outbox.c.next_attempt_us <= now)
            .limit(1)
        )
        with self.store.read() as connection:
            if connection.execute(due).first() is None:
                return []
        if self.store.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True, of=o)
        with self.store.write() as connection:
            rows = connection.execute(query).all()
            if rows:
                connection.execute(
                    update(outbox)
                    .where(outbox.c.message_id.in_([r[0] for r in rows]))
                    .values(claimed_until_us=now + self.settings.lease_us, claimed_by=self.name)
                )
        return [(Message(r[0], r[1], r[2], r[3], r[4]), r[5]) for r in rows]

    def _send(
        self, target: Target | None, webhook_id: str, messages: list[Message], deadline: float
    ) -> list[Attempt]:
        if target is None:  # removed meanwhile: its messages are cancelled, not sent
            return []
        form = self.formats.get(target.kind)
        if form is None:
            return [
                Attempt(m.message_id, webhook_id, None, f"no format {target.kind!r}", 0.0)
                for m in messages
            ]
        out: list[Attempt] = []
        for start in range(0, len(messages), form.batch_size):
            chunk = messages[start : start + form.batch_size]
            try:
                requests = form.requests(target, chunk)
            except ConnectorError as exc:
                out += [Attempt(m.message_id, webhook_id, None, str(exc), 0.0) for m in chunk]
                continue
            carried = {i for r in requests for i in r.message_ids}
            # a message none of the requests carries has nothing to tell this target
            out += [
                Attempt(m.message_id, webhook_id, None, None, 0.0)
                for m in chunk
                if m.message_id not in carried
            ]
            for request in requests:
                if time.monotonic() > deadline:  # the claim would lapse: leave it for later
                    out += [
                        Attempt(i, webhook_id, None, None, 0.0, released=True)
                        for i in request.message_ids
                    ]
                    continue
                out += self._request(form, webhook_id, request)
        return out

    def _request(self, form: Format, webhook_id: str, request: Outbound) -> list[Attempt]:
        clock = time.perf_counter()
        status: int | None = None
        retry_after: float | None = None
        try:
            response = self.client.request(
                request.method, request.url, content=request.content, headers=request.headers
            )
            status = response.status_code
            error = form.failure(status, response.content)
            retry_after = _retry_after(response.headers.get("retry-after"))
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
        took = (time.perf_counter() - clock) * 1000
        return [
            Attempt(i, webhook_id, status, error, took, retry_after) for i in request.message_ids
        ]

    def _record(self, attempts: Sequence[Attempt]) -> None:
        released = [a.message_id for a in attempts if a.released]
        attempts = [a for a in attempts if not a.released]
        now = now_us()
        with self.store.write() as connection:
            if released:
                connection.execute(
                    update(outbox)
                    .where(outbox.c.message_id.in_(released), outbox.c.claimed_by == self.name)
                    .values(claimed_until_us=None, claimed_by=None)
                )
            if not attempts:
                return
            connection.execute(
                insert(deliveries),
                [
                    {
                        "message_id": a.message_id,
                        "webhook_id": a.webhook_id,
                        "attempted_us": now,
                        "status_code": a.status_code,
                        "error": a.error,
                        "duration_ms": a.duration_ms,
                        "dispatcher": self.name,
                    }
                    for a in attempts
                ],
            )
            ids = [a.message_id for a in attempts]
            counts = dict(
                connection.execute(
                    select(outbox.c.message_id, outbox.c.attempts).where(
                        outbox.c.message_id.in_(ids)
                    )
                ).all()
            )
            rows = []
            for a in attempts:
                tried = counts.get(a.message_id, 0) + 1
                if a.delivered:
                    status, next_us = "delivered", now
                elif tried >= self.settings.max_attempts:
                    status, next_us = "dead", now
                else:
                    wait = self.settings.backoff_seconds(tried, a.retry_after)
                    status, next_us = "pending", now + int(wait * 1_000_000)
                rows.append(
                    {
                        "v_id": a.message_id,
                        "v_status": status,
                        "v_attempts": tried,
                        "v_next": next_us,
                        "v_delivered": now if a.delivered else None,
                        "v_code": a.status_code,
                        "v_error": a.error,
                    }
                )
            # (only while this dispatcher still holds the claim, and only a pending
            # message: one cancelled meanwhile stays cancelled)
            connection.execute(
                update(outbox)
                .where(
                    and_(
                        outbox.c.message_id == bindparam("v_id"),
                        outbox.c.claimed_by == self.name,
                        outbox.c.status == "pending",
                    )
                )
                .values(
                    status=bindparam("v_status"),
                    attempts=bindparam("v_attempts"),
                    next_attempt_us=bindparam("v_next"),
                    delivered_us=bindparam("v_delivered"),
                    last_status=bindparam("v_code"),
                    last_error=bindparam("v_error"),
                    claimed_until_us=None,
                    claimed_by=None,
                ),
                rows,
            )
        dead = sum(r["v_status"] == "dead" for r in rows)
        if dead:
            logger.warning("%d webhook messages gave up after %d attempts (dead)", dead,
                           self.settings.max_attempts)  # fmt: skip

    # -- the loop --

    def run(self, stop: threading.Event) -> None:
        """Rounds until `stop` is set: at once while there is work, else every poll."""
        while not stop.is_set():
            try:
                busy = self.run_once()
            except Exception as exc:  # a store hiccup: the next round tries again
                logger.warning("dispatch round failed: %s", exc)
                busy = 0
            if not busy:
                self.wake.wait(self.settings.poll_seconds)
                self.wake.clear()

    def close(self) -> None:
        self.client.close()


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: our own backoff is fine
    return seconds if seconds >= 0 else None


# --- what an admin sees and does ------------------------------------------------------

DELIVERY_COLUMNS: Final = (
    outbox.c.message_id,
    outbox.c.msg_id,
    outbox.c.event_type,
    outbox.c.lead_key,
    outbox.c.created_us,
    outbox.c.status,
    outbox.c.attempts,
    outbox.c.next_attempt_us,
    outbox.c.delivered_us,
    outbox.c.last_status,
    outbox.c.last_error,
)


def messages_of(
    store: Store, webhook_id: str, status: str | None, after: int | None, limit: int
) -> list[dict[str, Any]]:
    """A target's messages, newest first (`after`: ids below it, for the next page)."""
    query = select(*DELIVERY_COLUMNS).where(outbox.c.webhook_id == webhook_id)
    if status is not None:
        query = query.where(outbox.c.status == status)
    if after is not None:
        query = query.where(outbox.c.message_id < after)
    with store.read() as connection:
        rows = connection.execute(query.order_by(outbox.c.message_id.desc()).limit(limit)).all()
    return [dict(r._mapping) for r in rows]


def attempts_of(store: Store, message_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    if not message_ids:
        return {}
    with store.read() as connection:
        rows = connection.execute(
            select(
                deliveries.c.message_id,
                deliveries.c.attempted_us,
                deliveries.c.status_code,
                deliveries.c.error,
                deliveries.c.duration_ms,
            )
            .where(deliveries.c.message_id.in_(message_ids))
            .order_by(deliveries.c.attempt_id)
        ).all()
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[r.message_id].append(dict(r._mapping))
    return out


def redeliver(store: Store, webhook_id: str, message_ids: list[int] | None) -> int:
    """Send messages again (dead ones, or any named ones, delivered included) with their
    own webhook-id, from their first attempt's budget; returns how many."""
    where: list[Any] = [outbox.c.webhook_id == webhook_id, outbox.c.status != "cancelled"]
    if message_ids is not None:
        where.append(outbox.c.message_id.in_(message_ids))
    else:
        where.append(outbox.c.status == "dead")
    with store.write() as connection:
        active = connection.execute(
            select(webhooks.c.webhook_id).where(
                webhooks.c.webhook_id == webhook_id, webhooks.c.active.is_(True)
            )
        ).first()
        if active is None:
            return 0
        done = connection.execute(
            update(outbox)
            .where(*where)
            .values(
                status="pending",
                attempts=0,
                next_attempt_us=now_us(),
                claimed_until_us=None,
                claimed_by=None,
            )
        )
    return int(done.rowcount)


def backlog(store: Store) -> dict[str, int]:
    """Messages by status (for /readyz, `leadscore dispatch --status` and the docs)."""
    from sqlalchemy import func

    with store.read() as connection:
        rows = connection.execute(
            select(outbox.c.status, func.count()).group_by(outbox.c.status)
        ).all()
    return {str(s): int(n) for s, n in rows}
