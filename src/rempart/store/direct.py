"""The lookup path's few statements, run straight on the driver's connection.

A lookup sends three statements on PostgreSQL. Through SQLAlchemy's execution
machinery each costs about 40 µs of CPU more than the driver itself takes (execution
context, result metadata, psycopg building column descriptions nobody reads), a sixth
of a lookup's CPU for three statements (``bench/bench_lookup_path.py``). A
:class:`DirectStatement` keeps the statement written once in SQLAlchemy Core, compiles it
once for PostgreSQL, and there hands the SQL and its parameters to psycopg on the
session's own connection: same transaction (or autocommit), same pool. What SQLAlchemy
would do around a failure is kept: the driver's error is raised as SQLAlchemy's
(``OperationalError`` and the rest, which the callers already handle), and a connection
that broke is invalidated, so the pool never hands it out again.

Elsewhere (SQLite, whose types need SQLAlchemy's conversions) the statement runs through
SQLAlchemy as any other. Rows are read by position on both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import Compiled

__all__ = ["DirectStatement"]


class DirectStatement:
    """A statement compiled once, run on the session's connection by the driver itself."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._postgres: tuple[str, dict[str, Any]] | None = None

    def _compiled(self, connection: Connection) -> tuple[str, dict[str, Any]]:
        """The SQL for PostgreSQL, with the values bound at build time (a LIMIT, a literal)."""
        if self._postgres is None:
            done: Compiled = self.statement.compile(dialect=connection.dialect)  # type: ignore[attr-defined]
            self._postgres = (done.string, {k: v for k, v in done.params.items() if v is not None})
        return self._postgres

    def rows(self, session: Session, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        """Every row, as tuples (by position), on the session's connection."""
        return self.rows_on(session.connection(), params)

    def rows_on(self, connection: Connection, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        """Every row, as tuples (by position), on ``connection``."""
        if connection.dialect.name != "postgresql":
            done = connection.execute(self.statement, dict(params))
            return done.all() if done.returns_rows else []
        sql, defaults = self._compiled(connection)
        driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
        values = {**defaults, **params}
        try:
            cursor = driver.execute(sql, values)
            result = cursor.pgresult
            if result is None or result.status != psycopg.pq.ExecStatus.TUPLES_OK:
                return []  # a statement that returns no rows
            return cursor.fetchall()
        except psycopg.Error as exc:
            if driver.broken or driver.closed:
                connection.invalidate(exc)
            # Without the values: they may hold a NIR or a session id.
            raise DBAPIError.instance(
                sql,
                values,
                exc,
                psycopg.Error,
                hide_parameters=True,
                connection_invalidated=connection.invalidated,
                dialect=connection.dialect,
            ) from exc

    def first(self, session: Session, params: Mapping[str, Any]) -> Sequence[Any] | None:
        return self.first_on(session.connection(), params)

    def first_on(self, connection: Connection, params: Mapping[str, Any]) -> Sequence[Any] | None:
        rows = self.rows_on(connection, params)
        return rows[0] if rows else None
