"""Problems found in a CRM export, the report that lists them, and the checks.

The report is what a CRM admin reads when an export is refused, so every problem says
which table, which column, which rows (the N-th data row, and its id) and what was
expected. Problems of one kind are grouped with a count and the first few examples:
a million bad timestamps are one line that says "1,000,000", not a million lines.

Column checks (non-empty, unique, non-negative, allowed values, closed deals need
`closed_at`) and relations between tables (foreign keys) follow `features.crm.contract`,
as Arrow and NumPy operations over whole columns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.arrow import one_array
from features.crm.contract import CONTRACT_VERSION, ColumnSpec, TableSpec
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
            text += f": {'empty' if pd.isna(value) else _shown(value)}"
        out.append(text)
    return tuple(out)


def _shown(value: Any) -> str:
    """The value as Python writes it; a timestamp Python's datetime cannot hold (the year 0,
    which pandas and Parquet can) in numpy's writing."""
    try:
        return repr(value.item() if isinstance(value, np.generic) else value)
    except (ValueError, OverflowError, NotImplementedError):
        if isinstance(value, pd.Timestamp):
            return repr(str(value.asm8))
        return f"(a {type(value).__name__} that cannot be written out)"


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


# --- column checks ----------------------------------------------------------------
#
# The contract's column checks (required, unique, >= 0, allowed values, closed deals need
# closed_at) run as Arrow and NumPy operations on whole columns, one column per thread
# (`features.crm.load`). They were pandera schemas until pandera's unique and isin checks
# on Arrow-backed text became a third of a 3-million-touchpoint load; pandera now states
# the same checks independently in the tests (tests/features/test_crm_checks.py), which
# hold the two to the same rows.


@dataclass(frozen=True)
class ColumnFailure:
    """The rows of one column that fail one check, and what the check expected."""

    column: str
    check: Literal["required", "unique", "non_negative", "allowed"]
    positions: np.ndarray
    message: str  # follows the count: "3 rows repeat a value; ..."


def column_failures(
    values: pd.Series, col: ColumnSpec, unreadable: np.ndarray | None = None
) -> list[ColumnFailure]:
    """Every check of ``col`` that the parsed ``values`` fail: empty in a required column
    (not counting the ``unreadable`` rows, already reported), repeated in a unique one,
    negative, outside the allowed values. Touches nothing shared: it runs in a thread."""
    found = []
    if col.required:
        positions = np.flatnonzero(values.isna().to_numpy())
        if unreadable is not None and len(unreadable):
            positions = np.setdiff1d(positions, unreadable)
        message = f"empty values; expected {col.expected} in every row (required column)"
        found.append(ColumnFailure(col.name, "required", positions, message))
    if col.unique:
        message = f"rows repeat a value; expected every {col.name} to be unique"
        found.append(ColumnFailure(col.name, "unique", repeated(values), message))
    if col.non_negative:
        negative = (values < 0).fillna(False).to_numpy(dtype=bool)
        message = f"negative values; expected {col.expected}"
        found.append(ColumnFailure(col.name, "non_negative", np.flatnonzero(negative), message))
    if col.allowed:
        outside = values.notna().to_numpy() & ~is_in(values, pd.Series(col.allowed))
        message = f"values outside the allowed set; expected {col.expected}"
        found.append(ColumnFailure(col.name, "allowed", np.flatnonzero(outside), message))
    return [f for f in found if len(f.positions)]


def report_failures(
    frame: pd.DataFrame,
    spec: TableSpec,
    failures: Iterable[ColumnFailure],
    report: ValidationReport,
) -> None:
    """One grouped error per failed check, with the first rows that fail it."""
    for failure in failures:
        n = len(failure.positions)
        report.add(
            "error",
            spec.name,
            failure.column,
            f"{n:,} {failure.message}",
            n,
            row_examples(frame, failure.positions, spec.id_column, frame[failure.column]),
        )


def closed_without_closed_at(opportunities: pd.DataFrame) -> np.ndarray:
    """Positions of closed_won / closed_lost deals that do not say when they closed."""
    if not {"stage", "closed_at"} <= set(opportunities.columns):
        return np.array([], dtype=np.int64)
    closed = is_in(opportunities["stage"], pd.Series(CLOSED_STAGES))
    return np.flatnonzero(closed & opportunities["closed_at"].isna().to_numpy())


def check_closed_deals(opportunities: pd.DataFrame, report: ValidationReport) -> None:
    """A closed_won or closed_lost deal must say when it closed."""
    positions = closed_without_closed_at(opportunities)
    if len(positions):
        report.add(
            "error",
            "opportunities",
            "closed_at",
            f"{len(positions):,} closed opportunities have no closed_at; "
            f"expected {CLOSED_NEEDS_CLOSED_AT}",
            len(positions),
            row_examples(opportunities, positions, "opportunity_id", opportunities["stage"]),
        )


def repeated(values: pd.Series) -> np.ndarray:
    """Positions of every row whose (non-empty) value another row has too.

    By sorting, not hashing: Arrow sorts 3 million ids in a third of the time its hash
    table takes to count them; a column already in strictly increasing order (ids an
    export lists in order) is answered by one comparison of neighbours.
    """
    arrow = one_array(values)
    if len(arrow) < 2:
        return np.array([], dtype=np.int64)
    if (
        arrow.null_count == 0
        and pc.all(pc.greater(arrow.slice(1), arrow.slice(0, len(arrow) - 1))).as_py()
    ):
        return np.array([], dtype=np.int64)
    order = pc.array_sort_indices(arrow, null_placement="at_end")
    ordered = pc.take(arrow, order)
    same = pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1)).fill_null(False)
    same_as_next = np.asarray(same.to_numpy(zero_copy_only=False), dtype=bool)
    if not same_as_next.any():
        return np.array([], dtype=np.int64)
    twin = np.zeros(len(arrow), dtype=bool)
    twin[:-1] |= same_as_next
    twin[1:] |= same_as_next
    return np.sort(order.to_numpy()[twin])


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


def dangling(values: pd.Series, ids: pd.Series) -> np.ndarray:
    """Positions of the non-empty ``values`` that are not among ``ids`` (a foreign key's
    rows that name no row of its table). Touches nothing shared: it runs in a thread."""
    return np.flatnonzero(values.notna().to_numpy() & ~is_in(values, ids))


def report_dangling(
    frame: pd.DataFrame,
    spec: TableSpec,
    column: str,
    target_spec: TableSpec,
    positions: np.ndarray,
    report: ValidationReport,
) -> None:
    """Every non-empty ``frame[column]`` must name an id of the target table."""
    if not len(positions):
        return
    report.add(
        "error",
        spec.name,
        column,
        f"{len(positions):,} values name no row of {target_spec.name}; expected an "
        f"existing {target_spec.name}.{target_spec.id_column}",
        len(positions),
        row_examples(frame, positions, spec.id_column, frame[column]),
    )
