"""Warm start: the inline guard learns the audit trail's recent lookups before it decides.

Without it, the API's guard starts with no history: every account on the
cold-start budget, no peer groups, no known network or device (on a generated
world's honest traffic, about a fifth of account-days stepped up; see
``bench/bench_guard_warm.py``), and with the state in process every restart
forgets everything. The audit trail already holds what the replay calls
history: every lookup, who made it, from where, whom it read. So when the
inline guard is created, :func:`warm_start` feeds the engine the trail's
*answered* lookups of the last ``REMPART_GUARD_HISTORY_DAYS`` days (default 21;
0 disables) as trusted history (:meth:`~rempart.guard.engine.Guard.learn`: the
engine's path for the replay's history too), then ends that history
(:meth:`~rempart.guard.engine.Guard.end_history`: peer groups computed, the
history's spending cleared, common networks and devices frozen) before the first
live lookup is decided.

What teaches
    Entries with ``event = "lookup"`` that were answered: found (``found = 1``,
    outcome ``ok``: the person with the birth date on record, since the lookup
    matched) or not found (``found = 0``, outcome ``not_found``: no person).
    Refused lookups (the guard's step-up or denial, a guard or audit outage,
    malformed input: ``found = -1``) teach nothing, nor do lookups of accounts
    the database no longer knows, or of persons no longer in it.

Persons
    The trail keeps a keyed pseudonym of the NIR, the engine keys persons by NIR:
    the pseudonyms the window needs are collected first (``SELECT DISTINCT``),
    then one pass over ``insured`` computes each person's pseudonym and keeps
    those (:func:`pseudonyms_to_nirs`). The pass costs one HMAC per insured
    person plus reading the ``nir`` column (tens of seconds per million persons
    here, measured in ``bench/bench_guard_warm.py``); memory holds the window's
    distinct persons only. A person's facts (birth date, department, declared
    doctor's unit, care-linked units) are read per batch of the trail, with one
    query per few hundred persons.

Order and batches
    The trail is read in ``(ts_us, shard, seq)`` order, a batch at a time
    (keyset pagination: no long transaction, no whole trail in memory).

Several workers sharing a state (Redis)
    The warm start is a one-time task of the shared state
    (:meth:`Coordination.begin_once` under the name ``warm-start``): the worker
    that takes the lease learns and ends the history, then marks it done for
    good; a worker started meanwhile lets its first lookups wait for that mark
    (as for the end of a learning window: ten seconds a lookup, then 503), then
    computes the peer groups from the shared records. A worker started later
    finds the mark and does the same. A shared state that already knows an
    account of the window kept its history (it survives restarts): nothing is fed
    again, and the guard starts as it would without a warm start.
    A worker dying mid-way leaves its lease to expire (:data:`LEASE_SECONDS`);
    the next one to see the task ends the history with what was learnt.

A deployment still in its learning window (``REMPART_GUARD_LEARN_UNTIL`` after the
start) learns the trail the same way, and its window ends at ``learn_until`` as
before.

An empty window (a new deployment, or ``REMPART_GUARD_HISTORY_DAYS=0``) leaves the
guard exactly as it was without a warm start.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Final

import structlog
from sqlalchemy import Engine, and_, bindparam, or_, select, tuple_

from rempart.audit.models import AuditEvent
from rempart.guard.db_directory import persons_select
from rempart.guard.directory import Person, Professional
from rempart.guard.engine import Guard
from rempart.guard.events import DAY_US
from rempart.guard.signals import network_of
from rempart.nir import NIR, pseudonymize
from rempart.store.models import Insured

if TYPE_CHECKING:
    from rempart.guard.inline import InlineGuard

__all__ = [
    "LEASE_SECONDS",
    "TASK",
    "TrailHistory",
    "WarmStart",
    "pseudonyms_to_nirs",
    "warm_start",
]

log = structlog.get_logger("rempart.guard.warm_start")

TASK: Final = "warm-start"
"""The one-time task's name in the shared state."""
LEASE_SECONDS: Final = 1800
"""How long a worker may take over the warm start before another takes over."""
BATCH: Final = 10_000
"""Trail entries read per query."""
_PERSON_CHUNK: Final = 500
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_MAX_RETRIES: Final = 5


