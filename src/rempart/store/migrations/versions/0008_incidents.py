"""incidents: definitions, lifecycle, scopes and exposed persons; insured pseudonyms

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 17:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Filled by the next world load, or by ``rempart db upgrade`` (it needs the key).
    with op.batch_alter_table("insured", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pseudonym", sa.String(length=32), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_insured_pseudonym"), ["pseudonym"])
    op.create_table(
        "incidents",
        sa.Column("incident_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.String(length=128), nullable=False),
        sa.Column("aware_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("discovery", sa.Text(), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("delay_reason", sa.Text(), nullable=False),
        sa.Column("planned_measures", sa.Text(), nullable=False),
        sa.Column("circumstances", sa.Text(), nullable=False),
        sa.Column("scope_version", sa.Integer(), nullable=False),
        sa.Column("reported_version", sa.Integer(), nullable=False),
        sa.Column("report_baseline_version", sa.Integer(), nullable=False),
        sa.Column("definition_changed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_incidents")),
    )
    op.create_index(op.f("ix_incidents_status"), "incidents", ["status"], unique=False)
    op.create_table(
        "incident_transitions",
        sa.Column("transition_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_from", sa.String(length=16), nullable=False),
        sa.Column("status_to", sa.String(length=16), nullable=False),
        sa.Column("operator", sa.String(length=128), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.incident_id"],
            name=op.f("fk_incident_transitions_incident_id_incidents"),
        ),
        sa.PrimaryKeyConstraint("transition_id", name=op.f("pk_incident_transitions")),
    )
    op.create_index(
        op.f("ix_incident_transitions_incident_id"),
        "incident_transitions",
        ["incident_id"],
        unique=False,
    )
    op.create_table(
        "incident_scopes",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("scoped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operator", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=512), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.incident_id"],
            name=op.f("fk_incident_scopes_incident_id_incidents"),
        ),
        sa.PrimaryKeyConstraint("incident_id", "version", name=op.f("pk_incident_scopes")),
    )
    op.create_table(
        "incident_exposures",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("pseudonym", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("first_us", sa.BigInteger(), nullable=False),
        sa.Column("last_us", sa.BigInteger(), nullable=False),
        sa.Column("accounts", sa.Text(), nullable=False),
        sa.Column("categories", sa.String(length=80), nullable=False),
        sa.Column("reveals", sa.String(length=80), nullable=False),
        sa.Column("department", sa.String(length=3), nullable=True),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("has_email", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.incident_id"],
            name=op.f("fk_incident_exposures_incident_id_incidents"),
        ),
        sa.PrimaryKeyConstraint("incident_id", "pseudonym", name=op.f("pk_incident_exposures")),
    )


def downgrade() -> None:
    op.drop_table("incident_exposures")
    op.drop_table("incident_scopes")
    op.drop_index(op.f("ix_incident_transitions_incident_id"), table_name="incident_transitions")
    op.drop_table("incident_transitions")
    op.drop_index(op.f("ix_incidents_status"), table_name="incidents")
    op.drop_table("incidents")
    with op.batch_alter_table("insured", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_insured_pseudonym"), type_="unique")
        batch_op.drop_column("pseudonym")
