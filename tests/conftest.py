"""Shared fixtures: settings, databases (SQLite file, PostgreSQL server), app clients.

PostgreSQL, Redis and RabbitMQ tests run against the real servers on 127.0.0.1. They
skip with a reason when one is absent, except under CI (``CI=true``), where a missing
server is a failure: ``.ci/run`` starts them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import psycopg
import pytest
import redis
from sqlalchemy import text

from rempart.audit.models import AuditBase
from rempart.config import Settings, load_settings
from rempart.logs import configure_logging
from rempart.services import Services
from rempart.store.migrate import upgrade
from rempart.store.models import Base

PG_ADMIN_DSN = os.environ.get("REMPART_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_TEST_URL = os.environ.get("REMPART_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
AMQP_TEST_URL = os.environ.get("REMPART_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Cheap argon2 parameters: tests check behaviour, the benchmark measures the real cost.
FAST_HASHING = {"argon2_time_cost": 1, "argon2_memory_kib": 8192, "argon2_parallelism": 1}


@pytest.fixture(autouse=True)
def _info_logs() -> None:
    """Every test starts with the service's logging at info level, as `rempart serve`
    runs: logging is process-wide, and a test that runs the CLI in-process (which sets
    warning) would otherwise hide the info lines a later test reads with capture_logs."""
    configure_logging("info")


def _unavailable(what: str, exc: Exception) -> None:
    reason = f"{what} is not reachable ({type(exc).__name__}); start it to run these tests"
    if IN_CI:
        pytest.fail(f"CI requires {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    name = f"rempart_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL on 127.0.0.1:5432", exc)
        raise
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    yield f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable("Redis on 127.0.0.1:6379", exc)
    return REDIS_TEST_URL


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The real RabbitMQ (tests use queues of their own names, deleted afterwards)."""
    parameters = pika.URLParameters(AMQP_TEST_URL)
    parameters.connection_attempts = 1
    parameters.socket_timeout = 3
    try:
        pika.BlockingConnection(parameters).close()
    except (pika.exceptions.AMQPError, OSError) as exc:
        _unavailable("RabbitMQ on 127.0.0.1:5672", exc)
    return AMQP_TEST_URL


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test gets an empty, migrated database: a new SQLite file, or the
    run's PostgreSQL database emptied after the test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rempart.db'}"
        return
    url: str = request.getfixturevalue("pg_database")
    yield url
    services = Services(load_settings(database_url=url, data_dir=tmp_path / "data"))
    with services.engine.begin() as connection:
        every = [*Base.metadata.sorted_tables, *AuditBase.metadata.sorted_tables]
        tables = ", ".join(t.name for t in every)
        connection.execute(text(f"TRUNCATE {tables} CASCADE"))
    services.close()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(database_url=database_url, data_dir=tmp_path / "data", **FAST_HASHING)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    services = Services(settings)
    upgrade(services.engine, schema="data")
    upgrade(services.audit_engine, schema="audit")
    yield services
    services.close()
