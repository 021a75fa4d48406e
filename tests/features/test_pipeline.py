"""Point-in-time features, snapshots and labels: leakage is impossible by construction.

Literal examples in the style of Feast's point-in-time docs, hand-built label cases, a
hand-built buying committee, a Hypothesis property that the future changes nothing, and
the proof that a single lead gets exactly the features of its batch row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.crm.load import CRM, crm_from_frames
from features.crm.taxonomy import TOUCHPOINT_TYPES
from features.pipeline.kernel import compute_features
from features.pipeline.lead import lead_from_crm
from features.pipeline.registry import CATEGORICAL, FEATURE_NAMES, FEATURES, NUMERIC
from features.pipeline.snapshots import SnapshotConfig, build_snapshots, time_split, to_epoch
from features.pipeline.store import EventStore, lead_rows
from features.synthetic import GeneratorConfig, generate_frames

T = pd.Timestamp("2025-06-01T12:00:00Z")  # the as_of of the literal examples


def at(offset: str) -> str:
    """A timestamp relative to T, e.g. at("-1s"), at("-30D")."""
    return (T + pd.Timedelta(offset)).isoformat()


def crm_of(
    contacts: list[dict[str, Any]],
    touchpoints: list[dict[str, Any]] = (),  # type: ignore[assignment]
    opportunities: list[dict[str, Any]] = (),  # type: ignore[assignment]
    accounts: list[dict[str, Any]] | None = None,
) -> CRM:
    """A CRM from literal rows; unspecified contract columns are empty."""
    accounts = accounts if accounts is not None else [{"account_id": "A1", "industry": "software"}]
    contacts = [{"created_at": at("-400D"), **c} for c in contacts]
    touchpoints = [{"touchpoint_id": f"T{i}", **t} for i, t in enumerate(touchpoints)]
    columns = {
        "accounts": ["account_id", "industry", "employees", "annual_revenue", "country"],
        "contacts": ["contact_id", "account_id", "created_at", "job_title", "seniority", "department", "lead_source", "email"],
        "touchpoints": ["touchpoint_id", "contact_id", "occurred_at", "type", "channel", "topic"],
        "opportunities": ["opportunity_id", "account_id", "contact_id", "created_at", "closed_at", "stage", "amount"],
    }  # fmt: skip
    rows = {
        "accounts": accounts,
        "contacts": contacts,
        "touchpoints": touchpoints,
        "opportunities": opportunities,
    }
    frames = {
        name: pd.DataFrame(rows[name], columns=cols).astype(object)
        for name, cols in columns.items()
    }
    return crm_from_frames(frames)


def features_of(crm: CRM, contact_id: str, as_of: pd.Timestamp = T) -> dict[str, Any]:
    store = EventStore.from_crm(crm)
    block = compute_features(store, store.contact_index([contact_id]), np.array([to_epoch(as_of)]))
    return {name: values[0] for name, values in block.as_dict().items()}


# --- the point-in-time rule, literally ---------------------------------------------


def test_a_touch_at_as_of_counts_one_second_later_does_not() -> None:
    crm = crm_of(
        [{"contact_id": "C1", "account_id": "A1"}],
        [
            {
                "contact_id": "C1",
                "occurred_at": at("0s"),
                "type": "demo_request",
            },  # exactly at as_of
            {
                "contact_id": "C1",
                "occurred_at": at("1s"),
                "type": "demo_request",
            },  # one second after
            {"contact_id": "C1", "occurred_at": at("2D"), "type": "pricing_page_view"},
        ],
    )
    f = features_of(crm, "C1")
    assert f["demo_request_7d"] == 1
    assert f["touches_365d"] == 1
    assert f["pricing_page_view_365d"] == 0
    assert f["days_since_last_touch"] == 0
    assert f["days_since_last_decision_touch"] == 0


def test_a_touch_older_than_a_window_falls_out_of_it() -> None:
    crm = crm_of(
        [{"contact_id": "C1", "account_id": "A1"}],
        [
            {"contact_id": "C1", "occurred_at": at("-7D"), "type": "blog_view"},  # edge: out of 7d
            {"contact_id": "C1", "occurred_at": at("-6D23h59min59s"), "type": "blog_view"},  # in 7d
            {"contact_id": "C1", "occurred_at": at("-31D"), "type": "webinar_attendance"},
            {"contact_id": "C1", "occurred_at": at("-400D"), "type": "page_view"},
        ],
    )
    f = features_of(crm, "C1")
    assert (f["touches_7d"], f["touches_30d"], f["touches_90d"], f["touches_365d"]) == (1, 2, 3, 3)
    assert f["awareness_touches_7d"] == 1 and f["consideration_touches_90d"] == 1
    assert f["webinar_attendance_30d"] == 0 and f["webinar_attendance_90d"] == 1
    assert f["days_since_first_touch"] == pytest.approx(400.0)
    assert f["first_touch_type"] == "page_view"
    # The one-year-old page view still counts, decayed by 2^(-400/30).
    expected = 2 * 0.5 ** (7 / 30) + 0.5 ** (31 / 30) + 0.5 ** (400 / 30)
    assert f["touches_decayed"] == pytest.approx(expected, rel=1e-4)


def test_engagement_details() -> None:
    crm = crm_of(
        [{"contact_id": "C1", "account_id": "A1", "created_at": at("-100D"), "lead_source": "web_form",
          "email": "ana@gmail.com"}],
        [
            {"contact_id": "C1", "occurred_at": at("-80D"), "type": "newsletter_signup", "channel": "organic", "topic": "general"},
            {"contact_id": "C1", "occurred_at": at("-40D"), "type": "careers_page_view", "channel": "organic"},
            {"contact_id": "C1", "occurred_at": at("-10D"), "type": "product_page_view", "channel": "paid_search", "topic": "product"},
            {"contact_id": "C1", "occurred_at": at("-5D"), "type": "unsubscribe", "channel": "email"},
        ],
    )  # fmt: skip
    f = features_of(crm, "C1")
    assert f["distinct_types_90d"] == 4 and f["distinct_channels_90d"] == 3
    assert f["product_topic_share_90d"] == pytest.approx(0.5)
    assert f["unsubscribed"] == 1 and f["email_bounced"] == 0
    assert f["careers_page_views_365d"] == 1
    # 2 touches in the last 30 days against 2 in the 60 before (a rate of 1 a month).
    assert f["velocity_30d"] == pytest.approx(np.log(3 / 2))
    assert f["lead_age_days"] == pytest.approx(100.0)
    assert (f["lead_source"], f["free_mail"], f["industry"]) == ("web_form", 1.0, "software")


def test_a_contact_without_touches_or_account_has_empty_features() -> None:
    crm = crm_of([{"contact_id": "C1", "job_title": "Student", "email": "x@uni.example"}])
    f = features_of(crm, "C1")
    assert f["touches_365d"] == 0
    assert np.isnan(f["days_since_last_touch"]) and f["account_engaged_contacts_90d"] == 0
    assert f["first_touch_type"] is None and f["industry"] is None
    assert np.isnan(f["employees_band"]) and np.isnan(f["days_since_account_last_won"])
    assert (f["seniority"], f["department"], f["free_mail"]) == ("individual", "other", 0.0)


def test_a_contact_without_an_account_is_its_own_buying_committee() -> None:
    # A lead on free mail with no company is a one-person committee: its own engagement
    # fills the committee features (a demo request counts), its firmographics stay unknown.
    crm = crm_of(
        [{"contact_id": "C1", "job_title": "Head of IT", "email": "x@gmail.com"}],
        [
            {"contact_id": "C1", "occurred_at": at("-20D"), "type": "demo_request"},
            {"contact_id": "C1", "occurred_at": at("-3D"), "type": "pricing_page_view"},
        ],
    )
    f = features_of(crm, "C1")
    assert f["account_engaged_contacts_30d"] == 1 and f["account_decision_touches_30d"] == 2
    assert f["contact_share_of_account_touches_90d"] == 1.0 and f["account_won_deals"] == 0
    assert f["account_departments_engaged_90d"] == 1 and f["industry"] is None


# --- the buying committee ------------------------------------------------------------


def test_committee_features_on_a_hand_built_account() -> None:
    crm = crm_of(
        [
            {"contact_id": "C1", "account_id": "A1", "job_title": "IT Manager"},
            {"contact_id": "C2", "account_id": "A1", "job_title": "CFO"},
            {"contact_id": "C3", "account_id": "A1", "job_title": "Начальник отдела закупок"},
            {"contact_id": "C4", "account_id": "A1", "job_title": "Software Engineer"},
            {"contact_id": "C5", "account_id": "A2", "job_title": "CEO"},
        ],
        [
            {"contact_id": "C1", "occurred_at": at("-200D"), "type": "blog_view"},
            {"contact_id": "C1", "occurred_at": at("-20D"), "type": "demo_request"},
            {"contact_id": "C1", "occurred_at": at("-2D"), "type": "meeting"},
            {"contact_id": "C2", "occurred_at": at("-10D"), "type": "pricing_page_view"},  # new in 30d
            {"contact_id": "C3", "occurred_at": at("-60D"), "type": "email_open"},  # 90d, not 30d
            {"contact_id": "C4", "occurred_at": at("5D"), "type": "trial_signup"},  # the future
            {"contact_id": "C5", "occurred_at": at("-1D"), "type": "contact_sales"},  # another account
        ],
        [
            {"opportunity_id": "O1", "account_id": "A1", "created_at": at("-500D"), "closed_at": at("-450D"), "stage": "closed_won"},
            {"opportunity_id": "O2", "account_id": "A1", "created_at": at("-300D"), "closed_at": at("-250D"), "stage": "closed_lost"},
            {"opportunity_id": "O3", "account_id": "A1", "created_at": at("-300D"), "closed_at": at("20D"), "stage": "closed_won"},
        ],
        accounts=[{"account_id": "A1"}, {"account_id": "A2"}],
    )  # fmt: skip
    f = features_of(crm, "C1")
    assert f["account_engaged_contacts_30d"] == 2  # C1, C2
    assert f["account_engaged_contacts_90d"] == 3  # + C3; not C4 (future), not C5 (A2)
    assert f["account_departments_engaged_90d"] == 3  # it, finance, procurement
    assert f["account_seniority_levels_engaged_90d"] == 2  # manager, c_level
    assert f["account_decision_maker_engaged_90d"] == 1  # the CFO
    assert f["account_finance_engaged_90d"] == 1
    assert f["account_procurement_legal_engaged_90d"] == 1
    assert f["account_decision_touches_30d"] == 3  # demo, meeting, pricing
    assert f["contact_share_of_account_touches_90d"] == pytest.approx(2 / 4)
    assert f["account_new_contacts_30d"] == 1  # C2; C1 first touched 200 days ago
    # History: O1 won and O2 lost before as_of; O3 closes after as_of and does not count.
    assert (f["account_won_deals"], f["account_lost_deals"]) == (1, 1)
    assert f["days_since_account_last_won"] == pytest.approx(450.0)


# --- eligibility and labels ------------------------------------------------------------


def _snapshot(crm: CRM, horizon: int = 90) -> pd.DataFrame:
    frame, _ = build_snapshots(
        crm, SnapshotConfig(horizon_days=horizon, active_days=None), dates=[T]
    )
    return frame.set_index("contact_id")


def _opp(
    oid: str, account: str, created: str, closed: str | None, stage: str, contact: str | None = None
) -> dict[str, Any]:
    return {"opportunity_id": oid, "account_id": account, "contact_id": contact, "created_at": at(created),
            "closed_at": at(closed) if closed else None, "stage": stage}  # fmt: skip


END_MARKER = {"contact_id": "CX", "occurred_at": at("400D"), "type": "page_view"}  # data ends +400d


def test_an_open_opportunity_at_as_of_excludes_the_accounts_contacts() -> None:
    crm = crm_of(
        [{"contact_id": "C1", "account_id": "A1"}, {"contact_id": "C2", "account_id": "A2"},
         {"contact_id": "CX", "account_id": "A2"}],
        [END_MARKER],
        [_opp("O1", "A1", "-10D", "30D", "closed_won")],
        accounts=[{"account_id": "A1"}, {"account_id": "A2"}],
    )  # fmt: skip
    rows = _snapshot(crm)
    assert "C1" not in rows.index and "C2" in rows.index
    _, report = build_snapshots(crm, SnapshotConfig(active_days=None), dates=[T])
    assert report.excluded["open opportunity at as_of"] == 1


@pytest.mark.parametrize(
    ("opportunity", "converted"),
    [
        (_opp("O1", "A1", "10D", "60D", "closed_won"), 1),  # won within the horizon
        (_opp("O1", "A1", "10D", "90D", "closed_won"), 1),  # won exactly at as_of + horizon
        (_opp("O1", "A1", "10D", "91D", "closed_won"), 0),  # a win after the horizon is a negative
        (_opp("O1", "A1", "10D", "60D", "closed_lost"), 0),  # lost
        (_opp("O1", "A1", "10D", None, "open"), 0),  # still open
        (
            _opp("O1", "A1", "-100D", "-20D", "closed_won"),
            0,
        ),  # won before as_of: history, not a label
    ],
    ids=["won-in-horizon", "won-at-horizon", "won-after-horizon", "lost", "open", "won-before"],
)
def test_label(opportunity: dict[str, Any], converted: int) -> None:
    crm = crm_of(
        [{"contact_id": "C1", "account_id": "A1"}, {"contact_id": "CX"}],
        [END_MARKER],
        [opportunity],
    )
    assert _snapshot(crm).loc["C1", "converted"] == converted


def test_a_primary_contact_without_an_account_is_labelled_by_its_deal() -> None:
    crm = crm_of(
        [{"contact_id": "C1"}, {"contact_id": "C2"}, {"contact_id": "CX"}],  # no accounts
        [END_MARKER],
        [_opp("O1", "A1", "5D", "40D", "closed_won", contact="C1")],
    )
    rows = _snapshot(crm)
    assert rows.loc["C1", "converted"] == 1
    assert rows.loc["C2", "converted"] == 0


def test_an_immature_snapshot_is_dropped() -> None:
    crm = crm_of(
        [{"contact_id": "C1", "account_id": "A1"}],
        [
            {"contact_id": "C1", "occurred_at": at("60D"), "type": "page_view"}
        ],  # data ends at +60 days
    )
    frame, report = build_snapshots(
        crm, SnapshotConfig(horizon_days=90, active_days=None), dates=[T]
    )
    assert frame.empty
    assert report.excluded["outcome window not closed"] == 1
    frame, _ = build_snapshots(crm, SnapshotConfig(horizon_days=60, active_days=None), dates=[T])
    assert len(frame) == 1


def test_not_yet_created_and_dormant_contacts_are_excluded_and_counted() -> None:
    crm = crm_of(
        [
            {"contact_id": "C1", "account_id": "A1", "created_at": at("1D")},  # created after as_of
            {"contact_id": "C2", "account_id": "A1", "created_at": at("-800D")},  # dormant
            {"contact_id": "C3", "account_id": "A1", "created_at": at("-800D")},  # active
            {"contact_id": "CX"},
        ],
        [{"contact_id": "C3", "occurred_at": at("-300D"), "type": "page_view"}, END_MARKER],
    )
    frame, report = build_snapshots(crm, SnapshotConfig(active_days=365), dates=[T])
    assert set(frame["contact_id"]) == {"C3"}
    assert report.excluded["not yet created"] == 1
    assert report.excluded["dormant"] == 2  # C2 and CX (created 400 days before as_of)


# --- the future changes nothing --------------------------------------------------------


@pytest.fixture(scope="module")
def base_tables() -> dict[str, pd.DataFrame]:
    tables, _ = generate_frames(GeneratorConfig(accounts=40, seed=9, start="2024-01-01", months=12))
    return tables


AS_OF = pd.Timestamp("2024-07-15T00:00:00Z")
_future_seconds = st.integers(min_value=0 * 86_400 + 1, max_value=300 * 86_400)


@st.composite
def future_rows(draw: st.DrawFn, tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Touchpoints, contacts and opportunities all dated after AS_OF."""
    contacts = tables["contacts"]["contact_id"].tolist()
    accounts = tables["accounts"]["account_id"].tolist()
    n_new = draw(st.integers(0, 3))
    new_contacts = pd.DataFrame(
        {
            "contact_id": [f"NEW{i}" for i in range(n_new)],
            "account_id": [draw(st.sampled_from([*accounts, None])) for _ in range(n_new)],
            "created_at": [
                AS_OF + pd.Timedelta(seconds=draw(_future_seconds)) for _ in range(n_new)
            ],
            "job_title": [draw(st.sampled_from(["CFO", "Engineer", None])) for _ in range(n_new)],
        }
    )
    who = st.sampled_from(contacts + new_contacts["contact_id"].tolist())
    n_touch = draw(st.integers(1, 25))
    touches = pd.DataFrame(
        {
            "touchpoint_id": [f"NEWT{i}" for i in range(n_touch)],
            "contact_id": [draw(who) for _ in range(n_touch)],
            "occurred_at": [
                AS_OF + pd.Timedelta(seconds=draw(_future_seconds)) for _ in range(n_touch)
            ],
            "type": [draw(st.sampled_from(TOUCHPOINT_TYPES)) for _ in range(n_touch)],
            "channel": [draw(st.sampled_from(["email", "organic", None])) for _ in range(n_touch)],
            "topic": [draw(st.sampled_from(["product", "general", None])) for _ in range(n_touch)],
        }
    )
    n_opp = draw(st.integers(0, 3))
    created = [AS_OF + pd.Timedelta(seconds=draw(_future_seconds)) for _ in range(n_opp)]
    stage = [draw(st.sampled_from(["open", "closed_won", "closed_lost"])) for _ in range(n_opp)]
    opps = pd.DataFrame(
        {
            "opportunity_id": [f"NEWO{i}" for i in range(n_opp)],
            "account_id": [draw(st.sampled_from(accounts)) for _ in range(n_opp)],
            "contact_id": [draw(st.sampled_from([*contacts, None])) for _ in range(n_opp)],
            "created_at": created,
            "closed_at": [
                None if s == "open" else c + pd.Timedelta(days=30)
                for c, s in zip(created, stage, strict=True)
            ],
            "stage": stage,
        }
    )
    return {"contacts": new_contacts, "touchpoints": touches, "opportunities": opps}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_rows_after_as_of_change_no_feature_no_eligibility_no_row(
    base_tables: dict[str, pd.DataFrame], data: st.DataObject
) -> None:
    extra = data.draw(future_rows(base_tables))
    grown = {
        name: pd.concat([frame, extra[name]], ignore_index=True) if name in extra else frame
        for name, frame in base_tables.items()
    }
    cfg = SnapshotConfig(horizon_days=30, active_days=365)
    before, _ = build_snapshots(crm_from_frames(base_tables), cfg, dates=[AS_OF])
    after, _ = build_snapshots(crm_from_frames(grown), cfg, dates=[AS_OF])
    assert len(before) > 20
    # Same rows (eligibility), same features; only the label may learn from the future.
    pd.testing.assert_frame_equal(
        before.drop(columns="converted"), after.drop(columns="converted"), check_categorical=False
    )


