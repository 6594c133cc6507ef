"""Readiness: can this process answer a lookup now?

Each check names a part (``database``, ``audit``, ``redis``, ``claims_table``,
``claims_stream``) and answers ``ok`` or a stable code of what is wrong; never a
message, a host, a connection string or a password (the exception's text could hold
any of them). Each runs in a thread of its own with a deadline: a database that does
not answer makes the probe say ``timeout`` within about a second, it does not hang it.
A check still stuck from an earlier probe is reported ``timeout`` again without
starting another, so a dead server cannot pile up threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import redis
import structlog
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

from rempart.audit.models import AuditHead

__all__ = ["OK", "Readiness", "ReadinessReport", "check_audit", "check_database", "check_redis"]

log = structlog.get_logger("rempart.ops")

OK = "ok"
Check = Callable[[], str]


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    checks: Mapping[str, str]

    @property
    def ready(self) -> bool:
        return all(value == OK for value in self.checks.values())

    @property
    def failing(self) -> list[str]:
        return [name for name, value in self.checks.items() if value != OK]


def check_database(engine: Engine) -> str:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return "unreachable"
    return OK


def check_audit(engine: Engine, *, disabled: bool = False) -> str:
    """The audit tables answer a read (the writer's heads are there)."""
    if disabled:
        return OK  # noop-benchmark-only: refused in production, nothing to reach
    try:
        with engine.connect() as connection:
            connection.execute(select(AuditHead.shard).limit(1)).all()
    except (OperationalError, ProgrammingError) as exc:
        # A missing table is a database not migrated; anything else cannot be reached.
        missing = "no such table" in str(exc.orig) or "does not exist" in str(exc.orig)
        return "not_migrated" if missing else "unreachable"
    except SQLAlchemyError:
        return "unreachable"
    return OK


def check_redis(client: redis.Redis) -> str:
    try:
        client.ping()
    except redis.RedisError:
        return "unreachable"
    return OK


class Readiness:
    """Runs the named checks concurrently, each with ``timeout_seconds``."""

    def __init__(self, checks: Mapping[str, Check], *, timeout_seconds: float = 1.0) -> None:
        self._checks = dict(checks)
        self._timeout = timeout_seconds
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(self._checks)), thread_name_prefix="rempart-ready"
        )
        self._running: dict[str, Future[str]] = {}
        self._lock = threading.Lock()

    def run(self) -> ReadinessReport:
        futures: dict[str, Future[str] | None] = {}
        with self._lock:
            for name, check in self._checks.items():
                previous = self._running.get(name)
                if previous is not None and not previous.done():
                    futures[name] = None  # still stuck since an earlier probe
                    continue
                futures[name] = self._running[name] = self._pool.submit(_safely, check)
        deadline = time.monotonic() + self._timeout
        results: dict[str, str] = {}
        for name, future in futures.items():
            if future is None:
                results[name] = "timeout"
                continue
            try:
                results[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                results[name] = "timeout"
        failing = {name: value for name, value in results.items() if value != OK}
        if failing:
            log.warning("not_ready", **failing)
        return ReadinessReport(results)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _safely(check: Check) -> str:
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - a check that breaks reports, it never raises
        log.warning("readiness_check_failed", error_type=type(exc).__name__)
        return "error"
