"""Model updates without downtime: no request fails while the champion is swapped."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest

from features.crm.load import load_crm
from serving.app import create_app
from serving.config import Settings
from tests.serving.server import free_port, running_server
from tests.serving.test_api import AS_OF, request_body

pytestmark = pytest.mark.slow


def test_swap_under_concurrent_load(
    champion: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion["tracking_uri"])
    mlflow.set_tracking_uri(champion["tracking_uri"])
    client = mlflow.MlflowClient()
    first = client.get_model_version_by_alias("lead-scorer", "champion")
    crm = load_crm(champion["data"])
    ids = crm.contacts.loc[crm.contacts["created_at"] <= AS_OF, "contact_id"].iloc[:8].tolist()
    bodies = [request_body(crm, cid) for cid in ids]

    seen: list[tuple[int, str]] = []
    stop = threading.Event()
    new_version = ""
    try:
        with running_server(create_app(Settings(alias_poll_seconds=0))) as base:
            new_version = _swap_under_load(base, bodies, seen, stop, client, first.run_id)
    finally:
        stop.set()  # the load threads stop by themselves even if an assertion failed
        client.set_registered_model_alias("lead-scorer", "champion", first.version)
    statuses = {s for s, _ in seen}
    versions = {v for _, v in seen}
    assert statuses == {200}, f"{sum(s != 200 for s, _ in seen)} of {len(seen)} requests failed"
    assert {str(first.version), new_version} <= versions  # both models answered


def _swap_under_load(
    base: str,
    bodies: list[dict[str, Any]],
    seen: list[tuple[int, str]],
    stop: threading.Event,
    client: mlflow.MlflowClient,
    run_id: str,
) -> str:
    """Four clients score continuously; meanwhile a new version becomes champion and is loaded."""

    def hammer(k: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            i = 0
            while not stop.is_set() and i < 400:  # bounded, and it stops by itself
                r = http.post("/v1/score", json=bodies[(k + i) % len(bodies)])
                body: dict[str, Any] = r.json() if r.status_code == 200 else {}
                seen.append((r.status_code, body.get("model", {}).get("version", "")))
                i += 1

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(hammer, k) for k in range(4)]
        time.sleep(1.0)
        # A new version of the same run, made champion, then the reload call.
        new = mlflow.register_model(f"runs:/{run_id}/model", "lead-scorer")
        client.set_registered_model_alias("lead-scorer", "champion", new.version)
        reload = httpx.post(f"{base}/v1/admin/reload", timeout=60)
        assert reload.status_code == 200 and reload.json()["version"] == str(new.version)
        time.sleep(1.0)
        stop.set()
        for f in futures:
            f.result()
    return str(new.version)


def test_every_worker_serves_the_new_champion_within_seconds(
    champion: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # With --workers 2 an admin reload reaches the one worker that answers it; the other
    # must follow on its own (each worker polls the alias), within a few seconds.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion["tracking_uri"])
    mlflow.set_tracking_uri(champion["tracking_uri"])
    client = mlflow.MlflowClient()
    first = client.get_model_version_by_alias("lead-scorer", "champion")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LEADSCORE_ALIAS_POLL_SECONDS": "1"}
    leadscore = str(Path(sys.executable).parent / "leadscore")
    server = subprocess.Popen(
        [leadscore, "serve", "--workers", "2", "--port", str(port), "--no-store"],
        cwd=champion["home"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_ready(base, workers=2)
        before = _versions(base, 40)
        assert before == {str(first.version)}
        new = mlflow.register_model(f"runs:/{first.run_id}/model", "lead-scorer")
        client.set_registered_model_alias("lead-scorer", "champion", new.version)
        promoted = time.monotonic()
        assert httpx.post(f"{base}/v1/admin/reload", timeout=60).json()["version"] == str(
            new.version
        )
        while _versions(base, 40) != {str(new.version)}:
            assert time.monotonic() - promoted < 8, "a worker still serves the old champion"
            time.sleep(0.2)
    finally:
        client.set_registered_model_alias("lead-scorer", "champion", first.version)
        server.terminate()
        server.wait(20)


def _versions(base: str, n: int) -> set[str]:
    """The model version reported by n requests, each on a new connection (any worker)."""
    return {httpx.get(f"{base}/v1/model", timeout=10).json()["version"] for _ in range(n)}


def _wait_ready(base: str, workers: int, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    ready = 0
    while ready < 20 * workers:  # several answers in a row: every worker has its model
        assert time.monotonic() < deadline, "the server did not become ready"
        try:
            ok = httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            ok = False
        ready = ready + 1 if ok else 0
        time.sleep(0.05)


def test_the_alias_is_read_once_and_that_version_is_loaded(
    champion: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A promotion between reading the alias and downloading used to load version 2's
    # weights while reporting version 1, forever: the version reported is the one loaded.
    from features.model import pyfunc

    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion["tracking_uri"])
    downloaded: list[str] = []
    real = mlflow.artifacts.download_artifacts

    def spy(artifact_uri: str, dst_path: str) -> str:
        downloaded.append(artifact_uri)
        return str(real(artifact_uri=artifact_uri, dst_path=dst_path))

    monkeypatch.setattr(pyfunc.mlflow.artifacts, "download_artifacts", spy)
    _, info = pyfunc.load_scorer("models:/lead-scorer@champion")
    assert downloaded == [f"models:/lead-scorer/{info['version']}"]
