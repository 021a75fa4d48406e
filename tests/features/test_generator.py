"""The synthetic CRM: valid, deterministic, and carrying a real (and noisy) signal.

Every later model and rule is judged on this data, so these tests check the story,
not just the shape: deals follow the decision stage, tire-kickers rarely win, and the
noise that makes lead scoring hard is there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.crm.load import crm_from_frames, load_crm
from features.crm.taxonomy import DECISION, STAGE_OF_TYPE
from features.synthetic import GeneratorConfig, generate_crm, generate_frames

Frames = tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]
END = pd.Timestamp("2026-01-01T00:00:00Z")  # the fixture simulates 2024-01-01 + 24 months


def test_same_seed_same_crm_other_seed_other_crm() -> None:
    a, _ = generate_frames(GeneratorConfig(accounts=300, seed=11))
    b, _ = generate_frames(GeneratorConfig(accounts=300, seed=11))
    c, _ = generate_frames(GeneratorConfig(accounts=300, seed=12))
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    assert not a["touchpoints"]["occurred_at"].equals(c["touchpoints"]["occurred_at"])


def test_chunks_keep_ids_unique_and_memory_bounded() -> None:
    tables, _ = generate_frames(GeneratorConfig(accounts=250, seed=1, chunk_accounts=100))
    for name, id_column in (("contacts", "contact_id"), ("touchpoints", "touchpoint_id")):
        assert tables[name][id_column].is_unique
    assert tables["accounts"]["account_id"].tolist()[-1] == "A0000249"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_written_export_passes_validation(tmp_path: Path, fmt: str) -> None:
    manifest = generate_crm(GeneratorConfig(accounts=200, seed=5), tmp_path / "crm", fmt=fmt)  # type: ignore[arg-type]
    crm = load_crm(tmp_path / "crm")
    assert len(crm.touchpoints) == manifest["rows"]["touchpoints"] > 1000
    assert len(crm.contacts) == manifest["rows"]["contacts"]
    # The truth lives beside the tables, never inside them.
    assert (tmp_path / "crm" / "truth" / f"episodes.{fmt}").is_file()
    assert "fit" not in crm.accounts.columns and "persona" not in crm.contacts.columns


def test_generate_refuses_a_folder_with_data(tmp_path: Path) -> None:
    (tmp_path / "crm").mkdir()
    (tmp_path / "crm" / "contacts.csv").write_text("precious real export\n")
    with pytest.raises(FileExistsError, match="not empty"):
        generate_crm(GeneratorConfig(accounts=10), tmp_path / "crm")
    assert (tmp_path / "crm" / "contacts.csv").read_text() == "precious real export\n"


def test_in_memory_frames_are_a_valid_export(synthetic: Frames) -> None:
    tables, _ = synthetic
    crm = crm_from_frames(tables)
    assert crm.touchpoints["occurred_at"].max() < END
    assert crm.contacts["created_at"].max() < END  # nobody is created after the export
    assert crm.touchpoints["occurred_at"].min() >= pd.Timestamp("2024-01-01T00:00:00Z")


def _decision_share(touches: pd.DataFrame) -> float:
    return float(touches["type"].map(STAGE_OF_TYPE).eq(DECISION).mean())


def test_decision_stage_accounts_convert_far_more_often(synthetic: Frames) -> None:
    # Observable version of the story: at a mid-span snapshot, accounts with recent
    # decision-stage touches win a deal opened in the next 90 days far more often.
    tables, _ = synthetic
    tp = tables["touchpoints"].merge(tables["contacts"][["contact_id", "account_id"]])
    opps = tables["opportunities"]
    rates = []
    for as_of in pd.date_range("2024-06-01", "2025-06-01", freq="90D", tz="UTC"):
        recent = tp[
            (tp["occurred_at"] <= as_of) & (tp["occurred_at"] > as_of - pd.Timedelta(days=30))
        ]
        hot = set(recent.loc[recent["type"].map(STAGE_OF_TYPE) == DECISION, "account_id"])
        won = set(
            opps.loc[
                (opps["created_at"] > as_of)
                & (opps["stage"] == "closed_won")
                & (opps["closed_at"] <= as_of + pd.Timedelta(days=90)),
                "account_id",
            ]
        )
        accounts = set(tables["accounts"]["account_id"])
        cold = accounts - hot
        rates.append((len(hot & won) / len(hot), len(cold & won) / len(cold)))
    hot_rate = np.mean([h for h, _ in rates])
    cold_rate = np.mean([c for _, c in rates])
    assert hot_rate > 5 * cold_rate, (hot_rate, cold_rate)
    assert hot_rate < 0.6  # and still far from certain: a decision touch is not a sale


def test_tire_kickers_rarely_win(synthetic: Frames) -> None:
    tables, truth = synthetic
    persona = truth["contacts"].set_index("contact_id")["persona"]
    closed = tables["opportunities"][tables["opportunities"]["stage"] != "open"]
    by_persona = closed.assign(persona=closed["contact_id"].map(persona))
    kicker = by_persona[by_persona["persona"] == "tire_kicker"]
    buying = by_persona[by_persona["persona"] == "initiator"]
    assert len(kicker) >= 50
    kicker_rate = (kicker["stage"] == "closed_won").mean()
    buying_rate = (buying["stage"] == "closed_won").mean()
    assert kicker_rate < 0.10
    assert buying_rate > 0.25
    # ...although they ask for demos just like real buyers do.
    kicker_touches = tables["touchpoints"][
        tables["touchpoints"]["contact_id"].isin(kicker["contact_id"])
    ]
    assert (kicker_touches["type"] == "demo_request").any()


def test_decision_touch_share_rises_before_won_deals(synthetic: Frames) -> None:
    tables, _ = synthetic
    tp = tables["touchpoints"].merge(tables["contacts"][["contact_id", "account_id"]])
    won = tables["opportunities"]
    won = won[
        (won["stage"] == "closed_won") & (won["created_at"] > pd.Timestamp("2024-07-01", tz="UTC"))
    ]
    joined = tp.merge(won[["account_id", "created_at"]], on="account_id")
    days_before = (joined["created_at"] - joined["occurred_at"]).dt.total_seconds() / 86_400
    # The last two weeks against one to three months earlier (further back, an
    # account's earlier buying episode, often a lost deal, blurs the picture).
    late = joined[(days_before > 0) & (days_before <= 14)]
    early = joined[(days_before > 30) & (days_before <= 90)]
    assert _decision_share(late) > 2 * _decision_share(early)


def test_the_noise_that_makes_scoring_hard_is_there(synthetic: Frames) -> None:
    tables, truth = synthetic
    contacts, tp = tables["contacts"], tables["touchpoints"]
    persona = truth["contacts"].set_index("contact_id")["persona"]
    personas = contacts["contact_id"].map(persona)
    touches_per_contact = tp["contact_id"].value_counts()

    # Newsletter-only readers: many touches, none in the decision stage.
    readers = contacts.loc[personas == "newsletter", "contact_id"]
    reader_touches = tp[tp["contact_id"].isin(readers)]
    assert len(reader_touches) > 10 * len(readers) * 0.5
    assert _decision_share(reader_touches) == 0.0
    # Outbound leads that never engage.
    outbound = contacts.loc[personas == "outbound", "contact_id"]
    silent = (touches_per_contact.reindex(outbound).fillna(0) <= 1).mean()
    assert silent > 0.5
    # Students and job seekers: no account, free mail, careers pages.
    students = contacts[personas == "student"]
    assert students["account_id"].isna().all()
    assert (tp[tp["contact_id"].isin(students["contact_id"])]["type"] == "careers_page_view").any()
    # Missing titles, free mail, unknown touchpoint types, Russian titles.
    assert 0.05 < contacts["job_title"].isna().mean() < 0.25
    domains = contacts["email"].dropna().str.split("@").str[1]
    assert (
        domains.isin(
            [
                "gmail.com",
                "outlook.com",
                "yahoo.com",
                "hotmail.com",
                "gmx.de",
                "mail.ru",
                "yandex.ru",
            ]
        ).mean()
        > 0.05
    )
    assert (~tp["type"].isin(list(STAGE_OF_TYPE))).mean() > 0.001
    assert contacts["job_title"].str.contains("[А-Яа-я]", regex=True, na=False).any()
    # Repeat leads from past customers: accounts that won before the data starts and
    # have new contacts engaging inside it.
    opps = tables["opportunities"]
    past_winners = set(
        opps.loc[
            (opps["stage"] == "closed_won")
            & (opps["closed_at"] < pd.Timestamp("2024-01-01", tz="UTC")),
            "account_id",
        ]
    )
    assert past_winners
    assert tables["contacts"]["account_id"].isin(past_winners).any()


def test_seniority_and_department_mostly_recoverable_from_titles(synthetic: Frames) -> None:
    # The loader derives empty seniority/department from titles; on generated contacts
    # with a title, the derived value matches the truth most of the time.
    tables, truth = synthetic
    crm = crm_from_frames(tables)
    merged = crm.contacts.merge(truth["contacts"], on="contact_id", suffixes=("", "_true"))
    titled = merged[merged["job_title"].notna()]
    assert (titled["seniority"] == titled["seniority_true"]).mean() > 0.8
    assert (titled["department"] == titled["department_true"]).mean() > 0.75
