"""The guard's state in Redis: several workers or hosts share one memory.

Same interface and answers as :class:`~rempart.guard.state.MemoryState`, with:

* **atomic updates.** An account record is one hash (``version`` and the record
  as JSON); :meth:`RedisState.save_account` is a Lua script that refuses a save
  over a newer version (:class:`~rempart.guard.state.StaleRecord`, the engine
  decides again from a fresh read) and bumps it. :meth:`RedisState.remember` and
  :meth:`RedisState.add_claim` are Lua scripts too: all of a decision's
  registry writes land together, and increments are never lost between workers.
* **one round trip** for the registry facts of a lookup (:meth:`RedisState.context`
  reads them in one Lua script, cheaper to send and parse than a pipeline of its
  eleven reads); the inline driver reads the account record with them
  (:meth:`RedisState.prefetch`), so that a decision costs three round trips: that
  read, the record's save, the registry writes.
* **no personal data in clear.** Persons (NIR), networks (address prefixes),
  devices (user agents) and session ids are keyed hashes (keyed BLAKE2b, 128 bits,
  with a secret ``key``); so are the persons in a record's pending conversions and
  the networks and devices a record names (:meth:`RedisState.token`).
  Accounts and units (professional identifiers) stay readable for operators.
* **TTLs** on time-bounded state: a session's first network lives as long as a
  session can (``session_ttl``); the registries expire after ``registry_ttl``
  seconds without a write (``None``: never). Account records never expire (a
  suspension must outlive any idle period).
* **fail closed.** Any :class:`redis.RedisError` becomes :class:`StateUnavailable`
  (the inline driver answers 503 ``guard_unavailable``): an outage never reads as
  an empty state.
* **coordination between workers** (:mod:`rempart.guard.inline` says how it is
  used): a one-time task run by one worker only (:meth:`RedisState.begin_once`,
  a lease taken with ``SET NX EX`` and a marker once done: the end of the learning
  window), and the mark that the guard's suspension of an account is committed
  in the database (:meth:`RedisState.hold_suspension`).

Keys (``P`` the prefix, ``h()`` the keyed hash)::

    P a:{account}     hash    version, record (JSON)
    P r:{account}     set     h(nir) read with allow
    P n:{account}     hash    h(network) -> vouches
    P d:{account}     hash    h(device) -> vouches
    P c:{unit}        hash    h(nir) -> latest claim (µs)
    P nu:{h(network)} set     units seen on the network (capped)
    P du:{h(device)}  set     units seen on the device (capped)
    P pn, P pd        set     popular networks / devices (frozen at the end of history)
    P s:{h(session)}  string  h(first network)
    P o:{name}        string  a one-time task is done (its time, µs)
    P ol:{name}       string  the lease of the worker running it (expires)
    P h:{account}     string  the guard's suspension is committed in the database
    P g:{day}:{group} set     accounts of a peer group over budget at home that day

The registries' scripts touch keys of several accounts and networks: a Redis
Cluster would need hash tags per script call (not done; one server or a
replicated primary).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from typing import Any, NamedTuple

import redis

from rempart.guard.state import AccountState, Context, OnceStatus, StaleRecord

__all__ = ["OnceStatus", "RedisState", "StateUnavailable"]

_SAVE = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if stored ~= tonumber(ARGV[1]) then
  return -1
end
redis.call('HSET', KEYS[1], 'version', stored + 1, 'record', ARGV[2])
return stored + 1
"""

# KEYS: record, claims, read, networks, devices, network units, device units,
#       popular networks, popular devices, session
# ARGV: h(nir), h(network), h(device), unit
# One reply: the record's [version, blob], then the lookup's registry facts.
_READ = """
return {
  redis.call('HMGET', KEYS[1], 'version', 'record'),
  redis.call('HGET', KEYS[2], ARGV[1]),
  redis.call('SISMEMBER', KEYS[3], ARGV[1]),
  redis.call('HGET', KEYS[4], ARGV[2]),
  redis.call('HGET', KEYS[5], ARGV[3]),
  redis.call('SCARD', KEYS[6]),
  redis.call('SISMEMBER', KEYS[6], ARGV[4]),
  redis.call('SCARD', KEYS[7]),
  redis.call('SISMEMBER', KEYS[7], ARGV[4]),
  redis.call('SISMEMBER', KEYS[8], ARGV[2]),
  redis.call('SISMEMBER', KEYS[9], ARGV[3]),
  redis.call('GET', KEYS[10]),
}
"""

