"""GET /v1/model and /v1/model/feature-importance: which model answers, and what it reads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from features.pipeline.registry import FEATURES_BY_NAME, label
from serving.dependencies import model_now, require_key
from serving.errors import error_responses
from serving.schemas import FeatureImportance, FeatureImportanceItem, ModelInfo, ModelRef
from serving.state import LoadedModel

router = APIRouter(
    tags=["model"], dependencies=[Depends(require_key)], responses=error_responses(401, 503)
)


@router.get("/v1/model")
async def model_info(model: Annotated[LoadedModel, Depends(model_now)]) -> ModelInfo:
    """Which model answers: name, version, training window, holdout metrics, features."""
    meta = model.scorer.metadata
    return ModelInfo(
        name=model.name,
        version=model.version,
        alias=model.alias,
        uri=model.uri,
        kind=model.scorer.kind,
        trained_at=meta.get("trained_at"),
        training_window=list(meta.get("training_window", [])),
        test_window=list(meta.get("test_window", [])),
        horizon_days=int(meta.get("horizon_days", 0)),
        holdout_metrics={k: float(v) for k, v in meta.get("holdout_metrics", {}).items()},
        features=model.scorer.feature_names,
    )


@router.get("/v1/model/feature-importance")
async def feature_importance(
    model: Annotated[LoadedModel, Depends(model_now)],
) -> FeatureImportance:
    """Which signals matter, in plain words: mean |SHAP| on the holdout, and gain."""
    items = [
        FeatureImportanceItem(
            feature=row["feature"],
            label=label(row["feature"]),
            definition=FEATURES_BY_NAME[row["feature"]].definition
            if row["feature"] in FEATURES_BY_NAME
            else "",
            mean_abs_shap=float(row["mean_abs_shap"]),
            gain=float(row["gain"]),
        )
        for row in model.scorer.metadata.get("feature_importance", [])
    ]
    return FeatureImportance(
        model=ModelRef(name=model.name, version=model.version, alias=model.alias),
        features=items,
    )
