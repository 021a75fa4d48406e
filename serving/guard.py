"""The outermost layer of the app: body limits, a read deadline, metrics, Server-Timing.

A pure ASGI middleware (Starlette's BaseHTTPMiddleware cost ~1 ms a request). It

- refuses a body larger than the limit: by its Content-Length before the app runs, and
  by the bytes actually received for a chunked upload that declares no length;
- gives a client a deadline to send its body (408 when it is missed), so a client that
  sends its headers and then a byte a minute cannot hold a request open forever;
- counts a client that goes away mid-upload as a disconnect (status label `499`, one
  log line), not as a server error with a traceback;
- records Prometheus metrics per route and status, and adds `Server-Timing: app;dur=`.

Going over a limit inside `receive` raises Starlette's HTTPException from within the
route's body read, which FastAPI lets through as that status (any other exception there
would become a 400).
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

#: the status label of a request whose client left before it could be answered (nginx's)
CLIENT_CLOSED = 499


class Metrics:
    """The app's Prometheus metrics (one registry per app, so tests do not share counts)."""

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


class Guard:
    """See the module's docstring."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, body_timeout_seconds: float, metrics: Metrics
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_seconds = body_timeout_seconds
        self.metrics = metrics

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_body_bytes:,} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        deadline = started + self.body_timeout_seconds
        status = 500
        received = 0

        body_done = False

        async def guarded_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # (later calls wait for a disconnect: no deadline for those)
                return await receive()
            remaining = deadline - time.perf_counter()
            try:  # (a timeout scope, not wait_for: no task per message)
                async with asyncio.timeout(max(remaining, 0.001)):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    status_code=408,
                    detail=f"the request body did not arrive within "
                    f"{self.body_timeout_seconds:g} seconds",
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(status_code=413, detail=self._too_large())
                body_done = not message.get("more_body", False)
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
                await self.app(scope, guarded_receive, timed_send)
        except ClientDisconnect:
            status = CLIENT_CLOSED
            logger.info("client disconnected before its request was read (%s)", _path(scope))
        finally:
            path = _path(scope)
            self.metrics.requests.labels(path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)


def _path(scope: Scope) -> str:
    return str(getattr(scope.get("route"), "path", "unmatched"))
