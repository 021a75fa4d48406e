"""What every command shares: argument types, reading the user's inputs, refusing plainly.

A mistake in the user's input (a folder that is not a CRM export, a bad points matrix,
an unreadable date) becomes a `UserError`: one plain line and exit code 2, never a
stack trace.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from features.crm.load import CRM, CsvFormat
    from features.model.scorer import LeadScorer
    from features.points.matrix import RulesConfig

EXIT_OK = 0
DATA_HELP = "CRM export folder, or the lead store's URL (e.g. sqlite:///leadscore.db)"
EXIT_REFUSED = 1  # the command ran and its answer is "no" (validate refused the load)
EXIT_USAGE = 2  # the user's input cannot be used


class UserError(Exception):
    """A mistake in the user's input: printed as one line, exit code 2."""


def date(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from exc


def timestamp(text: str) -> str:
    try:
        dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 timestamp such as 2025-03-02T10:00:00Z, got {text!r}"
        ) from exc
    return text


def data_source(text: str) -> str | Path:
    """--data: an export folder, or the live lead store's URL (`sqlite:///leadscore.db`,
    `postgresql://...`), kept as text (a Path would fold its `//`)."""
    from features.crm.database import is_database_url

    return text if is_database_url(text) else Path(text)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


# --- commands -----------------------------------------------------------------------


def load_rules_or_fail(path: Path | None) -> RulesConfig:
    from features.points.matrix import RulesError, load_rules

    try:
        return load_rules(path)
    except RulesError as exc:
        raise UserError(str(exc)) from exc


def separator(text: str) -> str:
    """A CSV separator: one character; `\\t` or `tab` for a tab."""
    value = "\t" if text in ("\\t", "tab", "TAB") else text
    if len(value) != 1:
        raise argparse.ArgumentTypeError(f"expected one character (or \\t), got {text!r}")
    return value


def encoding(text: str) -> str:
    import codecs

    try:
        return codecs.lookup(text).name
    except LookupError:
        raise argparse.ArgumentTypeError(
            f"unknown text encoding {text!r} (e.g. utf-8, cp1251, latin-1)"
        ) from None


def add_csv_options(parser: argparse.ArgumentParser, what: str = "the export's CSV files") -> None:
    """--sep and --encoding, for commands that read CSV (Bitrix24 and Excel write ; and cp1251)."""
    parser.add_argument(
        "--sep", type=separator, default=",", help=f"separator of {what} (default ,; \\t for tab)"
    )
    parser.add_argument(
        "--encoding", type=encoding, default="utf-8", help=f"encoding of {what} (default utf-8)"
    )


def csv_format(args: argparse.Namespace) -> CsvFormat:
    from features.crm.load import CsvFormat

    return CsvFormat(getattr(args, "sep", ","), getattr(args, "encoding", "utf-8"))


def load_crm_or_fail(folder: str | Path, args: argparse.Namespace | None = None) -> CRM:
    """The export at ``folder`` (a folder or a lead store's URL; CSV options from
    ``args``), or a `UserError` with the report."""
    from features.crm.load import load_crm
    from features.crm.validation import InvalidCRMError

    fmt = csv_format(args) if args is not None else None
    try:
        return load_crm(folder, fmt) if fmt is not None else load_crm(folder)
    except InvalidCRMError as exc:
        raise UserError(f"{exc}\n(run `leadscore validate {folder}` for the full report)") from exc


def load_model_or_fail(uri: str) -> tuple[LeadScorer, dict[str, str]]:
    """A registered model (or model folder) read back, or a `UserError` saying which tracking
    store was searched, or why the folder is refused (a pickle)."""
    from mlflow.exceptions import MlflowException

    from features.model.pyfunc import ModelLoadError, load_scorer

    try:
        return load_scorer(uri)
    except (ModelLoadError, MlflowException, OSError) as exc:
        raise UserError(f"cannot load the model {uri}: {exc}") from exc


def output_or_fail(path: Path) -> Path:
    """An output file that can be written, checked before the work starts."""
    from features.files import OutputError, check_destination

    try:
        return check_destination(path)
    except OutputError as exc:
        raise UserError(str(exc)) from exc


def write_or_fail(path: Path, table: pd.DataFrame | None = None, text: str | None = None) -> None:
    """Write a CSV table (or a text) whole or not at all: a full disk leaves no cut file."""
    from features.files import OutputError, written_whole

    try:
        with written_whole(path) as partial:
            if table is not None:
                table.to_csv(partial, index=False)
            else:
                partial.write_text(text or "", encoding="utf-8")
    except OutputError as exc:
        raise UserError(str(exc)) from exc


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """--engine, and where a Dask run goes: a scheduler, or a LocalCluster here."""
    parser.add_argument(
        "--engine",
        choices=("single", "dask"),
        default="single",
        help="single: this process (the default, fastest for what fits in memory); dask: "
        "partitions by account on a Dask cluster (docs/scale.md)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        help="a Dask scheduler address (tcp://HOST:8786); default: a LocalCluster here",
    )
    parser.add_argument(
        "--partitions",
        type=positive_int,
        default=None,
        help="partitions by account (default: twice the workers)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="workers of the LocalCluster (default: one per core)",
    )


def dask_or_fail() -> None:
    """--engine dask needs Dask installed (the dask extra), said plainly."""
    try:
        import dask.dataframe  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise UserError(
            "--engine dask needs Dask: pip install 'leadscore[dask]' (dask and distributed)"
        ) from None
