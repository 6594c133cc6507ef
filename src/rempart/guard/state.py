"""Everything the guard remembers, behind :class:`GuardState`.

Two kinds of memory:

* the **account record** (:class:`AccountState`): counters, budget, baselines
  and flags of one account. The engine reads it once per decision
  (:meth:`GuardState.account`), computes, then changes it in one block and hands
  it back (:meth:`GuardState.save_account`). Records carry a ``version``: a
  shared store (Redis: one hash per account, written by a Lua script that
  checks the version and bumps it) refuses a save over a newer version, and
  the engine decides again from a fresh read, so two workers never lose each
  other's updates (optimistic concurrency, no read-modify-write race). The
  in-process store hands out the live record and is used by one thread at a
  time (the inline driver holds a lock around a decision).
* **registries** shared by all accounts, where every write is an idempotent
  set-add or a maximum (Redis: ``SADD``/``HSET``/``ZADD`` in the same script,
  with TTLs): claims seen per (unit, person), persons already read per
  account, networks and devices known per account, units seen per network and
  device, each session's first network. :meth:`GuardState.context` reads the
  registry facts one lookup needs in one call (one Redis round trip, pipelined
  with the account record).

Keys are plain strings so that the same names serve as Redis keys.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

__all__ = [
    "AccountState",
    "Context",
    "GuardState",
    "MemoryState",
    "StaleRecord",
]


@dataclass(slots=True)
class AccountState:
    """One account's memory: plain fields (numbers, lists) that serialise to a hash."""

    version: int = 0
    suspended: bool = False
    suspended_reason: str = ""
    # The current budget day (UTC day number) and what happened in it.
    day: int = -1
    spent: float = 0.0
    """Weighted unexplained lookups in the budget (carried over when overspent)."""
    challenged: bool = False
    """A step-up was asked today: unexplained lookups are stepped up until the day ends."""
    day_lookups: int = 0
    day_unexplained: int = 0
    day_flagged: bool = False
    """Something was judged suspicious today: the day does not teach the baseline."""
    # Decayed lookup counters per velocity scale, and today's maxima.
    velocity: list[float] = field(default_factory=list)
    velocity_ts: int = 0
    velocity_day_max: list[float] = field(default_factory=list)
    # Enumeration: decayed counts of all and of not-found / malformed lookups.
    enum_total: float = 0.0
    enum_missed: float = 0.0
    enum_ts: int = 0
    # Conversion: unexplained lookups waiting to mature, (ts, unit|nir key).
    pending: deque[tuple[int, str]] = field(default_factory=deque)
    conv_matured: float = 0.0
    conv_converted: float = 0.0
    conv_ts: int = 0
    # Baselines, learnt from history and from clean days.
    days: int = 0
    high_unexplained: float = 0.0
    """Decaying high-water mark of unexplained lookups per day."""
    peaks: list[float] = field(default_factory=list)
    """Highest decayed count per velocity scale on a clean day."""
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    """Lookups per UTC hour of the day, from clean traffic."""
    far_seen: int = 0
    near_seen: int = 0
    conversion_base: float = -1.0
    """The account's conversion rate at the end of its history (-1: unknown)."""


class Context(NamedTuple):
    """Registry facts about one lookup, read in one call."""

    claimed_at: int
    """Latest claim of the unit for the person (-1: none)."""
    seen: bool
    """The account already read this person with ``allow``."""
    network_known: int
    device_known: int
    network_units: int
    """Other units seen on this network (capped)."""
    device_units: int
    network_popular: bool
    device_popular: bool
    session_network: str | None


class StaleRecord(Exception):
    """Another worker saved the account record since it was read: decide again."""


class GuardState(Protocol):
    def account(self, account_id: str) -> AccountState: ...

    def save_account(self, account_id: str, record: AccountState) -> None:
        """Store ``record``; :class:`StaleRecord` if the stored version moved on."""
        ...

    def context(
        self,
        account_id: str,
        unit: str,
        nir: str,
        *,
        network: str,
        device: str,
        session_id: str,
    ) -> Context: ...

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
        """After a decision: the person read (when allowed), the network and device
        vouched for (``vouch`` explained lookups; 0 for none), the units behind the
        network and device (up to ``cap``), the session's first network."""
        ...

    def add_claim(self, unit: str, nir: str, ts: int) -> None: ...

    def claimed_at(self, unit: str, nir: str) -> int: ...

    def freeze_popular(self, popular_units: int) -> None:
        """End of history: networks and devices used by ``popular_units`` units or more
        are common infrastructure from now on."""
        ...


class MemoryState:
    """The in-process store (embedded default, offline replay)."""

    def __init__(self) -> None:
        self._accounts: dict[str, AccountState] = {}
        self._claims: dict[str, int] = {}
        self._read: set[str] = set()
        self._known: dict[str, int] = {}
        self._units: dict[str, set[str]] = {}
        self._popular: set[str] = set()
        self._sessions: dict[str, str] = {}

    def account(self, account_id: str) -> AccountState:
        record = self._accounts.get(account_id)
        if record is None:
            record = self._accounts[account_id] = AccountState()
        return record

    def save_account(self, account_id: str, record: AccountState) -> None:
        stored = self._accounts.get(account_id)
        if stored is not None and stored is not record and stored.version != record.version:
            raise StaleRecord(account_id)
        record.version += 1
        self._accounts[account_id] = record

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
        known = self._known
        units = self._units
        net_units = units.get("n:" + network)
        dev_units = units.get("d:" + device)
        return Context(
            self._claims.get(unit + "|" + nir, -1),
            (account_id + "|" + nir) in self._read,
            known.get(account_id + "|n:" + network, 0),
            known.get(account_id + "|d:" + device, 0),
            0 if net_units is None else len(net_units) - (unit in net_units),
            0 if dev_units is None else len(dev_units) - (unit in dev_units),
            ("n:" + network) in self._popular,
            ("d:" + device) in self._popular,
            self._sessions.get(session_id),
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
        if read and nir is not None:
            self._read.add(account_id + "|" + nir)
        if vouch:
            known = self._known
            for key in (account_id + "|n:" + network, account_id + "|d:" + device):
                known[key] = known.get(key, 0) + vouch
        units = self._units
        for key in ("n:" + network, "d:" + device):
            members = units.get(key)
            if members is None:
                units[key] = {unit}
            elif len(members) < cap:
                members.add(unit)
        self._sessions.setdefault(session_id, network)

    def add_claim(self, unit: str, nir: str, ts: int) -> None:
        key = unit + "|" + nir
        if ts > self._claims.get(key, -1):
            self._claims[key] = ts

    def claimed_at(self, unit: str, nir: str) -> int:
        return self._claims.get(unit + "|" + nir, -1)

    def freeze_popular(self, popular_units: int) -> None:
        self._popular = {key for key, units in self._units.items() if len(units) >= popular_units}
