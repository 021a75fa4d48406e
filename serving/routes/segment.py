"""POST /v1/events/segment: Segment-spec messages in, as `POST /v1/events`.

The messages are translated (`serving.segment.translate`) into the four tables' records
and go through the same checks and the same intake. The answer counts messages: one is
`accepted` when something of it was stored, a `duplicate` when all of it was stored
before (Segment retries), `rejected` with the reason; a rejected message stores nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool

from serving.bodies import BodyError, parse_json, require_json
from serving.dependencies import live_model, live_store, require_key, wake_dispatcher
from serving.errors import error_responses, field_error, unprocessable
from serving.routes.live import rescored_of
from serving.routes.scoring import as_json, json_body
from serving.schemas import EventsResponse, Rejected, SegmentMessages
from serving.segment.translate import Mapping_, messages_of, translate
from serving.state import LoadedModel
from serving.store.engine import Store
from serving.store.intake import parse_events
from serving.store.live import apply_events

router = APIRouter(tags=["live"], dependencies=[Depends(require_key)])


@router.post(
    "/v1/events/segment",
    response_model=EventsResponse,
    responses=error_responses(401, 408, 413, 415, 422, 503),
    openapi_extra=json_body(SegmentMessages),
)
async def post_segment(
    request: Request,
    store: Store = Depends(live_store),  # noqa: B008
    model: LoadedModel = Depends(live_model),  # noqa: B008
) -> Response:
    """Segment (or RudderStack) messages: `identify` makes a contact, `group` an account
    and the contact's link to it, `track` and `page` touchpoints (types by the mapping);
    `messageId` is the idempotency key. Counts are of messages."""
    require_json(request)
    mapping: Mapping_ | None = request.app.state.segment_mapping
    if mapping is None:
        raise HTTPException(status_code=503, detail=request.app.state.segment_problem)
    body = await request.body()
    limit = request.app.state.settings.max_events

    def work() -> EventsResponse:
        messages = messages_of(parse_json(body))
        if messages is None:
            raise BodyError(
                [field_error(("body",), 'expected a Segment message or {"batch": [...]}',
                             "model_type")]
            )  # fmt: skip
        if len(messages) > limit:
            raise BodyError(
                [field_error(("body", "batch"), f"at most {limit:,} messages per call", "too_long")]
            )
        now = dt.datetime.now(dt.UTC)
        translated = translate(messages, mapping, now)
        events = parse_events(translated.body, limit * 3, translated.defaults, translated.loose)

        def message_of(table: str, index: int) -> int:
            return translated.source[(table, index)]

        reasons: dict[int, list[Rejected]] = defaultdict(list)
        ids = {i: _message_id(m) for i, m in enumerate(messages)}
        for index, _, name, msg in translated.refused:
            reasons[index].append(
                Rejected(table="messages", index=index, id=ids[index], field=name, msg=msg)
            )
        for r in events.rejected:  # a record refused by the checks: its whole message
            k = message_of(r.table, r.index)
            reasons[k].append(
                Rejected(table="messages", index=k, id=ids[k], field=f"{r.table}.{r.field}",
                         msg=r.msg)
            )  # fmt: skip
        events.rejected = []
        for table, items in events.items.items():
            events.items[table] = [i for i in items if message_of(table, i.index) not in reasons]
        applied = apply_events(store, events, model, now)
        wake_dispatcher(request)
        statuses: dict[int, set[str]] = defaultdict(set)
        for (table, index), status in applied.outcome.statuses.items():
            statuses[message_of(table, index)].add(status)
        for r in applied.outcome.rejected:
            k = message_of(r.table, r.index)
            reasons[k].append(
                Rejected(table="messages", index=k, id=ids[k], field=f"{r.table}.{r.field}",
                         msg=r.msg)
            )  # fmt: skip
        accepted = sum("accepted" in s for k, s in statuses.items() if k not in reasons)
        duplicates = sum(s == {"duplicate"} for k, s in statuses.items() if k not in reasons)
        return EventsResponse(
            event_id=applied.event_id,
            as_of=applied.as_of,
            accepted=accepted,
            duplicates=duplicates,
            rejected=[r for k in sorted(reasons) for r in reasons[k]],
            rescored=rescored_of(applied, request.app.state.metrics),
        )

    try:
        answer = await run_in_threadpool(work)
    except BodyError as exc:
        return unprocessable(exc.errors)
    return as_json(answer)


def _message_id(message: object) -> str | None:
    if not isinstance(message, dict):
        return None
    for key in ("messageId", "userId"):
        value = message.get(key)
        if isinstance(value, str) and 0 < len(value) <= 200:
            return value
    return None
