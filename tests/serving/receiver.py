"""A real HTTP receiver on a loopback port: it records every request and answers as told.

Webhook tests point subscriptions at it; connector tests put a CRM's fake API behind it
(`respond` checks each request against the vendor's documented example and answers as
the vendor does). `down()` closes the socket (connection refused), `up()` listens again
on the same port: an outage, not an error answer. A body cut short (its sender killed
mid-request) is recorded as 499, not as a delivery: a real receiver could not read it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.serving.server import free_port


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float


#: (status, body, headers) for a request
Answer = tuple[int, bytes, dict[str, str]]


class Receiver:
    def __init__(self, respond: Callable[[Received], Answer] | None = None) -> None:
        self.respond = respond or (lambda _r: (200, b"{}", {}))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                probe = Received(self.command, self.path, headers, body, 0, time.monotonic())
                if len(body) < length:  # the sender died mid-body: nothing was delivered
                    with receiver.lock:
                        receiver.requests.append(
                            Received(self.command, self.path, headers, body, 499, probe.at)
                        )
                    self.close_connection = True
                    return
                try:
                    status, content, extra = receiver.respond(probe)
                except Exception as exc:  # a failed check in the fake: a 599 the test sees
                    status, content, extra = 599, repr(exc).encode(), {}
                with receiver.lock:
                    receiver.requests.append(
                        Received(self.command, self.path, headers, body, status, probe.at)
                    )
                try:
                    self.send_response(status)
                    for key, value in extra.items():
                        self.send_header(key, value)
                    self.send_header("content-length", str(len(content)))
                    self.send_header("content-type", "application/json")
                    self.end_headers()
                    self.wfile.write(content)
                except OSError:  # the sender is gone (killed): it never saw this answer
                    self.close_connection = True

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

            def log_message(self, *_args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Receiver:
        self.up()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.down()

    def ok(self) -> list[Received]:
        """The requests it answered with a 2xx."""
        with self.lock:
            return [r for r in self.requests if 200 <= r.status < 300]
