"""Engines and sessions for the configured database (SQLite embedded, PostgreSQL in production)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["as_utc", "lookup_scope", "make_engine", "own_transaction", "session_scope"]


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers go on while one writer commits; foreign keys are off by default.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL: a committed audit entry survives a power loss, not only a killed process.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A fixed pool as large as the busiest worker's concurrency: opening a PostgreSQL
    # connection (a new server process) per request under load costs more than the request.
    # No pre-ping (a round trip per checkout): a dead connection fails its statement, is
    # discarded, and the request answers 503.
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 0)
    kwargs.setdefault("pool_timeout", 10)
    kwargs.setdefault("pool_recycle", 1800)
    return create_engine(url, **kwargs)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def lookup_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A lookup's unit of work: reads, then one audit entry, then the answer.

    On PostgreSQL its connection is in autocommit: each statement is its own
    transaction, so a lookup sends no ``BEGIN`` and no ``COMMIT`` (two round trips of
    the six it took), and its last statement, the audit append (one statement on
    PostgreSQL), is durably committed when it returns. A step that must write several
    statements together (a suspension) calls :func:`own_transaction` first. Elsewhere
    (SQLite: its audit append is several statements), an ordinary transaction.
    """
    with session_scope(factory) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session


def own_transaction(session: Session) -> None:
    """Make the session's next statements one transaction, whatever scope opened it.

    Ends the session's current unit (in autocommit, a no-op for the database): the next
    statement checks a connection out as the engine configures it, in a transaction
    the caller commits."""
    session.commit()


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """A datetime read back from the database, made aware: SQLite hands back naive
    values (they were stored in UTC), PostgreSQL aware ones."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