# --- one code path -----------------------------------------------------------------------


def test_a_single_lead_gets_exactly_its_batch_row(
    synthetic: tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]],
) -> None:
    tables, _ = synthetic
    crm = crm_from_frames(tables)
    dates = [pd.Timestamp("2024-09-01T00:00:00Z"), pd.Timestamp("2025-03-15T08:30:00Z")]
    batch, _ = build_snapshots(crm, SnapshotConfig(), dates=dates)
    rng = np.random.default_rng(0)
    # Leads of every kind: with and without accounts, busy and quiet, converted or not.
    picks = batch.iloc[rng.choice(len(batch), size=40, replace=False)]
    picks = pd.concat(
        [picks, batch[batch["converted"] == 1].head(5), batch[batch["account_id"].isna()].head(5)]
    )
    for _, row in picks.iterrows():
        lead = lead_from_crm(crm, row["contact_id"])
        store = EventStore.from_leads([lead])
        block = compute_features(store, lead_rows([lead]), np.array([to_epoch(row["as_of"])]))
        single = block.as_dict()
        for name in NUMERIC:
            expected = row[name]
            got = single[name][0]
            assert (np.isnan(got) and np.isnan(expected)) or got == pytest.approx(
                expected, rel=1e-6
            ), (row["contact_id"], row["as_of"], name, got, expected)
        for name in CATEGORICAL:
            expected = None if pd.isna(row[name]) else row[name]
            assert single[name][0] == expected, (row["contact_id"], name)


