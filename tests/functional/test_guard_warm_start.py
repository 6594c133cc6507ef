"""The inline guard's warm start from the audit trail, on SQLite and PostgreSQL, with
its state in process and in the real Redis.

A pharmacy whose last week is in the trail (its own customers, and a few strangers
from far away a day, from the pharmacy's network) reads its usual few strangers after
a restart of the API (a new ``Services``): a cold guard steps it up, a warm one does
not, and a robot from a new network is still contained. Refused lookups in the trail
teach nothing; an empty trail leaves the guard as it was; two workers sharing Redis
learn the trail once.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
import threading
import time
from collections.abc import Iterator, MutableMapping
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from rempart.api import create_app
from rempart.audit.chain import AuditEntry
from rempart.config import Settings
from rempart.guard.redis_state import RedisState
from rempart.rights.service import ALL_CATEGORIES, Caller, lookup_entry
from rempart.services import Services
from rempart.store.engine import session_scope
from tests.functional.conftest import PEER, Login, Person, make_login
from tests.functional.test_guard_inline import (
    PHARMACY,
    ROBOT,
    _person,
    build_town,
    guard_redis,  # noqa: F401 - the fixture: state in process, or in Redis
    guard_settings,
    lookup,
    lookup_entries,
    totp_session,
)

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
HISTORY_DAYS = 7
STRANGERS_A_DAY = 5


@pytest.fixture
def settings(database_url: str, tmp_path: Path, guard_redis: dict[str, str]) -> Settings:  # noqa: F811
    return guard_settings(database_url, tmp_path, **guard_redis)


@dataclasses.dataclass(frozen=True)
class Town:
    customers: list[Person]
    strangers: list[Person]
    """Marseille residents: the week's unexplained lookups, then today's."""


@pytest.fixture
def town(services: Services) -> Town:
    customers, strangers = build_town(services)
    with session_scope(services.sessions) as session:
        for i in range(40):
            strangers.append(_person(session, 500 + i, "13", date(1945 + i, 1 + i % 12, 9)))
    return Town(customers, strangers)


@pytest.fixture
def pharmacist(services: Services) -> Login:
    return make_login(services, "pharmacie.lilas", account_id="ph-lilas")


def tomorrow() -> int:
    """Today's live day, in µs: tomorrow at 00:00 UTC (after any warm start's instant)."""
    return (int(time.time()) // 86_400 + 1) * DAY_US


def caller(origin: dict[str, str], session_id: str) -> Caller:
    return Caller(
        account_id="ph-lilas",
        session_id=session_id,
        acr="password+totp",
        client_ip=origin["X-Forwarded-For"],
        user_agent=origin["User-Agent"],
        channel="portal",
    )


def audited(
    services: Services, person: Person, ts_us: int, who: Caller, **fields: Any
) -> AuditEntry:
    """The trail's entry of an answered lookup (or of a refusal, with ``fields``)."""
    answered: dict[str, Any] = {
        "found": 1,
        "categories": ALL_CATEGORIES,
        "outcome": "ok",
        "decision": "allow",
    }
    entry = lookup_entry(
        who, person.nir.value, services.settings.keys.pseudonym_key, **(answered | fields)
    )
    return dataclasses.replace(entry, ts_us=ts_us)


def a_week_at_the_counter(services: Services, town: Town) -> int:
    """The pharmacy's last week in the trail (days -8 to -2 before the live day, 09:00 to
    17:00 UTC): its customers, and five far-away strangers a day. Returns how many."""
    entries = []
    first = tomorrow() - (HISTORY_DAYS + 1) * DAY_US
    strangers = iter(town.strangers)
    for day in range(HISTORY_DAYS):
        who = caller(PHARMACY, f"week-{day}")
        readers = [*town.customers, *itertools.islice(strangers, STRANGERS_A_DAY)]
        for i, person in enumerate(readers):
            at = first + day * DAY_US + 9 * HOUR_US + i * 8 * HOUR_US // len(readers)
            entries.append(audited(services, person, at, who))
    services.audit.append(entries)
    return len(entries)


def restarted(settings: Settings, **overrides: Any) -> Services:
    """The API started again: a new ``Services`` on the same database (and Redis)."""
    return Services(settings.model_copy(update=overrides))


