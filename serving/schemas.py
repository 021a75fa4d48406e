"""The HTTP contract (v1): one pydantic model per purpose, constraints in `Field`.

Field names are the data contract's columns, so a CRM sends what it already has.
Anything a user can get wrong is rejected here with a 422 that names the field: an
unknown field (a typo must not silently drop data), a number that is not finite, a
timestamp that is not ISO 8601 text (an epoch number cannot be told from days or
milliseconds). The rules that span fields (a deal closing before it opened, a contact
of another account) are the data contract's, checked by `features.pipeline.lead`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from features.crm.records import TIMESTAMP_EXPECTED, parse_timestamp
from features.crm.taxonomy import DEPARTMENTS, OPPORTUNITY_STAGES, SENIORITY_LEVELS
from serving.webhooks.signing import SECRET_PATTERN


def _lower(value: Any) -> Any:
    """Enums compare case-insensitively, as in an export (`VP` is `vp`)."""
    return value.strip().lower() if isinstance(value, str) else value


Seniority = Annotated[Literal[SENIORITY_LEVELS], BeforeValidator(_lower)]  # type: ignore[valid-type]
Department = Annotated[Literal[DEPARTMENTS], BeforeValidator(_lower)]  # type: ignore[valid-type]
Stage = Annotated[Literal[OPPORTUNITY_STAGES], BeforeValidator(_lower)]  # type: ignore[valid-type]
#: ISO 8601 text; no offset means UTC (the contract's rule, the export validator's words)
Timestamp = Annotated[
    datetime,
    BeforeValidator(parse_timestamp),
    Field(description=f"Expected {TIMESTAMP_EXPECTED}; no offset means UTC."),
]
Id = Field(min_length=1, max_length=200)


class _In(BaseModel):
    """A request part: unknown fields are refused (the 422 names the closest field)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Contact(_In):
    contact_id: str = Id
    account_id: str | None = Field(default=None, max_length=200)
    created_at: Timestamp = Field(description="When the lead entered the CRM.")
    job_title: str | None = Field(default=None, max_length=300)
    seniority: Seniority | None = None
    department: Department | None = None
    lead_source: str | None = Field(default=None, max_length=100)
    email: str | None = Field(
        default=None, max_length=320, description="Only the domain is used; never logged."
    )


class Account(_In):
    account_id: str = Id
    industry: str | None = Field(default=None, max_length=100)
    employees: int | None = Field(default=None, ge=0, le=100_000_000)
    annual_revenue: float | None = Field(default=None, ge=0, le=1e15, allow_inf_nan=False)
    country: str | None = Field(default=None, max_length=100)


class Touchpoint(_In):
    touchpoint_id: str = Field(
        min_length=1, max_length=200, description="The idempotency key: a repeat counts once."
    )
    contact_id: str | None = Field(
        default=None, max_length=200, description="Optional: the contact it is listed under."
    )
    occurred_at: Timestamp
    type: str = Field(
        min_length=1, max_length=100, description="A taxonomy type; others count as `other`."
    )
    channel: str | None = Field(default=None, max_length=100)
    topic: str | None = Field(default=None, max_length=100)


class CommitteeMember(_In):
    contact: Contact
    touchpoints: list[Touchpoint] = Field(default_factory=list, max_length=5000)


class Opportunity(_In):
    opportunity_id: str = Id
    account_id: str = Id
    contact_id: str | None = Field(default=None, max_length=200)
    created_at: Timestamp
    closed_at: Timestamp | None = None
    stage: Stage
    amount: float | None = Field(default=None, ge=0, le=1e15, allow_inf_nan=False)


EXAMPLE_REQUEST: dict[str, Any] = {
    "contact": {
        "contact_id": "C1",
        "account_id": "A1",
        "created_at": "2025-03-02T10:00:00Z",
        "job_title": "VP Finance",
        "lead_source": "web_form",
        "email": "ana@acme.example",
    },
    "account": {
        "account_id": "A1",
        "industry": "software",
        "employees": 250,
        "annual_revenue": 12000000,
        "country": "DE",
    },
    "touchpoints": [
        {
            "touchpoint_id": "T1",
            "occurred_at": "2025-03-02T10:00:00Z",
            "type": "demo_request",
            "channel": "direct",
            "topic": "product",
        }
    ],
    "committee": [
        {
            "contact": {
                "contact_id": "C2",
                "account_id": "A1",
                "created_at": "2025-02-20T09:00:00Z",
                "job_title": "CTO",
            },
            "touchpoints": [
                {
                    "touchpoint_id": "T9",
                    "occurred_at": "2025-03-01T15:00:00Z",
                    "type": "pricing_page_view",
                }
            ],
        }
    ],
    "as_of": "2025-03-05T00:00:00Z",
}