def test_many_leads_in_one_store_match_one_by_one(
    synthetic: tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]],
) -> None:
    # The batch API scores many leads in one store; each must see only its own context.
    tables, _ = synthetic
    crm = crm_from_frames(tables)
    ids = crm.contacts["contact_id"].iloc[:30].tolist()
    leads = [lead_from_crm(crm, cid) for cid in ids]
    as_of = np.full(len(leads), to_epoch(pd.Timestamp("2025-06-01T00:00:00Z")))
    together = compute_features(EventStore.from_leads(leads), lead_rows(leads), as_of).numeric
    for k, lead in enumerate(leads):
        alone = compute_features(
            EventStore.from_leads([lead]), lead_rows([lead]), as_of[:1]
        ).numeric
        np.testing.assert_array_equal(together[k], alone[0])


def test_registry_and_kernel_agree() -> None:
    crm = crm_of([{"contact_id": "C1", "account_id": "A1"}])
    store = EventStore.from_crm(crm)
    block = compute_features(store, np.array([0]), np.array([to_epoch(T)]))
    assert list(block.as_dict()) == list(FEATURE_NAMES)
    assert len({f.label for f in FEATURES}) == len(FEATURES)  # labels tell features apart
    assert all(f.definition.endswith(".") for f in FEATURES)


