"""Round trips of an answered lookup on PostgreSQL, counted on the driver's connection.

libpq's own protocol trace of every pooled connection (``PQtrace``) lists each message
the client sends (``F``) and receives (``B``); a round trip is a run of messages sent
before the next reply. Connecting is outside the count (the pool is warm), so what is
counted is what every lookup costs: the session check, the person's rights and the
guard's facts, the audit entry with its commit. (The account's own facts, which the
guard's directory keeps for five minutes, cost one or two more statements on the
account's first lookup in that time: the tests warm them first.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from rempart.audit.models import AuditEvent
from rempart.services import Services
from tests.functional.conftest import Login, Person, log_in
from tests.pg_wire import Trace, traced

# PostgreSQL only (the production path's round trips), through the shared fixture that
# empties the database after each test.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

MAX_ROUND_TRIPS = 3


class Wire:
    """The traces of every connection the engine hands out while it is attached."""

    def __init__(self) -> None:
        self._open: dict[int, tuple[Any, Trace]] = {}
        self.traces: list[Trace] = []

    def attach(self, dbapi_connection: Any, *_: object) -> None:
        tracing = traced(dbapi_connection)
        self._open[id(dbapi_connection)] = (tracing, tracing.__enter__())

    def detach(self, dbapi_connection: Any, *_: object) -> None:
        tracing, trace = self._open.pop(id(dbapi_connection))
        tracing.__exit__(None, None, None)
        self.traces.append(trace)

    @property
    def connections(self) -> list[list[str]]:
        return [trace.messages for trace in self.traces]

    def round_trips(self) -> int:
        assert not self._open, "a connection is still checked out"
        return sum(trace.round_trips() for trace in self.traces)


@contextmanager
def wire_of(services: Services) -> Iterator[Wire]:
    wire = Wire()
    engine = services.engine
    event.listen(engine, "checkout", wire.attach)
    event.listen(engine, "checkin", wire.detach)
    try:
        yield wire
    finally:
        event.remove(engine, "checkout", wire.attach)
        event.remove(engine, "checkin", wire.detach)


def _lookup(client: TestClient, token: str, person: Person) -> int:
    response = client.post(
        "/api/v1/rights/lookup",
        json={"nir": person.nir.value, "birth_date": person.birth_date.isoformat()},
        headers={"Authorization": f"Bearer {token}"},
    )
    return int(response.status_code)


def _entries(services: Services) -> int:
    with services.engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def test_an_answered_lookup_takes_at_most_three_round_trips(
    services: Services, client: TestClient, people: list[Person], pharmacist: Login
) -> None:
    assert services.guard is not None  # the guard decides on every lookup counted
    token = log_in(client, pharmacist)
    assert _lookup(client, token, people[1]) == 200  # the pool and the caches warm
    before = _entries(services)
    for person in people:  # people[0] is new to the guard's cache: its facts are read
        with wire_of(services) as wire:
            assert _lookup(client, token, person) == 200
        trips = wire.round_trips()
        assert 0 < trips <= MAX_ROUND_TRIPS, [" ".join(m) for m in wire.connections]
    # Each answer was recorded, and committed: another connection sees it.
    assert _entries(services) == before + len(people)


def test_a_due_session_touch_rides_in_the_session_check(
    services: Services, client: TestClient, people: list[Person], pharmacist: Login
) -> None:
    """Once a minute a session's last use is written: in the same statement as its check."""
    token = log_in(client, pharmacist)
    # The account's own facts, which the guard's directory keeps for minutes, read once.
    assert _lookup(client, token, people[1]) == 200
    with services.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE auth_sessions SET last_seen_at = last_seen_at - interval '5 minutes'"
        )
        seen_before = connection.exec_driver_sql(
            "SELECT max(last_seen_at) FROM auth_sessions"
        ).scalar()
    with wire_of(services) as wire:
        assert _lookup(client, token, people[0]) == 200
    assert wire.round_trips() <= MAX_ROUND_TRIPS, wire.connections
    with services.engine.connect() as connection:
        seen_after = connection.exec_driver_sql(
            "SELECT max(last_seen_at) FROM auth_sessions"
        ).scalar()
    assert seen_before is not None
    assert seen_after is not None
    assert seen_after > seen_before
