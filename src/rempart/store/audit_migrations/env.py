"""Alembic environment of the audit tables (own version table: they may live apart)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from rempart.audit.models import AuditBase
from rempart.store.engine import make_engine

config = context.config
target_metadata = AuditBase.metadata
VERSION_TABLE = "audit_alembic_version"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
