"""CRM connectors against local fakes of the vendors' APIs, with the vendors' own payloads.

Inbound: each real payload in ../shared/data/crm_payloads/ is replayed byte for byte,
with its documented content type, to `POST /v1/connectors/{name}/events`; it must make
the contacts and touchpoints expected, be idempotent on replay, and a bad signature
(or token) gets 401 and changes nothing.

Outbound: each fake (a real HTTP server on loopback) checks every request against the
vendor's documented example (method, path, body keys and value types, enum values)
and answers as the vendor does; a request that fails a check is answered 599, which
the test sees.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from features.crm.database import accounts, contacts, touchpoints
from serving.connectors import hubspot
from serving.store.tables import current_scores, outbox, scores
from tests.conftest import SHARED
from tests.serving.db import count, rows, wait_for
from tests.serving.receiver import Received, Receiver

PAYLOADS = SHARED / "data" / "crm_payloads"
pytestmark = pytest.mark.needs_shared


def payload(path: str) -> bytes:
    file = PAYLOADS / path
    if not file.is_file():
        pytest.skip(f"{file} is absent: the connector was NOT checked against it")
    return file.read_bytes()


def documented(path: str) -> Any:
    return json.loads(payload(path))


def same_shape(ours: Any, theirs: Any, where: str = "body") -> None:
    """`ours` has the documented example's structure: the same kind of value at each key
    the example shows (objects may hold other keys: the fields are the user's)."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{where}: expected an object"
        return
    if isinstance(theirs, list):
        assert isinstance(ours, list), f"{where}: expected a list"
        for i, item in enumerate(ours):
            same_shape(item, theirs[0], f"{where}[{i}]")
        return
    kind = (
        bool
        if isinstance(theirs, bool)
        else (int | float if isinstance(theirs, int | float) else str)
    )
    assert isinstance(ours, kind), f"{where}: expected {kind}, got {ours!r}"


@pytest.fixture
def connected(
    make_app: Callable[..., TestClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., TestClient]:
    """An app with one connector (from a connectors file) on a fresh store."""

    def make(spec: dict[str, Any], env: dict[str, str], **overrides: Any) -> TestClient:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        file = tmp_path / "connectors.yaml"
        file.write_text(json.dumps({"connectors": [spec]}))  # (JSON is YAML)
        return make_app(connectors=str(file), **overrides)

    return make


# --- Bitrix24 ---------------------------------------------------------------------------

B24_TOKEN = "51856fefc120afa4b628cc82d3935cce"  # the application_token of the docs' events
B24_FORM = {"content-type": "application/x-www-form-urlencoded"}


class FakeBitrix24:
    """crm.lead.get and crm.lead.update of an inbound webhook URL, checked against the
    documented requests; a lead keeps what crm.lead.update wrote (as Bitrix24 would)."""

    def __init__(self) -> None:
        self.get_example = documented("bitrix24/crm_lead_get_request.json")
        self.lead = documented("bitrix24/crm_lead_get_response.json")
        self.update_example = documented("bitrix24/crm_lead_update_request.json")
        self.written: dict[str, Any] = {}
        self.updates: list[dict[str, Any]] = []

    def __call__(self, request: Received) -> tuple[int, bytes, dict[str, str]]:
        assert request.method == "POST"
        body = json.loads(request.body)
        if request.path == "/rest/1/abc123/crm.lead.get.json":
            assert set(body) == set(self.get_example)
            same_shape(body["ID"], self.get_example["ID"], "ID")
            result = {**self.lead["result"], "ID": str(body["ID"]), **self.written}
            return 200, json.dumps({**self.lead, "result": result}).encode(), {}
        if request.path == "/rest/1/abc123/crm.lead.update.json":
            assert set(body) == set(self.update_example)
            same_shape(body["id"], self.update_example["id"], "id")
            same_shape(body["params"], self.update_example["params"], "params")
            assert body["fields"] and all(k.startswith("UF_CRM_") for k in body["fields"])
            self.updates.append(body)
            self.written.update(body["fields"])
            return 200, b'{"result": true, "time": {"start": 1.0}}', {}
        return 404, b'{"error": "ERROR_METHOD_NOT_FOUND"}', {}


B24_SPEC = {
    "name": "bitrix24",
    "kind": "bitrix24",
    "env": {"url": "TEST_B24_URL", "application_token": "TEST_B24_TOKEN"},
    "events": ["lead.score_changed"],
    "min_change": 0,
}


def test_bitrix24_lead_events_read_the_lead_score_it_and_write_the_score_back(
    connected: Callable[..., TestClient], sqlite_url: str
) -> None:
    fake = FakeBitrix24()
    with Receiver(fake) as crm:
        env = {"TEST_B24_URL": crm.url + "/rest/1/abc123/", "TEST_B24_TOKEN": B24_TOKEN}
        client = connected(B24_SPEC, env)
        added = client.post("/v1/connectors/bitrix24/events",
                            content=payload("bitrix24/event_oncrmleadadd_app.form.txt"),
                            headers=B24_FORM)  # fmt: skip
        assert added.status_code == 200, added.text
        answer = added.json()
        assert answer["event"] == "ONCRMLEADADD" and answer["rejected"] == []
        assert [r["contact_id"] for r in answer["rescored"]] == ["b24-lead-1000983"]
        # the contact: created when the lead was, with the documented lead's source; its
        # arrival a touchpoint
        (contact,) = rows(sqlite_url, sa.select(contacts))
        assert contact.contact_id == "b24-lead-1000983" and contact.lead_source == "1"
        assert contact.created_at == int(
            dt.datetime(2024, 5, 23, 16, 18, 25, tzinfo=dt.UTC).timestamp() * 1e6
        )
        (touch,) = rows(sqlite_url, sa.select(touchpoints))
        assert touch.touchpoint_id == "b24-lead-1000983-created" and touch.channel == "direct"

        wait_for(lambda: len(fake.updates) == 1)
        update = fake.updates[0]
        assert update["id"] == 1000983
        (score,) = rows(sqlite_url, sa.select(current_scores))
        fields = update["fields"]
        assert fields["UF_CRM_LEADSCORE_PROBABILITY"] == round(score.probability * 100, 1)
        assert fields["UF_CRM_LEADSCORE_POINTS"] == round(score.points, 2)
        assert fields["UF_CRM_LEADSCORE_GRADE"] == score.grade
        assert fields["UF_CRM_LEADSCORE_MQL"] == ("Y" if score.mql else "N")
        # it writes no reasons, so none were computed for it (TreeSHAP in the event's
        # transaction only for targets that show them)
        (ledger,) = rows(sqlite_url, sa.select(scores.c.explained))
        assert ledger.explained is False

        # the loop guard: Bitrix24 tells us of our own update; the lead reads the same
        again = client.post("/v1/connectors/bitrix24/events",
                            content=payload("bitrix24/event_oncrmleadupdate_app.form.txt"),
                            headers=B24_FORM)  # fmt: skip
        assert again.status_code == 200
        assert again.json()["accepted"] == 0 and again.json()["rescored"] == []
        time.sleep(0.5)
        assert len(fake.updates) == 1, "our write-back did not come round as a new score"
        assert count(sqlite_url, outbox) == 1


def test_bitrix24_events_with_a_wrong_token_are_refused_and_change_nothing(
    connected: Callable[..., TestClient], sqlite_url: str
) -> None:
    fake = FakeBitrix24()
    with Receiver(fake) as crm:
        env = {"TEST_B24_URL": crm.url + "/rest/1/abc123/", "TEST_B24_TOKEN": "another-token"}
        client = connected(B24_SPEC, env)
        for name in ("event_oncrmleadadd_app.form.txt", "event_oncrmleadupdate_app.form.txt"):
            refused = client.post("/v1/connectors/bitrix24/events",
                                  content=payload(f"bitrix24/{name}"), headers=B24_FORM)  # fmt: skip
            assert refused.status_code == 401
            assert "application_token" in refused.json()["detail"]
        assert crm.requests == [], "no crm.lead.get for a request we do not trust"
    assert count(sqlite_url, contacts) == 0


def test_bitrix24_events_other_than_leads_are_acknowledged_and_ignored(
    connected: Callable[..., TestClient], sqlite_url: str
) -> None:
    deal = payload("bitrix24/event_oncrmdealadd_outgoing_webhook.form.txt")
    token = deal.decode().rsplit("application_token%5D=", 1)[1]
    with Receiver(FakeBitrix24()) as crm:
        client = connected(B24_SPEC, {"TEST_B24_URL": crm.url + "/rest/1/abc123/",
                                      "TEST_B24_TOKEN": token})  # fmt: skip
        answer = client.post("/v1/connectors/bitrix24/events", content=deal, headers=B24_FORM)
        assert answer.status_code == 200 and answer.json()["ignored"] == 1
        assert crm.requests == []
    assert count(sqlite_url, contacts) == 0


# --- HubSpot ----------------------------------------------------------------------------

HUBSPOT_SECRET = "test-client-secret"
HUBSPOT_SPEC = {
    "name": "hubspot",
    "kind": "hubspot",
    "env": {"token": "TEST_HUBSPOT_TOKEN", "client_secret": "TEST_HUBSPOT_SECRET"},
    "events": ["lead.score_changed"],
    "min_change": 0,
}


def test_hubspot_v3_signature_matches_the_sdk_vector() -> None:
    vectors = documented("hubspot/signature_test_vectors.json")["vectors"]
    (v3,) = [v for v in vectors if v["signature_version"] == "v3"]
    args = (v3["secret"], v3["method"], v3["uri"], v3["body"].encode())
    assert hubspot.signature_v3(*args, v3["timestamp"]) == v3["expected_signature"]
    now = int(v3["timestamp"]) / 1000 + 10
    assert hubspot.verify_v3(*args, v3["expected_signature"], v3["timestamp"], now=now) is None
    assert hubspot.verify_v3(*args, v3["expected_signature"], v3["timestamp"]) is not None  # stale
    bad = v3["expected_signature"][:-2] + "A="
    assert hubspot.verify_v3(*args, bad, v3["timestamp"], now=now) == "the signature does not match"


def _hubspot_headers(body: bytes, uri: str, secret: str = HUBSPOT_SECRET) -> dict[str, str]:
    stamp = str(int(time.time() * 1000))
    return {
        "content-type": "application/json",
        "x-hubspot-request-timestamp": stamp,
        "x-hubspot-signature-v3": hubspot.signature_v3(secret, "POST", uri, body, stamp),
    }


class FakeHubSpot:
    def __init__(self) -> None:
        self.one = documented("hubspot/contact_update_request.json")
        self.batch = documented("hubspot/contacts_batch_update_request.json")
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, request: Received) -> tuple[int, bytes, dict[str, str]]:
        assert request.headers["authorization"] == "Bearer test-token"
        body = json.loads(request.body)
        if request.method == "PATCH" and request.path.startswith("/crm/v3/objects/contacts/"):
            assert set(body) == set(self.one)
            assert all(isinstance(v, str) for v in body["properties"].values())
        elif request.method == "POST" and request.path == "/crm/v3/objects/contacts/batch/update":
            assert set(body) == set(self.batch)
            for item in body["inputs"]:
                assert set(item) == set(self.batch["inputs"][0])
                same_shape(item["id"], self.batch["inputs"][0]["id"], "id")
                assert all(isinstance(v, str) for v in item["properties"].values())
        else:
            return 404, b"{}", {}
        self.calls.append((request.method, request.path, body))
        return 200, b'{"status": "COMPLETE"}', {}


def test_hubspot_webhooks_make_contacts_and_scores_go_back_as_properties(
    connected: Callable[..., TestClient], sqlite_url: str
) -> None:
    from serving.connectors.config import load_connectors
    from serving.connectors.registry import formats
    from serving.store.engine import Store
    from serving.webhooks.dispatch import Dispatcher, DispatchSettings

    fake = FakeHubSpot()
    with Receiver(fake) as crm:
        spec = {**HUBSPOT_SPEC, "options": {"base_url": crm.url}}
        env = {"TEST_HUBSPOT_TOKEN": "test-token", "TEST_HUBSPOT_SECRET": HUBSPOT_SECRET}
        client = connected(spec, env, dispatch=False)
        body = payload("hubspot/webhook_batch_docs_example.json")
        uri = "http://testserver/v1/connectors/hubspot/events"
        answer = client.post("/v1/connectors/hubspot/events", content=body,
                             headers=_hubspot_headers(body, uri))  # fmt: skip
        assert answer.status_code == 200, answer.text
        got = answer.json()
        # contact.creation: a contact; lifecyclestage: a property we do not read
        assert got["accepted"] == 1 and got["ignored"] == 1
        (made,) = rows(sqlite_url, sa.select(contacts))
        assert made.contact_id == "hubspot-1246978"
        assert made.created_at == 1462216307945 * 1000
        again = client.post("/v1/connectors/hubspot/events", content=body,
                            headers=_hubspot_headers(body, uri))  # fmt: skip
        assert again.json()["accepted"] == 0 and again.json()["duplicates"] == 1

        # a second contact, then one dispatcher round: one batch update for both
        second = json.dumps([{**json.loads(body)[1], "objectId": 1246979}]).encode()
        client.post("/v1/connectors/hubspot/events", content=second,
                    headers=_hubspot_headers(second, uri))  # fmt: skip
        config = load_connectors(client.app.state.settings.connectors)[0]
        assert config.name == "hubspot"
        store = Store(sqlite_url)
        Dispatcher(store, DispatchSettings(), formats()).run_once()
        store.dispose()
        assert [c[:2] for c in fake.calls] == [("POST", "/crm/v3/objects/contacts/batch/update")]
        inputs = fake.calls[0][2]["inputs"]
        assert sorted(i["id"] for i in inputs) == ["1246978", "1246979"]
        assert set(inputs[0]["properties"]) == {"leadscore_probability", "leadscore_points",
                                                "leadscore_grade", "leadscore_mql"}  # fmt: skip
        assert inputs[0]["properties"]["leadscore_mql"] in ("true", "false")

        # one contact alone: the single PATCH
        third = json.dumps([{**json.loads(body)[1], "objectId": 1246980}]).encode()
        client.post("/v1/connectors/hubspot/events", content=third,
                    headers=_hubspot_headers(third, uri))  # fmt: skip
        store = Store(sqlite_url)
        Dispatcher(store, DispatchSettings(), formats()).run_once()
        store.dispose()
        assert fake.calls[-1][:2] == ("PATCH", "/crm/v3/objects/contacts/1246980")
    assert count(sqlite_url, outbox, outbox.c.status == "delivered") == 3


def test_hubspot_webhooks_with_a_bad_signature_are_refused_and_change_nothing(
    connected: Callable[..., TestClient], sqlite_url: str
) -> None:
    client = connected(
        HUBSPOT_SPEC, {"TEST_HUBSPOT_TOKEN": "t", "TEST_HUBSPOT_SECRET": HUBSPOT_SECRET}
    )
    body = payload("hubspot/webhook_batch_docs_example.json")
    uri = "http://testserver/v1/connectors/hubspot/events"
    for headers in (
        _hubspot_headers(body, uri, secret="another-secret"),
        _hubspot_headers(body + b" ", uri),  # signed another body
        {**_hubspot_headers(body, uri), "x-hubspot-request-timestamp": "1462216307945"},  # stale
        {"content-type": "application/json"},
    ):
        answer = client.post("/v1/connectors/hubspot/events", content=body, headers=headers)
        assert answer.status_code == 401, answer.text
    assert count(sqlite_url, contacts) == 0


# --- Mautic -----------------------------------------------------------------------------

MAUTIC_SECRET = "mautic-webhook-secret"
MAUTIC_SPEC = {
    "name": "mautic",
    "kind": "mautic",
    "env": {"url": "TEST_MAUTIC_URL", "user": "TEST_MAUTIC_USER", "password": "TEST_MAUTIC_PASSWORD",
            "webhook_secret": "TEST_MAUTIC_SECRET"},
    "events": ["lead.score_changed"],
    "min_change": 0,
}  # fmt: skip


def _mautic_headers(body: bytes, secret: str = MAUTIC_SECRET) -> dict[str, str]:
    mac = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {"content-type": "application/json", "webhook-signature": base64.b64encode(mac).decode()}


def _core(name: str) -> bytes:
    """A core sample value as Mautic sends it: under its event's key, in a list."""
    value = documented(f"mautic/core_sample_payloads/{name}.json")
    return json.dumps({f"mautic.{name}": value if isinstance(value, list) else [value],
                       "timestamp": "2017-06-19T09:31:18+00:00"}).encode()  # fmt: skip


class FakeMautic:
    def __init__(self) -> None:
        self.edits: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: Received) -> tuple[int, bytes, dict[str, str]]:
        expected = "Basic " + base64.b64encode(b"api-user:api-password").decode()
        assert request.headers["authorization"] == expected
        assert request.method == "PATCH" and request.path.endswith("/edit")
        body = json.loads(request.body)
        assert set(body) == {"leadscore_probability", "leadscore_points", "leadscore_grade",
                             "leadscore_mql"}  # fmt: skip
        self.edits.append((request.path, body))
        return 200, json.dumps({"contact": {"id": 26}}).encode(), {}


