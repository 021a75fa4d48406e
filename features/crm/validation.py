"""Problems found in a CRM export, the report that lists them, and the checks.

The report is what a CRM admin reads when an export is refused, so every problem says
which table, which column, which rows (the N-th data row, and its id) and what was
expected. Problems of one kind are grouped with a count and the first few examples:
a million bad timestamps are one line that says "1,000,000", not a million lines.

Column checks (non-empty, unique, non-negative, allowed values, closed deals need
`closed_at`) are declared as pandera schemas built from `features.crm.contract`; relations
between tables (foreign keys) are checked here directly, because a schema sees one
table at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pyarrow.compute as pc
from pandera.errors import SchemaErrors

from features.crm.contract import CONTRACT_VERSION, TableSpec
from features.crm.records import CLOSED_NEEDS_CLOSED_AT
from features.crm.taxonomy import CLOSED_STAGES

Severity = Literal["error", "warning"]
MAX_EXAMPLES: Final = 5


@dataclass(frozen=True)
class Problem:
    """One kind of problem in one column of one table, with how many rows have it."""

    severity: Severity
    table: str
    column: str | None
    message: str
    count: int = 1
    examples: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = self.table + (f".{self.column}" if self.column else "")
        text = f"{self.severity}: {where}: {self.message}"
        if self.examples:
            more = self.count - len(self.examples)
            text += "; " + "; ".join(self.examples)
            if more > 0:
                text += f"; and {more:,} more"
        return text


def row_examples(
    frame: pd.DataFrame,
    positions: Sequence[int] | np.ndarray,
    id_column: str | None,
    values: pd.Series | None = None,
) -> tuple[str, ...]:
    """Describe the first few offending rows: ``row 3 (contact_id C3): 'yesterday'``.

    Rows are numbered from 1 in file order (row N is line N+1 of a CSV with a header).
    """
    out = []
    for pos in list(positions)[:MAX_EXAMPLES]:
        text = f"row {int(pos) + 1}"
        if id_column and id_column in frame.columns:
            ident = frame[id_column].iloc[int(pos)]
            if not pd.isna(ident):
                text += f" ({id_column} {ident})"
        if values is not None:
            value = values.iloc[int(pos)]
            text += f": {'empty' if pd.isna(value) else repr(_plain(value))}"
        out.append(text)
    return tuple(out)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class TableSummary:
    """What was read for one table."""

    name: str
    file: str | None
    rows: int = 0
    extra_columns: tuple[str, ...] = ()


@dataclass
class ValidationReport:
    """Everything `leadscore validate` prints: counts, date ranges, warnings, errors."""

    folder: str
    tables: dict[str, TableSummary] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    date_ranges: dict[str, tuple[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: rows whose value could not be parsed, per "table.column": already reported, so
    #: the not-empty check does not report them a second time.
    unreadable: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: contacts whose seniority / department were derived from the job title (row masks):
    #: the live store keeps what the CRM sent, so a changed title is derived again
    derived: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when the load is accepted (warnings allowed, no errors)."""
        return not self.errors

    def add(
        self,
        severity: Severity,
        table: str,
        column: str | None,
        message: str,
        count: int = 1,
        examples: Iterable[str] = (),
    ) -> None:
        self.problems.append(Problem(severity, table, column, message, count, tuple(examples)))

    def has_errors_in(self, table: str) -> bool:
        return any(p.table == table for p in self.errors)

    def to_text(self) -> str:
        lines = [f"CRM export in {self.folder} (data contract v{CONTRACT_VERSION})", ""]
        lines.append("tables:")
        for t in self.tables.values():
            source = t.file or "not found"
            lines.append(f"  {t.name:<14} {t.rows:>12,} rows   {source}")
            if t.extra_columns:
                lines.append(
                    f"  {'':<14} extra columns carried along: {', '.join(t.extra_columns)}"
                )
        if self.date_ranges:
            lines += ["", "date ranges (UTC):"]
            for name, (lo, hi) in self.date_ranges.items():
                lines.append(f"  {name:<28} {lo} .. {hi}")
        if self.notes:
            lines += ["", "notes:"] + [f"  {n}" for n in self.notes]
        for title, items in (("warnings", self.warnings), ("errors", self.errors)):
            lines += ["", f"{title} ({len(items)}):"]
            lines += [f"  {p}" for p in items] or ["  none"]
        lines += ["", "result: " + ("accepted" if self.ok else "REFUSED (fix the errors above)")]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "contract_version": CONTRACT_VERSION,
            "accepted": self.ok,
            "tables": {k: asdict(v) for k, v in self.tables.items()},
            "date_ranges": self.date_ranges,
            "notes": self.notes,
            "problems": [asdict(p) for p in self.problems],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)