def paced(services: Services, start_us: int) -> None:
    """The guard's clock: from ``start_us``, a lookup every ten minutes."""
    guard = services.guard
    assert guard is not None
    moments = itertools.count(start_us, 600_000_000)
    guard.clock = lambda: next(moments)


def warm_logs(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == "guard_warm_start"]


def todays_strangers(town: Town) -> list[Person]:
    return town.strangers[HISTORY_DAYS * STRANGERS_A_DAY :][:STRANGERS_A_DAY]


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
def test_after_a_restart_an_honest_pharmacy_reads_its_usual_strangers_and_a_robot_is_contained(
    settings: Settings, services: Services, pharmacist: Login, town: Town, warm: bool
) -> None:
    week = a_week_at_the_counter(services, town)
    api = restarted(settings, guard_history_days=21 if warm else 0)
    try:
        with capture_logs() as logs, TestClient(create_app(services=api), client=PEER) as client:
            paced(api, tomorrow() + 10 * HOUR_US)  # the guard is created: warm start
            if warm:
                (learnt,) = warm_logs(logs)
                assert learnt["outcome"] == "learnt"
                assert learnt["lookups"] == week
                assert learnt["accounts"] == 1
                assert learnt["seconds"] >= 0
            else:
                assert warm_logs(logs) == []
            token = totp_session(client, pharmacist)
            # The usual morning: two customers, then the day's five strangers.
            statuses = [lookup(client, token, p).status_code for p in town.customers[:2]]
            statuses += [lookup(client, token, p).status_code for p in todays_strangers(town)]
            if not warm:
                # A cold guard: the cold-start budget is spent by the fourth stranger.
                assert statuses[:5] == [200] * 5, statuses
                assert 401 in statuses[5:], statuses
                return
            assert statuses == [200] * 7, statuses

            # A robot on the same account from a new network: still contained.
            robot = totp_session(client, pharmacist, ahead=1)
            answers = [
                lookup(client, robot, person, ROBOT).status_code for person in town.strangers[-8:]
            ]
            assert 401 in answers[:3], answers
            assert answers.count(200) <= 1, answers
        # Nothing personal in the warm start's log line.
        text = repr(warm_logs(logs))
        for person in town.customers + town.strangers:
            assert person.nir.value not in text
    finally:
        api.close()


def test_refused_lookups_in_the_trail_teach_nothing(
    settings: Settings, services: Services, pharmacist: Login, town: Town
) -> None:
    week = a_week_at_the_counter(services, town)
    # The day before: a robot from its own network, refused (stepped up, then the
    # account suspended), and a guard outage: recorded, found = -1, nothing read.
    robot = caller(ROBOT, "robot")
    day = tomorrow() - 2 * DAY_US + 20 * HOUR_US
    refusals = [
        audited(
            services,
            person,
            day + i * 1_000_000,
            robot,
            found=-1,
            categories="",
            decision=decision,
            reasons="concurrent_new_network,unexplained,far_patient,new_network,new_device",
            outcome=outcome,
        )
        for i, (person, (decision, outcome)) in enumerate(
            zip(
                town.strangers[-10:],
                itertools.cycle(
                    [
                        ("step_up", "insufficient_user_authentication"),
                        ("deny", "account_suspended"),
                        ("error", "guard_unavailable"),
                    ]
                ),
                strict=False,
            )
        )
    ]
    services.audit.append(refusals)

    api = restarted(settings)
    try:
        with capture_logs() as logs, TestClient(create_app(services=api), client=PEER) as client:
            paced(api, tomorrow() + 10 * HOUR_US)
            (learnt,) = warm_logs(logs)
            assert learnt["lookups"] == week  # the refusals are not among them
            guard = api.guard
            assert guard is not None
            unit = "org-lilas"
            robot_place = guard.state.context(
                "ph-lilas",
                unit,
                town.strangers[-10].nir.value,
                network="198.51.100.0/24",
                device=ROBOT["User-Agent"],
                session_id="robot",
            )
            assert (robot_place.network_known, robot_place.device_known) == (0, 0)
            assert not robot_place.seen  # what the robot was refused was not read
            pharmacy = guard.state.context(
                "ph-lilas",
                unit,
                town.customers[0].nir.value,
                network="203.0.113.0/24",
                device=PHARMACY["User-Agent"],
                session_id="live",
            )
            assert pharmacy.network_known >= guard.config.network.known_after
            assert pharmacy.seen
            assert not guard.state.account("ph-lilas").suspended
            # The robot's place is new to the account: it weighs as such.
            token = totp_session(client, pharmacist)
            assert lookup(client, token, town.customers[0]).status_code == 200
            lookup(client, token, town.strangers[-1], ROBOT)
            reasons = lookup_entries(api, "ph-lilas")[-1].reasons.split(",")
            assert {"new_network", "new_device"} <= set(reasons), reasons
    finally:
        api.close()


