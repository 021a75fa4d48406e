"""The model registry: the only module that writes to it.

Registered model `lead-scorer` (and `lead-scorer-table` for lead tables); aliases
`challenger` (the newest trained model) and `champion` (the one serving loads). Never
the deprecated stages. This module logs and registers a model, tags versions and moves
aliases; it depends on nothing in `training/` (deciding *whether* a challenger earns the
champion alias is `training/promote.py`'s job, which calls `set_alias` here).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from features.model.names import PROMOTION_TAG_PREFIX
from features.model.pyfunc import log_pyfunc, tracking_uri
from features.model.scorer import LeadScorer

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"


def client() -> MlflowClient:
    mlflow.set_tracking_uri(tracking_uri())
    return MlflowClient()


def set_alias(name: str, alias: str, version: str, why: str = "") -> None:
    """Point ``alias`` at ``version``; a move of the champion is recorded as a tag of the
    registered model (the promotion history the workspace shows)."""
    c = client()
    previous = alias_version(name, alias) if alias == CHAMPION else None
    c.set_registered_model_alias(name, alias, version)
    if alias == CHAMPION:
        at = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        record = {"version": str(version), "previous": previous, "why": why[:4000]}
        c.set_registered_model_tag(name, f"{PROMOTION_TAG_PREFIX}{at}", json.dumps(record))


def tag_version(name: str, version: str, tags: dict[str, str]) -> None:
    """Tags on a registered version (e.g. its kind), visible in the registry's UI."""
    c = client()
    for key, value in tags.items():
        c.set_model_version_tag(name, version, key, value)


def alias_version(name: str, alias: str) -> str | None:
    try:
        return str(client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def has_version(name: str, version: str) -> bool:
    try:
        client().get_model_version(name, version)
    except MlflowException:
        return False
    return True


#: a version whose booster learned nothing and was registered only because it was asked
WEAK_TAG = "weak"


def register_challenger(
    scorer: LeadScorer,
    folder: Path,
    example: pd.DataFrame,
    model_name: str,
    weak: str | None = None,
) -> str:
    """Log the scorer as the run's pyfunc model, register it, make it the challenger.

    Returns the new version. `example` is a few input rows, stored as the model's input
    example (numbers as float64, which is what JSON numbers become).
    """
    scorer_dir = scorer.save(folder)
    example = example.astype({name: "float64" for name in scorer.numeric})
    info = log_pyfunc(
        scorer_dir,
        name="model",
        signature=signature(scorer),
        input_example=example,
        registered_model_name=model_name,
    )
    version = str(info.registered_model_version)
    tags: dict[str, str] = {"kind": scorer.kind, "estimator": scorer.estimator}
    if weak is not None and scorer.estimator == "lightgbm":
        tags[WEAK_TAG] = weak  # registered with --allow-weak: promote refuses it
    tag_version(model_name, version, tags)
    set_alias(model_name, CHALLENGER, version)
    return version


def signature(scorer: LeadScorer) -> ModelSignature:
    """The pyfunc's inputs as a client of `mlflow models serve` sends them: numbers as
    double, categories as text, each one optional (a missing value is information the
    model was trained with, not an error); the output is the probability."""
    columns = [ColSpec("double", name, required=False) for name in scorer.numeric]
    columns += [ColSpec("string", name, required=False) for name in scorer.categorical]
    return ModelSignature(inputs=Schema(columns), outputs=Schema([ColSpec("double")]))


def version_tags(name: str, version: str) -> dict[str, str]:
    return dict(client().get_model_version(name, version).tags)
