"""The guard inline with its state in the real Redis, shared by several workers, on
PostgreSQL, through real HTTP.

Two ``Services`` and two apps on one database and one Redis stand for two workers
(or hosts): a robot whose lookups alternate between them is contained as on one
worker, suspended once, alerted once; an honest day spread over both passes; the
learning window ends once for both; an operator's restore is one versioned reset;
a suspension a worker failed to write is written by another. With Redis
unreachable, or going away mid-run, lookups answer ``503 guard_unavailable`` and
the trail records the refusal; when it comes back the guard decides again.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from rempart.api import create_app
from rempart.audit.events import Origin
from rempart.config import Settings
from rempart.errors import RempartError
from rempart.guard.alerts import list_alerts
from rempart.guard.redis_state import RedisState
from rempart.rights.guarded import caller_of, guarded_lookup
from rempart.services import Services
from rempart.store.engine import lookup_scope, session_scope
from rempart.store.models import Account
from tests.functional.conftest import PEER, Login, Person, log_in, make_login
from tests.functional.test_guard_inline import (
    ROBOT,
    build_town,
    guard_settings,
    lookup,
    lookup_entries,
    totp_session,
    yesterday_at_the_counter,
)

pytestmark = [
    pytest.mark.redis,
    pytest.mark.parametrize(
        "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
    ),
]

Town = tuple[list[Person], list[Person]]


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own, removed afterwards."""
    prefix = f"test:workers:{secrets.token_hex(6)}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, redis_url: str, prefix: str) -> Settings:
    return guard_settings(database_url, tmp_path, redis_url=redis_url, guard_redis_prefix=prefix)


@pytest.fixture
def second(settings: Settings, services: Services) -> Iterator[Services]:
    """A second worker: its own engine, sessions, Redis client and guard; the same
    database, Redis and secrets as the first (``services``, already migrated)."""
    other = Services(settings)
    yield other
    other.close()


@pytest.fixture
def workers(client: TestClient, second: Services) -> Iterator[list[TestClient]]:
    with TestClient(create_app(services=second), client=PEER) as other:
        yield [client, other]


@pytest.fixture
def town(services: Services) -> Town:
    return build_town(services)


@pytest.fixture
def pharmacist(services: Services) -> Login:
    return make_login(services, "pharmacie.lilas", account_id="ph-lilas")


def state_of(services: Services) -> RedisState:
    state = services.guard_state
    assert isinstance(state, RedisState)
    return state


def account_status(services: Services) -> str | None:
    with session_scope(services.sessions) as session:
        status: str | None = session.scalar(
            select(Account.status).where(Account.account_id == "ph-lilas")
        )
    return status


def restore(services: Services) -> None:
    with session_scope(services.sessions) as session:
        assert services.auth.restore(session, "ph-lilas", operator="alice")


def alerts(services: Services) -> list[Any]:
    with session_scope(services.sessions) as session:
        return list(list_alerts(session, account_id="ph-lilas"))


def set_clocks(guards: list[Services], moments: Iterator[int]) -> None:
    """One decision clock for every worker (a day's pace, whoever answers)."""
    for worker in guards:
        guard = worker.guard
        assert guard is not None
        guard.clock = lambda: next(moments)


@pytest.mark.parametrize("in_use", [True, False], ids=["account-in-use", "never-seen"])
def test_a_robot_alternating_between_two_workers_is_contained_as_on_one(
    services: Services,
    second: Services,
    workers: list[TestClient],
    pharmacist: Login,
    town: Town,
    in_use: bool,
) -> None:
    customers, strangers = town
    if in_use:
        yesterday_at_the_counter(workers[0], services, pharmacist, customers)
    history = len(lookup_entries(services, "ph-lilas"))
    robot = log_in(workers[0], pharmacist)
    statuses: list[int] = []
    for i, person in enumerate(strangers):
        response = lookup(workers[i % 2], robot, person, ROBOT)
        statuses.append(response.status_code)
        if response.status_code == 403:
            assert response.json()["error"] == "account_suspended"
            break
    # The same bounds as one worker's (test_guard_inline.py): the budget, the step-up
    # and the suspension are the shared record's, whichever worker answers.
    assert statuses.count(200) <= (1 if in_use else 3), statuses
    assert 401 in statuses, statuses
    assert statuses[-1] == 403, statuses
    assert len(statuses) <= (12 if in_use else 30), statuses
    # Both workers answered some of the robot's lookups and refused it in the end.
    assert len(statuses) >= 2
    for worker in workers:
        after = lookup(worker, robot, strangers[-1], ROBOT)
        assert after.status_code == 403
    assert account_status(services) == "suspended"
    entries = lookup_entries(services, "ph-lilas")[history:]
    assert [e.decision for e in entries] == [
        {200: "allow", 401: "step_up", 403: "deny"}[s] for s in statuses
    ]
    # Suspended once, alerted once, and the suspension held in the shared state.
    (alert,) = alerts(services)
    assert alert.decision == "deny"
    assert alert.audit_ts_us == entries[-1].ts_us
    state = state_of(services)
    assert state.account("ph-lilas").suspended
    assert state.held_suspension("ph-lilas") is not None

    # An operator restores the account; the owner goes on through either worker.
    restore(services)
    token = totp_session(workers[1], pharmacist, ahead=1)
    for i, person in enumerate(customers[:4]):
        response = lookup(workers[(i + 1) % 2], token, person)
        assert response.status_code == 200, lookup_entries(services, "ph-lilas")[-1].reasons
    assert not state.account("ph-lilas").suspended
    assert state.held_suspension("ph-lilas") is None
    assert len(alerts(services)) == 1