@dataclass(frozen=True, slots=True)
class WarmStart:
    """What a warm start did (for the log and the tests)."""

    outcome: str
    """``learnt``, ``disabled``, ``empty`` (nothing answered in the window),
    ``state_known`` (the shared state kept its history), ``another_worker`` (another
    worker learns it, or did), ``failed`` (the guard ends the history at its first
    lookup, with what was learnt)."""
    lookups: int = 0
    """Lookups learnt."""
    accounts: int = 0
    persons: int = 0
    """Distinct persons found in the window (pseudonyms matched in ``insured``)."""
    seconds: float = 0.0


# -- the trail ---------------------------------------------------------------------------

_FOUND = and_(AuditEvent.found == 1, AuditEvent.outcome == "ok")
_NOT_FOUND = and_(AuditEvent.found == 0, AuditEvent.outcome == "not_found")


class TrailHistory:
    """The audit trail's answered lookups with ``since <= ts_us < until``, in order."""

    def __init__(self, audit_engine: Engine, *, since: int, until: int, batch: int = BATCH) -> None:
        self._engine = audit_engine
        self.since = since
        self.until = until
        self._batch = batch
        self._window = and_(
            AuditEvent.event == "lookup",
            AuditEvent.ts_us >= since,
            AuditEvent.ts_us < until,
            or_(_FOUND, _NOT_FOUND),
        )

    def any(self) -> bool:
        with self._engine.connect() as connection:
            return (
                connection.execute(select(AuditEvent.seq).where(self._window).limit(1)).first()
                is not None
            )

    def accounts(self) -> list[str]:
        with self._engine.connect() as connection:
            return list(
                connection.scalars(select(AuditEvent.account_id).where(self._window).distinct())
            )

    def found_subjects(self) -> set[str]:
        """Pseudonyms of the persons found in the window."""
        with self._engine.connect() as connection:
            return set(
                connection.scalars(
                    select(AuditEvent.subject).where(self._window, AuditEvent.found == 1).distinct()
                )
            )

    def batches(self) -> Iterator[Sequence[Any]]:
        """Rows ``(ts_us, shard, seq, account_id, session_id, client_ip, user_agent,
        subject, found)`` in ``(ts_us, shard, seq)`` order, a batch at a time."""
        columns = (
            AuditEvent.ts_us,
            AuditEvent.shard,
            AuditEvent.seq,
            AuditEvent.account_id,
            AuditEvent.session_id,
            AuditEvent.client_ip,
            AuditEvent.user_agent,
            AuditEvent.subject,
            AuditEvent.found,
        )
        order = (AuditEvent.ts_us, AuditEvent.shard, AuditEvent.seq)
        after: tuple[int, int, int] | None = None
        while True:
            query = select(*columns).where(self._window)
            if after is not None:
                query = query.where(AuditEvent.ts_us >= after[0], tuple_(*order) > tuple_(*after))
            with self._engine.connect() as connection:
                rows = connection.execute(query.order_by(*order).limit(self._batch)).all()
            if not rows:
                return
            yield rows
            last = rows[-1]
            after = (int(last[0]), int(last[1]), int(last[2]))
            if len(rows) < self._batch:
                return


