"""Login throttling, checked before any credential is verified.

Fixed-window counters keyed by purpose (failures per account, failures and
attempts per client address). In memory for the embedded default; in Redis
when ``REMPART_REDIS_URL`` is set, so that every worker and host shares them.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis

from rempart.errors import RempartError

__all__ = [
    "CounterStore",
    "LoginThrottle",
    "MemoryCounterStore",
    "RedisCounterStore",
    "ThrottleUnavailable",
    "Throttled",
]


class Throttled(RempartError):
    code = "too_many_attempts"
    status = 429

    def __init__(self, retry_after: int) -> None:
        retry_after = max(1, retry_after)
        super().__init__(
            f"too many attempts; retry in {retry_after} seconds",
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


class ThrottleUnavailable(RempartError):
    code = "throttle_unavailable"
    status = 503


class CounterStore(Protocol):
    def get(self, key: str) -> tuple[int, int]:
        """Current count and seconds until the window ends (0 when no window)."""

    def incr(self, key: str, window_seconds: int) -> int:
        """Add one, starting a window if none; return the new count."""

    def reset(self, key: str) -> None: ...


class MemoryCounterStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._counters: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def get(self, key: str) -> tuple[int, int]:
        with self._lock:
            count, ends = self._counters.get(key, (0, 0.0))
            remaining = ends - self._clock()
            if remaining <= 0:
                return 0, 0
            return count, int(remaining + 0.999)

    def incr(self, key: str, window_seconds: int) -> int:
        with self._lock:
            now = self._clock()
            count, ends = self._counters.get(key, (0, 0.0))
            if ends <= now:
                count, ends = 0, now + window_seconds
            self._counters[key] = (count + 1, ends)
            if len(self._counters) > 100_000:
                self._counters = {k: v for k, v in self._counters.items() if v[1] > now}
            return count + 1

    def reset(self, key: str) -> None:
        with self._lock:
            self._counters.pop(key, None)


class RedisCounterStore:
    def __init__(self, client: redis.Redis, prefix: str = "rempart:throttle:") -> None:
        self._client = client
        self._prefix = prefix

    def get(self, key: str) -> tuple[int, int]:
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.get(self._prefix + key)
            pipe.ttl(self._prefix + key)
            raw, ttl = pipe.execute()
        except redis.RedisError as exc:
            raise ThrottleUnavailable("the throttling store cannot be reached") from exc
        if raw is None or ttl is None or int(ttl) <= 0:
            return 0, 0
        return int(raw), int(ttl)

    def incr(self, key: str, window_seconds: int) -> int:
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.incr(self._prefix + key)
            pipe.expire(self._prefix + key, window_seconds, nx=True)
            count, _ = pipe.execute()
        except redis.RedisError as exc:
            raise ThrottleUnavailable("the throttling store cannot be reached") from exc
        return int(count)

    def reset(self, key: str) -> None:
        try:
            self._client.delete(self._prefix + key)
        except redis.RedisError as exc:
            raise ThrottleUnavailable("the throttling store cannot be reached") from exc


@dataclass(frozen=True)
class ThrottleLimits:
    window_seconds: int = 900
    account_failures: int = 5
    address_failures: int = 20
    address_attempts: int = 100


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:24]


class LoginThrottle:
    """Decides whether a login attempt may even be verified.

    Keys are hashes, so the store never holds logins or addresses in clear.
    Unknown logins are counted exactly like real ones: the answer must not tell
    them apart.
    """

    def __init__(self, store: CounterStore, limits: ThrottleLimits) -> None:
        self._store = store
        self.limits = limits

    def _keys(self, login: str, address: str) -> tuple[str, str, str]:
        return (
            f"fail:acct:{_digest(login.casefold())}",
            f"fail:addr:{_digest(address)}",
            f"try:addr:{_digest(address)}",
        )

    def check(self, login: str, address: str) -> None:
        """Raise :class:`Throttled` when any limit is reached; count the attempt otherwise."""
        account_key, address_fail_key, address_try_key = self._keys(login, address)
        limits = self.limits
        for key, limit in (
            (account_key, limits.account_failures),
            (address_fail_key, limits.address_failures),
            (address_try_key, limits.address_attempts),
        ):
            count, remaining = self._store.get(key)
            if count >= limit:
                raise Throttled(remaining)
        self._store.incr(address_try_key, limits.window_seconds)

    def failure(self, login: str, address: str) -> None:
        account_key, address_fail_key, _ = self._keys(login, address)
        self._store.incr(account_key, self.limits.window_seconds)
        self._store.incr(address_fail_key, self.limits.window_seconds)

    def success(self, login: str) -> None:
        account_key, _, _ = self._keys(login, "")
        self._store.reset(account_key)
