"""POST /v1/events/segment with the messages Segment and RudderStack document.

Each file of ../shared/data/crm_payloads/segment is sent byte for byte, as its sender
would (application/json), to a fresh store: it must be mapped to the right contact,
account and touchpoint, and sending it again must change nothing (Segment retries).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from features.crm.database import accounts, contacts, touchpoints
from serving.app import create_app
from serving.config import Settings
from serving.segment.translate import MappingError, load_mapping
from tests.conftest import SHARED

pytestmark = pytest.mark.slow

PAYLOADS = SHARED / "data" / "crm_payloads" / "segment"

#: file -> (contact, account, touchpoint type or None, touchpoint id or None)
EXPECTED: dict[str, tuple[str | None, str | None, str | None, str | None]] = {
    "spec_identify_full.json": ("97980cfea0067", None, None, None),
    "spec_identify_minimal.json": ("97980cfea0067", None, None, None),
    "spec_group_full.json": ("97980cfea0067", "0e8c78ea9d97a7b8185e8632", None, None),
    "spec_track_full.json": ("AiUGstSDIg", None, "other", "ajs-f8ca1e4de5024d9430b3928bd8ac6b96"),
    "spec_page_full.json": ("97980cfea0067", None, "page_view",
                            "022bb90c-bbac-11e4-8dfc-aa07a5b093db"),
    "spec_common_fields_track.json": ("97980cfea0067", "12345", "other",
                                      "022bb90c-bbac-11e4-8dfc-aa07a5b093db"),
    "b2b_saas_track_signed_up.json": ("019mr8mf4r", "acct_123", "trial_signup", None),
    "b2b_saas_track_account_created.json": ("019mr8mf4r", "acct_123", "other", None),
    "b2b_saas_track_trial_started.json": ("019mr8mf4r", "acct_123", "trial_signup", None),
    "webhook_dest_identify.json": ("019mr8mf4r", None, None, None),
    "webhook_dest_track.json": ("019mr8mf4r", None, "other", None),
    "webhook_dest_group.json": ("019mr8mf4r", "0e8c78ea9d97a7b8185e8632", None, None),
    "webhook_dest_page.json": ("019mr8mf4r", None, "pricing_page_view", None),
    "rudderstack/spec_identify_minimal.json": ("hashed_user_id", None, None, None),
    "rudderstack/spec_group_minimal.json": (None, "12345", None, None),
    "rudderstack/webhook_dest_identify.json": ("my-user-id", "company-A", None, None),
    "rudderstack/webhook_dest_page.json": ("user@domain.com", None, "page_view",
                                           "97114191-e2f2-42af-97db-14b358b1cfe1"),
    "rudderstack/webhook_dest_track.json": ("my-user-id", "comapny-A", "other",
                                            "04a303b1-a466-4e66-9022-2a24edaca4fc"),
}  # fmt: skip
#: documented messages that name no user: a visitor, not a lead (refused, with the reason)
ANONYMOUS = (
    "rudderstack/spec_track_minimal.json",
    "rudderstack/spec_page_minimal.json",
    "rudderstack/spec_common_fields_track_web.json",
)

needs_shared = pytest.mark.skipif(
    not PAYLOADS.is_dir(), reason=f"{PAYLOADS} is absent: the Segment payloads were NOT replayed"
)


@pytest.fixture
def client(tracking: dict[str, str], sqlite_url: str) -> Iterator[TestClient]:
    settings = Settings(alias_poll_seconds=0, database_url=sqlite_url, rescore_every_seconds=0)
    with TestClient(create_app(settings)) as c:
        yield c


def send(client: TestClient, raw: bytes) -> dict[str, Any]:
    response = client.post(
        "/v1/events/segment", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def rows(url: str, table: sa.Table) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        out = [dict(r) for r in connection.execute(sa.select(table)).mappings()]
    engine.dispose()
    return out


@needs_shared
@pytest.mark.needs_shared
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_documented_message_is_mapped_and_idempotent(
    client: TestClient, sqlite_url: str, name: str
) -> None:
    raw = (PAYLOADS / name).read_bytes()
    contact, account, kind, touch_id = EXPECTED[name]
    first = send(client, raw)
    assert (first["accepted"], first["rejected"]) == (1, []), first
    stored_contacts = {c["contact_id"]: c for c in rows(sqlite_url, contacts)}
    stored_accounts = {a["account_id"]: a for a in rows(sqlite_url, accounts)}
    stored_touches = rows(sqlite_url, touchpoints)
    if contact is not None:
        assert set(stored_contacts) == {contact}
        assert stored_contacts[contact]["account_id"] == account
    if account is not None:
        assert account in stored_accounts
    if kind is None:
        assert stored_touches == []
    else:
        (touch,) = stored_touches
        assert (touch["contact_id"], touch["type"]) == (contact, kind)
        if touch_id is not None:
            assert touch["touchpoint_id"] == touch_id
    again = send(client, raw)  # Segment retries: the same message again
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 1, [])
    assert len(rows(sqlite_url, touchpoints)) == len(stored_touches)


@needs_shared
@pytest.mark.needs_shared
def test_what_the_messages_say_lands_in_the_contract_fields(
    client: TestClient, sqlite_url: str
) -> None:
    # (the track's context.groupId links Peter to account 12345; the group call after it
    # moves him to Initech)
    for name in ("spec_identify_full.json", "spec_common_fields_track.json",
                 "spec_group_full.json"):  # fmt: skip
        send(client, (PAYLOADS / name).read_bytes())
    (peter,) = rows(sqlite_url, contacts)
    assert peter["email"] == "peter@example.com"
    assert peter["account_id"] == "0e8c78ea9d97a7b8185e8632"
    initech = {a["account_id"]: a for a in rows(sqlite_url, accounts)}["0e8c78ea9d97a7b8185e8632"]
    assert (initech["industry"], initech["employees"]) == ("Technology", 329)
    (report,) = rows(sqlite_url, touchpoints)
    assert report["channel"] == "email"  # context.campaign.medium
    lead = client.get("/v1/leads/97980cfea0067").json()  # scored, as any contact
    assert 0 <= lead["probability"] <= 1 and lead["account"]["account_id"] == initech["account_id"]


@needs_shared
@pytest.mark.needs_shared
def test_a_batch_counts_messages_and_refuses_visitors_with_the_reason(
    client: TestClient, sqlite_url: str
) -> None:
    messages = [
        json.loads((PAYLOADS / n).read_text()) for n in (*ANONYMOUS, "webhook_dest_page.json")
    ]
    answer = send(client, json.dumps({"batch": messages}).encode())
    assert answer["accepted"] == 1
    refused = {(r["index"], r["field"]) for r in answer["rejected"]}
    assert refused == {(0, "userId"), (1, "userId"), (2, "userId")}
    assert "anonymousId" in answer["rejected"][0]["msg"]
    assert [t["type"] for t in rows(sqlite_url, touchpoints)] == ["pricing_page_view"]


def test_a_message_with_a_bad_field_stores_nothing_of_it(
    client: TestClient, sqlite_url: str
) -> None:
    group = {"type": "group", "userId": "u1", "groupId": "g1", "traits": {"employees": "lots"},
             "timestamp": "2025-05-01T00:00:00Z"}  # fmt: skip
    answer = send(client, json.dumps(group).encode())
    assert answer["accepted"] == 0
    assert [(r["table"], r["index"], r["field"]) for r in answer["rejected"]] == [
        ("messages", 0, "accounts.employees")
    ]
    assert rows(sqlite_url, contacts) == [] and rows(sqlite_url, accounts) == []
    screen = {"type": "screen", "userId": "u1", "name": "Home"}
    answer = send(client, json.dumps(screen).encode())
    assert answer["rejected"][0]["field"] == "type"
    bad = client.post("/v1/events/segment", json=[1, 2])
    assert bad.status_code == 422 and "batch" in bad.text


def test_the_mapping_is_the_users_and_is_checked(tmp_path: Path) -> None:
    mine = tmp_path / "mapping.yaml"
    mine.write_text("track:\n  Quote Requested: contact_sales\nunmapped_track: null\n")
    mapping = load_mapping(mine)
    assert mapping.track_type("quote_requested") == "contact_sales"
    assert mapping.track_type("Something Else") is None  # stored as nothing
    assert mapping.page_type("/pricing/enterprise") == "pricing_page_view"  # defaults kept
    mine.write_text("track:\n  Quote Requested: quote\n")
    with pytest.raises(MappingError, match="'quote', which is not a touchpoint type"):
        load_mapping(mine)
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(tmp_path / "absent.yaml")
