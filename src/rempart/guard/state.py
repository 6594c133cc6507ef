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

import threading
from collections import deque
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

__all__ = [
    "AccountState",
    "Context",
    "Coordination",
    "GuardState",
    "MemoryState",
    "OnceStatus",
    "StaleRecord",
]

OnceStatus = Literal["run", "wait", "done"]
"""What :meth:`Coordination.begin_once` answers: run the task, wait for another driver
running it, or nothing to do (done)."""


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
    billable: dict[str, float] = field(default_factory=dict)
    """Today's new unexplained persons (as :meth:`GuardState.token`) -> what each cost:
    a claim of the account for one of them gives that back (billing proves the visit)."""
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
    # Concurrent use: the last two distinct networks used and their latest use, as
    # GuardState.token()s (a shared store keeps no network or device in clear).
    net_last: str = ""
    net_last_ts: int = -1
    net_prev: str = ""
    net_prev_ts: int = -1
    first_network: str = ""
    """The network of the account's first contact (a token), on probation like any
    network first seen after the history, but never a stranger at its own off hours."""
    probation: dict[str, int] = field(default_factory=dict)
    """Networks (and ``d|`` devices) first seen after the history -> first use: still
    strangers for concurrent use."""
    concurrent: dict[str, int] = field(default_factory=dict)
    """Lookups per network on probation while another network was in use."""
    refused: dict[str, int] = field(default_factory=dict)
    """``network|device`` tokens of strangers stepped up -> when."""
    refused_lookups: int = 0
    """Lookups refused since (a stranger that keeps trying is denied)."""


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


class Coordination(Protocol):
    """What the drivers sharing a state agree on (:mod:`rempart.guard.inline` says how
    it is used): a task one of them only runs, and the marks of suspensions committed
    in the database."""

    def begin_once(self, name: str, owner: str, *, lease_seconds: int) -> OnceStatus:
        """``"done"`` if the task ``name`` was finished; ``"run"`` if ``owner`` holds (or
        just took) its lease; else ``"wait"`` (another runs it; should it die, its lease
        expires and another takes over)."""
        ...

    def end_once(self, name: str, owner: str, *, ts: int) -> None:
        """Marks the task done for good and gives the lease back."""
        ...

    def held_suspension(self, account_id: str) -> str | None:
        """The mark of the guard's suspension of the account, once committed (None: none)."""
        ...

    def hold_suspension(self, account_id: str, mark: str) -> None: ...

    def release_suspension(self, account_id: str, mark: str) -> None:
        """The suspension marked ``mark`` was lifted (a later one's mark is kept)."""
        ...


class GuardState(Coordination, Protocol):
    """Everything a driver needs from the guard's memory: the engine's reads and
    writes, a read of a decision's inputs ahead of it (:meth:`prefetch`), a decision's
    writes sent together (:meth:`deferred_writes`) and the coordination between
    drivers sharing the state: no driver needs to know which store it has."""

    def account(self, account_id: str) -> AccountState: ...

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
        """The account's record, reading the lookup's registry facts along with it
        where that saves a round trip (the next :meth:`context` with the same arguments
        answers from that read)."""
        ...

    def deferred_writes(self) -> AbstractContextManager[None]:
        """A block whose record save and registry writes are sent together at its end
        (a shared store: in one round trip, landing whole or not at all)."""
        ...

    def token(self, text: str) -> str:
        """How a network or device is written in an account record: as is in process,
        a keyed hash in a shared store."""
        ...

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

    def surging(self, group: str, day: int, account_id: str) -> tuple[int, int]:
        """``account_id`` of peer group ``group`` went over its budget on ``day`` from its
        usual place: how many accounts of the group did that day (this one included),
        and how many the day before."""
        ...


class _Local:
    """One account's registry entries in :class:`MemoryState`."""

    __slots__ = ("devices", "networks", "read")

    def __init__(self) -> None:
        self.read: set[str] = set()
        """Persons (NIR) the account read with ``allow``."""
        self.networks: dict[str, int] = {}
        """Explained lookups per network (vouches)."""
        self.devices: dict[str, int] = {}


_NO_LOCAL = _Local()
_new_context = tuple.__new__  # Context(...) without the NamedTuple's Python-level __new__


