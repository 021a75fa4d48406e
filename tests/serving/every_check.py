"""Schemathesis with every check it has (`--checks all`), over an app's operations.

One setting is ours, and it is narrow: on the scoring operations and the lead reads, a
request valid by the JSON Schema may still get a 422, because the data contract has
rules that span fields and a JSON Schema cannot say (a contact created after as_of, a
deal that closes before it opened, a committee member of another account, `contact`
sent to a table model), and a list's cursor is a token only the server can mint; the same
holds for a points matrix to measure (its rules must name groups it defines, engagement
rules sit in engagement groups, grade bands fall, and only values may differ from the
champion's own matrix).
Every other check runs as schemathesis ships it.
"""

from __future__ import annotations

from collections.abc import Callable

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.config import SchemathesisConfig

CONFIG = """
[[operations]]
include-path-regex = "^/v1/(score|leads|model/points-what-if)"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "422"]
"""


def run_every_check(
    app: FastAPI,
    api_key: str,
    max_examples: int,
    only: Callable[[str], bool] = lambda label: True,
) -> list[str]:
    """Every operation (``only`` those whose label it accepts), ``max_examples`` generated
    cases each, every check on every answer; returns the operations tested."""
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", app, config=SchemathesisConfig.from_str(CONFIG)
    )
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not only(operation.label):
            continue
        tested.append(operation.label)

        @settings(
            max_examples=max_examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"X-API-Key": api_key})

        call()
    return tested
