"""The scoring API: what a CRM sends, what it gets back, and what it gets for mistakes.

A real registered model (the session's `champion` fixture), the real app; most tests go
through FastAPI's TestClient, the end-to-end test through a real uvicorn server over HTTP.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features.crm.load import load_crm
from features.pipeline.kernel import compute_features
from features.pipeline.lead import lead_from_crm
from features.pipeline.registry import CATEGORICAL, NUMERIC
from features.pipeline.snapshots import SnapshotConfig, build_snapshots, to_epoch
from features.pipeline.store import EventStore, lead_rows
from serving.app import create_app
from serving.config import Settings
from serving.schemas import ScoreRequest
from serving.scoring import _context
from tests.serving.server import running_server

pytestmark = pytest.mark.slow

AS_OF = pd.Timestamp("2025-06-01T00:00:00Z")


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in record.items()}


def request_body(crm: Any, contact_id: str, as_of: pd.Timestamp = AS_OF) -> dict[str, Any]:
    """The JSON a CRM would send for this contact: its context, past and future alike."""
    lead = lead_from_crm(crm, contact_id)
    return {
        "contact": _jsonable(dict(lead.contact)),
        "account": _jsonable(dict(lead.account)) if lead.account else None,
        "touchpoints": [_jsonable(dict(t)) for t in lead.touchpoints],
        "committee": [
            {"contact": _jsonable(dict(c)), "touchpoints": [_jsonable(dict(t)) for t in ts]}
            for c, ts in lead.committee
        ],
        "opportunities": [_jsonable(dict(o)) for o in lead.opportunities],
        "as_of": as_of.isoformat(),
    }


@pytest.fixture(scope="module")
def crm(champion: dict[str, str]) -> Any:
    return load_crm(champion["data"])


@pytest.fixture
def client(champion: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion["tracking_uri"])
    with TestClient(create_app(Settings(alias_poll_seconds=0))) as c:
        yield c


@pytest.fixture(scope="module")
def busy_contact(crm: Any) -> str:
    """A contact with an account, a committee and touchpoints in the 90 days before AS_OF."""
    tp = crm.touchpoints.merge(crm.contacts[["contact_id", "account_id"]])
    recent = (tp["occurred_at"] <= AS_OF) & (tp["occurred_at"] > AS_OF - pd.Timedelta(days=90))
    before = tp[recent & tp["account_id"].notna()]
    return str(before["contact_id"].value_counts().index[0])


def test_score_one_lead(client: TestClient, crm: Any, busy_contact: str) -> None:
    response = client.post("/v1/score", json=request_body(crm, busy_contact))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["contact_id"] == busy_contact
    assert 0 < body["probability"] < 1
    assert body["model"] == {"name": "lead-scorer", "version": "1", "alias": "champion"}
    rules = body["rules"]
    assert rules["threshold"] == 100 and rules["grade"][0] in "ABCD"
    assert sum(line["points"] for line in rules["breakdown"]) == pytest.approx(
        rules["points"], abs=0.05
    )
    assert body["reasons"] and all(r["label"] and r["contribution"] != 0 for r in body["reasons"])
    assert body["account"]["engaged_contacts_90d"] >= 1
    assert body["account"]["max_probability"] >= body["probability"]


def test_the_api_computes_the_features_and_probability_of_the_training_row(
    client: TestClient, crm: Any, champion: dict[str, str]
) -> None:
    # One feature code path: a lead sent over HTTP at time T gets the features (and so
    # the probability) of its training row with as_of = T built from the same data.
    frame, _ = build_snapshots(crm, SnapshotConfig(), dates=[AS_OF])
    rows = frame.sample(25, random_state=3)
    model = client.app.state.holder.current  # type: ignore[attr-defined]
    for _, row in rows.iterrows():
        body = request_body(crm, row["contact_id"])
        lead = _context(ScoreRequest.model_validate(body))
        store = EventStore.from_leads([lead])
        block = compute_features(store, lead_rows([lead]), np.array([to_epoch(AS_OF)]))
        for name in NUMERIC:
            got, want = float(block.column(name)[0]), float(row[name])
            assert (np.isnan(got) and np.isnan(want)) or got == pytest.approx(want, rel=1e-6), name
        for name in CATEGORICAL:
            assert block.column(name)[0] == (None if pd.isna(row[name]) else row[name]), name
        expected = model.scorer.predict(model.scorer.matrix_from_frame(frame.loc[[row.name]]))[0]
        api = client.post("/v1/score", json=body).json()["probability"]
        assert api == pytest.approx(expected, rel=1e-6)


def test_batch_keeps_order_and_matches_single_calls(client: TestClient, crm: Any) -> None:
    existing = crm.contacts[crm.contacts["created_at"] <= AS_OF]
    ids = existing["contact_id"].iloc[:12].tolist()
    bodies = [request_body(crm, cid) for cid in ids]
    response = client.post("/v1/score/batch", json={"leads": bodies})
    assert response.status_code == 200, response.text
    answer = response.json()
    results = answer["results"]
    assert (answer["scored"], answer["failed"]) == (12, 0)
    assert [r["contact_id"] for r in results] == ids
    for body, result in zip(bodies[:4], results[:4], strict=True):
        single = client.post("/v1/score", json=body).json()
        assert single["probability"] == pytest.approx(result["probability"])
        assert single["rules"] == result["rules"]


@pytest.mark.parametrize(
    ("edit", "status", "where"),
    [
        (lambda b: b["contact"].pop("contact_id"), 422, ["body", "contact", "contact_id"]),
        (
            lambda b: b["contact"].update(created_at="yesterday"),
            422,
            ["body", "contact", "created_at"],
        ),
        (lambda b: b["account"].update(employees=-5), 422, ["body", "account", "employees"]),
        (lambda b: b["contact"].update(seniority="boss"), 422, ["body", "contact", "seniority"]),
        (
            lambda b: b["touchpoints"].append({"touchpoint_id": "X", "type": "demo_request"}),
            422,
            ["body", "touchpoints", 0, "occurred_at"],
        ),
    ],
    ids=["missing-id", "bad-timestamp", "negative", "bad-enum", "touch-without-time"],
)
def test_bad_input_is_a_4xx_naming_the_field(
    client: TestClient, crm: Any, busy_contact: str, edit: Any, status: int, where: list[Any]
) -> None:
    body = request_body(crm, busy_contact)
    body["touchpoints"] = (
        body["touchpoints"][:0] if where[1] == "touchpoints" else body["touchpoints"]
    )
    edit(body)
    response = client.post("/v1/score", json=body)
    assert response.status_code == status
    locations = [d["loc"] for d in response.json()["detail"]]
    assert where in locations, locations


def test_not_json_and_too_large_and_too_many(
    champion: dict[str, str], monkeypatch: pytest.MonkeyPatch, crm: Any, busy_contact: str
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion["tracking_uri"])
    with TestClient(
        create_app(Settings(alias_poll_seconds=0, max_batch=2, max_body_bytes=200_000))
    ) as c:
        not_json = c.post(
            "/v1/score", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 422
        (error,) = not_json.json()["detail"]
        assert error["type"] == "json_invalid" and "input" not in error  # no echo of the body
        big = {"leads": [request_body(crm, busy_contact)] * 3}
        response = c.post("/v1/score/batch", json=big)
        assert response.status_code in (413, 422)
        if response.status_code == 422:
            assert response.json()["detail"][0]["loc"] == ["body", "leads"]
        huge = b"{" + b" " * 300_000 + b"}"
        response = c.post("/v1/score", content=huge, headers={"content-type": "application/json"})
        assert response.status_code == 413 and "larger than" in response.json()["detail"]


def test_api_keys(champion: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion["tracking_uri"])
    with TestClient(create_app(Settings(alias_poll_seconds=0, api_keys=["k-old", "k-new"]))) as c:
        assert c.get("/v1/model").status_code == 401
        assert c.get("/v1/model", headers={"X-API-Key": "nope"}).status_code == 401
        assert c.get("/v1/model", headers={"X-API-Key": "k-new"}).status_code == 200
        assert c.get("/v1/model", headers={"X-API-Key": "k-old"}).status_code == 200
        assert c.get("/healthz").status_code == 200  # probes need no key


def test_model_info_importance_health_metrics(
    client: TestClient, crm: Any, busy_contact: str
) -> None:
    info = client.get("/v1/model").json()
    assert info["kind"] == "touchpoint"
    assert (
        info["version"] == "1"
        and info["alias"] == "champion"
        and "roc_auc" in info["holdout_metrics"]
    )
    assert "decision_touches_30d" in info["features"] and info["horizon_days"] == 90
    importance = client.get("/v1/model/feature-importance").json()["features"]
    assert importance[0]["mean_abs_shap"] >= importance[-1]["mean_abs_shap"]
    assert all(item["label"] and item["definition"] for item in importance[:10])
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["ready"] is True
    client.post("/v1/score", json=request_body(crm, busy_contact))
    text = client.get("/metrics").text
    assert 'leadscore_requests_total{route="/v1/score",status="200"}' in text
    assert "leadscore_request_seconds_bucket" in text and "leadscore_probability_count" in text


def test_not_ready_without_a_model(
    champion: dict[str, str], monkeypatch: pytest.MonkeyPatch, crm: Any, busy_contact: str
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion["tracking_uri"])
    with TestClient(
        create_app(Settings(model_uri="models:/no-such-model@champion", alias_poll_seconds=0))
    ) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 503
        response = c.post("/v1/score", json=request_body(crm, busy_contact))
        assert response.status_code == 503 and "no model is loaded" in response.json()["detail"]


def test_no_email_or_body_in_logs(
    client: TestClient, crm: Any, busy_contact: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = request_body(crm, busy_contact)
    body["contact"]["email"] = "secret.person@acme.example"
    body["contact"]["job_title"] = "Chief Secret Officer"
    with caplog.at_level(logging.DEBUG):
        assert client.post("/v1/score", json=body).status_code == 200
        client.post("/v1/score", json={**body, "contact": {**body["contact"], "created_at": "bad"}})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "secret.person" not in logged and "Chief Secret" not in logged


def test_end_to_end_over_http_with_a_real_server(
    champion: dict[str, str], monkeypatch: pytest.MonkeyPatch, crm: Any, busy_contact: str
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion["tracking_uri"])
    app = create_app(Settings(alias_poll_seconds=0, api_keys=["k"], max_body_bytes=200_000))
    with (
        running_server(app) as base,
        httpx.Client(base_url=base, headers={"X-API-Key": "k"}, timeout=10) as http,
    ):
        response = http.post(
            "/v1/score",
            content=json.dumps(request_body(crm, busy_contact)),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 200 and 0 < response.json()["probability"] < 1
        openapi = http.get("/openapi.json").json()
        assert "/v1/score" in openapi["paths"] and "/v1/score/batch" in openapi["paths"]
        schema = openapi["components"]["schemas"]["ScoreRequest"]
        assert schema["examples"][0]["contact"]["contact_id"] == "C1"
        assert http.post("/v1/score", json={"contact": {}}).status_code == 422
        assert "app;dur=" in response.headers["server-timing"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
            yield b'{"contact": {"contact_id": "'
            for _ in range(40):
                yield b"x" * 10_000

        chunked = http.post(
            "/v1/score", content=chunks(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413, chunked.text
        assert "larger than 200,000 bytes" in chunked.json()["detail"]
        assert http.get("/healthz").status_code == 200  # and the server is fine


def test_numbers_beyond_any_company_are_a_422(
    client: TestClient, crm: Any, busy_contact: str
) -> None:
    body = request_body(crm, busy_contact)
    body["account"]["employees"] = 10**400  # a JSON integer Python reads, no float holds
    response = client.post("/v1/score", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "account", "employees"]
