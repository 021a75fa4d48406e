"""The live store's routes: events in, scores out, every score remembered.

`POST /v1/events` stores what happened in the CRM and rescores the contacts whose
features it changes, in one transaction: a 2xx means the accepted items and their
ledger rows are on disk. The reads answer from the ledger (`GET /v1/leads/{id}`, its
`/history`, the lists, an account) or recompute from the stored events (`?as_of=`).
Database work runs in the thread pool, so the event loop keeps answering.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from serving.bodies import BodyError, require_json
from serving.dependencies import live_model, live_store, require_key, wake_dispatcher
from serving.errors import error_responses, field_error, unprocessable
from serving.guard import Metrics
from serving.routes.scoring import as_json, json_body
from serving.schemas import (
    AccountView,
    EventsRequest,
    EventsResponse,
    History,
    LeadList,
    LeadListItem,
    LedgerEntry,
    LedgerModel,
    Reason,
    Rejected,
    Rescored,
    ScoreResponse,
    Timestamp,
)
from serving.scoring import score_accounts
from serving.state import LoadedModel
from serving.store import reads
from serving.store.engine import Store
from serving.store.intake import from_us, parse_events, to_us
from serving.store.live import Applied, apply_events, read_units, unit_of

router = APIRouter(tags=["live"], dependencies=[Depends(require_key)])

StoreDep = Annotated[Store, Depends(live_store)]
ModelDep = Annotated[LoadedModel, Depends(live_model)]


@router.post(
    "/v1/events",
    response_model=EventsResponse,
    responses=error_responses(401, 408, 413, 415, 422, 503),
    openapi_extra=json_body(EventsRequest),
)
async def post_events(request: Request, store: StoreDep, model: ModelDep) -> Response:
    """Store CRM events and rescore the contacts they change (a committee member's touch
    rescores the whole account). Each item is checked on its own: the answer counts what
    was `accepted` and what were `duplicates`, lists each `rejected` item (table, index,
    id, field, what was expected) and every contact `rescored`. Nothing of a rejected
    item is stored; everything accepted is committed before the answer."""
    require_json(request)
    body = await request.body()
    settings = request.app.state.settings
    metrics: Metrics = request.app.state.metrics

    def work() -> EventsResponse:
        events = parse_events(body, settings.max_events)
        applied = apply_events(store, events, model)
        wake_dispatcher(request)
        outcome = applied.outcome
        return EventsResponse(
            event_id=applied.event_id,
            as_of=applied.as_of,
            accepted=outcome.accepted,
            duplicates=outcome.duplicates,
            rejected=[
                Rejected(table=x.table, index=x.index, id=x.id, field=x.field, msg=x.msg)  # type: ignore[arg-type]
                for x in sorted(outcome.rejected, key=lambda x: (x.table, x.index))
            ],
            rescored=rescored_of(applied, metrics),
        )

    try:
        answer = await run_in_threadpool(work)
    except BodyError as exc:
        return unprocessable(exc.errors)
    return as_json(answer)


def rescored_of(applied: Applied, metrics: Metrics) -> list[Rescored]:
    """The answer's `rescored`: every contact scored after the events."""
    out = []
    for r in applied.recorded:
        score, rules = r.score, r.score.rules
        metrics.probability.observe(score.probability)
        out.append(
            Rescored(
                contact_id=score.contact_id,
                probability=score.probability,
                points=rules["points"],
                grade=rules["grade"],
                mql=rules["mql"],
                changed=r.changed,
            )
        )
    return out


def _explainer(request: Request) -> reads.ExplainModels:
    found: reads.ExplainModels = request.app.state.explain_models
    return found


@router.get(
    "/v1/leads/{contact_id}",
    response_model=ScoreResponse,
    responses=error_responses(401, 404, 422, 503),
)
async def get_lead(
    request: Request,
    contact_id: str,
    store: StoreDep,
    model: ModelDep,
    as_of: Annotated[
        Timestamp | None,
        Query(description="ISO 8601: recompute the score as it was then, from the stored events"),
    ] = None,
) -> Response:
    """The lead's latest score, in `/v1/score`'s shape. With `as_of`, the score recomputed
    as it would have been at that moment from the events stored now (point in time: only
    what happened by then counts), by the model served now."""
    moment = as_of
    reasons = request.app.state.settings.reasons

    def latest() -> dict[str, Any] | None:
        with store.read() as connection:
            row = reads.latest(connection, contact_id)
        if row is None:
            return None
        return reads.with_reasons(store, [row], _explainer(request), reasons)[0]

    def recompute(moment: dt.datetime) -> ScoreResponse | str:
        with store.read() as connection:
            unit = unit_of(connection, contact_id)
            if unit is None:
                return "unknown"
            contexts = read_units(connection, [unit])
        for scored in score_accounts(contexts, model, reasons, moment):
            if scored.contact_id == contact_id:
                return ScoreResponse.model_validate(scored.answer)
        return "not yet"

    if moment is None:
        answer = await run_in_threadpool(latest)
        if answer is None:
            raise HTTPException(status_code=404, detail=_NO_SCORE)
        return Response(ScoreResponse.model_validate(answer).model_dump_json(),
                        media_type="application/json")  # fmt: skip
    result = await run_in_threadpool(recompute, moment)
    if result == "unknown":
        raise HTTPException(status_code=404, detail=_NO_SCORE)
    if isinstance(result, str):
        return unprocessable(
            [
                field_error(
                    ("query", "as_of"),
                    "is before the contact entered the CRM (created_at); expected a later moment",
                    "value_error",
                )
            ]
        )
    return as_json(result)