class MemoryState:
    """The in-process store (embedded default, offline replay).

    The registries are nested by their first key (account, unit, network or
    device) rather than keyed by joined strings: the same facts as the flat keys
    a shared store uses, found without building a key per lookup; persons and
    networks are held by reference to the caller's strings.
    """

    def __init__(self) -> None:
        self._accounts: dict[str, AccountState] = {}
        self._claims: dict[str, dict[str, int]] = {}
        self._locals: dict[str, _Local] = {}
        self._network_units: dict[str, set[str]] = {}
        self._device_units: dict[str, set[str]] = {}
        self._popular_networks: set[str] = set()
        self._popular_devices: set[str] = set()
        self._sessions: dict[str, str] = {}
        self._surges: dict[int, dict[str, set[str]]] = {}
        self._surge_day = -1
        self._done: set[str] = set()
        self._holds: dict[str, str] = {}
        self._lock = threading.Lock()

    def account(self, account_id: str) -> AccountState:
        record = self._accounts.get(account_id)
        if record is None:
            record = self._accounts[account_id] = AccountState()
        return record

    def prefetch(
        self,
        account_id: str,
        unit: str,  # noqa: ARG002 - in process, a read costs no round trip to save
        nir: str,  # noqa: ARG002
        *,
        network: str,  # noqa: ARG002
        device: str,  # noqa: ARG002
        session_id: str,  # noqa: ARG002
    ) -> AccountState:
        return self.account(account_id)

    def deferred_writes(self) -> AbstractContextManager[None]:
        return nullcontext()

    # -- coordination within one process ---------------------------------------------

    def begin_once(self, name: str, owner: str, *, lease_seconds: int) -> OnceStatus:  # noqa: ARG002
        with self._lock:
            return "done" if name in self._done else "run"

    def end_once(self, name: str, owner: str, *, ts: int) -> None:  # noqa: ARG002
        with self._lock:
            self._done.add(name)

    def held_suspension(self, account_id: str) -> str | None:
        with self._lock:
            return self._holds.get(account_id)

    def hold_suspension(self, account_id: str, mark: str) -> None:
        with self._lock:
            self._holds[account_id] = mark

    def release_suspension(self, account_id: str, mark: str) -> None:
        with self._lock:
            if self._holds.get(account_id) == mark:
                del self._holds[account_id]

    def token(self, text: str) -> str:
        return text

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
        local = self._locals.get(account_id, _NO_LOCAL)
        claims = self._claims.get(unit)
        net_units = self._network_units.get(network)
        dev_units = self._device_units.get(device)
        return _new_context(
            Context,
            (
                -1 if claims is None else claims.get(nir, -1),
                nir in local.read,
                local.networks.get(network, 0),
                local.devices.get(device, 0),
                0 if net_units is None else len(net_units) - (unit in net_units),
                0 if dev_units is None else len(dev_units) - (unit in dev_units),
                network in self._popular_networks,
                device in self._popular_devices,
                self._sessions.get(session_id),
            ),
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
        if (read and nir is not None) or vouch:
            local = self._locals.get(account_id)
            if local is None:
                local = self._locals[account_id] = _Local()
            if read and nir is not None:
                local.read.add(nir)
            if vouch:
                local.networks[network] = local.networks.get(network, 0) + vouch
                local.devices[device] = local.devices.get(device, 0) + vouch
        members = self._network_units.get(network)
        if members is None:
            self._network_units[network] = {unit}
        elif len(members) < cap:
            members.add(unit)
        members = self._device_units.get(device)
        if members is None:
            self._device_units[device] = {unit}
        elif len(members) < cap:
            members.add(unit)
        if session_id not in self._sessions:
            self._sessions[session_id] = network

    def add_claim(self, unit: str, nir: str, ts: int) -> None:
        claims = self._claims.get(unit)
        if claims is None:
            claims = self._claims[unit] = {}
        if ts > claims.get(nir, -1):
            claims[nir] = ts

    def claimed_at(self, unit: str, nir: str) -> int:
        claims = self._claims.get(unit)
        return -1 if claims is None else claims.get(nir, -1)

    def surging(self, group: str, day: int, account_id: str) -> tuple[int, int]:
        if day > self._surge_day:  # the days before are never asked about again
            self._surges = {d: g for d, g in self._surges.items() if d >= day - 1}
            self._surge_day = day
        groups = self._surges.get(day)
        if groups is None:
            groups = self._surges[day] = {}
        members = groups.get(group)
        if members is None:
            members = groups[group] = set()
        members.add(account_id)
        before = self._surges.get(day - 1)
        yesterday = before.get(group) if before is not None else None
        return len(members), 0 if yesterday is None else len(yesterday)

    def freeze_popular(self, popular_units: int) -> None:
        self._popular_networks = {
            key for key, units in self._network_units.items() if len(units) >= popular_units
        }
        self._popular_devices = {
            key for key, units in self._device_units.items() if len(units) >= popular_units
        }
