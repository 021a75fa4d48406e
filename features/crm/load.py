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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.crm.contract import TABLES, TABLES_BY_NAME, ColumnSpec, Kind, TableSpec
from features.crm.records import CLOSE_AFTER_CREATE
from features.crm.taxonomy import OTHER, STAGE_OF_TYPE
from features.crm.titles import parse_titles
from features.crm.validation import (
    InvalidCRMError,
    TableSummary,
    ValidationReport,
    check_columns,
    check_reference,
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
            table = pq.read_table(path)
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
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=1, encoding=csv_format.encoding
            ),
            parse_options=pacsv.ParseOptions(delimiter=csv_format.sep),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise ValueError(f"is not a well-formed CSV table ({_short_arrow_message(exc)})") from exc
    return table.to_pandas()


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


def _as_text(values: pd.Series) -> pd.Series:
    """Text with surrounding blanks removed; empty text is missing."""
    if not (pd.api.types.is_string_dtype(values) or values.dtype == object):
        missing = values.isna()
        values = values.astype(object).where(~missing, None)
    text = values.astype("str")
    text = text.str.strip()
    return text.mask(text == "")


def parse_timestamps(raw: pd.Series) -> pd.Series:
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC").astype(TIMESTAMP_DTYPE)
    if pd.api.types.is_datetime64_dtype(raw):
        return raw.dt.tz_localize("UTC").astype(TIMESTAMP_DTYPE)
    text = _as_text(raw)
    parsed: pd.Series = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    return parsed.astype(TIMESTAMP_DTYPE)