def test_a_robot_racing_on_two_workers_is_contained_as_on_one(
    services: Services, second: Services, pharmacist: Login, town: Town
) -> None:
    """Four threads, two per worker, send the robot's lookups at once: decisions on the
    one record are refused as stale and taken again, none is lost, and the robot
    gets no more than one worker alone would give it."""
    customers, strangers = town
    queue = list(reversed(strangers))
    statuses: list[int] = []
    lock = threading.Lock()
    with TestClient(create_app(services=services), client=PEER) as first:
        yesterday_at_the_counter(first, services, pharmacist, customers)
        robot = log_in(first, pharmacist)
    history = len(lookup_entries(services, "ph-lilas"))

    def scrape(http: TestClient) -> None:
        while True:
            with lock:
                if not queue or 403 in statuses:
                    return
                person = queue.pop()
            status = lookup(http, robot, person, ROBOT).status_code
            with lock:
                statuses.append(status)

    # Each thread its own client; all closed once every thread is done (an app's
    # shutdown closes its Services).
    with contextlib.ExitStack() as stack:
        clients = [
            stack.enter_context(TestClient(create_app(services=w), client=PEER))
            for w in (services, second) * 2
        ]
        threads = [threading.Thread(target=scrape, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert statuses.count(200) <= 1, statuses
    assert 403 in statuses, statuses
    assert account_status(services) == "suspended"
    assert len(alerts(services)) == 1
    entries = lookup_entries(services, "ph-lilas")[history:]
    decided = [e for e in entries if not e.reasons.startswith("account_suspended")]
    record = state_of(services).account("ph-lilas")
    # Every decision the engine made on the record counted once (the suspended one's
    # refusals are not counted by the engine), yesterday's lookups rolled into history.
    assert record.day_lookups == len(decided), "\n".join(
        [str(record.day_lookups), str(statuses)]
        + [f"{e.decision} {e.reasons} {e.outcome}" for e in entries]
    )


def test_an_honest_day_over_two_workers_passes(
    services: Services, second: Services, workers: list[TestClient], pharmacist: Login, town: Town
) -> None:
    customers, strangers = town
    day = int(time.time()) // 86_400 * 86_400
    set_clocks(
        [services, second], itertools.count(day * 1_000_000 + 8 * 3_600_000_000, 240_000_000)
    )
    token = log_in(workers[0], pharmacist)
    answered = 0
    for _ in range(3):
        for person in customers:
            response = lookup(workers[answered % 2], token, person)
            answered += 1
            assert response.status_code == 200, response.text
    assert lookup(workers[1], token, strangers[0]).status_code == 200  # a walk-in
    entries = lookup_entries(services, "ph-lilas")
    assert len(entries) == 3 * len(customers) + 1
    assert {e.decision for e in entries} == {"allow"}
    assert account_status(services) == "active"
    assert alerts(services) == []
    # One record for both workers: every lookup counted once.
    assert state_of(second).account("ph-lilas").day_lookups == len(entries)


def test_the_learning_window_ends_once_for_every_worker(
    database_url: str,
    tmp_path: Path,
    redis_url: str,
    prefix: str,
    services: Services,
    pharmacist: Login,
    town: Town,
) -> None:
    """The end of the learning window clears what history spent, once: a worker that
    comes to it after another must not clear what was spent since."""
    customers, strangers = town
    day = int(time.time()) // 86_400 * 86_400
    until = datetime.fromtimestamp(day + 12 * 3600, tz=UTC)
    learning = guard_settings(
        database_url,
        tmp_path,
        redis_url=redis_url,
        guard_redis_prefix=prefix,
        guard_learn_until=until,
    )
    first, other = Services(learning), Services(learning)
    try:
        with (
            TestClient(create_app(services=first), client=PEER) as one,
            TestClient(create_app(services=other), client=PEER) as two,
        ):
            now = [day * 1_000_000 + 9 * 3_600_000_000]
            for worker in (first, other):
                assert worker.guard is not None
                worker.guard.clock = lambda: now[0]
            token = log_in(one, pharmacist)
            # Learning: the morning's lookups through both workers, recorded, not acted upon.
            for i, person in enumerate(customers):
                now[0] += 60_000_000
                assert lookup([one, two][i % 2], token, person).status_code == 200
            assert {e.reasons.split(",")[0] for e in lookup_entries(first, "ph-lilas")} == {
                "learning"
            }
            # After the window, the first worker ends it, then spends on a stranger.
            now[0] = day * 1_000_000 + 12 * 3_600_000_000 + 1_000_000
            assert lookup(one, token, strangers[0]).status_code == 200
            done = redis.Redis.from_url(redis_url).exists(
                f"{prefix}o:end-of-history:{int(until.timestamp() * 1_000_000)}"
            )
            assert done == 1
            state = state_of(first)
            spent = state.account("ph-lilas").spent
            assert spent > 0
            # The other worker comes to the end of the window later: it finds it done,
            # and what the first worker's lookup spent stays spent.
            now[0] += 1_000_000
            assert lookup(two, token, customers[0]).status_code == 200  # explained: free
            assert state.account("ph-lilas").spent == spent
            assert lookup_entries(first, "ph-lilas")[-1].reasons == ""  # judged, not learning
    finally:
        first.close()
        other.close()


def test_a_restore_is_one_versioned_reset(
    services: Services,
    second: Services,
    workers: list[TestClient],
    pharmacist: Login,
    town: Town,
) -> None:
    """Two workers see the restored account's record suspended at once: one resets it,
    the other's save is refused as stale, and it finds the record already reset
    (and the owner's lookup since then kept)."""
    customers, strangers = town
    robot = log_in(workers[0], pharmacist)
    for person in strangers:
        if lookup(workers[0], robot, person, ROBOT).status_code == 403:
            break
    assert account_status(services) == "suspended"
    restore(services)
    state = state_of(services)
    stale = state.account("ph-lilas")  # what the first worker read
    assert stale.suspended

    token = totp_session(workers[1], pharmacist, ahead=1)
    assert lookup(workers[1], token, customers[0]).status_code == 200  # reset by the second
    after = state.account("ph-lilas")
    assert not after.suspended
    assert after.version == stale.version + 2  # the reset, then the owner's lookup

    guard = services.guard
    assert guard is not None
    # The race, replayed: the first worker's late reset of the record it read. The
    # second worker had saved its reset and not yet released the suspension's mark:
    # the stale save is refused and the fresh record found reset.
    state.hold_suspension("ph-lilas", "mark-of-the-suspension")
    with guard._lock:
        assert not guard.engine.restore("ph-lilas", stale).suspended
    assert state.account("ph-lilas").version == after.version  # nothing saved twice
    assert state.account("ph-lilas").day_lookups == after.day_lookups
    # It had released the mark: nothing to lift (the engine's own read, versioned,
    # then finds the record as it is).
    state.release_suspension("ph-lilas", "mark-of-the-suspension")
    with guard._lock:
        guard._restore_if_lifted("ph-lilas", stale)
    assert state.account("ph-lilas").version == after.version
    assert lookup(workers[0], token, customers[1]).status_code == 200


def test_a_suspension_being_written_holds_and_one_never_written_is_completed(
    services: Services,
    second: Services,
    workers: list[TestClient],
    pharmacist: Login,
    town: Town,
) -> None:
    """A worker decided a suspension (the shared record says so) and died before its
    commit: the database still says active. Another worker refuses the account's
    lookups meanwhile, and after a minute writes the suspension itself."""
    customers, _ = town
    token = log_in(workers[1], pharmacist)
    decided = int(time.time() * 1_000_000)
    state = state_of(services)
    record = state.account("ph-lilas")
    record.suspended, record.suspended_reason, record.velocity_ts = True, "robot", decided
    state.save_account("ph-lilas", record)

    guard = second.guard
    assert guard is not None
    guard.clock = lambda: decided + 2_000_000  # being written: refused, nothing else
    refused = lookup(workers[1], token, customers[0])
    assert refused.status_code == 403
    assert refused.json()["error"] == "account_suspended"
    assert account_status(services) == "active"
    assert alerts(services) == []
    entry = lookup_entries(services, "ph-lilas")[-1]
    assert (entry.decision, entry.reasons, entry.found) == ("deny", "account_suspended", -1)

    guard.clock = lambda: decided + 61_000_000  # a minute on: its worker is gone
    assert lookup(workers[1], token, customers[0]).status_code == 403
    assert account_status(services) == "suspended"
    (alert,) = alerts(services)
    assert alert.reasons[0] == "account_suspended"
    assert state.held_suspension("ph-lilas") is not None
    # Now an operator can lift it, as any other.
    restore(services)
    owner = totp_session(workers[0], pharmacist, ahead=1)
    assert lookup(workers[0], owner, customers[0]).status_code == 200


def test_redis_unreachable_fails_the_lookup_closed(
    settings: Settings, services: Services, client: TestClient, pharmacist: Login, town: Town
) -> None:
    customers, _ = town
    token = log_in(client, pharmacist)  # logged in while Redis answers
    cut_off = Services(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        with TestClient(create_app(services=cut_off), client=PEER) as worker:
            response = lookup(worker, token, customers[0])
    finally:
        cut_off.close()
    assert response.status_code == 503
    assert response.json()["error"] == "guard_unavailable"
    assert "last_name" not in response.text
    (entry,) = lookup_entries(services, "ph-lilas")
    assert (entry.decision, entry.reasons, entry.outcome, entry.found) == (
        "error",
        "guard_unavailable",
        "guard_unavailable",
        -1,
    )


class RedisRelay:
    """A TCP relay in front of the real Redis that can be cut and put back: the server
    goes away for the clients behind it (open connections reset, new ones refused)."""

    def __init__(self, url: str) -> None:
        target = redis.Redis.from_url(url).connection_pool.connection_kwargs
        self._target = (str(target.get("host", "127.0.0.1")), int(target.get("port", 6379)))
        self._db = int(target.get("db", 0))
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._serve()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self._db}"

    def _serve(self) -> None:
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                downstream, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            self._sockets += [downstream, upstream]
            for a, b in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._sockets.clear()

    def put_back(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._serve()


def test_redis_going_away_mid_run_fails_closed_then_recovers(
    database_url: str,
    tmp_path: Path,
    redis_url: str,
    prefix: str,
    services: Services,
    pharmacist: Login,
    town: Town,
) -> None:
    customers, _ = town
    relay = RedisRelay(redis_url)
    relayed = Services(
        guard_settings(database_url, tmp_path, redis_url=relay.url, guard_redis_prefix=prefix)
    )
    try:
        with TestClient(create_app(services=relayed), client=PEER) as worker:
            token = log_in(worker, pharmacist)
            assert lookup(worker, token, customers[0]).status_code == 200
            relay.cut()
            gone = [lookup(worker, token, person) for person in customers[1:3]]
            relay.put_back()
            back = lookup(worker, token, customers[3])
    finally:
        relay.cut()
        relayed.close()
    assert [r.status_code for r in gone] == [503, 503]
    assert all(r.json()["error"] == "guard_unavailable" for r in gone)
    assert back.status_code == 200, back.text
    entries = lookup_entries(services, "ph-lilas")
    assert [(e.decision, e.outcome) for e in entries] == [
        ("allow", "ok"),
        ("error", "guard_unavailable"),
        ("error", "guard_unavailable"),
        ("allow", "ok"),
    ]
    # The record outlived the outage: both answered lookups are in it.
    assert state_of(services).account("ph-lilas").day_lookups == 2


def test_parallel_lookups_of_one_account_on_two_workers_are_never_refused_as_stale(
    services: Services, second: Services, pharmacist: Login, town: Town
) -> None:
    """Practice software checking a day's list with parallel requests, on two workers:
    each decision that loses the race for the account's record is taken again, so
    none ends as ``503 guard_unavailable`` (with five tries, a few percent did), and
    every decision is counted once. The route's own path, without HTTP, so that the
    two workers really race."""
    customers, _ = town
    with TestClient(create_app(services=services), client=PEER) as first:
        token = log_in(first, pharmacist)
    history = len(lookup_entries(services, "ph-lilas"))
    work = [person for _ in range(40) for person in customers]
    outcomes: list[str] = []
    lock = threading.Lock()
    origin = Origin(client_ip=PEER[0], user_agent="Logiciel de pharmacie/4.2")

    def check(worker: Services) -> None:
        while True:
            with lock:
                if not work:
                    return
                person = work.pop()
            try:
                with lookup_scope(worker.sessions) as session:
                    principal = worker.auth.authenticate(session, token)
                    guarded_lookup(
                        worker,
                        session,
                        caller_of(principal, origin),
                        raw_nir=person.nir.value,
                        raw_birth_date=person.birth_date.isoformat(),
                    )
                outcome = "ok"
            except RempartError as exc:
                outcome = exc.code
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=check, args=(w,)) for w in (services, second) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert "guard_unavailable" not in outcomes, Counter(outcomes)
    # Allowed, or stepped up at this pace: decided either way, and recorded.
    assert set(outcomes) <= {"ok", "insufficient_user_authentication"}, Counter(outcomes)
    entries = lookup_entries(services, "ph-lilas")[history:]
    assert len(entries) == len(outcomes)
    assert state_of(services).account("ph-lilas").day_lookups == len(entries)