def test_mautic_webhooks_make_touchpoints_and_the_score_goes_back(
    connected: Callable[..., TestClient], sqlite_url: str
) -> None:
    fake = FakeMautic()
    with Receiver(fake) as crm:
        env = {"TEST_MAUTIC_URL": crm.url, "TEST_MAUTIC_USER": "api-user",
               "TEST_MAUTIC_PASSWORD": "api-password", "TEST_MAUTIC_SECRET": MAUTIC_SECRET}  # fmt: skip
        client = connected(MAUTIC_SPEC, env)
        captured = ["lead_post_save_update", "form_on_submit", "form_on_submit_batch_of_2",
                    "page_on_hit", "email_on_open", "lead_points_change"]  # fmt: skip
        answers = {}
        for name in captured:
            body = payload(f"mautic/captured_2015/{name}.json")
            answer = client.post("/v1/connectors/mautic/events", content=body,
                                 headers=_mautic_headers(body))  # fmt: skip
            assert answer.status_code == 200, (name, answer.text)
            assert answer.json()["rejected"] == [], name
            answers[name] = answer.json()
        for name in ("lead_post_save_new", "lead_post_save_update", "form_on_submit",
                     "page_on_hit", "email_on_open", "lead_points_change", "lead_post_delete"):  # fmt: skip
            body = _core(name)
            answer = client.post("/v1/connectors/mautic/events", content=body,
                                 headers=_mautic_headers(body))  # fmt: skip
            assert answer.status_code == 200, (name, answer.text)
            assert answer.json()["rejected"] == [], name
            answers["core " + name] = answer.json()
        assert answers["lead_points_change"]["ignored"] == 1
        assert answers["core lead_post_delete"]["ignored"] == 1

        touches = {t.touchpoint_id: t for t in rows(sqlite_url, sa.select(touchpoints))}
        assert touches["mautic-form-89"].type == "other"  # a form named "lead points"
        assert touches["mautic-form-89"].contact_id == "mautic-26"
        assert touches["mautic-open-8"].type == "email_open"
        assert any(t.type == "page_view" and t.contact_id == "mautic-26" for t in touches.values())
        people = {c.contact_id for c in rows(sqlite_url, sa.select(contacts))}
        assert {"mautic-26", "mautic-52"} <= people
        # replayed: nothing new (Mautic repeats events)
        before = count(sqlite_url, touchpoints)
        body = payload("mautic/captured_2015/form_on_submit_batch_of_2.json")
        again = client.post(
            "/v1/connectors/mautic/events", content=body, headers=_mautic_headers(body)
        )
        assert again.json()["accepted"] == 0 and count(sqlite_url, touchpoints) == before

        wait_for(lambda: any(path == "/api/contacts/26/edit" for path, _ in fake.edits))
    assert count(sqlite_url, accounts) >= 0


