"""DirectStatement: psycopg runs the statement, and failures look as SQLAlchemy's would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, bindparam, literal_column, select, text
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.orm import Session

from rempart.store.direct import DirectStatement
from rempart.store.engine import make_engine
from tests.pg_wire import traced

_ECHO = DirectStatement(
    select(bindparam("word", type_=None).label("word"), literal_column("2").label("two"))
)
_NOTHING = DirectStatement(text("CREATE TEMPORARY TABLE IF NOT EXISTS t (x int)"))
_DIVIDE = DirectStatement(text("SELECT 1 / CAST(:zero AS int)"))
_PID = DirectStatement(text("SELECT pg_backend_pid()"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = (
        f"sqlite:///{tmp_path / 'direct.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_database")
    )
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_rows_come_back_as_tuples_on_both_databases(engine: Engine) -> None:
    with Session(engine) as session:
        assert [tuple(row) for row in _ECHO.rows(session, {"word": "mot"})] == [("mot", 2)]
        assert _ECHO.first(session, {"word": "été"}) is not None
        assert _NOTHING.rows(session, {}) == []  # a statement without rows


@pytest.mark.postgres
def test_on_postgresql_the_driver_runs_it_on_the_sessions_connection(pg_database: str) -> None:
    engine = make_engine(pg_database)
    try:
        with Session(engine) as session:
            driver = session.connection().connection.driver_connection
            assert isinstance(driver, psycopg.Connection)
            with traced(driver) as trace:
                row = _PID.first(session, {})
            assert row is not None
            # One statement on this very connection (its own backend), in the session's
            # transaction: the implicit BEGIN went first.
            assert row[0] == driver.info.backend_pid
            assert trace.statements() == 2
            assert trace.messages[0] == "F Query"  # BEGIN
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_driver_error_is_sqlalchemys_and_keeps_the_values_out(pg_database: str) -> None:
    engine = make_engine(pg_database)
    try:
        with Session(engine) as session, pytest.raises(DataError) as caught:
            _DIVIDE.rows(session, {"zero": 0, "nir": "185037505600123"})
        assert "185037505600123" not in str(caught.value)
        assert isinstance(caught.value.orig, psycopg.errors.DivisionByZero)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_broken_connection_is_invalidated_not_handed_out_again(pg_database: str) -> None:
    engine = make_engine(pg_database, pool_size=1)
    try:
        with Session(engine) as session:
            pid = _PID.first(session, {})
            assert pid is not None
            # Its server process ends (a restart, a failover): the next statement fails.
            with psycopg.connect(pg_database.replace("+psycopg", ""), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid[0],))
            with pytest.raises(OperationalError):
                _PID.first(session, {})
        # The pool's only connection was thrown away: the next session gets a new one.
        with Session(engine) as session:
            again = _PID.first(session, {})
            assert again is not None
            assert again[0] != pid[0]
    finally:
        engine.dispose()
