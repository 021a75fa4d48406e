"""Scores back to the CRM: webhook subscriptions, the outbox, delivery attempts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("webhook_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("url", sa.Text),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("min_change", sa.Float, nullable=False),
        sa.Column("contact_prefix", sa.String(200)),
        sa.Column("secret", sa.String(200)),
        sa.Column("config", sa.Text),
        sa.Column("description", sa.String(500)),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("message_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("msg_id", sa.String(64), nullable=False, unique=True),
        sa.Column("webhook_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("lead_key", sa.String(200), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_us", sa.BigInteger, nullable=False),
        sa.Column("claimed_until_us", sa.BigInteger),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("delivered_us", sa.BigInteger),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.String(500)),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_us"])
    op.create_index("ix_outbox_lead", "outbox", ["webhook_id", "lead_key", "message_id"])
    op.create_table(
        "deliveries",
        sa.Column("attempt_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.Integer, nullable=False),
        sa.Column("webhook_id", sa.String(64), nullable=False),
        sa.Column("attempted_us", sa.BigInteger, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.String(500)),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("dispatcher", sa.String(64), nullable=False),
    )
    op.create_index("ix_deliveries_message", "deliveries", ["message_id", "attempt_id"])
    op.create_index("ix_deliveries_webhook", "deliveries", ["webhook_id", "attempt_id"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("outbox")
    op.drop_table("webhooks")
