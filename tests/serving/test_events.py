"""Events in, scores out: the live store's intake, ledger and reads, item by item.

The real app on a real store (SQLite here; PostgreSQL in test_replay and
test_concurrency) with the session's registered champion.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from features.crm.database import accounts, contacts, opportunities, touchpoints
from serving.app import create_app
from serving.config import Settings
from serving.store.tables import current_scores, scores
from tests.serving.db import count

pytestmark = pytest.mark.slow

AS_OF = "2025-06-01T00:00:00Z"


@pytest.fixture
def client(tracking: dict[str, str], sqlite_url: str) -> Iterator[TestClient]:
    settings = Settings(alias_poll_seconds=0, database_url=sqlite_url, rescore_every_seconds=0)
    with TestClient(create_app(settings)) as c:
        yield c


ACME = {"account_id": "A1", "industry": "software", "employees": 250, "country": "DE"}
ANA = {
    "contact_id": "C1",
    "account_id": "A1",
    "created_at": "2025-03-02T10:00:00Z",
    "job_title": "VP Finance",
    "lead_source": "web_form",
    "email": "ana@acme.example",
}
BEN = {
    "contact_id": "C2",
    "account_id": "A1",
    "created_at": "2025-02-20T09:00:00Z",
    "job_title": "CTO",
    "lead_source": "outbound",
}


def touch(
    touch_id: str, contact: str, when: str, kind: str = "pricing_page_view"
) -> dict[str, Any]:
    return {"touchpoint_id": touch_id, "contact_id": contact, "occurred_at": when, "type": kind}


def post(client: TestClient, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = client.post("/v1/events", json=body)
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


def seed(client: TestClient) -> dict[str, Any]:
    return post(
        client,
        {
            "accounts": [ACME],
            "contacts": [ANA, BEN],
            "touchpoints": [
                touch("T1", "C1", "2025-03-02T10:00:00Z", "demo_request"),
                touch("T9", "C2", "2025-03-01T15:00:00Z"),
            ],
            "as_of": AS_OF,
        },
    )


def test_an_event_rescores_the_whole_committee_with_the_code_of_v1_score(
    client: TestClient, sqlite_url: str
) -> None:
    first = seed(client)
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (5, 0, [])
    assert {r["contact_id"] for r in first["rescored"]} == {"C1", "C2"}
    before = {r["contact_id"]: r for r in first["rescored"]}

    # a touch of Ben (a committee member) moves Ana's committee features too
    second = post(
        client,
        {
            "touchpoints": [touch("T10", "C2", "2025-05-30T10:00:00Z", "contact_sales")],
            "as_of": AS_OF,
        },
    )
    assert second["accepted"] == 1
    after = {r["contact_id"]: r for r in second["rescored"]}
    assert set(after) == {"C1", "C2"}
    assert after["C1"]["probability"] != before["C1"]["probability"]

    # the stored answer is /v1/score's answer for the same lead, sent whole
    stored = client.get("/v1/leads/C1").json()
    stateless = client.post(
        "/v1/score",
        json={
            "contact": ANA,
            "account": ACME,
            "touchpoints": [touch("T1", "C1", "2025-03-02T10:00:00Z", "demo_request")],
            "committee": [
                {
                    "contact": BEN,
                    "touchpoints": [
                        touch("T9", "C2", "2025-03-01T15:00:00Z"),
                        touch("T10", "C2", "2025-05-30T10:00:00Z", "contact_sales"),
                    ],
                }
            ],
            "as_of": AS_OF,
        },
    ).json()
    assert stored["probability"] == pytest.approx(stateless["probability"], abs=1e-12)
    assert stored["rules"] == stateless["rules"]
    assert stored["reasons"] == stateless["reasons"] and stored["reasons"]
    assert stored["account"]["account_id"] == "A1"

    # every changed score is a ledger row, with what triggered it
    history = client.get("/v1/leads/C1/history").json()["entries"]
    assert [e["trigger"] for e in history] == ["event", "event"]
    assert history[-1]["trigger_id"] == second["event_id"]
    assert history[-1]["probability"] == after["C1"]["probability"]
    assert all(e["reasons"] for e in history)  # computed on read, from the stored inputs
    assert count(sqlite_url, scores) == 4
    assert count(sqlite_url, current_scores) == 2


def test_ids_are_idempotency_keys(client: TestClient, sqlite_url: str) -> None:
    seed(client)
    again = seed(client)  # everything sent a second time
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 5, [])
    assert all(not r["changed"] for r in again["rescored"]) or again["rescored"] == []
    assert count(sqlite_url, touchpoints) == 2
    assert count(sqlite_url, scores) == 2  # nothing changed, nothing appended

    # a touchpoint id is a fact: the same id with other values is refused
    changed = post(client, {"touchpoints": [touch("T1", "C1", "2025-03-03T10:00:00Z")]})
    assert changed["accepted"] == 0
    assert changed["rejected"] == [
        {
            "table": "touchpoints",
            "index": 0,
            "id": "T1",
            "field": "touchpoint_id",
            "msg": "is stored already with other values; a touchpoint does not change "
            "(send a new id)",
        }
    ]
    # the same id twice in one body counts once
    twice = post(
        client, {"touchpoints": [touch("T2", "C1", "2025-04-01T00:00:00Z")] * 2, "as_of": AS_OF}
    )
    assert (twice["accepted"], twice["duplicates"]) == (1, 1)


def test_an_update_changes_only_the_fields_sent(client: TestClient, sqlite_url: str) -> None:
    seed(client)
    update = post(client, {"contacts": [{"contact_id": "C1", "job_title": "CFO"}], "as_of": AS_OF})
    assert update["accepted"] == 1
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as connection:
        row = connection.execute(sa.select(contacts).where(contacts.c.contact_id == "C1")).one()
    engine.dispose()
    assert row.job_title == "CFO"
    assert row.lead_source == "web_form" and row.email == "ana@acme.example"  # kept
    # null clears a field
    post(client, {"accounts": [{"account_id": "A1", "employees": None}], "as_of": AS_OF})
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as connection:
        acme = connection.execute(sa.select(accounts).where(accounts.c.account_id == "A1")).one()
    engine.dispose()
    assert acme.employees is None and acme.industry == "software"


def test_a_deal_stage_moves_forward_only(client: TestClient, sqlite_url: str) -> None:
    seed(client)
    deal = {
        "opportunity_id": "O1",
        "account_id": "A1",
        "contact_id": "C1",
        "created_at": "2025-05-01T00:00:00Z",
        "stage": "open",
        "amount": 5000,
    }
    assert post(client, {"opportunities": [deal], "as_of": AS_OF})["accepted"] == 1
    won = {"opportunity_id": "O1", "stage": "closed_won", "closed_at": "2025-05-20T00:00:00Z"}
    assert post(client, {"opportunities": [won], "as_of": AS_OF})["accepted"] == 1
    back = post(client, {"opportunities": [{"opportunity_id": "O1", "stage": "open"}]})
    assert back["rejected"][0]["field"] == "stage"
    assert "only moves forward" in back["rejected"][0]["msg"]
    lost = post(client, {"opportunities": [{"opportunity_id": "O1", "stage": "closed_lost"}]})
    assert lost["rejected"][0]["field"] == "stage"
    assert count(sqlite_url, opportunities, opportunities.c.stage == "closed_won") == 1
    # a closed deal needs its closing date, not before it opened
    early = post(
        client,
        {
            "opportunities": [
                {
                    **deal,
                    "opportunity_id": "O2",
                    "stage": "closed_lost",
                    "closed_at": "2025-04-01T00:00:00Z",
                }
            ]
        },
    )
    assert early["rejected"][0]["field"] == "closed_at"
    assert "closed_at >= created_at" in early["rejected"][0]["msg"]


def test_each_bad_item_is_named_and_leaves_nothing_behind(
    client: TestClient, sqlite_url: str
) -> None:
    seed(client)
    stored = {
        t.name: count(sqlite_url, t) for t in (accounts, contacts, touchpoints, opportunities)
    }
    body = {
        "accounts": [
            {"account_id": "A9", "annual_revenue": "NaN"},
            {"account_id": "A8", "employes": 5},
        ],
        "contacts": [
            {
                "contact_id": "C9",
                "account_id": "NOPE",
                "created_at": "2025-01-01",
                "email": "secret.person@example.com",
                "job_title": "Chief Secret Officer",
            },
            {"contact_id": "C8", "job_title": "no created_at"},
        ],
        "touchpoints": [
            touch("T50", "C404", "2025-05-01T00:00:00Z"),
            {**touch("T51", "C1", "2025-05-01T00:00:00Z"), "occurred_at": 1714521600},
            touch("T52", "C1", "2999-01-01T00:00:00Z"),
        ],
        "opportunities": [
            {"opportunity_id": "O9", "account_id": "A1", "created_at": "2025-05-01", "stage": "won"}
        ],
    }
    raw = json.dumps(body).replace('"NaN"', "NaN")  # a literal NaN, as JSON encoders emit it
    response = client.post("/v1/events", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 200
    answer = response.json()
    assert answer["accepted"] == 0 and answer["rescored"] == []
    got = {(r["table"], r["index"], r["id"], r["field"]) for r in answer["rejected"]}
    assert got == {
        ("accounts", 0, "A9", "annual_revenue"),
        ("accounts", 1, "A8", "employes"),
        ("contacts", 0, "C9", "account_id"),
        ("contacts", 1, "C8", "created_at"),
        ("touchpoints", 0, "T50", "contact_id"),
        ("touchpoints", 1, "T51", "occurred_at"),
        ("touchpoints", 2, "T52", "occurred_at"),
        ("opportunities", 0, "O9", "stage"),
    }
    by_field = {r["field"]: r["msg"] for r in answer["rejected"]}
    assert "did you mean 'employees'" in by_field["employes"]
    assert "ISO 8601" in by_field["occurred_at"] or "ahead" in by_field["occurred_at"]
    assert "secret" not in response.text.lower()  # never the values sent
    after = {t.name: count(sqlite_url, t) for t in (accounts, contacts, touchpoints, opportunities)}
    assert after == stored


def test_items_may_refer_to_items_of_the_same_body_in_any_order(client: TestClient) -> None:
    body = {
        "touchpoints": [touch("T1", "C1", "2025-03-02T10:00:00Z", "demo_request")],
        "contacts": [ANA],
        "accounts": [ACME],
        "as_of": AS_OF,
    }
    answer = post(client, body)
    assert (answer["accepted"], answer["rejected"]) == (3, [])
    # a rejected account takes its contacts with it, and says so for each
    orphan = post(
        client,
        {
            "accounts": [{"account_id": "A2", "employees": -1}],
            "contacts": [{**BEN, "account_id": "A2"}],
        },
    )
    assert [(r["table"], r["field"]) for r in orphan["rejected"]] == [
        ("accounts", "employees"),
        ("contacts", "account_id"),
    ]


def test_the_envelope_itself_is_checked(client: TestClient) -> None:
    for body, status, expected in (
        (b"{not json", 422, "not valid JSON"),
        (b"[]", 422, "expected an object"),
        (json.dumps({"touchpoint": []}).encode(), 422, "did you mean 'touchpoints'"),
        (json.dumps({"contacts": {}}).encode(), 422, "expected a list"),
        (json.dumps({"touchpoints": [{}] * 5001}).encode(), 422, "at most 5,000 items"),
        (json.dumps({"touchpoints": [], "as_of": 5}).encode(), 422, "ISO 8601"),
    ):
        response = client.post(
            "/v1/events", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == status, body[:40]
        assert expected in response.text, response.text
    assert client.post("/v1/events", content=b"{}").status_code == 415
    nothing = post(client, {})  # an empty call is a no-op
    assert (nothing["accepted"], nothing["rescored"]) == (0, [])


def test_reads_history_lists_and_accounts(client: TestClient) -> None:
    seed(client)
    for day in range(3, 8):
        post(
            client,
            {
                "touchpoints": [
                    touch(f"D{day}", "C1", f"2025-05-0{day}T10:00:00Z", "webinar_attendance")
                ],
                "as_of": f"2025-05-0{day}T12:00:00Z",
            },
        )
    full = client.get("/v1/leads/C1/history").json()["entries"]
    assert [e["as_of"][:10] for e in full] == ["2025-06-01"] + [
        f"2025-05-0{d}" for d in range(3, 8)
    ]
    window = client.get(
        "/v1/leads/C1/history", params={"since": "2025-05-04", "until": "2025-05-06T23:00:00"}
    ).json()
    assert [e["as_of"][:10] for e in window["entries"]] == [
        "2025-05-04",
        "2025-05-05",
        "2025-05-06",
    ]
    page = client.get("/v1/leads/C1/history", params={"limit": 4}).json()
    rest = client.get("/v1/leads/C1/history", params={"limit": 4, "cursor": page["next_cursor"]})
    assert [e["score_id"] for e in page["entries"] + rest.json()["entries"]] == [
        e["score_id"] for e in full
    ]
    assert rest.json()["next_cursor"] is None

    # the list, sorted and paged by cursor: every lead once
    post(
        client,
        {
            "accounts": [{"account_id": "A2"}],
            "contacts": [
                {"contact_id": f"X{i}", "account_id": "A2", "created_at": "2025-01-01T00:00:00Z"}
                for i in range(5)
            ],
            "as_of": AS_OF,
        },
    )
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/leads", params=params).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len({s["contact_id"] for s in seen}) == 7
    probabilities = [s["probability"] for s in seen]
    assert probabilities == sorted(probabilities, reverse=True)
    only_a2 = client.get("/v1/leads", params={"account": "A2", "order": "points"}).json()["items"]
    assert {i["contact_id"] for i in only_a2} == {f"X{i}" for i in range(5)}
    bad = client.get("/v1/leads", params={"cursor": "garbage"})
    assert bad.status_code == 422 and "cursor" in bad.text
    other = client.get(
        "/v1/leads", params={"cursor": page["next_cursor"] or cursor or "x", "order": "-points"}
    )
    assert other.status_code == 422

    account = client.get("/v1/accounts/A1").json()
    assert [c["contact_id"] for c in account["contacts"]] and account["industry"] == "software"
    assert account["max_probability"] == max(c["probability"] for c in account["contacts"])
    assert client.get("/v1/accounts/NOPE").status_code == 404
    assert client.get("/v1/leads/NOPE").status_code == 404
    assert client.get("/v1/leads/NOPE/history").status_code == 404


def test_as_of_recomputes_what_the_ledger_said_then(client: TestClient) -> None:
    """Events posted in time order, each scored at its own moment: recomputing at one of
    those moments from everything stored now gives the ledger's score of that moment
    (the later events do not leak into the past)."""
    seed(client)
    moments = []
    for day in range(10, 16):
        when = f"2025-04-{day}T12:00:00Z"
        post(
            client,
            {
                "touchpoints": [
                    touch(f"E{day}", "C2", f"2025-04-{day}T09:00:00Z", "product_page_view")
                ],
                "as_of": when,
            },
        )
        moments.append(when)
    history = {e["as_of"]: e for e in client.get("/v1/leads/C1/history").json()["entries"]}
    for when in moments[:-1]:
        then = client.get("/v1/leads/C1", params={"as_of": when}).json()
        assert then["probability"] == pytest.approx(
            history[when.replace("Z", "Z")]["probability"], abs=1e-12
        )
        assert then["rules"]["points"] == history[when]["points"]
    too_early = client.get("/v1/leads/C1", params={"as_of": "2025-01-01T00:00:00Z"})
    assert too_early.status_code == 422 and "created_at" in too_early.text
    assert client.get("/v1/leads/C1", params={"as_of": "yesterday"}).status_code == 422


def test_live_routes_say_why_they_are_off(tracking: dict[str, str], tmp_path: Any) -> None:
    off = Settings(alias_poll_seconds=0, database_url="", rescore_every_seconds=0)
    with TestClient(create_app(off)) as c:
        response = c.get("/v1/leads")
        assert response.status_code == 503 and "LEADSCORE_DATABASE_URL" in response.text
        assert c.post("/v1/score", json={"contact": ANA}).status_code == 200  # stateless works
    empty = f"sqlite:///{tmp_path / 'never-migrated.db'}"
    behind = Settings(alias_poll_seconds=0, database_url=empty, rescore_every_seconds=0)
    with TestClient(create_app(behind)) as c:
        response = c.post("/v1/events", json={"accounts": [ACME]})
        assert response.status_code == 503 and "leadscore db upgrade" in response.text
    assert not (tmp_path / "never-migrated.db").exists()  # asking did not create it
