"""The CRM export contract v1 as data: tables, columns, types and relations.

`../shared/DATA_CONTRACT.md` (twin: `docs/data_contract.md`) is the prose; this module is
the one place the code learns it from. The loader parses and checks by these specs, the
tests' pandera schemas are built from them, and the generator writes exactly these columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from features.crm.taxonomy import DEPARTMENTS, OPPORTUNITY_STAGES, SENIORITY_LEVELS

CONTRACT_VERSION: Final = "1"


class Kind(StrEnum):
    """How a column's text is parsed."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    TIMESTAMP = "timestamp"
    ENUM = "enum"


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a contract table."""

    name: str
    kind: Kind
    required: bool = False
    unique: bool = False
    non_negative: bool = False
    allowed: tuple[str, ...] = ()
    references: str | None = None  # the table whose id this column must name
    #: a handful of values over millions of rows (a touchpoint's type): read as a
    #: dictionary, so that text is trimmed, lower-cased and checked once per value
    few_values: bool = False

    @property
    def expected(self) -> str:
        """Plain words for what a value of this column must look like."""
        if self.kind is Kind.TIMESTAMP:
            return "an ISO 8601 timestamp such as 2025-03-02T10:00:00Z"
        if self.kind is Kind.INTEGER:
            return "a whole number" + (" >= 0" if self.non_negative else "")
        if self.kind is Kind.NUMBER:
            return "a number" + (" >= 0" if self.non_negative else "")
        if self.kind is Kind.ENUM:
            return "one of " + ", ".join(self.allowed)
        return "text"


@dataclass(frozen=True)
class TableSpec:
    """One table of the export: its name, id column and columns."""

    name: str
    id_column: str
    columns: tuple[ColumnSpec, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


ACCOUNTS: Final = TableSpec(
    name="accounts",
    id_column="account_id",
    columns=(
        ColumnSpec("account_id", Kind.STRING, required=True, unique=True),
        ColumnSpec("industry", Kind.STRING),
        ColumnSpec("employees", Kind.INTEGER, non_negative=True),
        ColumnSpec("annual_revenue", Kind.NUMBER, non_negative=True),
        ColumnSpec("country", Kind.STRING),
    ),
)

CONTACTS: Final = TableSpec(
    name="contacts",
    id_column="contact_id",
    columns=(
        ColumnSpec("contact_id", Kind.STRING, required=True, unique=True),
        ColumnSpec("account_id", Kind.STRING, references="accounts"),
        ColumnSpec("created_at", Kind.TIMESTAMP, required=True),
        ColumnSpec("job_title", Kind.STRING),
        ColumnSpec("seniority", Kind.ENUM, allowed=SENIORITY_LEVELS),
        ColumnSpec("department", Kind.ENUM, allowed=DEPARTMENTS),
        ColumnSpec("lead_source", Kind.STRING),
        ColumnSpec("email", Kind.STRING),
    ),
)

TOUCHPOINTS: Final = TableSpec(
    name="touchpoints",
    id_column="touchpoint_id",
    columns=(
        ColumnSpec("touchpoint_id", Kind.STRING, required=True, unique=True),
        ColumnSpec("contact_id", Kind.STRING, required=True, references="contacts"),
        ColumnSpec("occurred_at", Kind.TIMESTAMP, required=True),
        # Unknown types are tolerated (mapped to `other` with a warning), so the loader
        # handles this enum itself rather than rejecting values outside the taxonomy.
        ColumnSpec("type", Kind.STRING, required=True, few_values=True),
        ColumnSpec("channel", Kind.STRING, few_values=True),
        ColumnSpec("topic", Kind.STRING, few_values=True),
    ),
)

OPPORTUNITIES: Final = TableSpec(
    name="opportunities",
    id_column="opportunity_id",
    columns=(
        ColumnSpec("opportunity_id", Kind.STRING, required=True, unique=True),
        ColumnSpec("account_id", Kind.STRING, required=True, references="accounts"),
        ColumnSpec("contact_id", Kind.STRING, references="contacts"),
        ColumnSpec("created_at", Kind.TIMESTAMP, required=True),
        ColumnSpec("closed_at", Kind.TIMESTAMP),
        ColumnSpec("stage", Kind.ENUM, required=True, allowed=OPPORTUNITY_STAGES),
        ColumnSpec("amount", Kind.NUMBER, non_negative=True),
    ),
)

#: The four tables, in the order they are loaded (a table's references come first).
TABLES: Final[tuple[TableSpec, ...]] = (ACCOUNTS, CONTACTS, TOUCHPOINTS, OPPORTUNITIES)
TABLES_BY_NAME: Final[dict[str, TableSpec]] = {t.name: t for t in TABLES}
