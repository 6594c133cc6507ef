"""Login throttling against credential stuffing, checked before any credential is verified.

The threat
----------
In 2022 a robot held leaked e-mail passwords and tried them on the portal. A
stuffing run makes *one* attempt per account across a long list of accounts,
so a per-account lockout never fires; and a per-account lockout is itself a
weapon, since anyone can lock a professional out by failing on their login.
The throttle therefore watches three scales at once.

Per source (the stuffing signature)
    From one *address* (an IPv4 address; an IPv6 ``/64``, which is one
    subscriber since any customer can rotate through its 2^64 addresses) and
    from one *network* (an IPv4 ``/24``; an IPv6 ``/48``), over a sliding
    window:

    - distinct logins that **failed**: a stuffing run fails on almost every
      account it tries, while a clumsy professional fails on one login only.
      Past the limit the whole source waits until its oldest failure ages out.
    - distinct logins **tried**, failed or not: a correct leaked password
      (the very case that matters) is not a failure at the password step, so
      probing which passwords are valid is caught here too. Past the limit
      only *new* logins wait, so the professionals already working behind a
      shared address (a pharmacy, a hospital's NAT) carry on.
    - plain counts of attempts and of failures per address (fixed windows).

Per account: exponential back-off, never a lock
    After ``account_failures`` failures on one account *from one source*,
    each further attempt from that source waits ``base * 2**k`` seconds
    (``k`` = failures beyond the free ones), capped at ``backoff_cap_seconds``.
    Failures decay (one forgotten per ``failure_decay_seconds``); a
    successful login from that source clears its back-off. So a robot
    hammering one account from one place is slowed to one guess per cap
    interval, and its failures do not touch the owner's other sources.

    A distributed guesser (many sources, one account) meets the softer
    *account-wide* back-off: after ``account_wide_failures`` failures from
    sources the account never logged in from, every such source waits, with a
    low cap (``account_wide_cap_seconds``). Sources where the account logged
    in successfully before (the last few, for 90 days, kept per account) are
    exempt from the account-wide back-off and do not feed it: an attacker
    elsewhere cannot lock the owner out of their own pharmacy at all, and an
    owner travelling waits at most the low cap. Only an attacker sharing the
    owner's exact source (same address) reaches the owner, and then for at
    most ``backoff_cap_seconds`` per attempt (or until the window ends, if it
    also exhausts that address's own limits). A success does not clear the
    account-wide count: that would hand a distributed guesser fresh free
    failures each time the owner logs in; the count decays instead.

Global: a rate of failures
    Failures across the service are counted per minute. Above
    ``global_failures_per_minute`` (in the current or the previous minute) the
    service is *under attack*: every per-source limit is divided by
    ``under_attack_divisor``, and ``throttle_global_alert`` is logged once per
    minute window (the worker whose failure crosses the threshold logs it; no
    personal data). A botnet spreading one attempt per address still gets
    through per-source limits; that is what the alert (and the mandatory
    second factor) is for.

Properties
----------
- Unknown logins are counted exactly like real ones and the refusal is the
  same whatever limit tripped: neither the answer nor ``Retry-After`` tells
  whether a login exists.
- Keys and members are keyed hashes (HMAC with a secret) of logins, addresses
  and networks: the store never holds them in clear, and they cannot be
  reversed by hashing the IPv4 space.
- Each operation is atomic: in Redis one Lua script checks every limit and
  records the attempt, so concurrent workers cannot race past a limit; in
  memory a lock does the same, and memory is bounded (every set is capped at
  its limit, the number of keys at ``max_keys``).
- Time comes from an injectable clock (wall clock by default: the timestamps
  stored in Redis are compared across hosts, so keep them NTP-synchronised; a
  skew of seconds is harmless at these scales). Redis expiry only collects
  garbage; the decisions use the stored timestamps.
- Fail closed: when Redis cannot be reached, logins answer 503
  (:class:`ThrottleUnavailable`), never an unthrottled attempt.

With Redis Cluster, give the store a prefix holding a hash tag (for example
``rempart:{throttle}:``) so that a script's keys share one slot.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import redis
import structlog

from rempart.errors import RempartError
from rempart.ops.metrics import count_login_throttled

if TYPE_CHECKING:
    from rempart.config import Settings

__all__ = [
    "Alarm",
    "Backoff",
    "CounterStore",
    "Distinct",
    "KnownSource",
    "LoginThrottle",
    "MemoryCounterStore",
    "RedisCounterStore",
    "Source",
    "ThrottleLimits",
    "ThrottleUnavailable",
    "Throttled",
    "Verdict",
    "Window",
    "source_of",
]


def _log() -> structlog.typing.FilteringBoundLogger:
    # A fresh proxy per (rare) event: follows the logging configuration of the moment.
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("rempart.auth.throttle")
    return logger


_GLOBAL_WINDOW = 60
_MAX_EXPONENT = 30
_MAX_EXTRA_FAILURES = 40


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

    def __init__(self, message: str = "the throttling store cannot be reached") -> None:
        super().__init__(message)


# -- rules: what a store checks and records, the same for memory and Redis ---------------


@dataclass(frozen=True)
class Window:
    """A fixed-window counter: blocks once ``limit`` is reached until the window ends."""

    name: str
    key: str
    limit: int
    tight_limit: int  # the limit while the service is under attack
    seconds: int
    count: bool  # an allowed attempt adds one (otherwise only failures do)


@dataclass(frozen=True)
class Distinct:
    """Distinct members seen in a sliding window (a sorted set scored by last sight)."""

    name: str
    key: str
    member: str
    limit: int
    tight_limit: int
    seconds: int
    count: bool  # an allowed attempt adds its member (otherwise only failures do)
    new_only: bool  # when full, only members not yet in the set are blocked


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off after ``free`` failures, capped, decaying with time.

    Skipped (neither checked nor fed) when ``known_member`` is one of the recent
    members of ``known_key``: the account's own sources.
    """

    name: str
    key: str
    free: int
    base: int
    cap: int
    decay: int
    known_key: str
    known_member: str  # "" when no source is exempt
    known_seconds: int