#: a table cell: text, a finite number, yes/no, or empty
AttributeValue = str | Annotated[float, Field(allow_inf_nan=False)] | int | bool | None


EXAMPLE_TABLE_REQUEST: dict[str, Any] = {
    "attributes": {
        "Lead Number": 660737,
        "Lead Origin": "API",
        "Lead Source": "Olark Chat",
        "TotalVisits": 0,
        "Total Time Spent on Website": 0,
        "What is your current occupation": "Unemployed",
    }
}


class ScoreRequest(_In):
    """One lead with its context. `as_of` defaults to now.

    A touchpoint model (the default) reads `contact` and its context; a model trained on
    a flat lead table (`leadscore train --table`) reads `attributes`: the lead's row,
    column name to value (absent columns are missing).
    """

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [EXAMPLE_REQUEST, EXAMPLE_TABLE_REQUEST],
            # one of the two is required (which one depends on the model's kind)
            "anyOf": [{"required": ["contact"]}, {"required": ["attributes"]}],
        },
    )

    contact: Contact | None = None
    account: Account | None = None
    touchpoints: list[Touchpoint] = Field(default_factory=list, max_length=5000)
    committee: list[CommitteeMember] = Field(default_factory=list, max_length=200)
    opportunities: list[Opportunity] = Field(default_factory=list, max_length=500)
    as_of: Timestamp | None = None
    attributes: dict[str, AttributeValue] | None = Field(
        default=None,
        max_length=1000,
        description="For a model trained on a lead table: the lead's row, column -> value.",
    )

    @model_validator(mode="after")
    def _something_to_score(self) -> ScoreRequest:
        if self.contact is None and self.attributes is None:
            raise ValueError(
                "give `contact` (with its touchpoints) or `attributes` (a lead table's row)"
            )
        return self


class BatchRequest(_In):
    """Many leads in one call. Each is validated and scored on its own: a lead with a
    mistake gets its errors in its place of the answer, the others their scores."""

    leads: list[ScoreRequest] = Field(
        min_length=1, description="At most the server's batch limit (LEADSCORE_MAX_BATCH)."
    )


class ContactEvent(Contact):
    """A contact sent as an event: new (created_at required) or an update (send only the
    fields that changed; an omitted field keeps its stored value, null clears it)."""

    created_at: Timestamp | None = Field(  # type: ignore[assignment]
        default=None, description="When the lead entered the CRM; required for a new contact."
    )


class TouchpointEvent(Touchpoint):
    """A touchpoint sent as an event: its contact must be known (stored, or in the same
    body). The id is the idempotency key: sent again, it is a duplicate."""

    contact_id: str = Field(min_length=1, max_length=200, description="The contact it happened to.")


class OpportunityEvent(Opportunity):
    """A deal sent as an event: new (account_id, created_at and stage required) or an
    update of the fields sent. Its stage only moves forward: open, then closed_won or
    closed_lost (with closed_at)."""

    account_id: str | None = Field(  # type: ignore[assignment]
        default=None, min_length=1, max_length=200
    )
    created_at: Timestamp | None = None  # type: ignore[assignment]
    stage: Stage | None = None


EXAMPLE_EVENTS: dict[str, Any] = {
    "touchpoints": [
        {
            "touchpoint_id": "T-2025-03-06-0001",
            "contact_id": "C1",
            "occurred_at": "2025-03-06T09:30:00Z",
            "type": "demo_request",
            "channel": "direct",
            "topic": "product",
        }
    ]
}


