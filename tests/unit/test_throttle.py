"""Login throttling over both counter stores: in memory and the real Redis server.

Time is a clock the tests advance; nothing sleeps, nothing measures time.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from rempart.auth.throttle import (
    CounterStore,
    LoginThrottle,
    MemoryCounterStore,
    RedisCounterStore,
    Throttled,
    ThrottleLimits,
    ThrottleUnavailable,
)
from rempart.config import ConfigError, load_settings
from rempart.logs import configure_logging

SECRET = b"throttle-test-secret-0123456789"

LIMITS = ThrottleLimits(
    window_seconds=600,
    address_attempts=60,
    address_failures=20,
    address_logins=10,
    address_failed_logins=4,
    network_logins=30,
    network_failed_logins=10,
    account_failures=3,
    account_wide_failures=6,
    backoff_base_seconds=10,
    backoff_cap_seconds=300,
    account_wide_cap_seconds=60,
    failure_decay_seconds=600,
    global_failures_per_minute=1000,
    under_attack_divisor=2,
)


class FakeClock:
    def __init__(self) -> None:
        # Wall-clock-like values (Redis keeps the timestamps), one second into a minute.
        self.now = float(int(time.time()) // 60 * 60 + 1)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> Iterator[CounterStore]:
    if request.param == "memory":
        yield MemoryCounterStore()
        return
    url: str = request.getfixturevalue("redis_url")
    client = redis.Redis.from_url(url)
    prefix = f"test:throttle:{secrets.token_hex(6)}:"
    yield RedisCounterStore(client, prefix=prefix)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


def make(store: CounterStore, clock: FakeClock, limits: ThrottleLimits = LIMITS) -> LoginThrottle:
    return LoginThrottle(store, limits, secret=SECRET, clock=clock)


def fail(throttle: LoginThrottle, login: str, address: str) -> None:
    """One attempt that the credentials check then refuses."""
    throttle.check(login, address)
    throttle.failure(login, address)


def refused(throttle: LoginThrottle, login: str, address: str) -> int:
    with pytest.raises(Throttled) as caught:
        throttle.check(login, address)
    assert caught.value.headers["Retry-After"] == str(caught.value.retry_after)
    return caught.value.retry_after


# -- per account: exponential back-off, never a lock -------------------------------------


def test_failures_on_one_account_back_off_that_source_only(
    store: CounterStore, clock: FakeClock
) -> None:
    throttle = make(store, clock)
    for _ in range(3):
        fail(throttle, "alice", "10.0.0.1")
    assert refused(throttle, "alice", "10.0.0.1") == 10
    throttle.check("alice", "10.0.1.2")  # the same account from elsewhere
    throttle.check("bob", "10.0.0.1")  # another account from the same address


def test_back_off_doubles_up_to_the_cap_and_then_lets_the_attempt_through(
    store: CounterStore, clock: FakeClock
) -> None:
    throttle = make(store, clock)
    for _ in range(3):
        fail(throttle, "alice", "10.0.0.1")
    waits = []
    for _ in range(8):
        wait = refused(throttle, "alice", "10.0.0.1")
        waits.append(wait)
        clock.advance(wait)
        fail(throttle, "alice", "10.0.0.1")  # the wait is over: the attempt is verified
    assert waits == [10, 20, 40, 80, 160, 300, 300, 300]


def test_failures_decay_so_a_quiet_account_gets_its_free_attempts_back(
    store: CounterStore, clock: FakeClock
) -> None:
    throttle = make(store, clock)
    for _ in range(3):
        fail(throttle, "alice", "10.0.0.1")
    for _ in range(2):
        clock.advance(refused(throttle, "alice", "10.0.0.1"))
        fail(throttle, "alice", "10.0.0.1")
    clock.advance(5 * 600)  # one failure forgotten per 600 s: all five are
    for _ in range(3):
        fail(throttle, "alice", "10.0.0.1")
    assert refused(throttle, "alice", "10.0.0.1") == 10


def test_a_success_clears_its_source_back_off(store: CounterStore, clock: FakeClock) -> None:
    throttle = make(store, clock)
    for _ in range(2):
        fail(throttle, "alice", "10.0.0.1")
    throttle.check("alice", "10.0.0.1")
    throttle.success("alice", "10.0.0.1")
    for _ in range(2):
        fail(throttle, "alice", "10.0.0.1")
    throttle.check("alice", "10.0.0.1")


def test_many_sources_on_one_account_meet_the_account_wide_back_off(
    store: CounterStore, clock: FakeClock
) -> None:
    throttle = make(store, clock)
    for i in range(6):  # one failure each from six networks: no source limit is reached
        fail(throttle, "alice", f"198.51.{i}.9")
    wait = refused(throttle, "alice", "203.0.113.50")  # a seventh source
    assert 0 < wait <= LIMITS.account_wide_cap_seconds
    for i in range(10):  # the guesser keeps going: each wait stays under the low cap
        clock.advance(wait)
        fail(throttle, "alice", f"203.0.{i}.50")
        wait = refused(throttle, "alice", "192.0.2.200")
        assert wait <= LIMITS.account_wide_cap_seconds


def test_an_attacker_elsewhere_cannot_lock_the_owner_out_of_their_own_source(
    store: CounterStore, clock: FakeClock
) -> None:
    throttle = make(store, clock)
    throttle.check("alice", "192.0.2.10")
    throttle.success("alice", "192.0.2.10")  # the pharmacy alice works from
    for i in range(40):
        with contextlib.suppress(Throttled):  # the account-wide back-off soon refuses
            fail(throttle, "alice", f"198.51.{i}.9")
    assert refused(throttle, "alice", "203.0.113.50") <= LIMITS.account_wide_cap_seconds
    throttle.check("alice", "192.0.2.10")  # alice at her pharmacy is not held up at all
    throttle.success("alice", "192.0.2.10")


def test_an_attacker_sharing_the_owner_address_holds_them_at_most_the_cap(
    store: CounterStore, clock: FakeClock
) -> None:
    throttle = make(store, clock)
    throttle.check("alice", "192.0.2.10")
    throttle.success("alice", "192.0.2.10")
    for _ in range(3):
        fail(throttle, "alice", "192.0.2.10")
    waits = []
    for _ in range(10):
        wait = refused(throttle, "alice", "192.0.2.10")
        waits.append(wait)
        clock.advance(wait)
        fail(throttle, "alice", "192.0.2.10")  # the attacker takes the turn, and fails
    assert max(waits) == LIMITS.backoff_cap_seconds
    clock.advance(refused(throttle, "alice", "192.0.2.10"))
    throttle.check("alice", "192.0.2.10")  # the owner's turn comes within the cap
    throttle.success("alice", "192.0.2.10")
    throttle.check("alice", "192.0.2.10")


# -- per source: the stuffing signature --------------------------------------------------


def test_one_failure_each_on_many_logins_stops_the_source(
    store: CounterStore, clock: FakeClock
) -> None:
    throttle = make(store, clock)
    for i in range(4):
        fail(throttle, f"victim{i}", "192.0.2.7")
    wait = refused(throttle, "victim4", "192.0.2.7")
    assert 0 < wait <= LIMITS.window_seconds
    refused(throttle, "victim0", "192.0.2.7")  # the whole source waits, not only new logins
    throttle.check("victim4", "203.0.113.8")  # another network is unaffected
    clock.advance(wait)
    throttle.check("victim4", "192.0.2.7")  # the oldest failure aged out: one place again


def test_many_logins_tried_from_one_address_hold_up_new_logins_only(
    store: CounterStore, clock: FakeClock
) -> None:
    # Probing which leaked passwords are right: no failure at the password step.
    throttle = make(store, clock)
    for i in range(10):
        throttle.check(f"user{i}", "192.0.2.7")
    refused(throttle, "user10", "192.0.2.7")
    throttle.check("user3", "192.0.2.7")  # those already working there carry on


def test_rotating_addresses_in_one_network_is_caught(store: CounterStore, clock: FakeClock) -> None:
    throttle = make(store, clock)
    logins = iter(f"victim{i}" for i in range(100))
    for host in range(1, 4):  # three addresses of one /24, three logins each: 9 < 10
        for _ in range(3):
            fail(throttle, next(logins), f"192.0.2.{host}")
    fail(throttle, next(logins), "192.0.2.4")
    refused(throttle, next(logins), "192.0.2.5")  # a fresh address, the same network
    throttle.check(next(logins), "192.0.3.5")


def test_an_ipv6_slash_64_is_one_address(store: CounterStore, clock: FakeClock) -> None:
    throttle = make(store, clock)
    for i in range(4):
        fail(throttle, f"victim{i}", f"2001:db8:0:1::{i + 1:x}")
    refused(throttle, "victim9", "2001:db8:0:1:ffff::9")
    throttle.check("victim9", "2001:db8:0:2::1")


def test_address_failures_and_attempts_are_capped(store: CounterStore, clock: FakeClock) -> None:
    limits = ThrottleLimits(
        address_attempts=5, address_failures=3, account_failures=50, account_wide_failures=50
    )
    throttle = make(store, clock, limits)
    for _ in range(3):
        fail(throttle, "alice", "10.0.0.1")
    refused(throttle, "alice", "10.0.0.1")
    other = make(store, clock, limits)
    for _ in range(5):
        other.check("bob", "10.9.9.9")
    refused(other, "bob", "10.9.9.9")


def test_unknown_and_real_logins_meet_the_same_limits(
    store: CounterStore, clock: FakeClock
) -> None:
    throttle = make(store, clock)
    throttle.check("real.user", "192.0.2.10")
    throttle.success("real.user", "192.0.2.10")  # a real account, known somewhere else
    waits = {}
    for login in ("real.user", "no.such.user"):
        for _ in range(3):
            fail(throttle, login, "198.51.100.1")
        waits[login] = refused(throttle, login, "198.51.100.1")
    assert waits["real.user"] == waits["no.such.user"]


# -- global: a rate of failures ----------------------------------------------------------


def test_global_failure_rate_tightens_source_limits_and_alerts_once(
    store: CounterStore,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info")
    caplog.set_level(logging.INFO)
    limits = ThrottleLimits(
        address_failed_logins=4, global_failures_per_minute=12, under_attack_divisor=2
    )
    throttle = make(store, clock, limits)
    fail(throttle, "v0", "203.0.113.1")
    fail(throttle, "v1", "203.0.113.1")
    throttle.check("v2", "203.0.113.1")  # two distinct failures: fine in normal times
    # A botnet: one failure per address, across many networks.
    for i in range(16):
        fail(throttle, f"bot-target{i}", f"10.{i}.0.1")
    refused(throttle, "v2", "203.0.113.1")  # under attack: 4 // 2 = 2 distinct failures
    clock.advance(60)
    refused(throttle, "v2", "203.0.113.1")  # the previous minute still counts
    clock.advance(60)
    throttle.check("v2", "203.0.113.1")  # the attack has subsided
    captured = capsys.readouterr()  # configure_logging writes to the current stderr
    everything = "\n".join(r.getMessage() for r in caplog.records) + captured.out + captured.err
    alerts = [line for line in everything.splitlines() if "throttle_global_alert" in line]
    assert len(alerts) == 1
    assert "10.3.0.1" not in alerts[0]
    assert "bot-target" not in alerts[0]


# -- the store ---------------------------------------------------------------------------


def test_concurrent_workers_cannot_race_past_a_limit(store: CounterStore, clock: FakeClock) -> None:
    throttle = make(store, clock)
    allowed: list[str] = []
    start = threading.Barrier(16)

    def try_login(i: int) -> None:
        start.wait()
        try:
            throttle.check(f"user{i}", "192.0.2.99")
        except Throttled:
            return
        allowed.append(f"user{i}")

    threads = [threading.Thread(target=try_login, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == LIMITS.address_logins


@pytest.mark.redis
def test_redis_holds_neither_logins_nor_addresses(redis_url: str, clock: FakeClock) -> None:
    client = redis.Redis.from_url(redis_url)
    prefix = f"test:throttle:{secrets.token_hex(6)}:"
    throttle = make(RedisCounterStore(client, prefix=prefix), clock)
    try:
        fail(throttle, "claire.martin@example.fr", "192.0.2.77")
        throttle.check("claire.martin@example.fr", "198.51.100.3")
        throttle.success("claire.martin@example.fr", "198.51.100.3")
        stored = []
        for key in client.scan_iter(match=prefix + "*"):
            stored.append(key)
            kind = client.type(key)
            if kind == b"zset":
                stored += client.zrange(key, 0, -1)
            elif kind == b"hash":
                stored += [*client.hkeys(key), *client.hvals(key)]
            else:
                stored.append(client.get(key) or b"")
        assert len(stored) > 5
        dump = b"\n".join(stored)
        for clear in (b"claire", b"example.fr", b"192.0.2", b"198.51.100"):
            assert clear not in dump
    finally:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        client.close()


def test_memory_store_stays_bounded(clock: FakeClock) -> None:
    store = MemoryCounterStore(max_keys=200)
    throttle = make(store, clock)
    for i in range(300):
        fail(throttle, f"user{i}", f"10.{i // 250}.{i % 250}.1")
    assert len(store) <= 200


def test_redis_down_fails_closed(clock: FakeClock) -> None:
    # Built as Services builds it; nothing listens on port 1.
    client = redis.Redis.from_url(
        "redis://127.0.0.1:1/0", socket_timeout=1.0, socket_connect_timeout=1.0
    )
    throttle = make(RedisCounterStore(client), clock)
    with pytest.raises(ThrottleUnavailable):
        throttle.check("alice", "10.0.0.1")
    with pytest.raises(ThrottleUnavailable):
        throttle.failure("alice", "10.0.0.1")
    with pytest.raises(ThrottleUnavailable):
        throttle.success("alice", "10.0.0.1")


# -- configuration -----------------------------------------------------------------------


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="positive"):
        ThrottleLimits(account_failures=0)
    with pytest.raises(ValueError, match="caps"):
        ThrottleLimits(backoff_base_seconds=120, account_wide_cap_seconds=60)
    with pytest.raises(ValueError, match="secret"):
        LoginThrottle(MemoryCounterStore(), LIMITS, secret=b"short")


def test_settings_refuse_a_lock_disguised_as_back_off() -> None:
    with pytest.raises(ConfigError, match="THROTTLE_BACKOFF_CAP_SECONDS"):
        load_settings(throttle_backoff_cap_seconds=86400)
    with pytest.raises(ConfigError, match="BACKOFF_BASE"):
        load_settings(throttle_backoff_base_seconds=200, throttle_account_wide_cap_seconds=100)
    limits = ThrottleLimits.from_settings(load_settings(throttle_address_failed_logins=3))
    assert limits.address_failed_logins == 3
