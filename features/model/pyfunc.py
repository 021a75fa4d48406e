"""The model artifact's MLflow face: the pyfunc, the tracking store, loading by URI.

`LeadScorerModel` wraps a `LeadScorer` as an MLflow pyfunc, so any MLflow-compatible
platform can serve it; `load_scorer` is how the CLI, serving and training read a
registered model back (e.g. `models:/lead-scorer@champion`).
"""

from __future__ import annotations

import os
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from features.model.scorer import LeadScorer
from features.table.cells import model_inputs


class LeadScorerModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """The MLflow pyfunc: feature table in, calibrated probability out.

    The state is in the artifact folder ``scorer`` (booster text, JSON, rules YAML);
    this class holds only the code, so the pickled pyfunc is just a reference to it.
    """

    scorer: LeadScorer

    def load_context(self, context: Any) -> None:
        self.scorer = LeadScorer.load(context.artifacts["scorer"])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        scorer = self.scorer
        if scorer.kind == "table":  # raw table rows: placeholders, numbers given as text
            spec = scorer.table_spec
            model_input = model_inputs(model_input, spec)
        return scorer.predict(scorer.matrix_from_frame(model_input))


DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def tracking_uri() -> str:
    """MLflow tracking: $MLFLOW_TRACKING_URI, else a SQLite file in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def load_scorer(model_uri: str) -> tuple[LeadScorer, dict[str, str]]:
    """Load a registered model by URI (e.g. models:/lead-scorer@champion).

    Returns the scorer and what was loaded: name, version, alias (empty when not given).
    """
    mlflow.set_tracking_uri(tracking_uri())
    model = mlflow.pyfunc.load_model(model_uri)
    scorer: LeadScorer = model.unwrap_python_model().scorer
    info = {"uri": model_uri, "name": "", "version": "", "alias": ""}
    if model_uri.startswith("models:/"):
        rest = model_uri.removeprefix("models:/")
        name, _, ref = rest.partition("@") if "@" in rest else rest.partition("/")
        info["name"] = name
        client = mlflow.MlflowClient()
        if "@" in rest:
            info["alias"] = ref
            info["version"] = str(client.get_model_version_by_alias(name, ref).version)
        else:
            info["version"] = ref
    return scorer, info