_NO_SCORE = "no score for this contact in the live store (send its events to /v1/events)"


@router.get(
    "/v1/leads/{contact_id}/history",
    response_model=History,
    responses=error_responses(401, 404, 422, 503),
)
async def lead_history(
    request: Request,
    contact_id: str,
    store: StoreDep,
    since: Annotated[Timestamp | None, Query(description="ISO 8601: as of this or later")] = None,
    until: Annotated[Timestamp | None, Query(description="ISO 8601: as of this or earlier")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{1,18}$", description="next_cursor of the previous page"),
    ] = None,
) -> Response:
    """Every score the lead was given, in ledger order (oldest first), with what
    triggered it: an event, a rescoring run, a new champion."""
    lo, hi = since, until
    after = None if cursor is None else int(cursor)  # (the pattern allows digits only)
    reasons = request.app.state.settings.reasons

    def work() -> History | None:
        with store.read() as connection:
            rows = reads.history(
                connection,
                contact_id,
                None if lo is None else to_us(lo),
                None if hi is None else to_us(hi),
                after,
                limit + 1,
            )
            if not rows and after is None and not reads.known_contact(connection, contact_id):
                return None
        more = len(rows) > limit
        rows = rows[:limit]
        answers = reads.with_reasons(store, rows, _explainer(request), reasons)
        entries = [
            LedgerEntry(
                score_id=r.score_id,
                scored_at=from_us(r.scored_us),
                as_of=from_us(r.as_of_us),
                model=LedgerModel(name=r.model_name, version=r.model_version),
                probability=answer["probability"],
                points=(answer.get("rules") or {}).get("points"),
                grade=(answer.get("rules") or {}).get("grade"),
                mql=(answer.get("rules") or {}).get("mql"),
                trigger=r.trigger,  # type: ignore[arg-type]
                trigger_id=r.trigger_id,
                reasons=[Reason.model_validate(x) for x in answer.get("reasons", [])],
            )
            for r, answer in zip(rows, answers, strict=True)
        ]
        next_cursor = str(rows[-1].score_id) if more and rows else None
        return History(contact_id=contact_id, entries=entries, next_cursor=next_cursor)

    found = await run_in_threadpool(work)
    if found is None:
        raise HTTPException(status_code=404, detail=_NO_SCORE)
    return as_json(found)


Order = Literal["-probability", "probability", "-points", "points", "-as_of"]


@router.get("/v1/leads", response_model=LeadList, responses=error_responses(401, 422, 503))
async def list_leads(
    store: StoreDep,
    mql: Annotated[bool | None, Query(description="only MQLs (true) or only the others")] = None,
    grade: Annotated[str | None, Query(max_length=4, description="e.g. A1")] = None,
    source: Annotated[str | None, Query(max_length=100, description="lead_source")] = None,
    account: Annotated[str | None, Query(max_length=200, description="account_id")] = None,
    open_deal: Annotated[
        bool | None, Query(description="false: leads whose account has no deal open")
    ] = None,
    order: Order = "-probability",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[
        str | None,
        Query(
            max_length=2000,
            pattern=r"^[A-Za-z0-9_-]+$",
            description="next_cursor of the previous page (a token: pass it as returned)",
        ),
    ] = None,
) -> Response:
    """The leads sales works from: current scores, filtered and sorted, a page at a time."""
    where = reads.LeadFilter(mql, grade, source, account, open_deal)

    def work() -> LeadList:
        with store.read() as connection:
            rows, next_cursor = reads.list_leads(connection, where, order, limit, cursor)
        return LeadList(items=[_item(r) for r in rows], next_cursor=next_cursor)

    try:
        page = await run_in_threadpool(work)
    except reads.CursorError as exc:
        return unprocessable([field_error(("query", "cursor"), str(exc), "value_error")])
    return as_json(page)


def _item(row: dict[str, Any]) -> LeadListItem:
    return LeadListItem(
        contact_id=row["contact_id"],
        account_id=row["account_id"],
        probability=row["probability"],
        points=row["points"],
        grade=row["grade"],
        mql=row["mql"],
        open_deal=row["open_deal"],
        lead_source=row["lead_source"],
        as_of=from_us(row["as_of_us"]),
        scored_at=from_us(row["scored_us"]),
        model_version=row["model_version"],
    )


@router.get(
    "/v1/accounts/{account_id}",
    response_model=AccountView,
    responses=error_responses(401, 404, 503),
)
async def get_account(account_id: str, store: StoreDep) -> Response:
    """An account and its buying committee: each contact's current score, the engaged
    contacts, the best probability, how many are MQLs, whether a deal is open."""

    def work() -> dict[str, Any] | None:
        with store.read() as connection:
            return reads.account_view(connection, account_id)

    found = await run_in_threadpool(work)
    if found is None:
        raise HTTPException(status_code=404, detail="no such account in the live store")
    people = [_item(r) for r in found["contacts"]]
    view = AccountView(
        account_id=found["account_id"],
        industry=found["industry"],
        employees=found["employees"],
        annual_revenue=found["annual_revenue"],
        country=found["country"],
        engaged_contacts_90d=found["engaged_contacts_90d"],
        max_probability=max((p.probability for p in people), default=None),
        mql_contacts=sum(bool(p.mql) for p in people),
        open_deal=any(p.open_deal for p in people),
        contacts=people,
    )
    return as_json(view)
