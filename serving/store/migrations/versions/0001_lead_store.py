"""The lead store: the data contract's four tables and the score ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(200), primary_key=True),
        sa.Column("industry", sa.String(100)),
        sa.Column("employees", sa.BigInteger),
        sa.Column("annual_revenue", sa.Float),
        sa.Column("country", sa.String(100)),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "contacts",
        sa.Column("contact_id", sa.String(200), primary_key=True),
        sa.Column("account_id", sa.String(200)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("job_title", sa.String(300)),
        sa.Column("seniority", sa.String(40)),
        sa.Column("department", sa.String(40)),
        sa.Column("lead_source", sa.String(100)),
        sa.Column("email", sa.String(320)),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_contacts_account_id", "contacts", ["account_id"])
    op.create_table(
        "touchpoints",
        sa.Column("touchpoint_id", sa.String(200), primary_key=True),
        sa.Column("contact_id", sa.String(200), nullable=False),
        sa.Column("occurred_at", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(100)),
        sa.Column("topic", sa.String(100)),
        sa.Column("received_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_touchpoints_contact_time", "touchpoints", ["contact_id", "occurred_at"])
    op.create_index("ix_touchpoints_time", "touchpoints", ["occurred_at"])
    op.create_table(
        "opportunities",
        sa.Column("opportunity_id", sa.String(200), primary_key=True),
        sa.Column("account_id", sa.String(200), nullable=False),
        sa.Column("contact_id", sa.String(200)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("closed_at", sa.BigInteger),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("amount", sa.Float),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_opportunities_account_id", "opportunities", ["account_id"])
    op.create_index("ix_opportunities_contact_id", "opportunities", ["contact_id"])
    op.create_table(
        "scores",
        sa.Column("score_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("contact_id", sa.String(200), nullable=False),
        sa.Column("account_id", sa.String(200)),
        sa.Column("scored_us", sa.BigInteger, nullable=False),
        sa.Column("as_of_us", sa.BigInteger, nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(40), nullable=False),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("points", sa.Float),
        sa.Column("grade", sa.String(4)),
        sa.Column("mql", sa.Boolean),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("trigger_id", sa.String(64)),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("features", sa.LargeBinary),
        sa.Column("explained", sa.Boolean, nullable=False),
    )
    op.create_index("ix_scores_contact", "scores", ["contact_id", "score_id"])
    op.create_table(
        "current_scores",
        sa.Column("contact_id", sa.String(200), primary_key=True),
        sa.Column("account_id", sa.String(200)),
        sa.Column("score_id", sa.Integer, nullable=False),
        sa.Column("scored_us", sa.BigInteger, nullable=False),
        sa.Column("as_of_us", sa.BigInteger, nullable=False),
        sa.Column("model_version", sa.String(40), nullable=False),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("points", sa.Float),
        sa.Column("grade", sa.String(4)),
        sa.Column("mql", sa.Boolean),
        sa.Column("lead_source", sa.String(100)),
        sa.Column("open_deal", sa.Boolean, nullable=False),
    )
    op.create_index("ix_current_scores_account_id", "current_scores", ["account_id"])
    op.create_index("ix_current_probability", "current_scores", ["probability", "contact_id"])
    op.create_table(
        "locks",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "rescore_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("started_us", sa.BigInteger, nullable=False),
        sa.Column("finished_us", sa.BigInteger),
        sa.Column("as_of_us", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("model_version", sa.String(40), nullable=False),
        sa.Column("scored", sa.Integer),
        sa.Column("changed", sa.Integer),
    )


def downgrade() -> None:
    for table in (
        "rescore_runs", "locks", "current_scores", "scores",
        "opportunities", "touchpoints", "contacts", "accounts",
    ):  # fmt: skip
        op.drop_table(table)
