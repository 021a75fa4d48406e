"""The loader's Arrow parsing and checks give what pandas and pandera give, row for row.

The loader parses text with Arrow and checks columns with Arrow and NumPy because that is
several times faster on millions of touchpoints (benchmarks/bench_load.py). These tests
hold it to independent statements of the same rules: pandas' own parsers for timestamps
and numbers, pandera schemas built from the contract for the column checks, pandas'
`duplicated` for repeated ids. Where the loader is stricter on purpose (infinite numbers,
whole numbers from 2**53 on, "timestamps" without a four-digit year) the test says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pandera.errors import SchemaErrors

from features.crm.contract import TABLES, Kind, TableSpec
from features.crm.load import (
    TIMESTAMP_DTYPE,
    crm_from_frames,
    parse_timestamps,
    parse_values,
    read_crm,
)
from features.crm.taxonomy import CLOSED_STAGES
from features.crm.validation import (
    InvalidCRMError,
    closed_without_closed_at,
    column_failures,
    repeated,
)
from tests.conftest import tiny_tables, write_tables

# --- timestamps: Arrow where it reads, pandas where it does not, the same values ------

_two = st.integers(0, 99).map(lambda n: f"{n:02d}")
_zone = st.one_of(
    st.just(""),
    st.just("Z"),
    st.tuples(st.sampled_from("+-"), _two, st.sampled_from([":", ""]), _two).map("".join),
    st.tuples(st.sampled_from("+-"), _two).map("".join),
)
_fraction = st.one_of(st.just(""), st.integers(1, 9).map(lambda n: "." + "7" * n))
_iso = st.tuples(
    st.integers(1, 9999).map(lambda y: f"{y:04d}"),
    st.sampled_from(["-", ""]),
    _two,
    st.sampled_from(["-", ""]),
    _two,
    st.one_of(
        st.just(""),
        st.tuples(st.sampled_from("T "), _two, st.just(":"), _two, st.just(":"), _two).map("".join),
        st.tuples(st.sampled_from("T "), _two, st.just(":"), _two).map("".join),
    ),
    _fraction,
    _zone,
).map("".join)
_padded = st.tuples(st.sampled_from(["", " ", "\t"]), _iso, st.sampled_from(["", " "])).map("".join)


def _pandas_timestamps(values: list[str | None]) -> pd.Series:
    """What the loader did before Arrow: strip, empty is missing, pandas' ISO 8601."""
    text = pd.Series(values, dtype="str").str.strip()
    text = text.mask(text == "")
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    return parsed.astype(TIMESTAMP_DTYPE)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(_padded, st.none(), st.just("")), min_size=1, max_size=40))
def test_timestamps_read_by_arrow_equal_pandas_value_for_value(values: list[str | None]) -> None:
    ours = parse_timestamps(pd.Series(values, dtype="str"))
    theirs = _pandas_timestamps(values)
    assert ours.dtype == TIMESTAMP_DTYPE
    for text, mine, reference in zip(values, ours, theirs, strict=True):
        if pd.isna(mine) and pd.isna(reference):
            continue
        assert mine == reference, f"{text!r}: {mine} != {reference}"


def test_a_long_column_with_a_few_odd_values_reads_them_by_pandas_and_the_rest_by_arrow() -> None:
    # 200,000 timestamps in the contract's form; Arrow refuses the whole column because
    # of three values it does not read, so it goes piece by piece: the pieces holding
    # them are parsed by pandas, the rest by Arrow; every value is what pandas would say.
    n = 200_000
    stamps = pd.date_range("2024-01-01", periods=n, freq="37s", tz="UTC")
    values = list(stamps.strftime("%Y-%m-%dT%H:%M:%SZ"))
    values[0] = "2025-3-2"  # pandas reads it, Arrow does not
    values[100_000] = "2025-03-02T10:00:00.123456789Z"  # nanoseconds
    values[-1] = "not a time"
    ours = parse_timestamps(pd.Series(values, dtype="str"))
    theirs = _pandas_timestamps(values)
    pd.testing.assert_series_equal(ours, theirs, check_names=False)
    assert ours.iloc[0] == pd.Timestamp("2025-03-02", tz="UTC")
    assert pd.isna(ours.iloc[-1])


@pytest.mark.parametrize("text", ["-1", ".5", "-0", "+2025-03-02", "0000-01-01T00:00:00Z"])
def test_text_without_a_year_from_1_to_9999_is_not_a_timestamp(text: str) -> None:
    # pandas reads "-1" as the year 1 BC and ".5" as May of the year 0; Python's datetime
    # (every report, the store) cannot hold either. The loader refuses them by row.
    tables = tiny_tables()
    tables["touchpoints"].loc[1, "occurred_at"] = text
    with pytest.raises(InvalidCRMError) as info:
        crm_from_frames(tables)
    (problem,) = info.value.report.errors
    assert (problem.table, problem.column) == ("touchpoints", "occurred_at")
    assert problem.examples[0] == f"row 2 (touchpoint_id T2): {text!r}"


