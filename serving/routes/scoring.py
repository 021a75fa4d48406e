"""POST /v1/score and /v1/score/batch: leads in, probabilities, points and reasons out.

A single small lead is parsed and scored on the event loop (~1 ms of CPU: a hop to the
thread pool would cost more); large bodies and every batch go to the thread pool, so
health checks answer while they run. A lead with a mistake gets a 422 naming its fields;
in a batch it gets its errors in its place and the other leads their scores.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from serving.bodies import LARGE_BODY, BodyError, parse_batch, parse_lead, require_json
from serving.dependencies import model_now, require_key
from serving.errors import error_responses, field_error, unprocessable
from serving.guard import Metrics
from serving.schemas import (
    BatchRequest,
    BatchResponse,
    FieldError,
    LeadFailure,
    ScoreRequest,
    ScoreResponse,
)
from serving.scoring import Refused, score_requests
from serving.state import LoadedModel

router = APIRouter(tags=["scoring"], dependencies=[Depends(require_key)])


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its own JSON (`serving.bodies`)."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def as_json(model: BaseModel) -> Response:
    """Our own response model as JSON, without FastAPI validating it a second time."""
    return Response(model.model_dump_json(), media_type="application/json")


def refused_errors(refused: Refused, prefix: tuple[str | int, ...]) -> list[dict[str, Any]]:
    return [
        field_error((*prefix, *path), message, "value_error") for path, message in refused.problems
    ]


def _errors(errors: list[dict[str, Any]]) -> list[FieldError]:
    return [FieldError.model_validate(e) for e in errors]


@router.post(
    "/v1/score",
    response_model=ScoreResponse,
    responses=error_responses(401, 408, 413, 415, 422, 503),
    openapi_extra=json_body(ScoreRequest),
)
async def score(request: Request, model: Annotated[LoadedModel, Depends(model_now)]) -> Response:
    """Score one lead: probability, points with every rule that fired, and the reasons."""
    require_json(request)
    body = await request.body()
    reasons = request.app.state.settings.reasons

    def work() -> ScoreResponse | Refused:
        (result,) = score_requests([parse_lead(body)], model, reasons)
        return result

    try:
        result = await run_in_threadpool(work) if len(body) > LARGE_BODY else work()
    except BodyError as exc:
        return unprocessable(exc.errors)
    if isinstance(result, Refused):
        return unprocessable(refused_errors(result, ("body",)))
    metrics: Metrics = request.app.state.metrics
    metrics.probability.observe(result.probability)
    return as_json(result)


@router.post(
    "/v1/score/batch",
    response_model=BatchResponse,
    responses=error_responses(401, 408, 413, 415, 422, 503),
    openapi_extra=json_body(BatchRequest),
)
async def score_batch(
    request: Request, model: Annotated[LoadedModel, Depends(model_now)]
) -> Response:
    """Score many leads in one call. Results come in the order of the leads: each lead's
    score, or (a `LeadFailure`) its index and its field errors; a 422 only when the body
    as a whole is wrong (not JSON, no `leads`, more leads than the limit)."""
    require_json(request)
    body = await request.body()
    settings = request.app.state.settings
    metrics: Metrics = request.app.state.metrics

    def work() -> BatchResponse:
        parsed = parse_batch(body, settings.max_batch)
        valid = [p.request for p in parsed if p.request is not None]
        scored = iter(score_requests(valid, model, settings.reasons))
        results: list[ScoreResponse | LeadFailure] = []
        for i, lead in enumerate(parsed):
            if lead.request is None:
                results.append(
                    LeadFailure(index=i, contact_id=lead.contact_id, errors=_errors(lead.errors))
                )
                continue
            result = next(scored)
            if isinstance(result, Refused):
                contact = lead.request.contact
                errors = _errors(refused_errors(result, ("body", "leads", i)))
                results.append(
                    LeadFailure(
                        index=i, contact_id=contact.contact_id if contact else None, errors=errors
                    )
                )
            else:
                metrics.probability.observe(result.probability)
                results.append(result)
        failed = sum(isinstance(r, LeadFailure) for r in results)
        return BatchResponse(results=results, scored=len(results) - failed, failed=failed)

    try:
        answer = await run_in_threadpool(work)
    except BodyError as exc:
        return unprocessable(exc.errors)
    return as_json(answer)