# --- the time split ------------------------------------------------------------------------


def test_time_split_keeps_a_purge_gap_of_one_horizon() -> None:
    dates = pd.date_range("2024-01-01", periods=12, freq="30D", tz="UTC")
    frame = pd.DataFrame({"as_of": np.repeat(dates, 3), "converted": 0})
    split = time_split(frame, horizon_days=90, test_fraction=0.25)
    assert split.first_test_as_of - split.last_train_as_of >= pd.Timedelta(days=90)
    assert split.train["as_of"].max() < split.test["as_of"].min()
    assert set(split.test["as_of"]) == set(dates[9:])
    assert set(split.train["as_of"]) == set(dates[:7])  # dates 7 and 8 fall in the gap


def test_time_split_explains_when_it_cannot_split() -> None:
    dates = pd.date_range("2024-01-01", periods=3, freq="30D", tz="UTC")
    frame = pd.DataFrame({"as_of": dates, "converted": 0})
    with pytest.raises(ValueError, match="leaves no training rows"):
        time_split(frame, horizon_days=90)


def test_docs_features_md_is_generated_from_the_registry() -> None:
    from pathlib import Path

    from features.pipeline.registry import markdown

    page = Path(__file__).resolve().parents[2] / "docs" / "features.md"
    assert page.read_text() == markdown(), (
        "run: python -m features.pipeline.registry > docs/features.md"
    )