def test_mautic_webhooks_with_a_bad_signature_are_refused_and_change_nothing(
    connected: Callable[..., TestClient], sqlite_url: str
) -> None:
    env = {"TEST_MAUTIC_URL": "http://127.0.0.1:9", "TEST_MAUTIC_USER": "u",
           "TEST_MAUTIC_PASSWORD": "p", "TEST_MAUTIC_SECRET": MAUTIC_SECRET}  # fmt: skip
    client = connected(MAUTIC_SPEC, env)
    body = payload("mautic/captured_2015/form_on_submit.json")
    for headers in (_mautic_headers(body, "wrong"), _mautic_headers(body + b"\n"),
                    {"content-type": "application/json"}):  # fmt: skip
        assert (
            client.post("/v1/connectors/mautic/events", content=body, headers=headers).status_code
            == 401
        )
    assert count(sqlite_url, contacts) == 0 and count(sqlite_url, touchpoints) == 0


# --- Dynamics 365 -------------------------------------------------------------------------

LEAD_GUID = "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"  # the lead of Microsoft's example


class FakeDataverse:
    def __init__(self) -> None:
        raw = payload("dynamics365/predictivescore_update_request.http").decode()
        request_line = raw.splitlines()[0]
        self.path = request_line.split(" ")[1]
        self.example = documented("dynamics365/predictivescore_update_request.json")
        columns = documented("dynamics365/predictivescore_writable_columns.json")[
            "writable_columns"
        ]
        self.columns = {c["logical_name"]: c for c in columns}
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: Received) -> tuple[int, bytes, dict[str, str]]:
        assert request.method == "PATCH" and request.path == self.path, request.path
        assert request.headers["authorization"] == "Bearer dataverse-token"
        body = json.loads(request.body)
        assert set(self.example) <= set(body) <= set(self.columns)
        for key, value in body.items():
            column = self.columns[key]
            if column["type"] == "Picklist":
                assert value in {o["value"] for o in column["options"]}, key
            elif column["type"] == "Integer":
                assert isinstance(value, int) and 0 <= value <= 100
            else:
                assert isinstance(value, str) and len(value) <= column["max_length"]
        self.bodies.append(body)
        return 204, b"", {}


