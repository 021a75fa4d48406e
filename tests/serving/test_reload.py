"""Model updates without downtime: no request fails while the champion is swapped."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import mlflow
import pytest
import uvicorn

from features.crm import load_crm
from serving.app import create_app
from serving.config import Settings
from tests.serving.test_api import _free_port, request_body

pytestmark = pytest.mark.slow


def test_swap_under_concurrent_load(
    champion: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion["tracking_uri"])
    mlflow.set_tracking_uri(champion["tracking_uri"])
    client = mlflow.MlflowClient()
    first = client.get_model_version_by_alias("lead-scorer", "champion")
    crm = load_crm(champion["data"])
    ids = crm.contacts["contact_id"].iloc[:8].tolist()
    bodies = [request_body(crm, cid) for cid in ids]

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(Settings(alias_poll_seconds=0)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    seen: list[tuple[int, str]] = []
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready in 60 s"
            time.sleep(0.2)

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
            new = mlflow.register_model(f"runs:/{first.run_id}/model", "lead-scorer")
            client.set_registered_model_alias("lead-scorer", "champion", new.version)
            reload = httpx.post(f"{base}/v1/admin/reload", timeout=60)
            assert reload.status_code == 200 and reload.json()["version"] == str(new.version)
            time.sleep(1.0)
            stop.set()
            for f in futures:
                f.result()
    finally:
        stop.set()
        server.should_exit = True
        thread.join(timeout=10)
        client.set_registered_model_alias("lead-scorer", "champion", first.version)
    statuses = {s for s, _ in seen}
    versions = {v for _, v in seen}
    assert statuses == {200}, f"{sum(s != 200 for s, _ in seen)} of {len(seen)} requests failed"
    assert {str(first.version), str(new.version)} <= versions  # both models answered