def test_an_as_of_long_ago_gives_zero_decay_not_nan() -> None:
    # Found by schemathesis: an as_of before 1970 overflowed the decay of an empty state.
    import warnings

    crm = crm_of(
        [{"contact_id": "C1", "account_id": "A1"}],
        [{"contact_id": "C1", "occurred_at": at("0s"), "type": "demo_request"}],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = features_of(crm, "C1", as_of=pd.Timestamp("1900-01-01T00:00:00Z"))
    assert f["touches_decayed"] == 0 and f["touches_365d"] == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.datetimes(min_value=pd.Timestamp("1950-01-01").to_pydatetime()),
            st.none() | st.integers(min_value=-14 * 60, max_value=14 * 60),
        ),
        max_size=20,
    )
)
def test_many_timestamps_convert_as_one_by_one(stamps: list[tuple[Any, int | None]]) -> None:
    """The lead door's bulk conversion honours every offset (a naive time is UTC) and
    rounds down to the second exactly like the one-value conversion."""
    import datetime as dt

    from features.pipeline.store import seconds_of, to_seconds

    values = [
        t if minutes is None else t.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes)))
        for t, minutes in stamps
    ]
    assert seconds_of(values).tolist() == [to_seconds(v) for v in values]
    assert seconds_of([*values, None]).tolist() == [
        *(to_seconds(v) for v in values),
        to_seconds(None),
    ]