def test_dynamics365_gets_predictive_score_records_for_its_widget(
    connected: Callable[..., TestClient], sqlite_url: str
) -> None:
    fake = FakeDataverse()
    with Receiver(fake) as crm:
        spec = {"name": "dynamics", "kind": "dynamics365", "options": {"api_version": "v9.0"},
                "env": {"url": "TEST_D365_URL", "token": "TEST_D365_TOKEN"},
                "events": ["lead.score_changed"], "min_change": 0}  # fmt: skip
        client = connected(spec, {"TEST_D365_URL": crm.url, "TEST_D365_TOKEN": "dataverse-token"})
        lead = {"contact_id": LEAD_GUID, "created_at": "2025-03-02T10:00:00Z", "job_title": "CTO"}
        touch = {"touchpoint_id": "t1", "contact_id": LEAD_GUID,
                 "occurred_at": "2025-05-30T10:00:00Z", "type": "demo_request"}  # fmt: skip
        for body in ({"contacts": [lead]}, {"touchpoints": [touch]}):
            answer = client.post("/v1/events", json={**body, "as_of": "2025-06-01T00:00:00Z"})
            assert answer.status_code == 200
        wait_for(lambda: len(fake.bodies) == 2)
    first, second = fake.bodies
    assert first["msdyn_scoretrend"] == 3  # a first score: not enough info for a trend
    (score,) = rows(sqlite_url, sa.select(current_scores))
    assert second["msdyn_score"] == round(score.probability * 100)
    assert second["msdyn_grade"] == "ABCD".index(score.grade[0])
    assert second["msdyn_scoretrend"] == (0 if second["msdyn_score"] > first["msdyn_score"] else 2)
    assert second["msdyn_scorereasons"], "the reasons show in the widget"


def test_a_connectors_file_that_names_an_unset_variable_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.connectors.config import ConnectorConfigError, load_connectors

    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    file = tmp_path / "connectors.yaml"
    file.write_text("connectors:\n  - {name: b24, kind: bitrix24, env: {url: NOT_SET_ANYWHERE}}\n")
    with pytest.raises(ConnectorConfigError, match="NOT_SET_ANYWHERE is not set"):
        load_connectors(file)
    file.write_text("connectors:\n  - {name: b24, kind: bitrix24, env: {}}\n")
    with pytest.raises(ConnectorConfigError, match=r"needs env\.url"):
        load_connectors(file)
    file.write_text("connectors:\n  - {name: b24, kind: zoho}\n")
    with pytest.raises(ConnectorConfigError, match=r"connectors\[0\].kind"):
        load_connectors(file)
