"""Load a CRM export folder (data contract v1) into typed, validated tables.

Reading is split from checking: files become raw frames (CSV cells as text, Parquet
as typed columns), `parse_tables` turns raw frames into the contract's types while
recording every value it could not parse, and the checks in `features.crm.validation`
run on the parsed result. Serving and tests hand in-memory frames to `parse_tables`,
so a frame built anywhere goes through the same door as a file.

Nothing is dropped. A value that cannot be parsed is an error naming its row; the only
things changed without refusing the load are the ones the contract tolerates
(unknown touchpoint type -> `other`, missing optional column -> empty), and each is
counted in a warning. Seniority and department are derived from the job title where
they are empty, and that is counted in a note.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.arrow import TEXT_DICTIONARY, column_threads, one_array
from features.crm.contract import TABLES, TABLES_BY_NAME, ColumnSpec, Kind, TableSpec
from features.crm.records import CLOSE_AFTER_CREATE
from features.crm.taxonomy import OTHER, STAGE_OF_TYPE
from features.crm.titles import UNKNOWN, parse_titles
from features.crm.validation import (
    ColumnFailure,
    InvalidCRMError,
    Problem,
    TableSummary,
    ValidationReport,
    check_closed_deals,
    column_failures,
    dangling,
    report_dangling,
    report_failures,
    row_examples,
)

logger = logging.getLogger(__name__)

#: Internal timestamp resolution: microseconds in UTC, whatever the input had.
TIMESTAMP_DTYPE = pd.DatetimeTZDtype(unit="us", tz="UTC")


@dataclass(frozen=True)
class CsvFormat:
    """How the CSV files of an export are written: the separator and the text encoding.

    CRM exports often differ from the contract's comma and UTF-8: Bitrix24 and Excel in
    Russian locales write `;` and cp1251.
    """

    sep: str = ","
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        if len(self.sep) != 1:
            raise ValueError(f"the separator must be one character, not {self.sep!r}")
        import codecs

        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"unknown text encoding {self.encoding!r}") from None


#: the contract's own: comma-separated UTF-8
CONTRACT_CSV = CsvFormat()
#: separators a badly split header is checked for, in this order
_LIKELY_SEPARATORS = (";", "\t", "|", ",")


@dataclass
class CRM:
    """The four contract tables, parsed: UTC timestamps, numbers, normalised enums."""

    accounts: pd.DataFrame
    contacts: pd.DataFrame
    touchpoints: pd.DataFrame
    opportunities: pd.DataFrame

    def table(self, name: str) -> pd.DataFrame:
        frame: pd.DataFrame = getattr(self, name)
        return frame


# --- reading files ----------------------------------------------------------------


def find_table_file(folder: Path, name: str) -> list[Path]:
    """The files that could hold table ``name``: ``NAME.csv`` and/or ``NAME.parquet``."""
    return [p for p in (folder / f"{name}.csv", folder / f"{name}.parquet") if p.is_file()]


def read_table_file(
    path: Path, csv_format: CsvFormat = CsvFormat(), spec: TableSpec | None = None
) -> pd.DataFrame:
    """Read one table file; CSV cells stay text so that bad values can be reported.

    Raises ``ValueError`` with a plain explanation when the file is not a table: not
    text in the encoding, a header that splits badly (naming the separator it probably
    uses), a Parquet column of the contract that holds lists or records.
    """
    if path.suffix == ".parquet":
        try:
            schema = pq.read_schema(path)
            few = _few_values(spec)
            as_dictionary = [
                f.name
                for f in schema
                if f.name in few
                and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
            ]
            table = pq.read_table(path, read_dictionary=as_dictionary)
        except (pa.ArrowException, OSError) as exc:
            raise ValueError(f"is not a readable Parquet table ({exc})") from exc
        for field in table.schema:
            if (
                spec is not None
                and field.name in spec.column_names
                and pa.types.is_nested(field.type)
            ):
                expected = spec.column(field.name).expected
                raise ValueError(
                    f"column {field.name} holds lists or records (Parquet type {field.type}); "
                    f"expected {expected} in each cell"
                )
        return table.to_pandas()
    encoding = (
        "utf-8-sig"
        if csv_format.encoding.lower().replace("_", "-") in ("utf-8", "utf8")
        else csv_format.encoding
    )
    try:
        with path.open(encoding=encoding, newline="") as handle:
            header = next(csv.reader(handle, delimiter=csv_format.sep), None)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"is not {'UTF-8' if encoding == 'utf-8-sig' else csv_format.encoding} text "
            f"({exc.reason} at byte {exc.start})" + _encoding_hint(path)
        ) from exc
    except csv.Error as exc:
        raise ValueError(f"has no readable CSV header ({exc})") from exc
    if not header or all(not h.strip() for h in header):
        raise ValueError("is empty; expected a header row naming the columns")
    names = [h.strip() for h in header]
    if spec is not None and len(names) == 1 and names[0] not in spec.column_names:
        raise ValueError(_separator_hint(names[0], csv_format.sep))
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"names the columns {', '.join(duplicated)} more than once")
    few = _few_values(spec)
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=1, encoding=csv_format.encoding
            ),
            parse_options=pacsv.ParseOptions(delimiter=csv_format.sep),
            convert_options=pacsv.ConvertOptions(
                column_types={n: TEXT_DICTIONARY if n in few else pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise ValueError(f"is not a well-formed CSV table ({_short_arrow_message(exc)})") from exc
    return table.to_pandas()


def _few_values(spec: TableSpec | None) -> set[str]:
    """The columns read as a dictionary of their values (`ColumnSpec.few_values`)."""
    return set() if spec is None else {c.name for c in spec.columns if c.few_values}


def _separator_hint(header: str, sep: str) -> str:
    """The header read as one column: which separator the file probably uses."""
    shown = header if len(header) <= 60 else header[:57] + "..."
    for candidate in _LIKELY_SEPARATORS:
        if candidate != sep and candidate in header:
            flag = "'\\t'" if candidate == "\t" else repr(candidate)
            return (
                f"has one column only ({shown!r}) when split by {sep!r}; it looks separated by "
                f"{flag}: give --sep {flag}"
            )
    return f"has one column only ({shown!r}) when split by {sep!r}; is the separator right?"


def _encoding_hint(path: Path) -> str:
    """'; it reads as cp1251 (Cyrillic): give --encoding cp1251', when that is likely."""
    sample = path.read_bytes()[:65536]
    if b"\x00" in sample:
        return "; it holds binary data, so it is not a CSV table"
    try:
        text = sample.decode("cp1251")
    except UnicodeDecodeError:
        return "; give --encoding with the file's encoding (e.g. latin-1)"
    if any("\u0400" <= ch <= "\u04ff" for ch in text):
        return "; it reads as Cyrillic in cp1251 (Excel, Bitrix24): give --encoding cp1251"
    return "; give --encoding with the file's encoding (e.g. cp1252 or latin-1)"


def _short_arrow_message(exc: Exception) -> str:
    text = str(exc).splitlines()[0]
    return text.replace("CSV parse error: ", "")


def read_raw_tables(
    folder: Path, report: ValidationReport, csv_format: CsvFormat = CsvFormat()
) -> dict[str, pd.DataFrame]:
    """Read the four table files of a folder; problems with files go to the report."""
    raw: dict[str, pd.DataFrame] = {}
    if not folder.is_dir():
        report.add(
            "error",
            "(folder)",
            None,
            f"{folder} is not a folder; expected a folder "
            "holding accounts, contacts, touchpoints and opportunities (.csv or .parquet)",
        )
        return raw
    for spec in TABLES:
        files = find_table_file(folder, spec.name)
        summary = TableSummary(spec.name, None)
        report.tables[spec.name] = summary
        if not files:
            report.add(
                "error",
                spec.name,
                None,
                f"no file {spec.name}.csv or {spec.name}.parquet "
                f"in {folder}; expected one (it may hold only a header row)",
            )
            continue
        if len(files) > 1:
            report.add(
                "error",
                spec.name,
                None,
                f"both {files[0].name} and {files[1].name} exist; "
                "expected exactly one file per table",
            )
            continue
        summary.file = files[0].name
        try:
            raw[spec.name] = read_table_file(files[0], csv_format, spec)
        except ValueError as exc:
            report.add("error", spec.name, None, f"{files[0].name} {exc}")
    return raw


# --- parsing values ---------------------------------------------------------------
#
# Text is parsed with Arrow: trimming, timestamps and numbers are Arrow kernels over the
# whole column (3 million timestamps: 0.06 s, against 1.03 s for pandas' parser).
# Arrow's parsers are stricter than pandas' (no "2025-3-2", no nanoseconds in a
# microsecond column), so a piece Arrow refuses is parsed by pandas, the parser the
# loader always used: the result is the same value for value, and an export in one
# consistent format never reaches the slow path.

#: rows per piece when a column is parsed piece by piece (one odd value costs a piece)
_PIECE: Final = 65_536
_UTC_US: Final = pa.timestamp("us", tz="UTC")
#: the largest whole number whose text a float64 reads exactly: from 2**53 on, neighbours
#: read as the same number (2**53 + 1 becomes 2**53), so larger "integers" are refused
_LARGEST_WHOLE: Final = float(2**53 - 1)
_TYPES: Final = pa.array(sorted(STAGE_OF_TYPE))
_NONE: Final = np.array([], dtype=np.int64)
#: the first and last microsecond Python's datetime holds (years 1 and 9999), from the epoch
_FIRST: Final = pa.scalar(-62_135_596_800_000_000, _UTC_US)
_LAST: Final = pa.scalar(253_402_300_799_999_999, _UTC_US)


def _is_text(values: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(values) or values.dtype == object or _is_words(values)


def _is_words(values: pd.Series) -> bool:
    """A Categorical of text: how a column of few values is read (`few_values`)."""
    return isinstance(values.dtype, pd.CategoricalDtype) and pd.api.types.is_string_dtype(
        values.dtype.categories
    )


def _arrow_text(values: pd.Series) -> pa.ChunkedArray:
    """A column as Arrow text with surrounding blanks removed; empty text is missing.

    A Categorical is trimmed once per category and spelled out by index."""
    if _is_words(values):
        words = _arrow_words(values)
        text = pc.take(_trim(words.dictionary.cast(pa.large_string())), words.indices)
        return pa.chunked_array([text])
    arrow = _arrow_strings(values)
    return pa.chunked_array([_trimmed(chunk) for chunk in arrow.chunks], type=arrow.type)


def _arrow_words(values: pd.Series) -> pa.DictionaryArray:
    """A Categorical of text as Arrow's dictionary (its categories and codes, no copy)."""
    words = one_array(values)
    assert isinstance(words, pa.DictionaryArray)
    return words