# KEYS: read, networks, devices, network units, device units, session
# ARGV: h(nir) or '', read (0/1), vouch, unit, cap, h(network), h(device),
#       session ttl, registry ttl (0: none)
_REMEMBER_BODY = """
local ttl = tonumber(A[9])
if A[2] == '1' and A[1] ~= '' then
  redis.call('SADD', K[1], A[1])
  if ttl > 0 then redis.call('EXPIRE', K[1], ttl) end
end
local vouch = tonumber(A[3])
if vouch ~= 0 then
  redis.call('HINCRBY', K[2], A[6], vouch)
  redis.call('HINCRBY', K[3], A[7], vouch)
  if ttl > 0 then
    redis.call('EXPIRE', K[2], ttl)
    redis.call('EXPIRE', K[3], ttl)
  end
end
local cap = tonumber(A[5])
for i = 4, 5 do
  local size = redis.call('SCARD', K[i])
  if size == 0 or size < cap then
    redis.call('SADD', K[i], A[4])
  end
  if ttl > 0 then redis.call('EXPIRE', K[i], ttl) end
end
redis.call('SET', K[6], A[6], 'NX', 'EX', tonumber(A[8]))
"""
_REMEMBER = "local K, A = KEYS, ARGV\n" + _REMEMBER_BODY + "return 1\n"

# A decision's writes together (RedisState.deferred_writes): the record's versioned
# save, then, only if it was not stale, the registry writes.
# KEYS: record, then _REMEMBER's. ARGV: expected version, record, then _REMEMBER's.
_SAVE_AND_REMEMBER = (
    """
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if stored ~= tonumber(ARGV[1]) then
  return -1
end
redis.call('HSET', KEYS[1], 'version', stored + 1, 'record', ARGV[2])
local K = {KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]}
local A = {}
for i = 3, #ARGV do A[i - 2] = ARGV[i] end
"""
    + _REMEMBER_BODY
    + "return stored + 1\n"
)

# KEYS: done marker, lease. ARGV: owner, lease seconds.
_BEGIN_ONCE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'done'
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', tonumber(ARGV[2])) then
  return 'run'
end
if redis.call('GET', KEYS[2]) == ARGV[1] then
  return 'run'
