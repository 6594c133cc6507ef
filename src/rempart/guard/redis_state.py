"""The guard's state in Redis: several workers or hosts share one memory.

Same interface and answers as :class:`~rempart.guard.state.MemoryState`, with:

* **atomic updates.** An account record is one hash (``version`` and the record
  as JSON); :meth:`RedisState.save_account` is a Lua script that refuses a save
  over a newer version (:class:`~rempart.guard.state.StaleRecord`, the engine
  decides again from a fresh read) and bumps it. :meth:`RedisState.remember` and
  :meth:`RedisState.add_claim` are Lua scripts too: all of a decision's
  registry writes land together, and increments are never lost between workers.
* **one round trip** for the registry facts of a lookup (:meth:`RedisState.context`
  pipelines its reads).
* **no personal data in clear.** Persons (NIR), networks (address prefixes),
  devices (user agents) and session ids are keyed hashes (keyed BLAKE2b, 128 bits,
  with a secret ``key``); so are the persons in a record's pending conversions.
  Accounts and units (professional identifiers) stay readable for operators.
* **TTLs** on time-bounded state: a session's first network lives as long as a
  session can (``session_ttl``); the registries expire after ``registry_ttl``
  seconds without a write (``None``: never). Account records never expire (a
  suspension must outlive any idle period).
* **fail closed.** Any :class:`redis.RedisError` becomes :class:`StateUnavailable`
  (the inline driver answers 503 ``guard_unavailable``): an outage never reads as
  an empty state.

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

The registries' scripts touch keys of several accounts and networks: a Redis
Cluster would need hash tags per script call (not done; one server or a
replicated primary).
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from typing import Any

import redis

from rempart.guard.state import AccountState, Context, StaleRecord

__all__ = ["RedisState", "StateUnavailable"]

_SAVE = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if stored ~= tonumber(ARGV[1]) then
  return -1
end
redis.call('HSET', KEYS[1], 'version', stored + 1, 'record', ARGV[2])
return stored + 1
"""

# KEYS: read, networks, devices, network units, device units, session
# ARGV: h(nir) or '', read (0/1), vouch, unit, cap, h(network), h(device),
#       session ttl, registry ttl (0: none)
_REMEMBER = """
local ttl = tonumber(ARGV[9])
if ARGV[2] == '1' and ARGV[1] ~= '' then
  redis.call('SADD', KEYS[1], ARGV[1])
  if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
end
local vouch = tonumber(ARGV[3])
if vouch ~= 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[6], vouch)
  redis.call('HINCRBY', KEYS[3], ARGV[7], vouch)
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[2], ttl)
    redis.call('EXPIRE', KEYS[3], ttl)
  end
end
local cap = tonumber(ARGV[5])
for i = 4, 5 do
  local size = redis.call('SCARD', KEYS[i])
  if size == 0 or size < cap then
    redis.call('SADD', KEYS[i], ARGV[4])
  end
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) end
end
redis.call('SET', KEYS[6], ARGV[6], 'NX', 'EX', tonumber(ARGV[8]))
return 1
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
        self._remember = client.register_script(_REMEMBER)
        self._claim = client.register_script(_CLAIM)

    # -- helpers --------------------------------------------------------------------------

    def _h(self, value: str) -> str:
        digest = hashlib.blake2b(value.encode(), key=self._key, digest_size=16).hexdigest()
        return _HASH_MARK + digest

    def _h_nir(self, nir: str) -> str:
        """A person's hash; a person already hashed (a record's pending key) is kept."""
        if len(nir) == _HASH_LEN and nir.startswith(_HASH_MARK):
            return nir
        return self._h(nir)

    @contextmanager
    def _redis(self) -> Iterator[None]:
        try:
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
        with self._redis():
            version, blob = self._client.hmget(self.prefix + "a:" + account_id, "version", "record")
        text = _text(blob)
        if text is None:
            return AccountState()
        return self._decode(int(_text(version) or 0), text)

    def save_account(self, account_id: str, record: AccountState) -> None:
        with self._redis():
            result = self._save(
                keys=[self.prefix + "a:" + account_id], args=[record.version, self._encode(record)]
            )
        if int(result) < 0:
            raise StaleRecord(account_id)
        record.version = int(result)

    # -- registries -----------------------------------------------------------------------

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
        p = self.prefix
        h_net = self._h(network)
        h_dev = self._h(device)
        h_nir = self._h_nir(nir)
        with self._redis():
            pipe = self._client.pipeline(transaction=False)
            pipe.hget(p + "c:" + unit, h_nir)
            pipe.sismember(p + "r:" + account_id, h_nir)
            pipe.hget(p + "n:" + account_id, h_net)
            pipe.hget(p + "d:" + account_id, h_dev)
            pipe.scard(p + "nu:" + h_net)
            pipe.sismember(p + "nu:" + h_net, unit)
            pipe.scard(p + "du:" + h_dev)
            pipe.sismember(p + "du:" + h_dev, unit)
            pipe.sismember(p + "pn", h_net)
            pipe.sismember(p + "pd", h_dev)
            pipe.get(p + "s:" + self._h(session_id))
            replies = pipe.execute()
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
        p = self.prefix
        h_net = self._h(network)
        h_dev = self._h(device)
        with self._redis():
            self._remember(
                keys=[
                    p + "r:" + account_id,
                    p + "n:" + account_id,
                    p + "d:" + account_id,
                    p + "nu:" + h_net,
                    p + "du:" + h_dev,
                    p + "s:" + self._h(session_id),
                ],
                args=[
                    "" if nir is None else self._h_nir(nir),
                    1 if read else 0,
                    vouch,
                    unit,
                    cap,
                    h_net,
                    h_dev,
                    self._session_ttl,
                    self._registry_ttl,
                ],
            )

    def add_claim(self, unit: str, nir: str, ts: int) -> None:
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