def _arrow_strings(values: pd.Series) -> pa.ChunkedArray:
    """A column as Arrow text, as it is. pandas' Arrow-backed strings hand their buffers
    over; any other column becomes text value by value (`str(value)`; missing stays so)."""
    if not isinstance(values.dtype, pd.StringDtype):
        if not _is_text(values):
            values = values.astype(object).where(values.notna(), None)
        values = values.astype("str")
    arrow = pa.array(values)
    return arrow if isinstance(arrow, pa.ChunkedArray) else pa.chunked_array([arrow])


def _trimmed(text: pa.Array) -> pa.Array:
    """``text`` trimmed (Arrow's `utf8_trim_whitespace`, what pandas' `str.strip` calls)
    and empty text made missing; text with nothing to trim keeps its buffers.

    Whether anything needs trimming is read from each value's first and last byte: every
    Unicode blank is either an ASCII byte up to 0x20 or a multi-byte character (bytes
    from 0x80), so values that start and end with printable ASCII have none at either
    end. That look costs a fifth of the trim it saves on a column of ids; empty values
    (an optional column's usual state) then only lose their validity bit.
    """
    if len(text) == 0 or text.null_count == len(text):
        return text
    offset_type = np.int64 if pa.types.is_large_string(text.type) else np.int32
    offsets = np.frombuffer(text.buffers()[1], dtype=offset_type).astype(np.int64, copy=False)
    offsets = offsets[text.offset : text.offset + len(text) + 1]
    starts, ends = offsets[:-1], offsets[1:]
    filled = ends > starts
    if text.null_count:
        filled &= np.asarray(text.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if filled.any():
        data = np.frombuffer(text.buffers()[2], dtype=np.uint8)
        first, last = data[starts[filled]], data[ends[filled] - 1]
        if ((first <= 0x20) | (first >= 0x80) | (last <= 0x20) | (last >= 0x80)).any():
            return _trim(text)
    if filled.all():
        return text
    # the same offsets and bytes, a validity bitmap without the empty values
    width = np.dtype(offset_type).itemsize
    own_offsets = text.buffers()[1].slice(text.offset * width, (len(text) + 1) * width)
    validity = pa.py_buffer(np.packbits(filled, bitorder="little"))
    return pa.Array.from_buffers(text.type, len(text), [validity, own_offsets, text.buffers()[2]])


def _trim(text: pa.Array) -> pa.Array:
    trimmed = pc.utf8_trim_whitespace(text)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, trimmed.type), trimmed)