class EventsRequest(_In):
    """What happened in the CRM, in the data contract's field names (any subset of the four
    tables). Ids are idempotency keys: a touchpoint sent again is a duplicate; an account
    or contact with a known id is an update; an opportunity's stage only moves forward
    (open to closed_won or closed_lost). Each item is checked on its own: a bad one is
    `rejected` with its table, index, id and field, and leaves nothing behind."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [EXAMPLE_EVENTS]}
    )

    accounts: list[Account] = Field(default_factory=list)
    contacts: list[ContactEvent] = Field(default_factory=list)
    touchpoints: list[TouchpointEvent] = Field(default_factory=list)
    opportunities: list[OpportunityEvent] = Field(default_factory=list)
    as_of: Timestamp | None = Field(
        default=None,
        description="Score as of this moment (default: now). For replays and backfills.",
    )


class Rejected(BaseModel):
    """An item that was not stored, and why: fix it and send it again."""

    table: Literal["accounts", "contacts", "touchpoints", "opportunities", "messages"]
    index: int = Field(description="position of the item in its list (or of the Segment message)")
    id: str | None = Field(description="the item's id, when it could be read")
    field: str | None = Field(description="the field at fault (null: the item as a whole)")
    msg: str = Field(description="what was expected")


class Rescored(BaseModel):
    """A contact whose score was recomputed after the events."""

    contact_id: str
    probability: float
    points: float | None
    grade: str | None
    mql: bool | None
    changed: bool = Field(description="the score differs from the last one (a ledger row)")


class EventsResponse(BaseModel):
    event_id: str = Field(description="this call's id, the ledger rows' trigger_id")
    as_of: datetime
    accepted: int = Field(description="items stored: new, or updates that changed something")
    duplicates: int = Field(description="items already stored as sent (nothing changed)")
    rejected: list[Rejected]
    rescored: list[Rescored]


class FieldError(BaseModel):
    """One mistake: where (`loc`, from the body down), what was expected, its kind."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every 4xx and 503 answer: a sentence, or the list of field errors (422)."""

    detail: str | list[FieldError]


class RuleLine(BaseModel):
    rule: str
    group: str
    count: int
    decay: float
    points: float


class RulesResult(BaseModel):
    points: float
    fit_points: float | None = Field(description="null when the points sheet has no fit group")
    engagement_points: float | None
    mql: bool
    threshold: float
    grade: str | None = Field(description="A1..D4; null for a lead table's points sheet")
    breakdown: list[RuleLine]


class Reason(BaseModel):
    feature: str
    label: str
    value: float | str | None
    contribution: float = Field(
        description="Log-odds the feature adds to (or takes from) the score."
    )


class ModelRef(BaseModel):
    name: str
    version: str
    alias: str


class AccountRollup(BaseModel):
    account_id: str
    engaged_contacts_90d: int
    max_probability: float


class ScoreResponse(BaseModel):
    contact_id: str | None = Field(description="the contact, or a table lead's id column")
    as_of: datetime
    probability: float
    model: ModelRef
    rules: RulesResult | None = Field(description="null for a table model without a points sheet")
    reasons: list[Reason]
    account: AccountRollup | None = None


class LeadFailure(BaseModel):
    """A lead of a batch that could not be scored, and why (fix it and send it again)."""

    index: int = Field(description="position of the lead in `leads`")
    contact_id: str | None = Field(description="the lead's contact_id, when it could be read")
    errors: list[FieldError] = Field(description="`loc` starts at the lead: body, leads, index")


class BatchResponse(BaseModel):
    results: list[ScoreResponse | LeadFailure] = Field(
        description="one per lead, in the order sent: its score, or its errors"
    )
    scored: int
    failed: int


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str
    uri: str
    kind: Literal["touchpoint", "table"] = Field(
        description="what to send: `contact` and its history (touchpoint) or `attributes` (table)"
    )
    trained_at: str | None
    training_window: list[str]
    test_window: list[str]
    horizon_days: int
    holdout_metrics: dict[str, float]
    features: list[str]


class FeatureImportanceItem(BaseModel):
    feature: str
    label: str
    definition: str
    mean_abs_shap: float
    gain: float


class FeatureImportance(BaseModel):
    model: ModelRef
    features: list[FeatureImportanceItem]


class LedgerModel(BaseModel):
    name: str
    version: str


class LedgerEntry(BaseModel):
    """A score the service gave, as the ledger remembers it."""

    score_id: int = Field(description="the ledger's order: a later score has a larger id")
    scored_at: datetime = Field(description="when the service computed it")
    as_of: datetime = Field(description="the moment it describes")
    model: LedgerModel
    probability: float
    points: float | None
    grade: str | None
    mql: bool | None
    trigger: Literal["event", "rescore", "model", "load"] = Field(
        description="event: an intake call; rescore: time passed; model: a new champion; "
        "load: the store was seeded"
    )
    trigger_id: str | None = Field(description="the intake call's event_id, or the run's id")
    reasons: list[Reason]


class History(BaseModel):
    contact_id: str
    entries: list[LedgerEntry]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class LeadListItem(BaseModel):
    contact_id: str
    account_id: str | None
    probability: float
    points: float | None
    grade: str | None
    mql: bool | None
    open_deal: bool = Field(description="its account has a deal open: with sales already")
    lead_source: str | None
    as_of: datetime
    scored_at: datetime
    model_version: str