Rule = Window | Distinct | Backoff


@dataclass(frozen=True)
class Alarm:
    """Failures across the service, counted per minute (one key per minute)."""

    current_key: str
    previous_key: str
    threshold: int


@dataclass(frozen=True)
class KnownSource:
    """A source the account logged in from: kept ``seconds``, the last ``keep`` of them."""

    key: str
    member: str
    keep: int
    seconds: int


@dataclass(frozen=True)
class Verdict:
    wait: int  # 0: allowed (and recorded); otherwise seconds until the attempt may be made
    rule: str  # the rule that imposed the wait ("" when allowed)
    under_attack: bool


class CounterStore(Protocol):
    def attempt(self, now: float, alarm: Alarm, rules: Sequence[Rule]) -> Verdict:
        """Atomically: the longest wait any rule imposes; if none, record the attempt."""

    def fail(self, now: float, alarm: Alarm, rules: Sequence[Rule]) -> int:
        """Atomically record a failure in every rule; return this minute's global count."""

    def succeed(self, now: float, forget: Sequence[str], known: KnownSource) -> None:
        """Delete the ``forget`` keys and remember the source as the account's own."""


def _backoff_delay(rule: Backoff, failures: int) -> float:
    return float(min(rule.cap, rule.base * 2 ** min(failures - rule.free, _MAX_EXPONENT)))


def _ceil(seconds: float) -> int:
    return max(1, math.ceil(seconds - 1e-9))