def _series(values: pa.ChunkedArray, index: pd.Index) -> pd.Series:
    series = values.to_pandas()
    series.index = index
    if pa.types.is_timestamp(values.type):  # Arrow's zone is ZoneInfo("UTC"); ours is
        series = series.dt.tz_convert("UTC")  # datetime.timezone.utc, as pandas gives it
    return series


def _read_pieces(
    text: pa.ChunkedArray,
    to: pa.DataType,
    fast: Callable[[pa.ChunkedArray | pa.Array], pa.ChunkedArray | pa.Array],
    slow: Callable[[pa.Array], pa.Array],
) -> pa.ChunkedArray:
    """``fast`` (Arrow, all or nothing) on the whole column; where it refuses, piece by
    piece, and ``slow`` (pandas, value by value) on the pieces it still refuses."""
    try:
        whole = fast(text)
        return whole if isinstance(whole, pa.ChunkedArray) else pa.chunked_array([whole])
    except pa.ArrowInvalid:
        pass
    pieces = []
    for chunk in text.chunks:
        for start in range(0, len(chunk), _PIECE):
            piece = chunk.slice(start, _PIECE)
            try:
                pieces.append(fast(piece))
            except pa.ArrowInvalid:
                pieces.append(slow(piece))
    return pa.chunked_array(pieces, type=to)