def test_a_typed_timestamp_of_the_year_0_is_refused_and_shown_without_a_traceback() -> None:
    # a Parquet export can hold it as a typed value; it was shown with repr(), which
    # raised inside the report
    tables = tiny_tables()
    closed = pd.to_datetime(tables["opportunities"]["closed_at"], utc=True, format="ISO8601")
    closed.iloc[1] = pd.to_datetime(pd.Series(["0000-05-01"]), format="ISO8601", utc=True)[0]
    tables["opportunities"]["closed_at"] = closed
    with pytest.raises(InvalidCRMError) as info:
        crm_from_frames(tables)
    unreadable = info.value.report.errors[0]
    assert (unreadable.table, unreadable.column) == ("opportunities", "closed_at")
    assert unreadable.examples == ("row 2 (opportunity_id O2): '0000-05-01T00:00:00.000000'",)


# --- numbers -------------------------------------------------------------------------

_number_text = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["1e3", ".5", "5.", "+3", "-0", "1,000", "0x10", "1_000", "", " 7 ", "abc"]),
    st.text(alphabet="0123456789.eE+- ", max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(_number_text, min_size=1, max_size=30))
def test_numbers_read_by_arrow_equal_pandas_value_for_value(values: list[str]) -> None:
    spec = next(t for t in TABLES if t.name == "opportunities").column("amount")
    ours, bad = parse_values(pd.Series(values, dtype="str"), spec)
    text = pd.Series(values, dtype="str").str.strip()
    theirs = pd.to_numeric(text.mask(text == ""), errors="coerce").to_numpy(dtype="float64")
    finite = np.isfinite(theirs)
    # the same numbers; what pandas reads as infinite (or cannot read) is refused
    np.testing.assert_array_equal(ours.to_numpy(), np.where(finite, theirs, np.nan))
    np.testing.assert_array_equal(bad, text.mask(text == "").notna().to_numpy() & ~finite)


@pytest.mark.parametrize(
    ("column", "text", "expected"),
    [
        ("annual_revenue", "inf", "a number >= 0"),
        ("annual_revenue", "-Infinity", "a number >= 0"),
        ("annual_revenue", "1e400", "a number >= 0"),  # beyond float64: infinite
        ("employees", "inf", "a whole number >= 0"),  # was an OverflowError traceback
        ("employees", "12345678901234567890", "a whole number >= 0"),  # was a TypeError
        ("employees", "9007199254740993", "a whole number >= 0"),  # 2**53 + 1 reads as 2**53
        ("employees", "9007199254740992", "a whole number >= 0"),  # so 2**53 is refused too
    ],
)
def test_numbers_that_are_not_finite_or_not_exact_are_refused_by_row(
    column: str, text: str, expected: str
) -> None:
    tables = tiny_tables()
    tables["accounts"].loc[0, column] = text
    with pytest.raises(InvalidCRMError) as info:
        crm_from_frames(tables)
    (problem,) = info.value.report.errors
    assert (problem.table, problem.column) == ("accounts", column)
    assert problem.message == f"1 values cannot be read; expected {expected}"
    assert problem.examples == (f"row 1 (account_id A1): {text!r}",)


def test_the_largest_exact_whole_number_is_accepted() -> None:
    tables = tiny_tables()
    tables["accounts"].loc[0, "employees"] = str(2**53 - 1)
    crm = crm_from_frames(tables)
    assert crm.accounts["employees"].iloc[0] == 2**53 - 1


# --- column checks: the same rows as pandera's schema of the contract -----------------


def _pandera_schema(spec: TableSpec, present: set[str]) -> pandera.DataFrameSchema:
    """The contract's column checks as the loader declared them with pandera before."""
    columns = {}
    for col in spec.columns:
        if col.name not in present:
            continue
        checks = []
        if col.non_negative:
            checks.append(pandera.Check.ge(0))
        if col.allowed:
            checks.append(pandera.Check.isin(list(col.allowed)))
        columns[col.name] = pandera.Column(
            checks=checks, nullable=not col.required, unique=col.unique, required=False
        )
    return pandera.DataFrameSchema(columns, strict=False, coerce=False)


_CHECK_NAMES = {"not_nullable": "required", "field_uniqueness": "unique"}