class MemoryCounterStore:
    """The embedded store: one process, a lock, bounded memory."""

    def __init__(self, max_keys: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._max_keys = max_keys
        self._windows: dict[str, tuple[float, int]] = {}
        self._sets: dict[str, dict[str, float]] = {}
        self._backoffs: dict[str, tuple[int, float]] = {}
        self._counts: dict[str, int] = {}
        self._expires: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._expires)

    # Garbage collection by expiry, like Redis keys (decisions never rely on it).

    def _alive(self, key: str, now: float) -> bool:
        expires = self._expires.get(key)
        if expires is None:
            return False
        if expires <= now:
            self._drop(key)
            return False
        return True

    def _drop(self, key: str) -> None:
        self._expires.pop(key, None)
        self._windows.pop(key, None)
        self._sets.pop(key, None)
        self._backoffs.pop(key, None)
        self._counts.pop(key, None)

    def _touch(self, key: str, now: float, ttl: float) -> None:
        self._expires[key] = now + ttl
        if len(self._expires) > self._max_keys:
            for stale in [k for k, until in self._expires.items() if until <= now]:
                self._drop(stale)
        if len(self._expires) > self._max_keys:
            # Still full: forget the entries closest to expiry (the least state lost).
            by_expiry = sorted(self._expires, key=self._expires.__getitem__)
            for victim in by_expiry[: len(by_expiry) - self._max_keys * 9 // 10]:
                self._drop(victim)

    # The rules, mirroring the Lua script below.

    def _window(self, rule: Window, now: float) -> tuple[float, int] | None:
        if not self._alive(rule.key, now):
            return None
        start, count = self._windows[rule.key]
        if now >= start + rule.seconds:
            return None
        return start, count

    def _incr_window(self, rule: Window, now: float) -> int:
        current = self._window(rule, now)
        if current is None:
            self._windows[rule.key] = (now, 1)
            self._touch(rule.key, now, rule.seconds)
            return 1
        start, count = current
        self._windows[rule.key] = (start, count + 1)
        return count + 1

    def _live_set(self, key: str, now: float, seconds: float) -> dict[str, float]:
        if not self._alive(key, now):
            return {}
        members = self._sets[key]
        for member in [m for m, seen in members.items() if seen <= now - seconds]:
            del members[member]
        return members

    def _is_known(self, rule: Backoff, now: float) -> bool:
        if not rule.known_member:
            return False
        seen = self._live_set(rule.known_key, now, rule.known_seconds).get(rule.known_member)
        return seen is not None

    def _backoff(self, rule: Backoff, now: float) -> tuple[int, float]:
        if not self._alive(rule.key, now):
            return 0, 0.0
        failures, last = self._backoffs[rule.key]
        elapsed = max(0.0, now - last)
        return max(0, failures - math.floor(elapsed / rule.decay)), last

    def _wait(self, rule: Rule, now: float, attack: bool) -> float:
        if isinstance(rule, Window):
            return self._window_wait(rule, now, attack)
        if isinstance(rule, Distinct):
            return self._distinct_wait(rule, now, attack)
        return self._backoff_wait(rule, now)

    def _window_wait(self, rule: Window, now: float, attack: bool) -> float:
        current = self._window(rule, now)
        limit = rule.tight_limit if attack else rule.limit
        if current is not None and current[1] >= limit:
            return current[0] + rule.seconds - now
        return 0.0

    def _distinct_wait(self, rule: Distinct, now: float, attack: bool) -> float:
        members = self._live_set(rule.key, now, rule.seconds)
        limit = rule.tight_limit if attack else rule.limit
        if (rule.new_only and rule.member in members) or len(members) < limit:
            return 0.0
        # Until enough of the oldest members age out to leave one place.
        seen = sorted(members.values())
        return seen[len(seen) - limit] + rule.seconds - now

    def _backoff_wait(self, rule: Backoff, now: float) -> float:
        if self._is_known(rule, now):
            return 0.0
        failures, last = self._backoff(rule, now)
        if failures < rule.free:
            return 0.0
        return last + _backoff_delay(rule, failures) - now

    def _add(self, rule: Distinct, now: float, trim: bool) -> None:
        members = self._live_set(rule.key, now, rule.seconds)
        members[rule.member] = now
        if trim and len(members) > rule.limit:
            for member in sorted(members, key=members.__getitem__)[: len(members) - rule.limit]:
                del members[member]
        self._sets[rule.key] = members
        self._touch(rule.key, now, rule.seconds)

    def _under_attack(self, now: float, alarm: Alarm) -> bool:
        counts = [
            self._counts.get(key, 0) if self._alive(key, now) else 0
            for key in (alarm.current_key, alarm.previous_key)
        ]
        return alarm.threshold > 0 and max(counts) >= alarm.threshold

    def attempt(self, now: float, alarm: Alarm, rules: Sequence[Rule]) -> Verdict:
        with self._lock:
            attack = self._under_attack(now, alarm)
            wait, culprit = 0.0, ""
            for rule in rules:
                rule_wait = self._wait(rule, now, attack)
                if rule_wait > wait:
                    wait, culprit = rule_wait, rule.name
            if wait > 0:
                return Verdict(_ceil(wait), culprit, attack)
            for rule in rules:
                if isinstance(rule, Window) and rule.count:
                    self._incr_window(rule, now)
                elif isinstance(rule, Distinct) and rule.count:
                    self._add(rule, now, trim=False)
            return Verdict(0, "", attack)

    def fail(self, now: float, alarm: Alarm, rules: Sequence[Rule]) -> int:
        with self._lock:
            for rule in rules:
                if isinstance(rule, Window):
                    self._incr_window(rule, now)
                elif isinstance(rule, Distinct):
                    self._add(rule, now, trim=True)
                elif not self._is_known(rule, now):
                    failures, _ = self._backoff(rule, now)
                    failures = min(failures + 1, rule.free + _MAX_EXTRA_FAILURES)
                    self._backoffs[rule.key] = (failures, now)
                    self._touch(rule.key, now, max(rule.cap, rule.decay * failures))
            count = (
                self._counts.get(alarm.current_key, 0) if self._alive(alarm.current_key, now) else 0
            ) + 1
            self._counts[alarm.current_key] = count
            self._touch(alarm.current_key, now, 3 * _GLOBAL_WINDOW)
            return count

    def succeed(self, now: float, forget: Sequence[str], known: KnownSource) -> None:
        with self._lock:
            for key in forget:
                self._drop(key)
            members = self._live_set(known.key, now, known.seconds)
            members[known.member] = now
            if len(members) > known.keep:
                for member in sorted(members, key=members.__getitem__)[: len(members) - known.keep]:
                    del members[member]
            self._sets[known.key] = members
            self._touch(known.key, now, known.seconds)


# One script for both operations, so that the rules are parsed in one place. Numbers
# that go back into Redis are the caller's strings (ARGV), never re-formatted floats.
_LUA = """
local mode = ARGV[1]
local now = tonumber(ARGV[2])
local nowstr = ARGV[2]
local threshold = tonumber(ARGV[3])

local rules = {}
local ki, ai = 3, 4
while ai <= #ARGV do
  local kind = ARGV[ai]
  local r = {kind = kind, key = KEYS[ki]}
  if kind == 'W' then
    r.limit = tonumber(ARGV[ai + 1]); r.tight = tonumber(ARGV[ai + 2])
    r.seconds = tonumber(ARGV[ai + 3]); r.count = ARGV[ai + 4] == '1'
    ai = ai + 5; ki = ki + 1
  elseif kind == 'D' then
    r.member = ARGV[ai + 1]; r.limit = tonumber(ARGV[ai + 2]); r.tight = tonumber(ARGV[ai + 3])
    r.seconds = tonumber(ARGV[ai + 4]); r.count = ARGV[ai + 5] == '1'
    r.new_only = ARGV[ai + 6] == '1'
    ai = ai + 7; ki = ki + 1
  elseif kind == 'B' then
    r.free = tonumber(ARGV[ai + 1]); r.base = tonumber(ARGV[ai + 2])
    r.cap = tonumber(ARGV[ai + 3]); r.decay = tonumber(ARGV[ai + 4])
    r.known_member = ARGV[ai + 5]; r.known_seconds = tonumber(ARGV[ai + 6])
    r.known_key = KEYS[ki + 1]
    ai = ai + 7; ki = ki + 2
  else
    return redis.error_reply('unknown throttle rule')
  end
  rules[#rules + 1] = r
end

local function window(r)
  local v = redis.call('HMGET', r.key, 's', 'n')
  local s, n = tonumber(v[1]), tonumber(v[2])
  if s == nil or n == nil or now >= s + r.seconds then return nil, 0 end
  return s, n
end

local function incr_window(r)
  local s = window(r)
  if s == nil then
    redis.call('DEL', r.key)
    redis.call('HSET', r.key, 's', nowstr, 'n', 1)
    redis.call('PEXPIRE', r.key, math.ceil(r.seconds * 1000))
    return 1
  end
  return redis.call('HINCRBY', r.key, 'n', 1)
end

local function live_set(key, seconds)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', tostring(now - seconds))
end

local function is_known(r)
  if r.known_member == '' then return false end
  local seen = redis.call('ZSCORE', r.known_key, r.known_member)
  if not seen then return false end
  return tonumber(seen) > now - r.known_seconds
end

local function backoff(r)
  local v = redis.call('HMGET', r.key, 'n', 't')
  local n, t = tonumber(v[1]), tonumber(v[2])
  if n == nil or t == nil then return 0, 0 end
  local elapsed = math.max(0, now - t)
  return math.max(0, n - math.floor(elapsed / r.decay)), t
end

local function wait_of(r, attack)
  if r.kind == 'W' then
    local s, n = window(r)
    local limit = attack and r.tight or r.limit
    if s ~= nil and n >= limit then return s + r.seconds - now end
    return 0
  elseif r.kind == 'D' then
    live_set(r.key, r.seconds)
    if r.new_only and redis.call('ZSCORE', r.key, r.member) then return 0 end
    local limit = attack and r.tight or r.limit
    local card = redis.call('ZCARD', r.key)
    if card < limit then return 0 end
    local entry = redis.call('ZRANGE', r.key, card - limit, card - limit, 'WITHSCORES')
    return tonumber(entry[2]) + r.seconds - now
  else
    if is_known(r) then return 0 end
    local n, t = backoff(r)
    if n < r.free then return 0 end
    local delay = math.min(r.cap, r.base * 2 ^ math.min(n - r.free, @MAX_EXPONENT@))
    return t + delay - now
  end
end

local function add(r, trim)
  live_set(r.key, r.seconds)
  redis.call('ZADD', r.key, nowstr, r.member)
  if trim then
    local extra = redis.call('ZCARD', r.key) - r.limit
    if extra > 0 then redis.call('ZREMRANGEBYRANK', r.key, 0, extra - 1) end
  end
  redis.call('PEXPIRE', r.key, math.ceil(r.seconds * 1000))
end

if mode == 'attempt' then
  local attack = false
  if threshold > 0 then
    local current = tonumber(redis.call('GET', KEYS[1]) or '0')
    local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
    attack = current >= threshold or previous >= threshold
  end
  local wait, culprit = 0, 0
  for i, r in ipairs(rules) do
    local w = wait_of(r, attack)
    if w > wait then wait, culprit = w, i end
  end
  local flag = attack and 1 or 0
  if wait > 0 then return {tostring(wait), culprit, flag} end
  for _, r in ipairs(rules) do
    if r.kind == 'W' and r.count then incr_window(r)
    elseif r.kind == 'D' and r.count then add(r, false) end
  end
  return {'0', 0, flag}
end

for _, r in ipairs(rules) do
  if r.kind == 'W' then
    incr_window(r)
  elseif r.kind == 'D' then
    add(r, true)
  elseif not is_known(r) then
    local n = math.min(backoff(r) + 1, r.free + @MAX_EXTRA@)
    redis.call('HSET', r.key, 'n', n, 't', nowstr)
    redis.call('PEXPIRE', r.key, math.ceil(math.max(r.cap, r.decay * n) * 1000))
  end
end
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], @GLOBAL_TTL@)
return count
"""
for _name, _value in (
    ("@MAX_EXPONENT@", _MAX_EXPONENT),
    ("@MAX_EXTRA@", _MAX_EXTRA_FAILURES),
    ("@GLOBAL_TTL@", 3 * _GLOBAL_WINDOW),
):
    _LUA = _LUA.replace(_name, str(_value))


class RedisCounterStore:
    """Shared by every worker and host; each operation is one atomic Lua script."""

    def __init__(self, client: redis.Redis, prefix: str = "rempart:throttle:") -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_LUA)

    def _run(self, mode: str, now: float, alarm: Alarm, rules: Sequence[Rule]) -> object:
        keys = [self._prefix + alarm.current_key, self._prefix + alarm.previous_key]
        args: list[str | int] = [mode, repr(now), alarm.threshold]
        for rule in rules:
            keys.append(self._prefix + rule.key)
            if isinstance(rule, Window):
                args += ["W", rule.limit, rule.tight_limit, rule.seconds, int(rule.count)]
            elif isinstance(rule, Distinct):
                args += ["D", rule.member, rule.limit, rule.tight_limit, rule.seconds]
                args += [int(rule.count), int(rule.new_only)]
            else:
                keys.append(self._prefix + rule.known_key)
                args += ["B", rule.free, rule.base, rule.cap, rule.decay]
                args += [rule.known_member, rule.known_seconds]
        try:
            return self._script(keys=keys, args=args)
        except redis.RedisError as exc:
            raise ThrottleUnavailable() from exc

    def attempt(self, now: float, alarm: Alarm, rules: Sequence[Rule]) -> Verdict:
        raw = self._run("attempt", now, alarm, rules)
        if not isinstance(raw, list) or len(raw) != 3:
            raise ThrottleUnavailable("the throttling store gave an unexpected answer")
        wait, culprit, attack = float(raw[0]), int(raw[1]), bool(int(raw[2]))
        if wait <= 0:
            return Verdict(0, "", attack)
        return Verdict(_ceil(wait), rules[culprit - 1].name, attack)

    def fail(self, now: float, alarm: Alarm, rules: Sequence[Rule]) -> int:
        raw = self._run("fail", now, alarm, rules)
        if not isinstance(raw, int):
            raise ThrottleUnavailable("the throttling store gave an unexpected answer")
        return raw

    def succeed(self, now: float, forget: Sequence[str], known: KnownSource) -> None:
        key = self._prefix + known.key
        try:
            pipe = self._client.pipeline(transaction=True)
            for stale in forget:
                pipe.delete(self._prefix + stale)
            pipe.zremrangebyscore(key, "-inf", now - known.seconds)
            pipe.zadd(key, {known.member: now})
            pipe.zremrangebyrank(key, 0, -(known.keep + 1))
            pipe.expire(key, known.seconds)
            pipe.execute()
        except redis.RedisError as exc:
            raise ThrottleUnavailable() from exc


