"""The score ledger's tables, on the same SQLAlchemy metadata as the contract's.

The contract's four tables are declared in `features.crm.database` (the loader reads
them back as an export); what only the service writes is declared here: every score
that changed (`scores`, append-only), each contact's latest (`current_scores`, what the
lists read), leases that keep one rescoring run at a time across workers (`locks`), and
the runs themselves (`rescore_runs`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from features.crm.database import metadata

#: every score that changed, in order: what a CRM was told, when, and why
scores = Table(
    "scores",
    metadata,
    Column("score_id", Integer, primary_key=True, autoincrement=True),
    Column("contact_id", String(200), nullable=False),
    Column("account_id", String(200)),
    Column("scored_us", BigInteger, nullable=False),
    Column("as_of_us", BigInteger, nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(40), nullable=False),
    Column("probability", Float, nullable=False),
    Column("points", Float),
    Column("grade", String(4)),
    Column("mql", Boolean),
    #: event (an intake call), rescore (time passed), model (a new champion), load
    Column("trigger", String(20), nullable=False),
    #: the intake call's event id, or the rescore run's id
    Column("trigger_id", String(64)),
    #: the whole answer, as `GET /v1/leads/{id}` returns it (reasons, every rule that fired)
    Column("answer", Text, nullable=False),
    #: the model's input row (float64 bytes): what the model saw, and what the reasons are
    #: computed from when the row is first read (TreeSHAP costs ~1 ms a contact, more
    #: than the rest of an event: an event rescoring a whole committee stores the
    #: numbers at once and the reasons when someone asks)
    Column("features", LargeBinary),
    #: the answer holds its reasons (False: not computed yet)
    Column("explained", Boolean, nullable=False),
    Index("ix_scores_contact", "contact_id", "score_id"),
)

#: each contact's latest score (one row per contact; the list sales works from)
current_scores = Table(
    "current_scores",
    metadata,
    Column("contact_id", String(200), primary_key=True),
    Column("account_id", String(200), index=True),
    Column("score_id", Integer, nullable=False),
    Column("scored_us", BigInteger, nullable=False),
    Column("as_of_us", BigInteger, nullable=False),
    Column("model_version", String(40), nullable=False),
    Column("probability", Float, nullable=False),
    Column("points", Float),
    Column("grade", String(4)),
    Column("mql", Boolean),
    Column("lead_source", String(100)),
    #: the account (or the contact) has a deal open: already with sales, not a lead to work
    Column("open_deal", Boolean, nullable=False),
    Index("ix_current_probability", "probability", "contact_id"),
)

#: a lease per named job: one rescoring run at a time, whatever the number of workers
locks = Table(
    "locks",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_us", BigInteger, nullable=False),
)

rescore_runs = Table(
    "rescore_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("started_us", BigInteger, nullable=False),
    Column("finished_us", BigInteger),
    Column("as_of_us", BigInteger, nullable=False),
    #: schedule, command, model (after a champion change)
    Column("reason", String(20), nullable=False),
    Column("model_version", String(40), nullable=False),
    Column("scored", Integer),
    Column("changed", Integer),
)

# --- what flows back out: subscriptions, the outbox, and every delivery attempt ------------

#: where scores go: a Standard Webhooks subscription (registered through the API) or a
#: CRM connector (declared in the connectors file, synced at start-up)
webhooks = Table(
    "webhooks",
    metadata,
    Column("webhook_id", String(64), primary_key=True),
    #: standard (Standard Webhooks JSON), or a connector: bitrix24, hubspot, mautic, dynamics365
    Column("kind", String(20), nullable=False),
    #: where a standard webhook posts (a connector's URL comes from its environment variable)
    Column("url", Text),
    #: JSON list of event types
    Column("events", Text, nullable=False),
    #: lead.score_changed only when the probability moves by at least this much
    Column("min_change", Float, nullable=False),
    #: only contacts whose id starts with this (a CRM connector writes back its own leads)
    Column("contact_prefix", String(200)),
    #: Standard Webhooks secret (whsec_...), for standard webhooks
    Column("secret", String(200)),
    #: a connector's settings (field names, environment variable names; never credentials)
    Column("config", Text),
    Column("description", String(500)),
    Column("created_us", BigInteger, nullable=False),
    Column("active", Boolean, nullable=False),
)

#: messages to deliver, written in the transaction of the ledger rows that cause them
outbox = Table(
    "outbox",
    metadata,
    #: the order messages were written in (per lead, the order they are delivered in)
    Column("message_id", Integer, primary_key=True, autoincrement=True),
    #: the `webhook-id` header: the same on every retry, so receivers drop duplicates
    Column("msg_id", String(64), nullable=False, unique=True),
    Column("webhook_id", String(64), nullable=False),
    Column("event_type", String(40), nullable=False),
    #: what delivery order is kept per: the contact (model events: "model")
    Column("lead_key", String(200), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    #: the event as JSON ({"type", "timestamp", "data"}); connectors format it their way
    Column("body", Text, nullable=False),
    #: pending, delivered, dead (gave up after the allowed attempts)
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_us", BigInteger, nullable=False),
    #: a dispatcher holds the message until then (one killed mid-delivery lets go of it)
    Column("claimed_until_us", BigInteger),
    Column("claimed_by", String(64)),
    Column("delivered_us", BigInteger),
    Column("last_status", Integer),
    Column("last_error", String(500)),
    Index("ix_outbox_due", "status", "next_attempt_us"),
    Index("ix_outbox_lead", "webhook_id", "lead_key", "message_id"),
)

#: every attempt to deliver a message: when, the answer's status, how long it took
deliveries = Table(
    "deliveries",
    metadata,
    Column("attempt_id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", Integer, nullable=False),
    Column("webhook_id", String(64), nullable=False),
    Column("attempted_us", BigInteger, nullable=False),
    #: the HTTP status (None: no answer: refused, timed out)
    Column("status_code", Integer),
    Column("error", String(500)),
    Column("duration_ms", Float, nullable=False),
    Column("dispatcher", String(64), nullable=False),
    Index("ix_deliveries_message", "message_id", "attempt_id"),
    Index("ix_deliveries_webhook", "webhook_id", "attempt_id"),
)

# --- the points matrix marketing applied (over the model's own) ---------------------------

#: every matrix applied from the workspace, newest last: the latest one is in effect for
#: live scores and rescoring runs until another is applied (or one is withdrawn)
point_matrices = Table(
    "point_matrices",
    metadata,
    Column("matrix_id", Integer, primary_key=True, autoincrement=True),
    Column("applied_us", BigInteger, nullable=False),
    Column("applied_by", String(200), nullable=False),
    #: the YAML as applied (the whole matrix: what `--rules` reads)
    Column("rules_yaml", Text, nullable=False),
    #: the champion served when it was applied
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(40), nullable=False),
    Column("note", String(500)),
)