class InvalidCRMError(ValueError):
    """The export was refused; ``report`` says why, row by row."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        lines = [str(p) for p in report.errors]
        super().__init__(f"the CRM export in {report.folder} was refused:\n" + "\n".join(lines))


# --- column checks, declared with pandera ----------------------------------------

_CLOSED_NEEDS_CLOSED_AT: Final = "closed_needs_closed_at"


def table_schema(spec: TableSpec, present: Iterable[str]) -> pandera.DataFrameSchema:
    """The pandera schema of a parsed table, for the contract columns it holds."""
    present = set(present)
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
    frame_checks = []
    if spec.name == "opportunities" and {"stage", "closed_at"} <= present:
        frame_checks.append(
            pandera.Check(
                lambda df: ~df["stage"].isin(CLOSED_STAGES) | df["closed_at"].notna(),
                name=_CLOSED_NEEDS_CLOSED_AT,
            )
        )
    return pandera.DataFrameSchema(columns, checks=frame_checks, strict=False, coerce=False)


def check_columns(frame: pd.DataFrame, spec: TableSpec, report: ValidationReport) -> None:
    """Run the table's pandera schema and turn its failure cases into problems."""
    try:
        table_schema(spec, frame.columns).validate(frame, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
            positions = np.unique(group["index"].dropna().astype(np.int64).to_numpy())
            col_name = None if pd.isna(column) or column == spec.name else str(column)
            _report_failure(frame, spec, report, col_name, str(check), positions)


def _report_failure(
    frame: pd.DataFrame,
    spec: TableSpec,
    report: ValidationReport,
    column: str | None,
    check: str,
    positions: np.ndarray,
) -> None:
    if check == _CLOSED_NEEDS_CLOSED_AT:
        report.add(
            "error",
            spec.name,
            "closed_at",
            f"{len(positions):,} closed opportunities have no closed_at; "
            f"expected {CLOSED_NEEDS_CLOSED_AT}",
            len(positions),
            row_examples(frame, positions, spec.id_column, frame["stage"]),
        )
        return
    assert column is not None
    col = spec.column(column)
    values = frame[column]
    if check == "not_nullable":
        seen = report.unreadable.get(f"{spec.name}.{column}")
        if seen is not None:
            positions = np.setdiff1d(positions, seen)
    n = len(positions)
    if n == 0:
        return
    if check == "not_nullable":
        message = f"{n:,} empty values; expected {col.expected} in every row (required column)"
    elif check == "field_uniqueness":
        message = f"{n:,} rows repeat a value; expected every {column} to be unique"
    elif check.startswith("greater_than_or_equal_to"):
        message = f"{n:,} negative values; expected {col.expected}"
    elif check.startswith("isin"):
        message = f"{n:,} values outside the allowed set; expected {col.expected}"
    else:
        message = f"{n:,} values fail the check {check}"
    report.add(
        "error",
        spec.name,
        column,
        message,
        n,
        row_examples(frame, positions, spec.id_column, values),
    )


# --- relations between tables ----------------------------------------------------


def is_in(values: pd.Series, known: pd.Series) -> np.ndarray:
    """``values.isin(known)`` as a NumPy mask, computed by Arrow.

    pandas' `isin` on Arrow-backed strings builds a Python list of the values; Arrow's
    hash lookup is an order of magnitude faster on millions of touchpoints.
    """
    mask = pc.is_in(
        pa.array(values, from_pandas=True), value_set=pa.array(known.dropna(), from_pandas=True)
    )
    return np.asarray(mask.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def check_reference(
    frame: pd.DataFrame,
    spec: TableSpec,
    column: str,
    target: pd.DataFrame,
    target_spec: TableSpec,
    report: ValidationReport,
) -> None:
    """Every non-empty ``frame[column]`` must name an id of the target table."""
    values = frame[column]
    dangling = values.notna().to_numpy() & ~is_in(values, target[target_spec.id_column])
    if not dangling.any():
        return
    positions = np.flatnonzero(dangling)
    report.add(
        "error",
        spec.name,
        column,
        f"{len(positions):,} values name no row of {target_spec.name}; expected an "
        f"existing {target_spec.name}.{target_spec.id_column}",
        len(positions),
        row_examples(frame, positions, spec.id_column, values),
    )
