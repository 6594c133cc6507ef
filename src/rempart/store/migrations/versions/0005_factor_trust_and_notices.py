"""factor trust on sessions and keys; pending security notices

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 10:00:00.000000

Existing keys get ``new_network = false`` and existing sessions
``factor_established = false``: a session opened before this migration does not pass
the guard's step-up (its holder steps up again with a key past probation, or the card).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credential_id", sa.String(length=1400), nullable=True))
        batch_op.add_column(
            sa.Column("factor_established", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("new_network", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("webauthn_credentials", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("new_network", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "account_notices",
        sa.Column("notice_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.account_id"],
            name=op.f("fk_account_notices_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("notice_id", name=op.f("pk_account_notices")),
    )
    with op.batch_alter_table("account_notices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_account_notices_account_id"), ["account_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("account_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_notices_account_id"))
    op.drop_table("account_notices")
    with op.batch_alter_table("webauthn_credentials", schema=None) as batch_op:
        batch_op.drop_column("new_network")
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.drop_column("new_network")
        batch_op.drop_column("factor_established")
        batch_op.drop_column("credential_id")