# -- the policy -------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottleLimits:
    window_seconds: int = 900
    address_attempts: int = 100
    address_failures: int = 20
    address_logins: int = 20
    address_failed_logins: int = 8
    network_logins: int = 60
    network_failed_logins: int = 24
    account_failures: int = 5
    account_wide_failures: int = 10
    backoff_base_seconds: int = 30
    backoff_cap_seconds: int = 900
    account_wide_cap_seconds: int = 300
    failure_decay_seconds: int = 900
    global_failures_per_minute: int = 120
    under_attack_divisor: int = 4
    known_source_days: int = 90
    known_sources_kept: int = 8

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"throttle limit {name} must be a positive integer")
        if self.backoff_base_seconds > min(self.backoff_cap_seconds, self.account_wide_cap_seconds):
            raise ValueError("the back-off base cannot exceed its caps")

    @classmethod
    def from_settings(cls, settings: Settings) -> ThrottleLimits:
        s = settings
        return cls(
            window_seconds=s.throttle_window_seconds,
            address_attempts=s.throttle_address_attempts,
            address_failures=s.throttle_address_failures,
            address_logins=s.throttle_address_logins,
            address_failed_logins=s.throttle_address_failed_logins,
            network_logins=s.throttle_network_logins,
            network_failed_logins=s.throttle_network_failed_logins,
            account_failures=s.throttle_account_failures,
            account_wide_failures=s.throttle_account_wide_failures,
            backoff_base_seconds=s.throttle_backoff_base_seconds,
            backoff_cap_seconds=s.throttle_backoff_cap_seconds,
            account_wide_cap_seconds=s.throttle_account_wide_cap_seconds,
            failure_decay_seconds=s.throttle_failure_decay_seconds,
            global_failures_per_minute=s.throttle_global_failures_per_minute,
            under_attack_divisor=s.throttle_under_attack_divisor,
        )

    def tight(self, limit: int) -> int:
        return max(1, limit // self.under_attack_divisor)


@dataclass(frozen=True)
class Source:
    """Where an attempt comes from: one subscriber (address) and its network."""

    address: str
    network: str


def source_of(address: str) -> Source:
    """The address (IPv4 ``/32``, IPv6 ``/64``) and network (``/24``, ``/48``) of a client.

    >>> source_of("192.0.2.7")
    Source(address='192.0.2.7/32', network='192.0.2.0/24')
    >>> source_of("2001:db8:1:2:3::9")
    Source(address='2001:db8:1:2::/64', network='2001:db8:1::/48')
    >>> source_of("::ffff:192.0.2.7").address
    '192.0.2.7/32'
    >>> source_of("testclient")
    Source(address='host:testclient', network='host:testclient')
    """
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return Source(address=f"host:{address[:255]}", network=f"host:{address[:255]}")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    own, wide = (32, 24) if ip.version == 4 else (64, 48)
    return Source(
        address=str(ipaddress.ip_network(f"{ip}/{own}", strict=False)),
        network=str(ipaddress.ip_network(f"{ip}/{wide}", strict=False)),
    )


class LoginThrottle:
    """Decides whether a login attempt may even be verified; see the module docstring."""

    def __init__(
        self,
        store: CounterStore,
        limits: ThrottleLimits,
        *,
        secret: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the throttle's pseudonym secret must hold at least 16 bytes")
        self._store = store
        self._secret = secret
        self.limits = limits
        self.clock = clock

    def _pseudonym(self, kind: str, value: str) -> str:
        mac = hmac.new(
            self._secret, f"{kind}\x00{value}".encode("utf-8", "replace"), hashlib.sha256
        )
        return mac.hexdigest()[:24]

    def _names(self, login: str, address: str) -> tuple[str, str, str]:
        source = source_of(address)
        return (
            self._pseudonym("login", login.casefold()),
            self._pseudonym("address", source.address),
            self._pseudonym("network", source.network),
        )

    def _alarm(self, now: float) -> Alarm:
        minute = int(now // _GLOBAL_WINDOW)
        return Alarm(
            current_key=f"g:{minute}",
            previous_key=f"g:{minute - 1}",
            threshold=self.limits.global_failures_per_minute,
        )

    def _rules(self, login: str, address: str) -> list[Rule]:
        who, addr, net = self._names(login, address)
        lim = self.limits

        def window(name: str, kind: str, limit: int, count: bool) -> Window:
            return Window(
                name=name,
                key=f"a:{addr}:{kind}",
                limit=limit,
                tight_limit=lim.tight(limit),
                seconds=lim.window_seconds,
                count=count,
            )

        def distinct(name: str, key: str, limit: int, *, tried: bool) -> Distinct:
            # tried: every attempt counts, full blocks new logins only (shared addresses);
            # otherwise failures count, and full blocks the whole source (stuffing).
            return Distinct(
                name=name,
                key=key,
                member=who,
                limit=limit,
                tight_limit=lim.tight(limit),
                seconds=lim.window_seconds,
                count=tried,
                new_only=tried,
            )

        def backoff(name: str, key: str, free: int, cap: int, exempt: str) -> Backoff:
            return Backoff(
                name=name,
                key=key,
                free=free,
                base=lim.backoff_base_seconds,
                cap=cap,
                decay=lim.failure_decay_seconds,
                known_key=f"u:{who}:k",
                known_member=exempt,
                known_seconds=lim.known_source_days * 86400,
            )

        return [
            window("address_attempts", "n", lim.address_attempts, count=True),
            window("address_failures", "f", lim.address_failures, count=False),
            distinct("address_logins", f"a:{addr}:l", lim.address_logins, tried=True),
            distinct(
                "address_failed_logins", f"a:{addr}:x", lim.address_failed_logins, tried=False
            ),
            distinct("network_logins", f"n:{net}:l", lim.network_logins, tried=True),
            distinct("network_failed_logins", f"n:{net}:x", lim.network_failed_logins, tried=False),
            # This source's back-off: strict, and the account's own sources are not exempt.
            backoff(
                "account_backoff",
                f"u:{who}:s:{addr}",
                lim.account_failures,
                lim.backoff_cap_seconds,
                exempt="",
            ),
            # Across the sources the account never logged in from: softer, capped low.
            backoff(
                "account_wide_backoff",
                f"u:{who}:b",
                lim.account_wide_failures,
                lim.account_wide_cap_seconds,
                exempt=addr,
            ),
        ]

    def check(self, login: str, address: str) -> None:
        """Raise :class:`Throttled` when a limit is reached; count the attempt otherwise."""
        now = self.clock()
        verdict = self._store.attempt(now, self._alarm(now), self._rules(login, address))
        if verdict.wait > 0:
            _log().info(
                "login_throttled",
                rule=verdict.rule,
                retry_after=verdict.wait,
                under_attack=verdict.under_attack,
            )
            count_login_throttled(verdict.rule)
            raise Throttled(verdict.wait)

    def failure(self, login: str, address: str) -> None:
        """A verified failure (wrong password, unknown login, wrong second factor)."""
        now = self.clock()
        alarm = self._alarm(now)
        failing = [
            rule
            for rule in self._rules(login, address)
            if not (isinstance(rule, Window) and rule.count)
            and not (isinstance(rule, Distinct) and rule.count)
        ]
        count = self._store.fail(now, alarm, failing)
        if count == alarm.threshold:
            _log().warning(
                "throttle_global_alert",
                failures_this_minute=count,
                threshold=alarm.threshold,
                window_start=int(now // _GLOBAL_WINDOW) * _GLOBAL_WINDOW,
                per_source_limits_divided_by=self.limits.under_attack_divisor,
            )

    def success(self, login: str, address: str) -> None:
        """A completed login: clears this source's back-off and remembers the source."""
        now = self.clock()
        who, addr, _ = self._names(login, address)
        limits = self.limits
        self._store.succeed(
            now,
            forget=[f"u:{who}:s:{addr}"],
            known=KnownSource(
                key=f"u:{who}:k",
                member=addr,
                keep=limits.known_sources_kept,
                seconds=limits.known_source_days * 86400,
            ),
        )
