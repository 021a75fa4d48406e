"""Loading and validating a CRM export: what a CRM admin sees when an export is wrong."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.crm.load import CsvFormat, crm_from_frames, load_crm, read_crm
from features.crm.validation import InvalidCRMError
from leadscore.cli import main
from tests.conftest import tiny_tables, write_tables

Edit = Callable[[dict[str, pd.DataFrame]], None]


def _validate(folder: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["validate", str(folder)])
    return code, capsys.readouterr().out


# --- a valid export ---------------------------------------------------------------


def test_valid_export_loads_with_contract_types(tiny_crm_dir: Path) -> None:
    crm = load_crm(tiny_crm_dir)
    contacts = crm.contacts.set_index("contact_id")
    # An offset is converted to UTC; a value without an offset is UTC; a date is midnight.
    assert contacts.loc["C2", "created_at"] == pd.Timestamp("2025-03-05T07:30:00Z")
    assert contacts.loc["C1", "created_at"] == pd.Timestamp("2025-03-02T10:00:00Z")
    assert contacts.loc["C3", "created_at"] == pd.Timestamp("2025-03-07T00:00:00Z")
    assert str(crm.touchpoints["occurred_at"].dt.tz) == "UTC"
    # Numbers are numbers; an empty cell is missing, not zero.
    accounts = crm.accounts.set_index("account_id")
    assert accounts.loc["A1", "employees"] == 250
    assert pd.isna(accounts.loc["A2", "employees"])
    assert accounts.loc["A2", "annual_revenue"] == pytest.approx(3_500_000.5)
    # Enums are case-insensitive: 'Pricing_Page_View' is the taxonomy's type.
    assert crm.touchpoints["type"].tolist()[1] == "pricing_page_view"
    # Nothing is dropped.
    assert len(crm.contacts) == 3 and len(crm.touchpoints) == 4 and len(crm.opportunities) == 2


def test_seniority_and_department_come_from_the_title_when_empty(tiny_crm_dir: Path) -> None:
    crm, report = read_crm(tiny_crm_dir)
    assert crm is not None
    contacts = crm.contacts.set_index("contact_id")
    assert tuple(contacts.loc["C1", ["seniority", "department"]]) == ("vp", "finance")
    assert tuple(contacts.loc["C2", ["seniority", "department"]]) == ("c_level", "executive")
    # A given value is kept; only the empty department of C3 is derived.
    assert tuple(contacts.loc["C3", ["seniority", "department"]]) == ("individual", "other")
    assert any("derived from job_title for 2 contacts" in n for n in report.notes)


def test_parquet_export_loads_like_csv(tmp_path: Path) -> None:
    csv_crm = load_crm(write_tables(tmp_path / "csv", tiny_tables()))
    pq_crm = load_crm(write_tables(tmp_path / "pq", tiny_tables(), fmt="parquet"))
    for name in ("accounts", "contacts", "touchpoints", "opportunities"):
        pd.testing.assert_frame_equal(csv_crm.table(name), pq_crm.table(name))


def test_typed_parquet_columns_are_accepted(tmp_path: Path) -> None:
    # A warehouse export writes real timestamps and integers, not text.
    tables = tiny_tables()
    tables["accounts"]["employees"] = pd.array([250, None], dtype="Int64")
    tables["touchpoints"]["occurred_at"] = pd.to_datetime(tables["touchpoints"]["occurred_at"])
    crm = load_crm(write_tables(tmp_path / "crm", tables, fmt="parquet"))
    assert crm.accounts["employees"].tolist()[0] == 250
    assert crm.touchpoints["occurred_at"].iloc[0] == pd.Timestamp("2025-03-02T10:00:00Z")


def test_csv_with_byte_order_mark_is_read(tmp_path: Path) -> None:
    folder = write_tables(tmp_path / "crm", tiny_tables())
    path = folder / "accounts.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_crm(folder).accounts.columns[0] == "account_id"


def test_extra_columns_are_carried_along(make_crm_dir: Callable[..., Path]) -> None:
    def edit(t: dict[str, pd.DataFrame]) -> None:
        t["contacts"]["crm_owner"] = ["ann", "bob", "cy"]

    crm, report = read_crm(make_crm_dir(edit))
    assert crm is not None
    assert crm.contacts["crm_owner"].tolist() == ["ann", "bob", "cy"]
    assert report.tables["contacts"].extra_columns == ("crm_owner",)


# --- every refused defect names table, column, row and what was expected ----------


def _drop_column(table: str, column: str) -> Edit:
    def edit(t: dict[str, pd.DataFrame]) -> None:
        t[table] = t[table].drop(columns=[column])

    return edit


def _set(table: str, column: str, row: int, value: str) -> Edit:
    def edit(t: dict[str, pd.DataFrame]) -> None:
        t[table].loc[row, column] = value

    return edit


DEFECTS: dict[str, tuple[Edit, tuple[str, ...]]] = {
    # name: (how to break the tiny export, what the message must contain)
    "missing required column": (
        _drop_column("touchpoints", "occurred_at"),
        ("touchpoints.occurred_at", "required column occurred_at is missing"),
    ),
    "unparsable timestamp": (
        _set("contacts", "created_at", 1, "yesterday"),
        ("contacts.created_at", "row 2 (contact_id C2)", "'yesterday'", "ISO 8601"),
    ),
    "unparsable number": (
        _set("accounts", "employees", 0, "about 50"),
        ("accounts.employees", "row 1 (account_id A1)", "'about 50'", "whole number"),
    ),
    "duplicate id": (
        _set("touchpoints", "touchpoint_id", 3, "T1"),
        ("touchpoints.touchpoint_id", "row 1 (touchpoint_id T1)", "row 4", "unique"),
    ),
    "contact -> account": (
        _set("contacts", "account_id", 1, "A9"),
        ("contacts.account_id", "row 2 (contact_id C2)", "'A9'", "accounts.account_id"),
    ),
    "touchpoint -> contact": (
        _set("touchpoints", "contact_id", 2, "C404"),
        ("touchpoints.contact_id", "row 3 (touchpoint_id T3)", "'C404'", "contacts.contact_id"),
    ),
    "opportunity -> account": (
        _set("opportunities", "account_id", 0, "A7"),
        ("opportunities.account_id", "row 1 (opportunity_id O1)", "'A7'", "accounts"),
    ),
    "negative number": (
        _set("opportunities", "amount", 1, "-300"),
        ("opportunities.amount", "negative", "row 2 (opportunity_id O2)", ">= 0"),
    ),
    "bad enum value": (
        _set("contacts", "seniority", 0, "boss"),
        ("contacts.seniority", "row 1 (contact_id C1)", "'boss'", "c_level, vp, director"),
    ),
    "closed without closed_at": (
        _set("opportunities", "stage", 0, "closed_won"),
        ("opportunities.closed_at", "row 1 (opportunity_id O1)", "closed_won"),
    ),
    "closed before created": (
        _set("opportunities", "closed_at", 1, "2024-01-01T00:00:00Z"),
        ("opportunities.closed_at", "row 2 (opportunity_id O2)", "closed_at >= created_at"),
    ),
    "empty required value": (
        _set("touchpoints", "type", 0, ""),
        ("touchpoints.type", "row 1 (touchpoint_id T1)", "required column"),
    ),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_defect_is_refused_with_table_column_and_row(
    defect: str, make_crm_dir: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    edit, expected = DEFECTS[defect]
    code, out = _validate(make_crm_dir(edit), capsys)
    assert code == 1
    assert "REFUSED" in out
    error_lines = [line for line in out.splitlines() if line.strip().startswith("error:")]
    assert error_lines, out
    for text in expected:
        assert any(text in line for line in error_lines), f"{text!r} not in:\n{out}"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "not UTF-8 text"),
        (b"", "is empty; expected a header row"),
        (b"contact_id,account_id,created_at\nC1,A1\nC2,A1,2025-01-01,extra,more\n", "well-formed"),
    ],
    ids=["binary", "empty", "ragged"],
)
def test_a_file_that_is_not_a_table_is_refused(
    content: bytes, expected: str, tiny_crm_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tiny_crm_dir / "contacts.csv").write_bytes(content)
    code, out = _validate(tiny_crm_dir, capsys)
    assert code == 1
    assert "error: contacts: contacts.csv" in out
    assert expected in out


def test_a_parquet_file_that_is_not_parquet_is_refused(
    tiny_crm_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tiny_crm_dir / "accounts.csv").unlink()
    (tiny_crm_dir / "accounts.parquet").write_text("account_id\nA1\n")
    code, out = _validate(tiny_crm_dir, capsys)
    assert code == 1
    assert "accounts.parquet is not a readable Parquet table" in out


def test_missing_table_and_ambiguous_table_are_refused(
    tiny_crm_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tiny_crm_dir / "opportunities.csv").unlink()
    pd.DataFrame({"account_id": ["A1"]}).to_parquet(tiny_crm_dir / "accounts.parquet")
    code, out = _validate(tiny_crm_dir, capsys)
    assert code == 1
    assert "no file opportunities.csv or opportunities.parquet" in out
    assert "both accounts.csv and accounts.parquet exist" in out


def test_not_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _validate(tmp_path / "nowhere", capsys)
    assert code == 1
    assert "is not a folder" in out


def test_many_bad_rows_are_one_line_with_a_count(
    make_crm_dir: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    def edit(t: dict[str, pd.DataFrame]) -> None:
        base = t["touchpoints"]
        many = pd.concat([base] * 50, ignore_index=True)
        many["touchpoint_id"] = [f"T{i}" for i in range(len(many))]
        many["occurred_at"] = "not a time"
        t["touchpoints"] = many

    code, out = _validate(make_crm_dir(edit), capsys)
    assert code == 1
    line = next(x for x in out.splitlines() if "touchpoints.occurred_at" in x)
    assert "200 values cannot be read" in line and "and 195 more" in line


# --- tolerated problems are warnings, counted, and the load goes on -----------------


def test_unknown_touchpoint_type_becomes_other_with_a_count(
    make_crm_dir: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    def edit(t: dict[str, pd.DataFrame]) -> None:
        t["touchpoints"].loc[[0, 3], "type"] = "chat_started"

    folder = make_crm_dir(edit)
    code, out = _validate(folder, capsys)
    assert code == 0
    assert "warning: touchpoints.type: 2 touchpoints have a type outside the taxonomy" in out
    assert "'chat_started' (2)" in out
    crm = load_crm(folder)
    assert crm.touchpoints["type"].tolist() == ["other", "pricing_page_view", "meeting", "other"]


def test_missing_optional_column_is_a_warning(
    make_crm_dir: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_crm_dir(_drop_column("accounts", "annual_revenue"))
    code, out = _validate(folder, capsys)
    assert code == 0
    assert "warning: accounts.annual_revenue: optional column annual_revenue is missing" in out
    assert load_crm(folder).accounts["annual_revenue"].isna().all()


def test_json_report_is_machine_readable(
    make_crm_dir: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_crm_dir(_set("contacts", "created_at", 1, "yesterday"))
    assert main(["validate", str(folder), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["accepted"] is False
    (problem,) = [p for p in report["problems"] if p["severity"] == "error"]
    assert (problem["table"], problem["column"], problem["count"]) == ("contacts", "created_at", 1)
    assert report["tables"]["touchpoints"]["rows"] == 4


def test_in_memory_frames_go_through_the_same_checks() -> None:
    tables = tiny_tables()
    tables["touchpoints"].loc[0, "contact_id"] = "C404"
    with pytest.raises(InvalidCRMError) as info:
        crm_from_frames(tables)
    assert "touchpoints.contact_id" in str(info.value)
    assert "row 1 (touchpoint_id T1)" in str(info.value)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(min_size=1, max_size=30).filter(lambda s: s.strip() and "\x00" not in s))
def test_any_text_in_a_timestamp_is_parsed_or_reported_at_its_row(text: str) -> None:
    # Whatever a CRM puts in a timestamp cell, validation never crashes: the value is
    # either a timestamp or an error naming exactly that row.
    tables = tiny_tables()
    tables["touchpoints"].loc[2, "occurred_at"] = text
    try:
        crm = crm_from_frames(tables)
    except InvalidCRMError as exc:
        errors = exc.report.errors
        assert [(p.table, p.column) for p in errors] == [("touchpoints", "occurred_at")]
        assert errors[0].examples[0].startswith("row 3 (touchpoint_id T3)")
    else:
        assert pd.notna(crm.touchpoints["occurred_at"].iloc[2])


def test_a_parquet_column_of_lists_is_refused_by_name(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["contacts"]["contact_id"] = [["C1"], ["C2", "x"], []]  # used to be a traceback
    folder = write_tables(tmp_path / "crm", tables, fmt="parquet")
    _, report = read_crm(folder)
    assert not report.ok
    (error,) = report.errors
    assert error.table == "contacts"
    assert "column contact_id holds lists or records" in error.message
    assert "expected text in each cell" in error.message


def test_an_export_without_rows_is_refused(tmp_path: Path) -> None:
    # it used to be accepted, and training then failed with "max() arg is an empty sequence"
    tables = {name: frame.head(0) for name, frame in tiny_tables().items()}
    _, report = read_crm(write_tables(tmp_path / "crm", tables))
    assert [str(p) for p in report.errors] == [
        "error: contacts: has no rows; expected at least one contact (the leads to score or learn from)"
    ]


def test_a_semicolon_cp1251_export_is_read_with_sep_and_encoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # how Bitrix24 and a Russian Excel write CSV: ';' between cells, cp1251 text
    folder = tmp_path / "crm"
    folder.mkdir()
    for name, frame in tiny_tables().items():
        frame.to_csv(folder / f"{name}.csv", index=False, sep=";", encoding="cp1251")
    assert main(["validate", str(folder)]) == 1
    report = capsys.readouterr().out
    assert "it looks separated by ';': give --sep ';'" in report
    assert "it reads as Cyrillic in cp1251 (Excel, Bitrix24): give --encoding cp1251" in report
    assert main(["validate", str(folder), "--sep", ";", "--encoding", "cp1251"]) == 0
    crm = load_crm(folder, CsvFormat(";", "cp1251"))
    # «Генеральный директор» survived the encoding: a C-level executive
    assert crm.contacts.loc[1, ["seniority", "department"]].tolist() == ["c_level", "executive"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.text(alphabet=" \t\u00a0@.aAbgGmMiIlL", max_size=14),
            st.sampled_from(["a@GMAIL.com ", "x@ yandex.ru", "a@b@gmail.com", "a@", "@gmail.com"]),
        ),
        max_size=12,
    )
)
def test_free_mail_of_a_column_is_free_mail_of_each_address(emails: list[str | None]) -> None:
    # an export's contacts are read a column at a time (Arrow), a lead's one by one: both
    # doors must call the same addresses free mail, or a lead scored online would differ
    # from its training row
    import numpy as np

    from features.crm.fit import free_mail, is_free_mail

    for dtype in (object, "str"):
        column = free_mail(pd.Series(emails, dtype=dtype))
        one_by_one = np.array([is_free_mail(e) for e in emails], dtype=float)
        np.testing.assert_array_equal(column, one_by_one)
