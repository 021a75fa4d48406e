"""GET /v1/model and /v1/model/feature-importance: which model answers, and what it reads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from features.pipeline.registry import FEATURES_BY_NAME, label
from features.points.matrix import RulesError, parse_rules
from serving.bodies import BodyError, parse_json
from serving.dependencies import model_now, require_key
from serving.errors import error_responses, field_error, unprocessable
from serving.schemas import (
    FeatureImportance,
    FeatureImportanceItem,
    ModelInfo,
    ModelRef,
    PointsWhatIf,
)
from serving.state import LoadedModel
from serving.workspace.analysis import MatrixMismatch, what_if

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


@router.post(
    "/v1/model/points-what-if",
    responses=error_responses(413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/RulesConfig"}}
            },
        }
    },
)
async def points_what_if(
    request: Request, model: Annotated[LoadedModel, Depends(model_now)]
) -> Response:
    """A points matrix measured on the champion's holdout: the share of leads it makes
    MQLs, their precision and recall, and the points' ROC AUC (what the workspace's
    what-if editor shows). The matrix may change values only (points, caps, group caps and
    floors, the threshold, grade bands): the holdout's matches were found with the model's
    own matrix."""
    evidence = model.scorer.evidence
    found_with = model.trained_rules or model.scorer.rules
    if evidence is None or found_with is None:
        raise HTTPException(
            status_code=503, detail="the served model kept no holdout (train it again)"
        )
    try:
        data = parse_json(await request.body())
    except BodyError as exc:
        return unprocessable(exc.errors)
    try:
        rules = parse_rules(data, "body")
        result = what_if(evidence, found_with, rules)
    except (RulesError, MatrixMismatch) as exc:
        return unprocessable([field_error(("body",), str(exc), "value_error")])
    return JSONResponse(PointsWhatIf.model_validate(result.as_dict()).model_dump())
