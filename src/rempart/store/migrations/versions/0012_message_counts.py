"""message_check_counts: the message checker's anonymous counts

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-14 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_check_counts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("door", sa.String(length=8), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "door", "channel", "verdict", name=op.f("pk_message_check_counts")
        ),
    )


def downgrade() -> None:
    op.drop_table("message_check_counts")