def _arrow_timestamps(text: Any) -> Any:
    """ISO 8601 text read by Arrow: with an offset or Z, or without (then it is UTC)."""
    try:
        return pc.cast(text, _UTC_US)
    except pa.ArrowInvalid:
        return pc.cast(pc.cast(text, pa.timestamp("us")), _UTC_US)


def _pandas_timestamps(text: pa.Array) -> pa.Array:
    """pandas' ISO 8601 parser, for the forms Arrow's does not read ("2025-3-2", basic
    "20250302T100000Z", nanoseconds); text that does not begin with a four-digit year is
    not a timestamp (pandas reads "-1" as the year 1 BC and ".5" as May of the year 0)."""
    year_first = pc.match_substring_regex(text, r"^\d{4}")
    text = pc.if_else(year_first, text, pa.scalar(None, text.type))
    parsed = pd.to_datetime(text.to_pandas(), utc=True, format="ISO8601", errors="coerce")
    utc = parsed.astype(TIMESTAMP_DTYPE).dt.tz_convert(None).to_numpy()
    return pa.array(utc, type=pa.timestamp("us"), from_pandas=True).cast(_UTC_US)


def _timestamps_of_text(text: pa.ChunkedArray) -> pa.ChunkedArray:
    return _read_pieces(text, _UTC_US, _arrow_timestamps, _pandas_timestamps)


def _pandas_numbers(text: pa.Array) -> pa.Array:
    parsed = pd.to_numeric(text.to_pandas(), errors="coerce").astype("float64")
    return pa.array(parsed, type=pa.float64(), from_pandas=False)


def _numbers_of_text(text: pa.ChunkedArray) -> pa.ChunkedArray:
    return _read_pieces(text, pa.float64(), lambda t: pc.cast(t, pa.float64()), _pandas_numbers)


def parse_timestamps(raw: pd.Series) -> pd.Series:
    """Any column of timestamps (text, naive or zoned datetimes) as UTC microseconds."""
    return _series(_utc_timestamps(raw), raw.index)


