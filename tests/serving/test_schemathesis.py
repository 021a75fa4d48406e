"""Schemathesis over the OpenAPI document, every check: no 5xx, no answer the document
does not describe.

Every operation, with a real champion model loaded, is called with inputs generated from
its schema (valid, edge-case and, for bodies, often invalid ones), and every check
schemathesis has runs on each answer (`--checks all`): no server error, status codes,
content types, headers and bodies as documented, invalid data refused, valid data
accepted, authentication enforced, unsupported methods refused. (Schemathesis' pytest
plugin does not run under pytest 9 yet, so its strategies are driven by Hypothesis.)
"""

from __future__ import annotations

import pytest

from serving.app import create_app
from serving.config import Settings
from tests.serving.every_check import run_every_check

pytestmark = pytest.mark.slow


def test_every_operation_passes_every_check(
    champion: dict[str, str], monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion["tracking_uri"])
    # keys configured, as in production: the auth checks need something to refuse; a live
    # store, so that the events and the reads are exercised too
    settings = Settings(
        alias_poll_seconds=0,
        max_batch=20,
        max_events=50,
        api_keys=["k"],
        admin_keys=["a"],
        database_url=sqlite_url,
        rescore_every_seconds=0,
    )
    app = create_app(settings)
    app.state.holder.load()  # as the lifespan would
    app.state.store_problem = None  # (checked by the lifespan: the fixture migrated it)
    tested = run_every_check(app, api_key="a", max_examples=40)
    assert {"POST /v1/score", "POST /v1/score/batch", "GET /v1/model", "GET /readyz",
            "POST /v1/admin/reload", "POST /v1/events", "GET /v1/leads/{contact_id}",
            "GET /v1/leads", "GET /v1/accounts/{account_id}"} <= set(tested)  # fmt: skip