def _parse_numbers(raw: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        return raw.astype("float64")
    return pd.to_numeric(_as_text(raw), errors="coerce").astype("float64")


def parse_column(
    frame: pd.DataFrame, spec: TableSpec, col: ColumnSpec, report: ValidationReport
) -> pd.Series:
    """Parse one column to its contract type; unparsable values are reported as errors."""
    raw = frame[col.name]
    typed = not (pd.api.types.is_string_dtype(raw) or raw.dtype == object)
    text = None if typed else _as_text(raw)
    given = raw.notna() if text is None else text.notna()
    if col.kind is Kind.TIMESTAMP:
        parsed = parse_timestamps(raw if text is None else text)
    elif col.kind in (Kind.INTEGER, Kind.NUMBER):
        parsed = _parse_numbers(raw if text is None else text)
    else:
        parsed = _as_text(raw) if text is None else text
        if col.kind is Kind.ENUM:
            parsed = parsed.str.lower()
    bad = given & parsed.isna()
    if col.kind is Kind.INTEGER:
        bad |= parsed.notna() & (parsed != np.floor(parsed.fillna(0)))
    if bad.any():
        positions = np.flatnonzero(bad.to_numpy())
        report.unreadable[f"{spec.name}.{col.name}"] = positions
        report.add(
            "error",
            spec.name,
            col.name,
            f"{len(positions):,} values cannot be read; expected {col.expected}",
            len(positions),
            row_examples(frame, positions, spec.id_column, raw),
        )
    if col.kind is Kind.INTEGER:
        parsed = parsed.where(~bad).astype("Int64")
    return parsed


def parse_table(raw: pd.DataFrame, spec: TableSpec, report: ValidationReport) -> pd.DataFrame:
    """Parse a raw table to contract types; returns the frame with every column kept."""
    frame = raw.reset_index(drop=True)
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
    out = frame.copy()
    for col in spec.columns:
        if col.name not in frame.columns:
            if not col.required:
                report.add(
                    "warning",
                    spec.name,
                    col.name,
                    f"optional column {col.name} is missing; treated as empty in every row",
                )
                out[col.name] = _empty_column(col, len(frame))
            continue
        out[col.name] = parse_column(frame, spec, col, report)
    return out


def _empty_column(col: ColumnSpec, n: int) -> pd.Series:
    if col.kind is Kind.TIMESTAMP:
        return pd.Series(pd.NaT, index=range(n), dtype=TIMESTAMP_DTYPE)
    if col.kind is Kind.INTEGER:
        return pd.Series(pd.NA, index=range(n), dtype="Int64")
    if col.kind is Kind.NUMBER:
        return pd.Series(np.nan, index=range(n), dtype="float64")
    return pd.Series(np.nan, index=range(n), dtype="str")


def _normalise_touchpoint_types(touchpoints: pd.DataFrame, report: ValidationReport) -> None:
    types = touchpoints["type"].str.lower()
    unknown = types.notna() & ~types.isin(list(STAGE_OF_TYPE))
    if unknown.any():
        counts = touchpoints.loc[unknown, "type"].value_counts()
        listed = ", ".join(f"{v!r} ({n:,})" for v, n in counts.head(10).items())
        if len(counts) > 10:
            listed += f", and {len(counts) - 10} more kinds"
        report.add(
            "warning",
            "touchpoints",
            "type",
            f"{int(unknown.sum()):,} touchpoints have a "
            f"type outside the taxonomy and count as '{OTHER}': {listed}",
            int(unknown.sum()),
        )
        types = types.mask(unknown, OTHER)
    touchpoints["type"] = types


def _derive_from_titles(contacts: pd.DataFrame, report: ValidationReport) -> None:
    """Fill empty seniority/department from the job title, and say how often."""
    empty = contacts["seniority"].isna() | contacts["department"].isna()
    if not empty.any():
        return
    derived = parse_titles(contacts.loc[empty, "job_title"])
    for column in ("seniority", "department"):
        fill = contacts[column].isna()
        report.derived[column] = fill.to_numpy(dtype=bool)
        contacts.loc[fill, column] = derived.loc[fill[fill].index, column]
        n_derived = int(fill.sum())
        n_unknown = int((contacts.loc[fill, column] == "unknown").sum())
        report.notes.append(
            f"contacts.{column}: derived from job_title for {n_derived:,} contacts "
            f"({n_unknown:,} of them stay 'unknown': no title or no recognised words)"
        )


def parse_tables(raw: Mapping[str, pd.DataFrame], report: ValidationReport) -> CRM | None:
    """Parse and check raw tables; returns the CRM when the report holds no errors."""
    parsed: dict[str, pd.DataFrame] = {}
    for spec in TABLES:
        if spec.name not in raw:
            continue
        frame = parse_table(raw[spec.name], spec, report)
        if report.has_errors_in(spec.name) and any(
            c not in raw[spec.name].columns for c in spec.required_columns
        ):
            continue  # without its required columns a table cannot be checked further
        if spec.name == "touchpoints" and "type" in frame.columns:
            _normalise_touchpoint_types(frame, report)
        if spec.name == "contacts":
            _derive_from_titles(frame, report)
        check_columns(frame, spec, report)
        parsed[spec.name] = frame
    _check_relations(parsed, report)
    _check_dates(parsed, report)
    _check_not_empty(parsed, report)
    _record_date_ranges(parsed, report)
    if not report.ok or len(parsed) < len(TABLES):
        return None
    return CRM(**parsed)


def _check_relations(parsed: Mapping[str, pd.DataFrame], report: ValidationReport) -> None:
    for spec in TABLES:
        if spec.name not in parsed:
            continue
        for col in spec.columns:
            if col.references and col.references in parsed:
                target_spec = TABLES_BY_NAME[col.references]
                check_reference(
                    parsed[spec.name], spec, col.name, parsed[col.references], target_spec, report
                )


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
    from features.crm.database import is_database_url, safe_url

    if is_database_url(str(source)):
        report = ValidationReport(folder=safe_url(str(source)))
        raw = read_raw_database(str(source), report)
    else:
        folder = Path(source)
        report = ValidationReport(folder=str(folder))
        raw = read_raw_tables(folder, report, csv_format)
    crm = parse_tables(raw, report)
    return crm, report


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
