"""The points matrices applied from the marketing workspace (who, when, which version).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "point_matrices",
        sa.Column("matrix_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("applied_us", sa.BigInteger, nullable=False),
        sa.Column("applied_by", sa.String(200), nullable=False),
        sa.Column("rules_yaml", sa.Text, nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(40), nullable=False),
        sa.Column("note", sa.String(500)),
    )


def downgrade() -> None:
    op.drop_table("point_matrices")
