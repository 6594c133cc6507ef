"""Login throttling over both counter stores: in memory and the real Redis server."""

from __future__ import annotations

import secrets
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


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> Iterator[CounterStore]:
    if request.param == "memory":
        yield MemoryCounterStore()
        return
    url: str = request.getfixturevalue("redis_url")
    client = redis.Redis.from_url(url)
    yield RedisCounterStore(client, prefix=f"test:{secrets.token_hex(4)}:")
    client.close()


LIMITS = ThrottleLimits(
    window_seconds=60, account_failures=3, address_failures=5, address_attempts=8
)


def test_account_failures_throttle_that_account_only(store: CounterStore) -> None:
    throttle = LoginThrottle(store, LIMITS)
    for _ in range(3):
        throttle.check("alice", "10.0.0.1")
        throttle.failure("alice", "10.0.0.1")
    with pytest.raises(Throttled) as caught:
        throttle.check("alice", "10.0.0.2")
    assert 0 < caught.value.retry_after <= 60
    assert caught.value.headers["Retry-After"] == str(caught.value.retry_after)
    throttle.check("bob", "10.0.0.2")


def test_address_failures_across_accounts_throttle_the_address(store: CounterStore) -> None:
    throttle = LoginThrottle(store, LIMITS)
    for i in range(5):
        throttle.check(f"victim{i}", "192.0.2.7")
        throttle.failure(f"victim{i}", "192.0.2.7")
    with pytest.raises(Throttled):
        throttle.check("victim99", "192.0.2.7")
    throttle.check("victim99", "192.0.2.8")


def test_address_attempts_are_capped_even_when_they_succeed(store: CounterStore) -> None:
    throttle = LoginThrottle(store, LIMITS)
    for _ in range(8):
        throttle.check("alice", "198.51.100.1")
    with pytest.raises(Throttled):
        throttle.check("alice", "198.51.100.1")


def test_success_clears_the_account_counter(store: CounterStore) -> None:
    throttle = LoginThrottle(store, LIMITS)
    for _ in range(2):
        throttle.failure("alice", "10.0.0.1")
    throttle.success("alice")
    for _ in range(2):
        throttle.failure("alice", "10.0.0.1")
    throttle.check("alice", "10.0.0.1")


def test_memory_window_expires() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(MemoryCounterStore(clock=clock), LIMITS)
    for _ in range(3):
        throttle.failure("alice", "10.0.0.1")
    with pytest.raises(Throttled):
        throttle.check("alice", "10.0.0.1")
    clock.now += 61
    throttle.check("alice", "10.0.0.1")


def test_redis_down_fails_closed() -> None:
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    throttle = LoginThrottle(RedisCounterStore(client), LIMITS)
    with pytest.raises(ThrottleUnavailable):
        throttle.check("alice", "10.0.0.1")