end
return 'wait'
"""

# KEYS: done marker, lease. ARGV: owner, when (µs).
_END_ONCE = """
redis.call('SET', KEYS[1], ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return 1
"""

# KEYS: a key. ARGV: the value it must hold to be deleted.
_DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_CLAIM = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current or tonumber(ARGV[2]) > tonumber(current) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
"""

# The record's fields kept in the JSON blob (the version has its own hash field).
_FIELDS = tuple(f.name for f in fields(AccountState) if f.name != "version")
_HASH_MARK = "~"
_HASH_LEN = 1 + 32


class StateUnavailable(Exception):
    """The shared guard state could not be read or written: the guard cannot decide."""


class _Ahead(threading.local):
    """Per thread: what :meth:`RedisState.prefetch` read for the next decision (used
    once), and the writes :meth:`RedisState.deferred_writes` holds back."""

    record: tuple[str, AccountState] | None = None
    context: tuple[tuple[str, ...], Context] | None = None
    deferred: list[_Write] | None = None


class _Write(NamedTuple):
    """A held-back write: a record's save (``record`` set) or a decision's registry
    writes (``keys`` and ``args`` of the remember script)."""

    account_id: str
    record: AccountState | None
    keys: list[str]
    args: list[Any]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisState:
    """The guard's state in Redis, shared by workers (see the module's docstring).

    ``client`` is a :class:`redis.Redis` (either ``decode_responses`` setting);
    ``key`` the secret of the keyed hashes (the same for every worker sharing the
    state); ``prefix`` starts every key.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        key: bytes,
        prefix: str = "rempart:guard:",
        session_ttl: int = 7 * 24 * 3600,
        registry_ttl: int | None = 400 * 24 * 3600,
    ) -> None:
        if not key:
            raise ValueError("RedisState needs a secret key for its hashes")
        if session_ttl < 1 or (registry_ttl is not None and registry_ttl < 1):
            raise ValueError("TTLs are positive numbers of seconds")
        self._client = client
        # BLAKE2b takes a key of at most 64 bytes: a longer secret is hashed down.
        self._key = key if len(key) <= 64 else hashlib.blake2b(key).digest()
        self.prefix = prefix
        self._session_ttl = session_ttl
        self._registry_ttl = registry_ttl or 0
        self._save = client.register_script(_SAVE)
        self._read = client.register_script(_READ)
        self._remember = client.register_script(_REMEMBER)
        self._save_and_remember = client.register_script(_SAVE_AND_REMEMBER)
        self._claim = client.register_script(_CLAIM)
        self._begin_once = client.register_script(_BEGIN_ONCE)
        self._end_once = client.register_script(_END_ONCE)
        self._delete_if = client.register_script(_DELETE_IF)
        self._ahead = _Ahead()

    # -- helpers --------------------------------------------------------------------------

    def _h(self, value: str) -> str:
        digest = hashlib.blake2b(value.encode(), key=self._key, digest_size=16).hexdigest()
        return _HASH_MARK + digest

    def token(self, text: str) -> str:
        """A network or device as an account record keeps it: its keyed hash."""
        return self._h(text)

    def _h_nir(self, nir: str) -> str:
        """A person's hash; a person already hashed (a record's pending key) is kept."""
        if len(nir) == _HASH_LEN and nir.startswith(_HASH_MARK):
            return nir
        return self._h(nir)

    @contextmanager
    def _redis(self) -> Iterator[None]:
        try:
            if self._ahead.deferred:  # a call to Redis first sends the writes held back
                self._send_deferred()
            yield
        except redis.RedisError as exc:
            raise StateUnavailable(f"guard state store failed: {type(exc).__name__}") from exc

    def _encode(self, record: AccountState) -> str:
        data: dict[str, Any] = {name: getattr(record, name) for name in _FIELDS}
        data["pending"] = [
            [ts, f"{unit}|{self._h_nir(nir)}"]
            for ts, (unit, _, nir) in ((ts, key.partition("|")) for ts, key in record.pending)
        ]
        return json.dumps(data, separators=(",", ":"))

    @staticmethod
    def _decode(version: int, blob: str) -> AccountState:
        data = json.loads(blob)
        data["pending"] = deque((int(ts), str(key)) for ts, key in data["pending"])
        return AccountState(version=version, **data)

    # -- the account record ---------------------------------------------------------------

    def account(self, account_id: str) -> AccountState:
        ahead = self._ahead.record
        if ahead is not None:
            self._ahead.record = None
            if ahead[0] == account_id:
                return ahead[1]
        with self._redis():
            version, blob = self._client.hmget(self.prefix + "a:" + account_id, "version", "record")
        return self._record(version, blob)

    def _record(self, version: Any, blob: Any) -> AccountState:
        text = _text(blob)
        if text is None:
            return AccountState()
        return self._decode(int(_text(version) or 0), text)

    def save_account(self, account_id: str, record: AccountState) -> None:
        self._ahead.record = None
        deferred = self._ahead.deferred
        if deferred is not None:
            deferred.append(_Write(account_id, record, [], []))
            return
        with self._redis():
            result = self._save(
                keys=[self.prefix + "a:" + account_id], args=[record.version, self._encode(record)]
            )
        if int(result) < 0:
            raise StaleRecord(account_id)
        record.version = int(result)

    @contextmanager
    def deferred_writes(self) -> Iterator[None]:
        """Hold back this thread's :meth:`save_account` and :meth:`remember` calls until
        the block ends, then send them: a decision's record save followed by its
        registry writes goes as one script, in one round trip, and lands whole or not
        at all (a stale record: :class:`StaleRecord` when the block ends, nothing
        written; decide again). Any other call in the block (a read above all) first
        sends what is held, in order, so it reads what was written; an exception in
        the block drops what is held."""
        if self._ahead.deferred is not None:
            yield  # already inside a block: its end sends
            return
        self._ahead.deferred = []
        try:
            yield
            self._send_deferred()
        finally:
            self._ahead.deferred = None

    def _send_deferred(self) -> None:
        held = self._ahead.deferred
        if not held:
            return
        writes = list(held)
        held.clear()
        if (
            len(writes) == 2  # the usual decision: one save, then one remember
            and writes[0].record is not None
            and writes[1].record is None
        ):
            save, registry = writes
            assert save.record is not None
            with self._redis():
                result = self._save_and_remember(
                    keys=[self.prefix + "a:" + save.account_id, *registry.keys],
                    args=[save.record.version, self._encode(save.record), *registry.args],
                )
            if int(result) < 0:
                raise StaleRecord(save.account_id)
            save.record.version = int(result)
            return
        for write in writes:  # in order; a stale save stops the rest
            with self._redis():
                if write.record is not None:
                    result = self._save(
                        keys=[self.prefix + "a:" + write.account_id],
                        args=[write.record.version, self._encode(write.record)],
                    )
                    if int(result) < 0:
                        raise StaleRecord(write.account_id)
                    write.record.version = int(result)
                else:
                    self._remember(keys=write.keys, args=write.args)

    def context(
        self,
        account_id: str,
        unit: str,
        nir: str,
        *,
        network: str,
        device: str,
        session_id: str,
    ) -> Context:
        ahead = self._ahead.context
        if ahead is not None:
            self._ahead.context = None
            if ahead[0] == (account_id, unit, nir, network, device, session_id):
                return ahead[1]
        return self._read_lookup(account_id, unit, nir, network, device, session_id)[1]

    def prefetch(
        self,
        account_id: str,
        unit: str,
        nir: str,
        *,
        network: str,
        device: str,
        session_id: str,
    ) -> AccountState:
        """The account record and the lookup's registry facts in one round trip.

        Returns the record; the next :meth:`account` of ``account_id`` and the next
        :meth:`context` with the same arguments, in this thread, answer from this
        read instead of Redis (once each). A write in between (:meth:`save_account`,
        :meth:`remember`, :meth:`add_claim`) drops what it could make stale. The
        inline driver calls it under its lock, just before the engine decides.
        """
        record, context = self._read_lookup(account_id, unit, nir, network, device, session_id)
        self._ahead.record = (account_id, record)
        self._ahead.context = ((account_id, unit, nir, network, device, session_id), context)
        return record

    def _read_lookup(  # noqa: PLR0917
        self,
        account_id: str,
        unit: str,
        nir: str,
        network: str,
        device: str,
        session_id: str,
    ) -> tuple[AccountState, Context]:
        p = self.prefix
        h_net = self._h(network)
        h_dev = self._h(device)
        h_nir = self._h_nir(nir)
        with self._redis():
            replies = self._read(
                keys=[
                    p + "a:" + account_id,
                    p + "c:" + unit,
                    p + "r:" + account_id,
                    p + "n:" + account_id,
                    p + "d:" + account_id,
                    p + "nu:" + h_net,
                    p + "du:" + h_dev,
                    p + "pn",
                    p + "pd",
                    p + "s:" + self._h(session_id),
                ],
                args=[h_nir, h_net, h_dev, unit],
            )
        version, blob = replies[0]
        return self._record(version, blob), self._context(replies[1:], h_net, network)

    @staticmethod
    def _context(replies: list[Any], h_net: str, network: str) -> Context:
        (claim, seen, net_known, dev_known, net_units, net_mine, dev_units, dev_mine) = replies[:8]
        net_popular, dev_popular, first = replies[8:]
        first_net = _text(first)
        session_network = None
        if first_net is not None:
            # The caller's network when it is the session's first, else an opaque hash
            # (never equal to a network in clear).
            session_network = network if first_net == h_net else first_net
        claim_text = _text(claim)
        return Context(
            -1 if claim_text is None else int(claim_text),
            bool(seen),
            int(_text(net_known) or 0),
            int(_text(dev_known) or 0),
            int(net_units) - bool(net_mine),
            int(dev_units) - bool(dev_mine),
            bool(net_popular),
            bool(dev_popular),
            session_network,
        )

    def remember(
        self,
        account_id: str,
        unit: str,
        nir: str | None,
        *,
        network: str,
        device: str,
        session_id: str,
        read: bool,
        vouch: int,
        cap: int,
    ) -> None:
        self._ahead.context = None
        p = self.prefix
        h_net = self._h(network)
        h_dev = self._h(device)
        keys = [
            p + "r:" + account_id,
            p + "n:" + account_id,
            p + "d:" + account_id,
            p + "nu:" + h_net,
            p + "du:" + h_dev,
            p + "s:" + self._h(session_id),
        ]
        args: list[Any] = [
            "" if nir is None else self._h_nir(nir),
            1 if read else 0,
            vouch,
            unit,
            cap,
            h_net,
            h_dev,
            self._session_ttl,
            self._registry_ttl,
        ]
        deferred = self._ahead.deferred
        if deferred is not None:
            deferred.append(_Write(account_id, None, keys, args))
            return
        with self._redis():
            self._remember(keys=keys, args=args)

    def add_claim(self, unit: str, nir: str, ts: int) -> None:
        self._ahead.context = None
        with self._redis():
            self._claim(
                keys=[self.prefix + "c:" + unit], args=[self._h_nir(nir), ts, self._registry_ttl]
            )

    def claimed_at(self, unit: str, nir: str) -> int:
        with self._redis():
            found = self._client.hget(self.prefix + "c:" + unit, self._h_nir(nir))
        text = _text(found)
        return -1 if text is None else int(text)

    def freeze_popular(self, popular_units: int) -> None:
        p = self.prefix
        with self._redis():
            for kind, target in (("nu:", "pn"), ("du:", "pd")):
                start = len(p) + len(kind)
                keys = [
                    _text(k) or ""
                    for k in self._client.scan_iter(match=_glob_escape(p + kind) + "*", count=1000)
                ]
                pipe = self._client.pipeline(transaction=False)
                for k in keys:
                    pipe.scard(k)
                sizes = pipe.execute()
                popular = [
                    k[start:] for k, size in zip(keys, sizes, strict=True) if size >= popular_units
                ]
                swap = self._client.pipeline(transaction=True)
                swap.delete(p + target)
                if popular:
                    swap.sadd(p + target, *popular)
                swap.execute()

    def surging(self, group: str, day: int, account_id: str) -> tuple[int, int]:
        key = f"{self.prefix}g:{day}:{group}"
        with self._redis():
            pipe = self._client.pipeline(transaction=True)
            pipe.sadd(key, account_id)
            pipe.expire(key, 2 * 24 * 3600)
            pipe.scard(key)
            pipe.scard(f"{self.prefix}g:{day - 1}:{group}")
            replies = pipe.execute()
        return int(replies[2]), int(replies[3])

    # -- coordination between workers ----------------------------------------------------

    def begin_once(self, name: str, owner: str, *, lease_seconds: int) -> OnceStatus:
        """A task that one worker only must run (``name`` names it for good): ``"done"``
        if some worker finished it; ``"run"`` if ``owner`` holds (or just took) the
        lease, for ``lease_seconds``; else ``"wait"`` (another worker runs it; should it
        die, its lease expires and another worker takes over)."""
        with self._redis():
            status = self._begin_once(
                keys=[self.prefix + "o:" + name, self.prefix + "ol:" + name],
                args=[owner, lease_seconds],
            )
        text = _text(status)
        if text not in ("run", "wait", "done"):
            raise StateUnavailable(f"unexpected answer to begin_once: {text!r}")
        return text  # type: ignore[return-value]

    def end_once(self, name: str, owner: str, *, ts: int) -> None:
        """Marks the task done (for every worker, for good) and gives the lease back."""
        with self._redis():
            self._end_once(
                keys=[self.prefix + "o:" + name, self.prefix + "ol:" + name], args=[owner, ts]
            )

    def held_suspension(self, account_id: str) -> str | None:
        """The mark of the guard's suspension of the account, once committed (None: none)."""
        with self._redis():
            return _text(self._client.get(self.prefix + "h:" + account_id))

    def hold_suspension(self, account_id: str, mark: str) -> None:
        """The guard's suspension of the account is committed in the database."""
        with self._redis():
            self._client.set(self.prefix + "h:" + account_id, mark)

    def release_suspension(self, account_id: str, mark: str) -> None:
        """The suspension marked ``mark`` was lifted (a later one's mark is kept)."""
        with self._redis():
            self._delete_if(keys=[self.prefix + "h:" + account_id], args=[mark])
