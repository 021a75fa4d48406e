"""The model page's reading of the registry: champion and challenger, and the promotions.

The champion is the model served (its metadata and holdout are in memory). The challenger
is read from the registry by its alias, once per version (kept on the app). Promotions
are the registered model's `promotion.*` tags, which `training.registry.set_alias`
writes on every move of the champion alias.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from fastapi import FastAPI

from features.model.names import PROMOTION_TAG_PREFIX
from features.model.scorer import LeadScorer
from serving.state import LoadedModel
from serving.workspace.analysis import CalibrationBin, calibration

logger = logging.getLogger(__name__)
METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top10", "capture_top10")
_lock = threading.Lock()


def _summary(scorer: LeadScorer, version: str, bins: list[CalibrationBin] | None) -> dict[str, Any]:
    meta = scorer.metadata
    metrics = meta.get("holdout_metrics", {})
    return {
        "version": version,
        "trained_at": meta.get("trained_at"),
        "training_window": meta.get("training_window", []),
        "test_window": meta.get("test_window", []),
        "metrics": {k: metrics.get(k) for k in METRICS if k in metrics},
        "calibration": bins,
        "estimator": scorer.estimator,
    }


def _challenger(app: FastAPI, name: str) -> tuple[str, dict[str, Any]] | None:
    """The challenger's version and summary (None: no challenger), read from the registry
    once per version and kept on the app."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from features.model.pyfunc import load_scorer

    try:
        version = str(MlflowClient().get_model_version_by_alias(name, "challenger").version)
    except MlflowException:
        return None
    with _lock:
        cached = getattr(app.state, "challenger", None)
        if cached is not None and cached[0] == version:
            return cached
    scorer, _ = load_scorer(f"models:/{name}/{version}", evidence=True)
    evidence = scorer.evidence
    found = (version, _summary(scorer, version, calibration(evidence) if evidence else None))
    with _lock:
        app.state.challenger = found
    return found


def promotions(name: str) -> list[dict[str, Any]]:
    from mlflow import MlflowClient

    tags = MlflowClient().get_registered_model(name).tags
    out = []
    for key, value in tags.items():
        if not key.startswith(PROMOTION_TAG_PREFIX):
            continue
        try:
            record = json.loads(value)
        except ValueError:
            continue
        out.append({"at": key[len(PROMOTION_TAG_PREFIX) :], **record})
    return sorted(out, key=lambda r: r["at"], reverse=True)


def models_side_by_side(app: FastAPI, model: LoadedModel | None) -> dict[str, Any]:
    """Champion and challenger summaries and the promotion history (what the registry
    cannot tell, e.g. a model folder served directly, is left out with a note)."""
    view: dict[str, Any] = {"models": {}, "promotions": [], "problem": None}
    if model is None:
        return view
    # (the champion's calibration is the workspace's analysis, computed once per model)
    analysis = app.state.analyses.of(model.scorer, model.trained_rules)
    bins = analysis.calibration if analysis is not None else None
    view["models"]["champion"] = _summary(model.scorer, model.version, bins)
    if not model.name or model.name == model.uri:  # a model folder: no registry
        return view
    try:
        found = _challenger(app, model.name)
        if found is not None and found[0] != model.version:
            view["models"]["challenger"] = found[1]
        view["promotions"] = promotions(model.name)
    except Exception as exc:  # the registry is unreachable: the champion is still shown
        logger.warning("the model page could not read the registry: %s", exc)
        view["problem"] = "the model registry could not be read"
    return view