def pseudonyms_to_nirs(
    data_engine: Engine, pseudonym_key: bytes, wanted: set[str], *, batch: int = 50_000
) -> dict[str, str]:
    """The NIR of each wanted pseudonym, by one pass over ``insured``.

    Cost: one HMAC-SHA256 (:func:`rempart.nir.pseudonymize`) per insured person and
    the ``nir`` column read once, streamed: tens of seconds per million persons on the
    development machine's two busy cores (``bench/bench_guard_warm.py`` measures it,
    section ``guard-warm`` of docs/benchmarks.md), so some minutes for a whole
    national population; memory: the wanted pseudonyms and their NIRs only.
    """
    found: dict[str, str] = {}
    if not wanted:
        return found
    with data_engine.connect() as connection:
        result = connection.execution_options(yield_per=batch).execute(select(Insured.nir))
        for partition in result.partitions():
            for (nir,) in partition:
                # A stored NIR is valid and compact already: as an NIR, it skips
                # pseudonymize's normalisation (python-stdnum, most of the cost).
                subject = pseudonymize(NIR(nir), pseudonym_key)
                if subject in wanted:
                    found[subject] = nir
                    if len(found) == len(wanted):
                        return found
    return found


_PERSONS = persons_select(Insured.nir).where(Insured.nir.in_(bindparam("nirs", expanding=True)))
"""The persons' facts as :class:`~rempart.guard.inline.DatabaseDirectory` reads one, for
many persons at once."""


class _HistoryDirectory:
    """The directory of the engine that learns the history: accounts from the guard's
    directory, persons from the batch being learnt (their care links with them)."""

    def __init__(self, accounts: Any) -> None:
        self._accounts = accounts
        self._care: dict[int, frozenset[str]] = {}

    def professional(self, account_id: str) -> Professional | None:
        pro: Professional | None = self._accounts.professional(account_id)
        return pro

    def accounts(self) -> Iterable[Professional]:
        found: Iterable[Professional] = self._accounts.accounts()
        return found

    def person(self, nir: str) -> Person | None:  # noqa: ARG002 - persons come resolved
        return None

    def care_linked(self, unit: str, person: Person) -> bool:
        return unit in self._care[person.ref]

    def load(self, data_engine: Engine, nirs: Iterable[str]) -> dict[str, Person]:
        """The facts of these persons (the previous batch's are forgotten)."""
        self._care.clear()
        persons: dict[str, Person] = {}
        care: dict[str, set[str]] = {}
        wanted = sorted(set(nirs))
        with data_engine.connect() as connection:
            for start in range(0, len(wanted), _PERSON_CHUNK):
                chunk = wanted[start : start + _PERSON_CHUNK]
                for nir, born, department, doctor, carer in connection.execute(
                    _PERSONS, {"nirs": chunk}
                ):
                    if nir not in persons:
                        ref = len(persons)
                        persons[nir] = Person(
                            born.toordinal() - _EPOCH_ORDINAL, department, doctor, ref
                        )
                        care[nir] = set()
                    if carer is not None:
                        care[nir].add(carer)
        for nir, person in persons.items():
            self._care[person.ref] = frozenset(care[nir])
        return persons


# -- learning ----------------------------------------------------------------------------


def _learn(
    guard: InlineGuard,
    trail: TrailHistory,
    data_engine: Engine,
    pseudonym_key: bytes,
) -> tuple[int, int]:
    """Feed the trail to an engine on the guard's state: (lookups learnt, persons)."""
    directory = _HistoryDirectory(guard.directory)
    # The engine's own history operation, on the guard's state, with the persons as
    # the trail's batches resolve them.
    engine = Guard(directory, guard.state, guard.config)
    nirs = pseudonyms_to_nirs(data_engine, pseudonym_key, trail.found_subjects())
    v4, v6 = guard.config.network.ipv4_prefix, guard.config.network.ipv6_prefix
    known: dict[str, bool] = {}
    learnt = 0
    for rows in trail.batches():
        persons = directory.load(data_engine, (nirs[r[7]] for r in rows if r[7] in nirs))
        for ts, _shard, _seq, account_id, session_id, ip, agent, subject, found in rows:
            exists = known.get(account_id)
            if exists is None:
                exists = known[account_id] = directory.professional(account_id) is not None
            if not exists:
                continue  # an account the database no longer knows
            nir = subject  # not found: only the attempt counts
            person: Person | None = None
            given: int | None = None
            if found == 1:
                nir = nirs.get(subject, "")
                person = persons.get(nir)
                if person is None:
                    continue  # a person no longer in the database
                given = person.birth_day  # the lookup matched
            engine.learn(
                ts,
                account_id,
                nir,
                person,
                given,
                network_of(ip, v4, v6),
                agent,
                session_id,
            )
            learnt += 1
    return learnt, len(nirs)


