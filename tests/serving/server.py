"""A real uvicorn server on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout: float, alive: Callable[[], str | None] = lambda: None) -> None:
    """Until `url` answers 200; `alive()` says why not to wait any longer (a dead process)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if (why := alive()) is not None:
            raise RuntimeError(why)
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server did not become ready in {timeout:g} s")
        time.sleep(0.1)


@contextlib.contextmanager
def running_server(app: FastAPI, ready_path: str = "/readyz", timeout: float = 60) -> Iterator[str]:
    """Serve ``app`` in a thread until the block ends; yields the base URL once ready."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}{ready_path}", timeout)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def served(
    args: list[str], cwd: str, env: dict[str, str], timeout: float = 90
) -> Iterator[tuple[str, Callable[[], None]]]:
    """`leadscore serve ARGS` as a process of its own, on a free port; yields the base URL
    and a function that kills it with SIGKILL and starts it again (same port)."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).parent / "leadscore"), "serve", "--port", str(port), *args]
    quiet = {"LEADSCORE_ALIAS_POLL_SECONDS": "0", "LEADSCORE_RESCORE_EVERY_SECONDS": "0"}
    environment = {**os.environ, **quiet, **env}
    process: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        process.append(
            subprocess.Popen(
                command,
                cwd=cwd,
                env=environment,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

        def alive() -> str | None:
            code = process[-1].poll()
            return None if code is None else f"leadscore serve exited with {code}"

        wait_ready(f"{base}/readyz", timeout, alive)

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process[-1].pid, signal.SIGKILL)
        process[-1].wait(30)

    def restart() -> None:
        kill()
        start()

    start()
    try:
        yield base, restart
    finally:
        kill()
