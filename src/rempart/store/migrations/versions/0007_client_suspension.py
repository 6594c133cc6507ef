"""client suspension: a guard deny through practice software suspends the client

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("suspended_by", sa.String(length=128), nullable=True))
        batch_op.add_column(
            sa.Column("token_epoch", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("guard_alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_guard_alerts_client_id"), ["client_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("guard_alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guard_alerts_client_id"))
        batch_op.drop_column("client_id")
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.drop_column("token_epoch")
        batch_op.drop_column("suspended_by")
        batch_op.drop_column("suspended_at")