def _pandera_failures(spec: TableSpec, frame: pd.DataFrame) -> dict[tuple[str, str], set[int]]:
    try:
        _pandera_schema(spec, set(frame.columns)).validate(frame, lazy=True)
    except SchemaErrors as exc:
        found: dict[tuple[str, str], set[int]] = {}
        for (column, check), group in exc.failure_cases.groupby(["column", "check"]):
            name = str(check)
            kind = _CHECK_NAMES.get(name) or (
                "non_negative" if name.startswith("greater_than") else "allowed"
            )
            rows = set(group["index"].dropna().astype(int))
            found[(str(column), kind)] = rows
        return found
    return {}


def _cells(spec: TableSpec) -> dict[str, st.SearchStrategy[object]]:
    """Few distinct values per column, so repeats, empties and bad values are common."""
    out: dict[str, st.SearchStrategy[object]] = {}
    for col in spec.columns:
        if col.kind is Kind.TIMESTAMP:
            out[col.name] = st.sampled_from([pd.NaT, pd.Timestamp("2025-03-02", tz="UTC")])
        elif col.kind in (Kind.INTEGER, Kind.NUMBER):
            out[col.name] = st.sampled_from([None, -1.0, 0.0, 2.5, -0.5, 7.0])
        elif col.allowed:
            out[col.name] = st.sampled_from([None, *col.allowed[:3], "boss", "CLOSED"])
        else:
            out[col.name] = st.sampled_from([None, "a", "b", "c", "d", "é", "a "])
    return out


def _frame(spec: TableSpec, rows: list[dict[str, object]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(spec.column_names))
    for col in spec.columns:
        if col.kind is Kind.TIMESTAMP:
            frame[col.name] = pd.to_datetime(frame[col.name], utc=True).astype(TIMESTAMP_DTYPE)
        elif col.kind is Kind.INTEGER:
            frame[col.name] = frame[col.name].astype("float64").round().astype("Int64")
        elif col.kind is Kind.NUMBER:
            frame[col.name] = frame[col.name].astype("float64")
        else:
            frame[col.name] = frame[col.name].astype("str")
    return frame


@st.composite
def _tables(draw: st.DrawFn) -> tuple[TableSpec, pd.DataFrame]:
    spec = draw(st.sampled_from(TABLES))
    cells = _cells(spec)
    rows = draw(st.lists(st.fixed_dictionaries(cells), max_size=25))
    return spec, _frame(spec, rows)


@settings(max_examples=200, deadline=None)
@given(table=_tables())
def test_column_checks_fail_the_rows_pandera_fails(table: tuple[TableSpec, pd.DataFrame]) -> None:
    spec, frame = table
    ours = {
        (f.column, f.check): set(f.positions.tolist())
        for col in spec.columns
        for f in column_failures(frame[col.name], col)
    }
    assert ours == _pandera_failures(spec, frame)


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from([None, "open", *CLOSED_STAGES]),
            st.sampled_from([pd.NaT, pd.Timestamp("2025-03-02", tz="UTC")]),
        ),
        max_size=20,
    )
)
def test_closed_deals_without_closed_at_are_the_rows_pandera_finds(
    rows: list[tuple[str | None, pd.Timestamp]],
) -> None:
    frame = pd.DataFrame(rows, columns=["stage", "closed_at"])
    frame["stage"] = frame["stage"].astype("str")
    frame["closed_at"] = pd.to_datetime(frame["closed_at"], utc=True)
    check = pandera.Check(lambda df: ~df["stage"].isin(CLOSED_STAGES) | df["closed_at"].notna())
    expected = set(np.flatnonzero(~check(frame).check_output.to_numpy()).tolist())
    assert set(closed_without_closed_at(frame).tolist()) == expected


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.text(alphabet="ab", max_size=3)), max_size=40),
    ordered=st.booleans(),
)
@example(values=["a", "b", None, "a"], ordered=False)  # increasing around a gap, yet repeated
@example(values=["a", "b", "b"], ordered=False)
def test_repeated_values_are_the_rows_pandas_calls_duplicated(
    values: list[str | None], ordered: bool
) -> None:
    if ordered:  # the fast path: a column in strictly increasing order
        values = sorted(set(v for v in values if v is not None))
    series = pd.Series(values, dtype="str")
    expected = np.flatnonzero((series.duplicated(keep=False) & series.notna()).to_numpy())
    np.testing.assert_array_equal(repeated(series), expected)