def _utc_timestamps(raw: pd.Series, text: pa.ChunkedArray | None = None) -> pa.ChunkedArray:
    """A column of timestamps in Arrow, UTC microseconds; ``text``: its trimmed text."""
    if not (isinstance(raw.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(raw)):
        return _timestamps_of_text(_arrow_text(raw) if text is None else text)
    # Arrow converts the unit (a Parquet file's ms) ten times faster than pandas' astype
    # (a datetime without a zone is UTC there as in tz_localize); pandas truncates the
    # nanoseconds Arrow would refuse to drop
    naive = raw.dt.tz_convert(None) if raw.dt.tz else raw
    try:
        return pa.chunked_array([pa.array(naive.to_numpy(), from_pandas=True)]).cast(_UTC_US)
    except pa.ArrowInvalid:
        micros = naive.astype("datetime64[us]").to_numpy()
        return pa.chunked_array([pa.array(micros, from_pandas=True)]).cast(_UTC_US)


def parse_values(raw: pd.Series, col: ColumnSpec) -> tuple[pd.Series, np.ndarray]:
    """One column in its contract type, and the mask of given values that cannot be read.

    Numbers must be finite, and whole numbers below 2**53 (from there on a float64, and so
    every model input, no longer tells neighbouring whole numbers apart). Timestamps must
    fall in the years 1-9999 (Python's datetime, which every report and store writes them
    with; pandas and Parquet can hold the year 0 and before).
    """
    text = _arrow_text(raw) if _is_text(raw) else None
    given = (
        raw.notna().to_numpy()
        if text is None
        else np.asarray(pc.is_valid(text).to_numpy(zero_copy_only=False), dtype=bool)
    )
    if col.kind is Kind.TIMESTAMP:
        utc = _utc_timestamps(raw, text)
        outside = pc.or_(pc.less(utc, _FIRST), pc.greater(utc, _LAST))
        if pc.any(outside).as_py():
            utc = pc.if_else(outside, pa.scalar(None, _UTC_US), utc)
        read = np.asarray(pc.is_valid(utc).to_numpy(zero_copy_only=False), dtype=bool)
        return _series(utc, raw.index), given & ~read
    if col.kind in (Kind.INTEGER, Kind.NUMBER):
        if text is not None:
            parsed = _series(_numbers_of_text(text), raw.index)
        elif pd.api.types.is_bool_dtype(raw) or not pd.api.types.is_numeric_dtype(raw):
            parsed = pd.Series(np.nan, index=raw.index, dtype="float64")
        else:
            parsed = raw.astype("float64")
        number = parsed.to_numpy(dtype="float64", na_value=np.nan)
        bad = given & ~np.isfinite(number)
        if col.kind is Kind.INTEGER:
            with np.errstate(invalid="ignore"):
                bad |= given & ((number != np.floor(number)) | (np.abs(number) > _LARGEST_WHOLE))
        parsed = parsed.where(~bad)  # a value that cannot be read is missing, not infinite
        return (parsed.astype("Int64") if col.kind is Kind.INTEGER else parsed), bad
    text = _arrow_text(raw) if text is None else text  # (a typed column, written out)
    parsed = _series(pc.utf8_lower(text) if col.kind is Kind.ENUM else text, raw.index)
    return parsed, np.zeros(len(raw), dtype=bool)  # text is always read


@dataclass
class _Column:
    """A column parsed and checked (in a thread of its own), waiting to be reported."""

    parsed: pd.Series
    unreadable: np.ndarray
    failures: list[ColumnFailure]
    warning: Problem | None = None


def _read_column(raw: pd.Series, table: str, col: ColumnSpec) -> _Column:
    if (table, col.name) == ("touchpoints", "type"):
        parsed, warning = _touchpoint_types(raw)
        return _Column(parsed, _NONE, column_failures(parsed, col), warning)
    parsed, bad = parse_values(raw, col)
    unreadable = np.flatnonzero(bad)
    return _Column(parsed, unreadable, column_failures(parsed, col, unreadable))


@dataclass
class _Started:
    """A table whose columns are being parsed and checked by the pool."""

    spec: TableSpec
    frame: pd.DataFrame
    columns: dict[str, Future[_Column]]


def _start_table(raw: pd.DataFrame, spec: TableSpec, pool: Executor) -> _Started:
    frame = raw.reset_index(drop=True)
    present = [col for col in spec.columns if col.name in frame.columns]
    series = {c.name: frame[c.name] for c in present}  # taken here: the tasks share no frame
    return _Started(
        spec,
        frame,
        {c.name: pool.submit(_read_column, series[c.name], spec.name, c) for c in present},
    )


def _finish_table(
    started: _Started, report: ValidationReport
) -> tuple[pd.DataFrame, list[ColumnFailure], list[Problem]]:
    """The parsed table, every column kept; unreadable values are reported here, and the
    failed column checks and the warnings returned, to be reported once it is known that
    the table can be checked and its derived values are in."""
    spec, frame = started.spec, started.frame
    summary = report.tables.setdefault(spec.name, TableSummary(spec.name, "(in memory)"))
    summary.rows = len(frame)
    summary.extra_columns = tuple(c for c in frame.columns if c not in spec.column_names)
    missing_required = [c for c in spec.required_columns if c not in frame.columns]
    for name in missing_required:
        report.add(
            "error",
            spec.name,
            name,
            f"required column {name} is missing; the table has "
            f"columns {', '.join(map(str, frame.columns)) or '(none)'}",
        )
    out = frame.copy(deep=False)
    failures: list[ColumnFailure] = []
    warnings: list[Problem] = []
    for col in spec.columns:
        if col.name not in started.columns:
            if not col.required:
                report.add(
                    "warning",
                    spec.name,
                    col.name,
                    f"optional column {col.name} is missing; treated as empty in every row",
                )
                out[col.name] = _empty_column(col, len(frame))
            continue
        column = started.columns[col.name].result()
        out[col.name] = column.parsed
        failures += column.failures
        warnings += [column.warning] if column.warning else []
        if len(column.unreadable):
            positions = column.unreadable
            report.unreadable[f"{spec.name}.{col.name}"] = positions
            report.add(
                "error",
                spec.name,
                col.name,
                f"{len(positions):,} values cannot be read; expected {col.expected}",
                len(positions),
                row_examples(frame, positions, spec.id_column, frame[col.name]),
            )
    return out, failures, warnings


def _empty_column(col: ColumnSpec, n: int) -> pd.Series:
    if col.kind is Kind.TIMESTAMP:
        return pd.Series(pd.NaT, index=range(n), dtype=TIMESTAMP_DTYPE)
    if col.kind is Kind.INTEGER:
        return pd.Series(pd.NA, index=range(n), dtype="Int64")
    if col.kind is Kind.NUMBER:
        return pd.Series(np.nan, index=range(n), dtype="float64")
    return pd.Series(np.nan, index=range(n), dtype="str")


def _touchpoint_types(raw: pd.Series) -> tuple[pd.Series, Problem | None]:
    """Types trimmed and in lower case; a type outside the taxonomy counts as `other`, with
    a warning that lists the unknown types by how often they occur. (Runs in the column's
    thread, in place of `parse_values`: text cannot be unreadable.)

    A CRM has a few dozen types over millions of touchpoints, so the work is done once
    per distinct value (Arrow's dictionary encoding) and spread back by index.
    """
    encoded = (
        _arrow_words(raw)
        if _is_words(raw)
        else pc.dictionary_encode(one_array(_arrow_strings(raw)))
    )
    words = _trim(encoded.dictionary.cast(pa.large_string()))  # a missing type stays missing
    codes = pc.fill_null(encoded.indices.cast(pa.int64()), len(words)).to_numpy(
        zero_copy_only=False
    )
    lower = pc.utf8_lower(words)
    known = pc.is_in(lower, value_set=_TYPES).to_numpy(zero_copy_only=False)
    unknown = np.asarray(words.is_valid().to_numpy(zero_copy_only=False)) & ~np.asarray(known)
    normal = pc.if_else(pa.array(unknown), pa.scalar(OTHER, lower.type), lower)
    normalised = pc.take(pa.concat_arrays([normal, pa.nulls(1, normal.type)]), codes)
    parsed = _series(pa.chunked_array([normalised]), raw.index)
    counts = np.bincount(codes, minlength=len(words) + 1)[: len(words)]
    n_unknown = int(counts[unknown].sum())
    if not n_unknown:
        return parsed, None
    # by type as written (after trimming), most frequent first, ties in order of appearance
    kinds = (
        pd.DataFrame({"type": words.filter(pa.array(unknown)).to_pylist(), "n": counts[unknown]})
        .groupby("type", sort=False)["n"]
        .sum()
        .sort_values(ascending=False, kind="stable")
    )
    listed = ", ".join(f"{value!r} ({n:,})" for value, n in kinds.head(10).items())
    if len(kinds) > 10:
        listed += f", and {len(kinds) - 10} more kinds"
    warning = Problem(
        "warning",
        "touchpoints",
        "type",
        f"{n_unknown:,} touchpoints have a "
        f"type outside the taxonomy and count as '{OTHER}': {listed}",
        n_unknown,
    )
    return parsed, warning


def _derive_from_titles(contacts: pd.DataFrame, report: ValidationReport) -> None:
    """Fill empty seniority/department from the job title, and say how often."""
    empty = (contacts["seniority"].isna() | contacts["department"].isna()).to_numpy()
    if not empty.any():
        return
    derived = parse_titles(contacts["job_title"][empty])
    for column in ("seniority", "department"):
        fill = contacts[column].isna().to_numpy()
        report.derived[column] = fill
        # the rows to fill, in the order of the rows parsed (every one of them is empty)
        values = one_array(derived[column][fill[empty]])
        given = one_array(contacts[column])
        filled = pc.replace_with_mask(given, pa.array(fill), values.cast(given.type))
        contacts[column] = _series(pa.chunked_array([filled]), contacts.index)
        n_unknown = int(pc.sum(pc.equal(values, UNKNOWN)).as_py() or 0)
        report.notes.append(
            f"contacts.{column}: derived from job_title for {int(fill.sum()):,} contacts "
            f"({n_unknown:,} of them stay 'unknown': no title or no recognised words)"
        )


def parse_tables(raw: Mapping[str, pd.DataFrame], report: ValidationReport) -> CRM | None:
    """Parse and check raw tables; returns the CRM when the report holds no errors.

    Every column of every table is parsed and checked by a pool of threads (Arrow releases
    the GIL), all started at once, so the contacts' titles are read while the touchpoints
    are still being parsed; a foreign key is checked in the pool as soon as its table is
    parsed, beside the columns still being read. The report is written in table and
    column order, the same on every run.
    """
    parsed: dict[str, pd.DataFrame] = {}
    keys: dict[tuple[str, str], Future[np.ndarray]] = {}
    with ThreadPoolExecutor(column_threads(), thread_name_prefix="parse") as pool:
        started = [_start_table(raw[s.name], s, pool) for s in TABLES if s.name in raw]
        for table in started:
            spec = table.spec
            frame, failures, warnings = _finish_table(table, report)
            if report.has_errors_in(spec.name) and any(
                c not in raw[spec.name].columns for c in spec.required_columns
            ):
                continue  # without its required columns a table cannot be checked further
            report.problems += warnings
            if spec.name == "contacts":
                _derive_from_titles(frame, report)
            report_failures(frame, spec, failures, report)
            if spec.name == "opportunities":
                check_closed_deals(frame, report)
            parsed[spec.name] = frame
            keys |= _start_references(started, spec, frame[spec.id_column], pool)
        for spec in TABLES:  # in the contract's order, whichever finished first
            for col in spec.columns:
                key = keys.get((spec.name, col.name))
                if key is not None and spec.name in parsed and col.references in parsed:
                    target = TABLES_BY_NAME[col.references]
                    report_dangling(parsed[spec.name], spec, col.name, target, key.result(), report)
    _check_dates(parsed, report)
    _check_not_empty(parsed, report)
    _record_date_ranges(parsed, report)
    if not report.ok or len(parsed) < len(TABLES):
        return None
    return CRM(**parsed)


def _start_references(
    started: list[_Started], target: TableSpec, ids: pd.Series, pool: Executor
) -> dict[tuple[str, str], Future[np.ndarray]]:
    """Check, in the pool, every column that names a row of ``target`` (now parsed).

    A task waits for its column's own task, which was submitted before it: the pool takes
    tasks in order, so that one is already running or done.
    """
    out = {}
    for table in started:
        for col in table.spec.columns:
            if col.references == target.name and col.name in table.columns:
                task = pool.submit(_dangling_when_read, table.columns[col.name], ids)
                out[(table.spec.name, col.name)] = task
    return out


def _dangling_when_read(column: Future[_Column], ids: pd.Series) -> np.ndarray:
    return dangling(column.result().parsed, ids)


def _check_dates(parsed: Mapping[str, pd.DataFrame], report: ValidationReport) -> None:
    """A deal cannot close before it was opened; an open deal's closed_at is ignored."""
    opps = parsed.get("opportunities")
    if opps is None:
        return
    spec = TABLES_BY_NAME["opportunities"]
    backwards = (opps["closed_at"] < opps["created_at"]).fillna(False).to_numpy(dtype=bool)
    if backwards.any():
        positions = np.flatnonzero(backwards)
        report.add(
            "error",
            "opportunities",
            "closed_at",
            f"{len(positions):,} opportunities close "
            f"before they were created; expected {CLOSE_AFTER_CREATE}",
            len(positions),
            row_examples(opps, positions, spec.id_column, opps["closed_at"]),
        )
    open_with_close = ((opps["stage"] == "open") & opps["closed_at"].notna()).to_numpy(dtype=bool)
    if open_with_close.any():
        positions = np.flatnonzero(open_with_close)
        report.add(
            "warning",
            "opportunities",
            "closed_at",
            f"{len(positions):,} open opportunities "
            "carry a closed_at; it is ignored while the stage is open",
            len(positions),
            row_examples(opps, positions, spec.id_column, opps["closed_at"]),
        )


def _check_not_empty(parsed: Mapping[str, pd.DataFrame], report: ValidationReport) -> None:
    """An export without contacts has nothing to score or learn from; without touchpoints
    only the fit features exist (allowed, and said)."""
    contacts, touchpoints = parsed.get("contacts"), parsed.get("touchpoints")
    if contacts is not None and len(contacts) == 0:
        report.add(
            "error",
            "contacts",
            None,
            "has no rows; expected at least one contact (the leads to score or learn from)",
        )
    if touchpoints is not None and len(touchpoints) == 0 and contacts is not None and len(contacts):
        report.add(
            "warning",
            "touchpoints",
            None,
            "has no rows; only fit features (who the leads are) can be computed",
        )


def _record_date_ranges(parsed: Mapping[str, pd.DataFrame], report: ValidationReport) -> None:
    for spec in TABLES:
        frame = parsed.get(spec.name)
        if frame is None:
            continue
        for col in spec.columns:
            if col.kind is Kind.TIMESTAMP and col.name in frame.columns:
                values = frame[col.name].dropna()
                if len(values):
                    report.date_ranges[f"{spec.name}.{col.name}"] = (
                        values.min().isoformat(),
                        values.max().isoformat(),
                    )


# --- the doors --------------------------------------------------------------------


def read_raw_database(url: str, report: ValidationReport) -> dict[str, pd.DataFrame]:
    """The live lead store's four tables, as `read_raw_tables` gives a folder's."""
    from features.crm.database import DatabaseReadError, read_database, safe_url

    try:
        raw = read_database(url)
    except DatabaseReadError as exc:
        report.add("error", "(database)", None, str(exc))
        return {}
    for name in raw:
        report.tables[name] = TableSummary(name, f"{safe_url(url)} table {name}")
    return raw


def read_crm(
    source: str | Path, csv_format: CsvFormat = CsvFormat()
) -> tuple[CRM | None, ValidationReport]:
    """Read and check a CRM export: a folder, or the live lead store's database URL
    (`sqlite:///leadscore.db`, `postgresql://...`). Never raises for bad data; the
    report says it all."""
    if not Path(source).is_dir():  # (a folder is read without importing SQLAlchemy)
        from features.crm.database import is_database_url, safe_url

        if is_database_url(str(source)):
            report = ValidationReport(folder=safe_url(str(source)))
            return parse_tables(read_raw_database(str(source), report), report), report
    folder = Path(source)
    report = ValidationReport(folder=str(folder))
    return parse_tables(read_raw_tables(folder, report, csv_format), report), report


def load_crm(folder: str | Path, csv_format: CsvFormat = CsvFormat()) -> CRM:
    """Load a CRM export (folder or database URL) for use; raises `InvalidCRMError`
    when the load is refused."""
    crm, report = read_crm(folder, csv_format)
    for warning in report.warnings:
        logger.warning("%s", warning)
    if crm is None:
        raise InvalidCRMError(report)
    return crm


def crm_from_frames(tables: Mapping[str, pd.DataFrame], source: str = "(in memory)") -> CRM:
    """Parse and check in-memory tables exactly as files would be; raises when refused."""
    report = ValidationReport(folder=source)
    crm = parse_tables(tables, report)
    if crm is None:
        raise InvalidCRMError(report)
    return crm
