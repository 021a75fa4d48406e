"""Schemathesis over the OpenAPI document: no generated request gets a 5xx.

Every operation, with a real champion model loaded, is called with inputs generated from
its schema (valid, edge-case and, for bodies, often invalid ones). Bad input must be a
4xx; a 500 would mean a user's mistake crashed the service. (Schemathesis' pytest plugin
does not run under pytest 9 yet, so its strategies are driven by Hypothesis directly.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from serving.app import create_app
from serving.config import Settings

pytestmark = pytest.mark.slow


def test_no_generated_request_gets_a_server_error(
    champion: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion["tracking_uri"])
    app = create_app(Settings(alias_poll_seconds=0, max_batch=20))
    app.state.holder.load()  # as the lifespan would
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()
        tested.append(operation.label)

        @settings(
            max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error])

        call()
    assert {"POST /v1/score", "POST /v1/score/batch", "GET /v1/model", "GET /readyz"} <= set(tested)
