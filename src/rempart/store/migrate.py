"""Alembic, driven from code: ``rempart db upgrade`` and the tests use :func:`upgrade`.

Two migration histories: the rights service's tables, and the audit tables
(``audit*``, with their own version table) which may live in another database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData
from sqlalchemy.exc import SQLAlchemyError

from rempart.audit.models import AuditBase
from rempart.store.engine import make_engine
from rempart.store.models import Base

__all__ = ["Schema", "alembic_config", "run_environment", "schema_problem", "upgrade"]

Schema = Literal["data", "audit"]
_LOCATIONS: dict[Schema, tuple[Path, str]] = {
    "data": (Path(__file__).resolve().parent / "migrations", "alembic_version"),
    "audit": (Path(__file__).resolve().parent / "audit_migrations", "audit_alembic_version"),
}


_METADATA: dict[Schema, MetaData] = {"data": Base.metadata, "audit": AuditBase.metadata}


def run_environment(schema: Schema) -> None:
    """The body of each history's ``env.py``: run its migrations on the connection handed
    over by :func:`upgrade`, or on ``sqlalchemy.url`` for Alembic's own command line."""

    def run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=_METADATA[schema],
            version_table=_LOCATIONS[schema][1],
            render_as_batch=connection.dialect.name == "sqlite",
            # Both histories may share one database: each compares only its own tables.
            include_name=lambda name, kind, _parent: (
                kind != "table" or (name or "").startswith("audit") == (schema == "audit")
            ),
        )
        with context.begin_transaction():
            context.run_migrations()

    connection = context.config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as own:
        run(own)


def alembic_config(url: str | None = None, schema: Schema = "data") -> Config:
    config = Config()
    config.set_main_option("script_location", str(_LOCATIONS[schema][0]))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head", schema: Schema = "data") -> None:
    """Bring one schema to ``revision`` inside one transaction."""
    config = alembic_config(schema=schema)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def schema_problem(engine: Engine, schema: Schema = "data") -> str | None:
    """Why the database cannot serve (unreachable, or not at the latest revision), or None."""
    head = ScriptDirectory.from_config(alembic_config(schema=schema)).get_current_head()
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(
                connection, opts={"version_table": _LOCATIONS[schema][1]}
            ).get_current_revision()
    except SQLAlchemyError as exc:
        return f"the database cannot be reached ({type(exc).__name__})"
    if current != head:
        at = current or "no revision"
        return f"the {schema} schema is at {at}, not {head}: run `rempart db upgrade`"
    return None