class LeadList(BaseModel):
    items: list[LeadListItem]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class AccountView(BaseModel):
    """An account and its buying committee as scored now."""

    account_id: str
    industry: str | None
    employees: int | None
    annual_revenue: float | None
    country: str | None
    engaged_contacts_90d: int | None = Field(
        description="contacts with a touchpoint in the 90 days before the newest score"
    )
    max_probability: float | None
    mql_contacts: int
    open_deal: bool
    contacts: list[LeadListItem] = Field(description="every scored contact, best first")


EXAMPLE_SEGMENT: dict[str, Any] = {
    "batch": [
        {
            "type": "identify",
            "userId": "C1",
            "messageId": "m-1",
            "timestamp": "2025-03-02T10:00:00Z",
            "traits": {"email": "ana@acme.example", "title": "VP Finance"},
            "context": {"groupId": "A1"},
        },
        {
            "type": "track",
            "event": "Demo Requested",
            "userId": "C1",
            "messageId": "m-2",
            "timestamp": "2025-03-06T09:30:00Z",
        },
        {
            "type": "page",
            "userId": "C1",
            "messageId": "m-3",
            "timestamp": "2025-03-06T09:28:00Z",
            "properties": {"path": "/pricing"},
        },
    ]
}


class SegmentMessages(BaseModel):
    """One Segment-spec message (identify, group, track, page) as a Webhooks destination
    sends it, or `{"batch": [...]}` as the HTTP API's batch does. Each message is
    translated by the mapping (LEADSCORE_SEGMENT_MAPPING) and checked on its own."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [EXAMPLE_SEGMENT],
            "anyOf": [{"required": ["type"]}, {"required": ["batch"]}],
        },
    )

    type: Literal["identify", "group", "track", "page"] | None = None
    userId: str | None = None  # (the spec's name)
    batch: list[dict[str, Any]] = Field(default_factory=list)


# --- webhooks: where scores go ---------------------------------------------------------

WebhookEvent = Literal[
    "lead.mql_reached",
    "lead.mql_lost",
    "lead.grade_changed",
    "lead.score_changed",
    "model.champion_changed",
]


class WebhookCreate(BaseModel):
    """A Standard Webhooks subscription: where to post, which events, and the secret to
    sign with (one is made when none is given; it is shown once, in the answer)."""

    url: AnyHttpUrl = Field(description="Where to POST each event (http or https).")
    events: list[WebhookEvent] = Field(min_length=1)
    min_change: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="lead.score_changed only when the probability moved at least this much.",
    )
    secret: str | None = Field(
        default=None,
        pattern=SECRET_PATTERN,
        description="whsec_ + base64 of 16-65 random bytes; leave out to have one made.",
    )
    description: str | None = Field(default=None, max_length=500)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://crm.example.com/hooks/leadscore",
                    "events": ["lead.mql_reached", "lead.mql_lost"],
                    "min_change": 0.05,
                }
            ]
        },
    )


class Webhook(BaseModel):
    webhook_id: str
    kind: str = Field(description="standard, or the CRM of a connector")
    url: str | None
    events: list[str]
    min_change: float
    contact_prefix: str | None
    description: str | None
    created_at: datetime
    #: only in the answer that created it
    secret: str | None = None


class WebhookList(BaseModel):
    webhooks: list[Webhook]


class DeliveryAttempt(BaseModel):
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float


class Delivery(BaseModel):
    message_id: int
    webhook_msg_id: str = Field(description="the webhook-id header, the same on every retry")
    event_type: str
    contact_id: str | None
    created_at: datetime
    status: str = Field(description="pending, delivered, dead, cancelled")
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status: int | None
    last_error: str | None
    history: list[DeliveryAttempt]


class Deliveries(BaseModel):
    webhook_id: str
    deliveries: list[Delivery]
    next_before: int | None = Field(description="pass as `before` for the next (older) page")


class Redeliver(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_ids: list[int] | None = Field(
        default=None, description="these messages (any status); without: every dead one"
    )


class Redelivered(BaseModel):
    webhook_id: str
    redelivered: int


class ConnectorIntake(BaseModel):
    """What a CRM's own event did (the CRMs ignore the body; it is for whoever tests)."""

    connector: str
    event: str | None
    accepted: int
    duplicates: int
    ignored: int
    rejected: list[Rejected]
    rescored: list[Rescored]


class PointsWhatIf(BaseModel):
    """A points matrix on the champion's holdout."""

    mql_share: float = Field(description="share of holdout snapshots the matrix makes MQLs")
    mql: int = Field(description="how many that is")
    precision: float = Field(description="share of those MQLs that converted")
    recall: float = Field(description="share of conversions that were MQLs")
    roc_auc: float = Field(description="the points total as a ranking of conversions")
    rows: int = Field(description="holdout snapshots")