def warm_start(
    guard: InlineGuard,
    *,
    audit_engine: Engine,
    data_engine: Engine,
    pseudonym_key: bytes,
    days: int,
    now_us: int | None = None,
) -> WarmStart:
    """Learn the trail's answered lookups of the last ``days`` days before ``now_us``
    (default: now), once for every worker sharing the guard's state, and end that
    history before the guard decides its first lookup. Call it before the guard
    serves."""
    began = time.perf_counter()
    start = now_us if now_us is not None else time.time_ns() // 1000
    if days <= 0:
        return WarmStart("disabled")
    trail = TrailHistory(audit_engine, since=start - days * DAY_US, until=start)
    try:
        if not trail.any():
            log.info("guard_warm_start", outcome="empty", days=days)
            return WarmStart("empty")
    except Exception as exc:  # noqa: BLE001 - the guard starts cold, which is stricter
        log.error("guard_warm_start_failed", step="trail", error_type=type(exc).__name__)  # noqa: TRY400
        return WarmStart("failed")
    done = _once(guard, trail, data_engine, pseudonym_key, start=start)
    done = dataclasses.replace(done, seconds=time.perf_counter() - began)
    if done.outcome == "learnt":
        log.info(
            "guard_warm_start",
            outcome=done.outcome,
            lookups=done.lookups,
            accounts=done.accounts,
            persons=done.persons,
            days=days,
            seconds=round(done.seconds, 3),
        )
    return done


def _once(
    guard: InlineGuard,
    trail: TrailHistory,
    data_engine: Engine,
    pseudonym_key: bytes,
    *,
    start: int,
) -> WarmStart:
    """The warm start as the shared state's one-time task."""
    learning = guard.learn_until is not None and guard.learn_until > start
    # A deployment still in its learning window: the window closes at learn_until.
    history_until = guard.learn_until if learning and guard.learn_until else start
    task = f"{TASK}:{history_until}" if learning else TASK
    owner = secrets.token_hex(8)
    running = False
    try:
        status = guard.state.begin_once(task, owner, lease_seconds=LEASE_SECONDS)
        if status != "run":
            if not learning:
                # Another worker learns (or learnt) it: the first lookups wait for it.
                guard.open_history(start, task=task)
            log.info("guard_warm_start", outcome="another_worker", status=status)
            return WarmStart("another_worker")
        running = True
        accounts = trail.accounts()
        if any(guard.state.account(a).day >= 0 for a in accounts):
            guard.state.end_once(task, owner, ts=start)
            log.info("guard_warm_start", outcome="state_known", accounts=len(accounts))
            return WarmStart("state_known", accounts=len(accounts))
        learnt, persons = _learn(guard, trail, data_engine, pseudonym_key)
        if not learning:
            guard.engine.end_history()
        guard.state.end_once(task, owner, ts=start)
    except Exception as exc:  # noqa: BLE001 - whatever failed, the guard fails closed
        # The type alone: a message could carry a NIR into the log.
        log.error("guard_warm_start_failed", step="learn", error_type=type(exc).__name__)  # noqa: TRY400
        if running and not learning:
            # What was learnt stays; the first lookup ends the history (and fails closed
            # while the shared state does not answer).
            guard.open_history(start, task=f"{TASK}:failed:{owner}")
        return WarmStart("failed")
    return WarmStart("learnt", learnt, len(accounts), persons)
