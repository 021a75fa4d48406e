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
    from features.crm.load import CRM
    from features.model.scorer import LeadScorer
    from features.points.matrix import RulesConfig

EXIT_OK = 0
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


def load_crm_or_fail(folder: Path) -> CRM:
    from features.crm.load import load_crm
    from features.crm.validation import InvalidCRMError

    try:
        return load_crm(folder)
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