def test_an_empty_trail_leaves_the_guard_as_it_was(
    settings: Settings, services: Services, pharmacist: Login, town: Town
) -> None:
    """No answered lookup in the window: no history, no peer groups, decided as
    with no warm start at all (``REMPART_GUARD_HISTORY_DAYS=0``)."""
    runs: list[list[int]] = []
    for days, ahead in ((21, 0), (0, 1)):
        api = restarted(settings, guard_history_days=days)
        try:
            with (
                capture_logs() as logs,
                TestClient(create_app(services=api), client=PEER) as client,
            ):
                paced(api, tomorrow() + 10 * HOUR_US)
                guard = api.guard
                assert guard is not None
                assert guard.learn_until is None
                assert guard.engine._history_until is None
                assert [e["outcome"] for e in warm_logs(logs)] == (["empty"] if days else [])
                token = totp_session(client, pharmacist, ahead=ahead)
                people = [town.customers[0], *town.strangers[:6]]
                runs.append([lookup(client, token, p).status_code for p in people])
            if api.settings.redis_url:  # a fresh state for the second run
                client_ = api.redis_client
                assert client_ is not None
                for key in client_.scan_iter(match=api.settings.guard_redis_prefix + "*"):
                    client_.delete(key)
        finally:
            api.close()
    assert runs[0] == runs[1], runs
    assert runs[0][:4] == [200] * 4
    assert 401 in runs[0][4:]


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"test:warm:{secrets.token_hex(6)}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


@pytest.mark.redis
@pytest.mark.parametrize("guard_redis", ["memory"], indirect=True)
def test_two_workers_sharing_redis_learn_the_trail_once(
    settings: Settings,
    services: Services,
    pharmacist: Login,
    town: Town,
    redis_url: str,
    redis_prefix: str,
) -> None:
    week = a_week_at_the_counter(services, town)
    shared = {"redis_url": redis_url, "guard_redis_prefix": redis_prefix}
    workers = [restarted(settings, **shared), restarted(settings, **shared)]
    try:
        # Both start at once: one learns the trail, the other waits for it.
        barrier = threading.Barrier(2)

        def start(worker: Services) -> None:
            barrier.wait()
            assert worker.guard is not None

        with capture_logs() as logs:
            threads = [threading.Thread(target=start, args=(w,)) for w in workers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        outcomes = sorted(e["outcome"] for e in warm_logs(logs))
        assert outcomes == ["another_worker", "learnt"], logs
        (learnt,) = [e for e in warm_logs(logs) if e["outcome"] == "learnt"]
        assert learnt["lookups"] == week
        client = redis.Redis.from_url(redis_url)
        assert client.exists(redis_prefix + "o:warm-start") == 1
        client.close()
        state = workers[0].guard_state
        assert isinstance(state, RedisState)
        record = state.account("ph-lilas")
        assert record.days == HISTORY_DAYS - 1  # learnt once (the last day folds tomorrow)
        version = record.version

        # The honest day through both workers: no step-up; the week learnt once.
        for worker in workers:
            paced(worker, tomorrow() + 10 * HOUR_US + secrets.randbelow(60) * 1_000_000)
        apps = [TestClient(create_app(services=w), client=PEER) for w in workers]
        with apps[0] as one, apps[1] as two:
            token = totp_session(one, pharmacist)
            people = [*town.customers[:2], *todays_strangers(town)]
            statuses = [
                lookup([one, two][i % 2], token, p).status_code for i, p in enumerate(people)
            ]
            assert statuses == [200] * len(people), statuses
        assert state.account("ph-lilas").days == HISTORY_DAYS
        assert state.account("ph-lilas").version > version

        # A third worker started later: the warm start is done for good.
        with capture_logs() as logs:
            late = restarted(settings, **shared)
            try:
                assert late.guard is not None
            finally:
                late.close()
        assert [e["outcome"] for e in warm_logs(logs)] == ["another_worker"]
    finally:
        for worker in workers:
            worker.close()