def test_problems_keep_table_and_column_order_whatever_thread_finishes_first() -> None:
    # columns are parsed and checked in a pool of threads; the report is still written
    # table by table in the contract's column order, the same on every run
    tables = tiny_tables()
    tables["touchpoints"].loc[0, "occurred_at"] = "yesterday"
    tables["touchpoints"].loc[1, "touchpoint_id"] = "T3"
    tables["touchpoints"].loc[3, "type"] = "Chat_Started"
    tables["contacts"].loc[2, "seniority"] = "boss"
    tables["accounts"].loc[1, "employees"] = "-4"
    seen = set()
    for _ in range(5):
        with pytest.raises(InvalidCRMError) as info:
            crm_from_frames(tables)
        seen.add(tuple((p.severity, p.table, p.column) for p in info.value.report.problems))
    assert seen == {
        (
            ("error", "accounts", "employees"),
            ("error", "contacts", "seniority"),
            ("error", "touchpoints", "occurred_at"),
            ("warning", "touchpoints", "type"),
            ("error", "touchpoints", "touchpoint_id"),
        )
    }


# --- text and typed columns ----------------------------------------------------------

_cell = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "\t", "a", " a", "a ", "\u00a0a", "a\u3000", "é", "ab c", "\x1c"]),
    st.text(max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(_cell, min_size=1, max_size=30), start=st.integers(0, 5))
def test_text_is_trimmed_and_emptied_as_pandas_strip_does(
    values: list[str | None], start: int
) -> None:
    # the loader skips the trim where no value begins or ends with a blank, and drops the
    # validity bit of empty values without copying; a column that is a slice of a bigger
    # Arrow array (an offset into shared buffers) must come out the same
    values = [v for v in values if v is None or "\x00" not in v]
    arrow = pa.chunked_array([pa.array(["pad"] * start + values, pa.large_string()).slice(start)])
    series = arrow.to_pandas()
    stripped = pd.Series(values, dtype="str").str.strip()
    expected = stripped.mask(stripped == "")
    text_column = next(t for t in TABLES if t.name == "accounts").column("industry")
    assert parse_values(series, text_column)[0].tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("unit", "zone"), [("ns", None), ("ms", None), ("ms", "UTC"), ("us", "Asia/Tokyo")]
)
def test_typed_timestamps_become_utc_microseconds_as_pandas_converts_them(
    unit: str, zone: str | None
) -> None:
    # Parquet exports carry typed timestamps (often milliseconds); Arrow converts the
    # unit, pandas the nanoseconds Arrow would refuse to drop
    stamps = pd.Series(["2025-03-02 10:00:00.123456789", None, "1969-12-31 23:59:59.5"])
    typed = pd.to_datetime(stamps).astype(f"datetime64[{unit}]")
    if zone:
        typed = typed.dt.tz_localize("UTC").dt.tz_convert(zone)
    ours = parse_timestamps(typed)
    zoned = typed.dt.tz_convert("UTC") if typed.dt.tz else typed.dt.tz_localize("UTC")
    pd.testing.assert_series_equal(ours, zoned.astype(TIMESTAMP_DTYPE))
    assert ours.dtype.tz is TIMESTAMP_DTYPE.tz  # the same zone object: isoformat needs it


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_columns_of_few_values_read_as_dictionaries_load_as_text_does(
    fmt: str, tmp_path: Path
) -> None:
    # a touchpoint's type, channel and topic are read from the file as dictionaries
    # (trimmed, lower-cased and checked once per value); the loaded export and its report
    # are what the same cells give as plain text
    tables = tiny_tables()
    touchpoints = tables["touchpoints"]
    touchpoints["type"] = [" Demo_Request ", "pricing_page_view", "Chat_Started", "meeting"]
    touchpoints["channel"] = [" organic", "", "Organic", "\u00a0"]
    touchpoints["topic"] = ["product", " ", "", "General"]
    folder = write_tables(tmp_path / "crm", tables, fmt)
    from_file, file_report = read_crm(folder)
    in_memory = crm_from_frames(tables)
    assert from_file is not None
    assert from_file.touchpoints["type"].tolist() == [
        "demo_request", "pricing_page_view", "other", "meeting",
    ]  # fmt: skip
    for name in ("accounts", "contacts", "touchpoints", "opportunities"):
        pd.testing.assert_frame_equal(from_file.table(name), in_memory.table(name))
    assert [str(p) for p in file_report.warnings] == [
        "warning: touchpoints.type: 1 touchpoints have a type outside the taxonomy and count "
        "as 'other': 'Chat_Started' (1)"
    ]


def test_a_title_fills_only_the_part_that_is_empty() -> None:
    # every seniority given, one department empty: the title fills that department and
    # nothing else (an empty set of seniorities to fill was an ArrowInvalid traceback)
    tables = tiny_tables()
    tables["contacts"]["seniority"] = ["vp", "c_level", "individual"]
    tables["contacts"]["department"] = ["finance", "", "other"]
    crm = crm_from_frames(tables)
    assert crm.contacts["seniority"].tolist() == ["vp", "c_level", "individual"]
    assert crm.contacts["department"].tolist() == ["finance", "executive", "other"]