def test_the_dataset_file_written_date_by_date_is_the_training_frame(tmp_path: Path) -> None:
    # build-dataset never holds the whole training set: it writes a row group per as_of
    # (features/pipeline/snapshots.py); the file must read back as build_snapshots' frame
    import pyarrow.parquet as pq

    from features.crm.load import load_crm
    from features.pipeline.snapshots import build_dataset
    from features.synthetic import generate_crm

    data = tmp_path / "crm"
    generate_crm(GeneratorConfig(accounts=300, seed=5), data, fmt="parquet")
    report = build_dataset(data, tmp_path / "train.parquet")
    written = pd.read_parquet(tmp_path / "train.parquet")
    frame, expected = build_snapshots(load_crm(data), SnapshotConfig())
    assert pq.ParquetFile(tmp_path / "train.parquet").num_row_groups == frame["as_of"].nunique() > 5
    assert (report.rows, report.positives, report.dates) == (
        expected.rows,
        expected.positives,
        expected.dates,
    )
    assert [str(t) for t in written.dtypes] == [str(t) for t in frame.dtypes]
    # (categories are listed per row group: the same values, not the same category order)
    pd.testing.assert_frame_equal(written, frame, check_categorical=False)


def test_a_write_that_fails_in_the_writing_thread_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each date's row group is written by a thread while the next date is computed; a
    # failure there (a full disk) must still stop the build, name the file, and leave
    # neither a partial file nor the old one changed
    import pyarrow.parquet as pq

    from features.files import OutputError
    from features.pipeline.snapshots import build_dataset
    from features.synthetic import generate_crm

    data = tmp_path / "crm"
    generate_crm(GeneratorConfig(accounts=200, seed=5), data, fmt="parquet")
    out = tmp_path / "train.parquet"
    out.write_bytes(b"the previous training set")
    written = 0
    real = pq.ParquetWriter.write_table

    def fail_on_the_third(self: pq.ParquetWriter, table: Any, *args: Any, **kw: Any) -> None:
        nonlocal written
        written += 1
        if written == 3:
            raise OSError(28, "No space left on device")
        real(self, table, *args, **kw)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", fail_on_the_third)
    with pytest.raises(OutputError, match="No space left on device"):
        build_dataset(data, out)
    assert written == 3  # it stopped at the failed date
    assert out.read_bytes() == b"the previous training set"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_a_store_that_takes_the_touchpoints_over_is_the_same_store() -> None:
    # build-dataset hands the loaded touchpoints to the event store, which lets each
    # column go once converted (the peak of a 10-million-touchpoint build fell ~15 %)
    import dataclasses

    from features.crm.load import crm_from_frames

    tables, _ = generate_frames(GeneratorConfig(accounts=150, seed=4))
    kept, handed = crm_from_frames(tables), crm_from_frames(tables)
    expected, store = EventStore.from_crm(kept), EventStore.from_crm(handed, hand_over=True)
    for field in dataclasses.fields(EventStore):
        mine, theirs = getattr(store, field.name), getattr(expected, field.name)
        assert mine.dtype == theirs.dtype, field.name
        np.testing.assert_array_equal(mine, theirs, err_msg=field.name)
    assert len(handed.touchpoints) == 0 and len(kept.touchpoints) > 1000
    assert list(handed.touchpoints.columns) == list(kept.touchpoints.columns)
