"""The guard inline in the API: a decision on every lookup, before the rights are read.

:class:`InlineGuard` is the API's driver of the one engine (:class:`~rempart.guard.engine.Guard`);
``rempart guard replay`` is the other. For each lookup it builds the engine's
input from the authenticated request, asks the engine, and acts:

``allow``
    the lookup goes on (``audited_lookup``); the audit entry carries the decision
    and its reason codes.
``step_up``
    RFC 9470's ``401 insufficient_user_authentication`` with the phishing-resistant
    ``acr_values`` (WebAuthn, CPS card). A session that already passes a step-up
    (:func:`~rempart.auth.levels.passes_step_up`: the CPS card, or a key that was
    *established* when the session opened: past its probation and not enrolled from a
    network new to the account) goes on: the step-up exists so that a relayed (phished)
    password+TOTP session gets nothing new, nor a key its holder planted through one.
    Such a pass is recorded as decision ``step_up`` with the reason ``step_up_passed``
    first and outcome ``ok``. A young key is refused with a detail that says so. ``deny`` is never
    passed, whatever the session.
``deny``
    the account is suspended (``AuthService.suspend(by="guard:RULE")``: every
    session and token revoked, the professional notified), an alert is stored
    (:mod:`rempart.guard.alerts`), and the answer is ``403 account_suspended``
    (DESIGN's code for a suspended account: to the caller, a guard denial *is* a
    suspension). Only an operator lifts it (``rempart accounts restore``).

Practice software (an OAuth client acting for a professional, ``Caller.client_id``):
the engine decides the lookup against the client's record (``client/<id>``, see
*Practice software* in :mod:`rempart.guard`) and then the professional's
(``answered_by_client``); the stricter decision is acted upon, the entry carries
the reasons of both (the client's prefixed ``client:``). A ``step_up`` is the same
``401`` (the software must have the professional sign in themselves). A ``deny``
suspends *the client* (:func:`~rempart.auth.clients.suspend_client`: its tokens
dead, no new token), raises an alert naming it (``guard_alerts.client_id``) and
answers ``403 client_suspended``; the professional stays active. The client's
record is held and reset after an operator's ``rempart clients restore`` exactly
as an account's (below: the database's ``api_clients.status`` is the authority).
A professional's own suspension still in flight (decided on a portal lookup) is
answered ``403 account_suspended`` and does not touch the client. Client records
are not part of the peer groups and are not learnt by the warm start (the trail
does not name the client in a column): a client starts on the cold-start budget
and learns from its own clean days.

Every decision, refusals included, is in the lookup's audit entry (``decision``,
``reasons``); a refused lookup's entry has ``found = -1``, no categories, and the
error code as ``outcome``: no data left.

Fail closed: if the engine or its state store fails (Redis down: any
:class:`redis.RedisError` is :class:`~rempart.guard.redis_state.StateUnavailable`),
the lookup is refused with ``503 guard_unavailable`` (recorded in the trail), never
let through.

Mapping the session to the world's ``auth`` names (DESIGN, ``lookups.parquet``):
``password+totp`` → ``totp``, ``password+recovery`` → ``password`` (a recovery
code is no second factor in use), ``webauthn``, ``psc``, ``cps`` as they are, and
``client`` (practice software with an OAuth client secret, acting for a
professional) → ``password``: a secret held by the software proves no factor of
the person, so it is recorded as the weakest level. The engine does not weigh
``auth`` today; the mapping keeps inline events in the replay's format.

Reference data: :class:`DatabaseDirectory` reads the database (the professional
and unit of the account, the person's birth date, department, declared doctor's
unit and care-linked units) with one query per person and a bounded TTL cache.
It is resolved *outside* the engine's lock (on the request's own session), and
the engine is then called through :meth:`Guard.decide_resolved`, which finds the
care links in that cache: no database I/O happens under the lock (but on two
rare paths: a record marked suspended reads the account's status afresh, and the
end of the learning window lists the accounts). An in-memory
copy loaded at start would cost the whole insured table in memory (about 150 MB
per million persons) and go stale after ``db load-world``; a lookup already reads
the person's row, so one more indexed query costs little (see
``bench/bench_guard_inline.py``).

Claims: :meth:`InlineGuard.observe_claim` is how billing reaches the engine; the
feeds (:mod:`rempart.claims`: batches ingested by ``rempart claims ingest`` and a
message broker's stream) call it, so claims explain later lookups, give a billed
person's cost back to the day's budget and keep the conversion signal alive.

History: at creation the guard learns the audit trail's answered lookups of the
last ``REMPART_GUARD_HISTORY_DAYS`` days (21 by default) as trusted history
(:mod:`rempart.guard.warm_start`; once for every worker sharing a Redis state),
then ends that history, computing the peer groups, before its first decision. A
restart therefore keeps what the trail shows; measured on a generated world's
honest traffic, account-days stepped up after a restart fall from 16% cold to 1%
warm (``bench/bench_guard_warm.py``).

First contact: with an empty trail (a new deployment, or ``0`` days) the inline
engine starts with no history: every account starts on the configured cold-start
budget (``budget.min``), the peer groups come from the deployment's first days, and
an account the guard has never seen takes its first lookup's network and device as
its baseline (the engine's first contact, as in a replay; with a shared state, two
workers seeing an account first at the same moment both give it their lookup's).

Learning window: with ``learn_until`` (``REMPART_GUARD_LEARN_UNTIL``), lookups
before it are the engine's trusted history: decided and recorded (reason
``learning`` first, outcome ``ok``) but not acted upon, and learnt from; at the
first lookup after it the engine computes the peer groups and enforces. Without
history an engine is strict with everyone (measured on a generated world's honest
traffic, no history: about a fifth of account-days stepped up and a few hospital
accounts suspended in three days; after four days of learning, 4% and still some
denies), so a new deployment should learn first.

State: in process (:class:`~rempart.guard.state.MemoryState`, the embedded
default: one process, lost at a restart) or in Redis
(:class:`~rempart.guard.redis_state.RedisState`, with ``REMPART_REDIS_URL``: the
workers of every host share one memory and survive restarts; records are saved
with a version check, so two workers deciding for one account at once never lose
each other's updates: the later one decides again from a fresh read). The
driver reads the account record and the lookup's registry facts in one round
trip before the engine decides (:meth:`RedisState.prefetch`), and sends the
decision's writes (the record's versioned save, then the registries) together
when it has decided (:meth:`RedisState.deferred_writes`: one script, landing whole
or not at all): two round trips a decision. A Redis that fails or does not answer
within a second fails the lookup closed (503 ``guard_unavailable``, recorded).
What several workers sharing the state must agree on:

* **The end of the learning window** happens once. Its one-time changes to the
  records (history's spending cleared, each account's conversion rate fixed,
  common networks and devices frozen) must not run again later: a second run
  would wipe the budget spent since and learn from judged traffic. The first
  worker to see a lookup after ``learn_until`` takes a lease
  (:meth:`Coordination.begin_once`, ``SET NX EX`` in Redis) and runs
  :meth:`Guard.refresh_peers` with ``end_of_history``, then marks it done for good;
  the others wait for the mark (up to ten seconds a lookup, then 503), then compute
  the peer groups from the shared records themselves, with an engine that has no
  history left to close. A worker started later finds the mark and does the same.
  A worker dying mid-way leaves its lease to expire (two minutes) and another runs
  it again (the changes are idempotent on records no later decision touched, and
  no worker decides after ``learn_until`` until it is done).
* **A suspension and its lifting.** The database is the authority: only an
  operator lifts a suspension (``rempart accounts restore``). When the guard
  denies, the engine has already saved the record as suspended, then this worker
  writes the suspension, the alert and the audit entry in one transaction, and
  only after that commit *holds* the suspension in the shared state
  (:meth:`Coordination.hold_suspension`, a mark per account). A record marked
  suspended is reset (suspension, challenge, carried-over debt, velocity and
  enumeration counters and the networks used last cleared: the incident is
  judged) only when it is held and the database, read afresh, says the account
  is active again: an operator restored it. The reset is a versioned save (two
  workers resetting at once: the second's save is refused as stale, and it finds
  the record already reset) and releases the mark it saw. A record suspended but
  not held is a suspension being written by another worker, and its lookups are
  refused; if it is still not held a minute after the decision, that worker failed
  before its commit: the suspension is written now (account suspended, alert,
  audit), so that the guard and the database agree and an operator can lift it.
  (In one process the same rules hold, with the marks in memory: a robot's
  concurrent request cannot lift a suspension its own worker is still writing.)
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from rempart.audit.chain import AuditEntry
from rempart.audit.trail import AuditTrail, AuditUnavailable
from rempart.auth.clients import ClientSuspended, suspend_client
from rempart.auth.levels import (
    ACR_CLIENT,
    ACR_CPS,
    ACR_PASSWORD_RECOVERY,
    ACR_PASSWORD_TOTP,
    ACR_PSC,
    ACR_WEBAUTHN,
    PHISHING_RESISTANT,
    YOUNG_KEY_DETAIL,
    StepUpRequired,
    passes_step_up,
)
from rempart.auth.service import AccountSuspended, AuthService
from rempart.errors import RempartError
from rempart.guard.alerts import raise_alert
from rempart.guard.config import GuardConfig
from rempart.guard.db_directory import (
    CLIENT_RECORD_PREFIX,
    DatabaseDirectory,
    PersonRows,
    client_record,
)
from rempart.guard.directory import Person, birth_day
from rempart.guard.engine import Guard
from rempart.guard.events import ALLOW, DENY, STEP_UP, ClaimEvent, DecisionKind
from rempart.guard.redis_state import StateUnavailable
from rempart.guard.signals import network_of
from rempart.guard.state import AccountState, GuardState, MemoryState, StaleRecord
from rempart.nir import InvalidNIR, compact, parse_nir
from rempart.ops.metrics import count_guard_decision, count_step_up
from rempart.rights.service import Caller, LookupInput, lookup_entry
from rempart.store.engine import own_transaction

__all__ = [
    "AUTH_OF_ACR",
    "CLIENT_REASON_PREFIX",
    "CLIENT_RECORD_PREFIX",
    "DatabaseDirectory",
    "GuardUnavailable",
    "GuardVerdict",
    "InlineGuard",
    "client_record",
]

log = structlog.get_logger("rempart.guard.inline")

_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()

AUTH_OF_ACR: dict[str, str] = {
    ACR_PASSWORD_TOTP: "totp",
    ACR_PASSWORD_RECOVERY: "password",
    ACR_WEBAUTHN: "webauthn",
    ACR_PSC: "psc",
    ACR_CPS: "cps",
    ACR_CLIENT: "password",
}
_STEP_UP_ACRS: Final = tuple(sorted(PHISHING_RESISTANT))
_STEP_UP_DETAIL: Final = (
    "the guard asks for a phishing-resistant authentication (WebAuthn or CPS card)"
)
_MAX_RETRIES: Final = 24
"""Decisions of one record tried again after another worker saved it first. Two workers
busy on one account (practice software's parallel checks; a load test) lose about half
of their races: five tries left a few percent of such lookups refused (503), measured
by ``bench/bench_lookup.py``'s Redis run; with the pause below, 24 make it vanishingly rare."""
_RETRY_PAUSE_SECONDS: Final = 0.0005
"""Up to this times the attempt number, at random, before trying again: two workers that keep
colliding stop doing it in step."""
_HISTORY_LEASE_SECONDS: Final = 120
"""How long a worker closing the learning window may take before another takes over."""
_HISTORY_WAIT_SECONDS: Final = 10.0
"""How long a lookup waits for another worker closing the learning window (then 503)."""
CLIENT_REASON_PREFIX: Final = "client:"
"""Reason codes of the client's record, in a lookup's entry beside the professional's."""
_SUSPENDED_REASON: Final = "account_suspended"
"""The engine's reason for a record already suspended."""
_SEVERITY: Final = {ALLOW: 0, STEP_UP: 1, DENY: 2}
_SUSPENSION_GRACE_US: Final = 60_000_000
"""A suspension decided this long ago and still not held: its worker failed before
committing it (a commit takes milliseconds; the database's busy timeout is ten seconds)."""


_Decided = tuple[DecisionKind, float, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class _Decisions:
    """The engine's decisions on one lookup: the professional's record, and the
    client's when the lookup comes through practice software."""

    own: _Decided
    client: _Decided | None = None

    @property
    def combined(self) -> _Decided:
        """The stricter decision, the larger score, the reasons of both (the stricter
        record's first; the client's prefixed with :data:`CLIENT_REASON_PREFIX`)."""
        if self.client is None:
            return self.own
        own_kind, own_score, own_reasons = self.own
        kind, score, reasons = self.client
        tagged = tuple(CLIENT_REASON_PREFIX + reason for reason in reasons)
        if _SEVERITY[kind] > _SEVERITY[own_kind]:
            return kind, max(score, own_score), tagged + own_reasons
        return own_kind, max(score, own_score), own_reasons + tagged


class GuardUnavailable(RempartError):
    """The guard could not decide (its state store failed): the lookup is refused."""

    code = "guard_unavailable"
    status = 503

    def __init__(self) -> None:
        super().__init__("the guard cannot decide right now; no data was read, try again later")


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """What the lookup's audit entry records about the guard (the lookup may go on)."""

    decision: str
    reasons: str


class InlineGuard:
    """The API's driver of the engine. Thread-safe: one decision at a time in the engine
    (per process; workers sharing a Redis state coordinate as the module says)."""

    def __init__(
        self,
        config: GuardConfig,
        directory: DatabaseDirectory,
        *,
        auth: AuthService,
        audit: AuditTrail,
        pseudonym_key: bytes,
        state: GuardState | None = None,
        learn_until: int | None = None,
    ) -> None:
        self.config = config
        self.directory = directory
        self.state: GuardState = state if state is not None else MemoryState()
        self.learn_until = learn_until
        """Before this instant (µs), decisions are recorded and learnt from, not acted upon."""
        self.engine = Guard(directory, self.state, config, history_until=learn_until)
        self._history_open = learn_until is not None
        self._history_until = learn_until or 0
        """The first lookup at or after it ends the history, once for every worker..."""
        self._history_task = f"end-of-history:{learn_until}"
        """... under this name in the shared state's one-time tasks."""
        self._owner = secrets.token_hex(8)
        """This driver's name in the shared state's leases."""
        self._auth = auth
        self._audit = audit
        self._pseudonym_key = pseudonym_key
        self._lock = threading.Lock()
        self.clock: Callable[[], int] = _now_us
        """Microseconds since the epoch of a decision (tests replay a day's pace with it)."""
        # As the engine caps the units it remembers per network and device.
        self._unit_cap = max(config.campaign.popular_units, config.campaign.step_up_units + 1)
        self._v4 = config.network.ipv4_prefix
        self._v6 = config.network.ipv6_prefix

    @classmethod
    def for_database(
        cls,
        config: GuardConfig,
        sessions: sessionmaker[Session],
        *,
        auth: AuthService,
        audit: AuditTrail,
        pseudonym_key: bytes,
        learn_until: int | None = None,
        state: GuardState | None = None,
    ) -> InlineGuard:
        """The driver on the database's reference data; ``state``: in process when None,
        else e.g. a :class:`~rempart.guard.redis_state.RedisState` shared by workers."""
        return cls(
            config,
            DatabaseDirectory(sessions),
            auth=auth,
            audit=audit,
            pseudonym_key=pseudonym_key,
            state=state,
            learn_until=learn_until,
        )

    # -- the decision ---------------------------------------------------------------------

    def decide(
        self,
        session: Session,
        caller: Caller,
        *,
        raw_nir: str,
        raw_birth_date: str | None,
        ts_us: int | None = None,
    ) -> tuple[DecisionKind, float, tuple[str, ...]]:
        """The engine's decision on one lookup (no action taken); through practice
        software, the stricter of the professional's record's and the client's (reasons
        of both). Fails closed."""
        return self._decisions(
            session, caller, nir=_guard_nir(raw_nir), raw_birth_date=raw_birth_date, ts_us=ts_us
        ).combined

    def _decisions(
        self,
        session: Session,
        caller: Caller,
        *,
        nir: str,
        raw_birth_date: str | None,
        ts_us: int | None = None,
        read: PersonRows | None = None,
    ) -> _Decisions:
        ts = self.clock() if ts_us is None else ts_us
        through = client_record(caller.client_id) if caller.client_id else None
        try:
            person = self.directory.prefetch(session, caller.account_id, nir, read=read)
            if through is not None:
                self.directory.prefetch(session, through, nir)
            given = birth_day(raw_birth_date)
            network = network_of(caller.client_ip, self._v4, self._v6)
            with self._lock:
                if self._history_open and ts >= self._history_until:
                    self._close_history(ts)
                client = None
                if through is not None:
                    client = self._decide_record(
                        through, ts, nir, person, given, network, caller, answered_by_client=False
                    )
                own = self._decide_record(
                    caller.account_id,
                    ts,
                    nir,
                    person,
                    given,
                    network,
                    caller,
                    answered_by_client=through is not None,
                )
                return _Decisions(own, client)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the lookup fails closed
            # The type alone, no traceback: a message could carry a NIR into the log.
            log.error("guard_failed", error_type=type(exc).__name__)  # noqa: TRY400
            raise GuardUnavailable() from None

    def check(
        self, session: Session, caller: Caller, lookup: LookupInput, *, read: PersonRows | None
    ) -> GuardVerdict:
        """Decide, and act: return the verdict for the audit entry when the lookup may go
        on; otherwise record the refusal in the trail (and, for ``deny``, suspend and
        alert), commit, and raise the answer's error. ``read``: the person's rows, read
        with the lookup's (None: read here)."""
        raw_nir = lookup.raw_nir
        ts = self.clock()
        try:
            decisions = self._decisions(
                session,
                caller,
                nir=lookup.key,
                raw_birth_date=lookup.raw_birth_date,
                ts_us=ts,
                read=read,
            )
        except GuardUnavailable as exc:
            count_guard_decision("error", ("guard_unavailable",))
            self._refuse(
                session,
                caller,
                raw_nir,
                decision="error",
                reasons=("guard_unavailable",),
                outcome=exc.code,
            )
            raise
        kind, score, reasons = decisions.combined
        count_guard_decision(kind, reasons)
        if self.learn_until is not None and ts < self.learn_until:
            return GuardVerdict(kind, _codes(("learning", *reasons)))
        if kind == STEP_UP and passes_step_up(caller.acr, caller.factor_established):
            return GuardVerdict(STEP_UP, _codes(("step_up_passed", *reasons)))
        if kind == STEP_UP:
            young_key = caller.acr == ACR_WEBAUTHN
            self._refuse(
                session,
                caller,
                raw_nir,
                decision=kind,
                reasons=("young_key", *reasons) if young_key else reasons,
                outcome=StepUpRequired.code,
            )
            count_step_up("guard")
            raise StepUpRequired(
                _STEP_UP_ACRS, detail=YOUNG_KEY_DETAIL if young_key else _STEP_UP_DETAIL
            )
        if kind == DENY and decisions.client is not None:
            self._deny_through_client(session, caller, raw_nir, decisions, ts)
        if kind == DENY:
            self._deny(session, caller, raw_nir, score, reasons, ts)
            raise AccountSuspended()
        return GuardVerdict(kind, _codes(reasons))

    def open_history(self, until: int, *, task: str) -> None:
        """Decide as after a history that ends at ``until`` (µs) and that the one-time
        ``task`` of the shared state ends (:mod:`rempart.guard.warm_start`: another
        worker learns it): the first lookup after it waits for that task, then computes
        the peer groups from the shared records."""
        with self._lock:
            self.learn_until = until
            self.engine = Guard(self.directory, self.state, self.config, history_until=until)
            self._history_until = until
            self._history_task = task
            self._history_open = True

    def observe_claim(self, account_id: str, nir: str, ts_us: int) -> None:
        """Hook for a future claims feed: care billed explains later lookups."""
        with self._lock:
            self.engine.observe_claim(ClaimEvent(ts_us, account_id, nir))

    # -- acting -----------------------------------------------------------------------------

    def _entry(
        self, caller: Caller, raw_nir: str, decision: str, reasons: tuple[str, ...], outcome: str
    ) -> AuditEntry:
        return lookup_entry(
            caller,
            raw_nir,
            self._pseudonym_key,
            found=-1,
            categories="",
            outcome=outcome,
            decision=decision,
            reasons=_codes(reasons),
        )

    def _refuse(
        self,
        session: Session,
        caller: Caller,
        raw_nir: str,
        *,
        decision: str,
        reasons: tuple[str, ...],
        outcome: str,
    ) -> None:
        self._audit.append(
            [self._entry(caller, raw_nir, decision, reasons, outcome)], session=session
        )
        try:
            session.commit()
        except SQLAlchemyError:
            raise AuditUnavailable() from None

    def _deny(  # noqa: PLR0917
        self,
        session: Session,
        caller: Caller,
        raw_nir: str,
        score: float,
        reasons: tuple[str, ...],
        ts: int,
    ) -> None:
        if reasons and reasons[0] == "account_suspended":
            # Suspended by an earlier decision (of this worker or another): the refusal
            # is recorded; a suspension its worker failed to write is written now.
            if not self._complete_suspension(session, caller, raw_nir, score, reasons, ts):
                self._refuse(
                    session,
                    caller,
                    raw_nir,
                    decision=DENY,
                    reasons=reasons,
                    outcome=AccountSuspended.code,
                )
            return
        self._suspend(session, caller, raw_nir, score, reasons, rule=reasons[0] if reasons else "")

    def _suspend(
        self,
        session: Session,
        caller: Caller,
        raw_nir: str,
        score: float,
        reasons: tuple[str, ...],
        *,
        rule: str,
    ) -> None:
        """The guard's suspension: the lookup's entry, the account suspended, an alert, in
        one transaction; then the suspension is held in the shared state."""
        account_id = caller.account_id
        own_transaction(session)  # the lookup's scope may be in autocommit
        entry = self._entry(caller, raw_nir, DENY, reasons, AccountSuspended.code)
        self._audit.append([entry], session=session)
        self._auth.suspend(session, account_id, by=f"guard:{rule or 'deny'}")
        raise_alert(
            session,
            account_id=account_id,
            session_id=caller.session_id,
            decision=DENY,
            score=score,
            reasons=reasons,
            audit_ts_us=entry.ts_us,
        )
        try:
            session.commit()
        except SQLAlchemyError:
            raise AuditUnavailable() from None
        try:
            self.state.hold_suspension(account_id, secrets.token_hex(8))
        except StateUnavailable:
            # The suspension stands in the database; the record stays suspended and is
            # held again by a later lookup (_complete_suspension).
            log.error("guard_hold_not_written", account_id=account_id)  # noqa: TRY400
        log.warning("guard_denied", account_id=account_id, reasons=",".join(reasons))

    def _deny_through_client(
        self, session: Session, caller: Caller, raw_nir: str, decisions: _Decisions, ts: int
    ) -> None:
        """A ``deny`` of a lookup through practice software: the client is suspended,
        never the professional it named. Raises the answer's error."""
        assert decisions.client is not None
        assert caller.client_id is not None
        _, score, reasons = decisions.combined
        own_reasons = decisions.own[2]
        client_kind, _, client_reasons = decisions.client
        if client_kind == DENY and client_reasons[:1] == (_SUSPENDED_REASON,):
            # Suspended by an earlier decision: refused, or written now if its worker failed.
            record = client_record(caller.client_id)
            if not self._complete_suspension(
                session, caller, raw_nir, score, reasons, ts, record_id=record
            ):
                self._refuse(
                    session,
                    caller,
                    raw_nir,
                    decision=DENY,
                    reasons=reasons,
                    outcome=ClientSuspended.code,
                )
            raise ClientSuspended()
        if client_kind != DENY and own_reasons[:1] == (_SUSPENDED_REASON,):
            # The professional's own suspension (from their own session), being written.
            self._deny(session, caller, raw_nir, score, own_reasons, ts)
            raise AccountSuspended()
        denied_by = client_reasons if client_kind == DENY else own_reasons
        self._suspend_client(
            session,
            caller,
            raw_nir,
            score,
            reasons,
            rule=denied_by[0] if denied_by else "",
            held=client_kind == DENY,
        )
        raise ClientSuspended()

    def _suspend_client(
        self,
        session: Session,
        caller: Caller,
        raw_nir: str,
        score: float,
        reasons: tuple[str, ...],
        *,
        rule: str,
        held: bool,
    ) -> None:
        """The guard's suspension of a client: the lookup's entry, the client suspended
        (its tokens dead), an alert naming it, in one transaction; then, when the
        client's own record was suspended (``held``), the suspension is held in the
        shared state. The professional the lookup named stays active."""
        client_id = caller.client_id
        assert client_id is not None
        own_transaction(session)  # the lookup's scope may be in autocommit
        entry = self._entry(caller, raw_nir, DENY, reasons, ClientSuspended.code)
        self._audit.append([entry], session=session)
        suspended = suspend_client(
            session,
            self._auth.events,
            client_id,
            by=f"guard:{rule or 'deny'}",
            now=datetime.fromtimestamp(entry.ts_us / 1_000_000, tz=UTC),
        )
        if suspended:  # else another worker's decision suspended it and raised the alert
            raise_alert(
                session,
                account_id=caller.account_id,
                session_id=caller.session_id,
                decision=DENY,
                score=score,
                reasons=reasons,
                audit_ts_us=entry.ts_us,
                client_id=client_id,
            )
        try:
            session.commit()
        except SQLAlchemyError:
            raise AuditUnavailable() from None
        record = client_record(client_id)
        if held:
            try:
                self.state.hold_suspension(record, secrets.token_hex(8))
            except StateUnavailable:
                log.error("guard_hold_not_written", client_id=client_id)  # noqa: TRY400
        log.warning(
            "guard_denied_client",
            client_id=client_id,
            account_id=caller.account_id,
            reasons=",".join(reasons),
        )

    def _complete_suspension(  # noqa: PLR0917
        self,
        session: Session,
        caller: Caller,
        raw_nir: str,
        score: float,
        reasons: tuple[str, ...],
        ts: int,
        *,
        record_id: str | None = None,
    ) -> bool:
        """A record suspended but not held a minute after its decision: the worker that
        decided failed before its commit (or before holding it). True when this lookup
        wrote the suspension (its entry included). ``record_id``: the client's record
        (a lookup through practice software), else the professional's."""
        account_id = record_id or caller.account_id
        try:
            if self.state.held_suspension(account_id) is not None:
                return False
            with self._lock:
                rec = self.state.account(account_id)
            if not rec.suspended or ts - rec.velocity_ts < _SUSPENSION_GRACE_US:
                return False  # being written by the worker that decided it
            status = self.directory.account_status(account_id)
        except (StateUnavailable, SQLAlchemyError) as exc:
            log.error("guard_suspension_unchecked", error_type=type(exc).__name__)  # noqa: TRY400
            return False
        if status != "active":
            # Committed, the hold lost (Redis failed just after the commit): hold it again.
            self.state.hold_suspension(account_id, secrets.token_hex(8))
            return False
        log.warning("guard_suspension_completed", account_id=account_id)
        rule = rec.suspended_reason or reasons[0]
        if record_id is not None:
            self._suspend_client(session, caller, raw_nir, score, reasons, rule=rule, held=True)
        else:
            self._suspend(session, caller, raw_nir, score, reasons, rule=rule)
        return True

    def _close_history(self, ts: int) -> None:
        """Called under the lock at the first lookup after ``learn_until``: the end of the
        learning window, once for every worker sharing the state."""
        name = self._history_task
        deadline = time.monotonic() + _HISTORY_WAIT_SECONDS
        while True:
            status = self.state.begin_once(name, self._owner, lease_seconds=_HISTORY_LEASE_SECONDS)
            if status == "run":
                self.engine.end_history()
                self.state.end_once(name, self._owner, ts=ts)
                log.info("guard_history_closed", by="this worker")
                break
            if status == "done":
                # Closed by another worker (or by this deployment before a restart).
                self.engine.history_ended_elsewhere()
                log.info("guard_history_closed", by="another worker")
                break
            if time.monotonic() >= deadline:
                raise TimeoutError("another worker is still closing the learning window")
            time.sleep(0.05)
        self._history_open = False

    def _decide_record(  # noqa: PLR0917
        self,
        record_id: str,
        ts: int,
        nir: str,
        person: Person | None,
        given: int | None,
        network: str,
        caller: Caller,
        *,
        answered_by_client: bool,
    ) -> _Decided:
        """Called under the lock: one record's decision (a professional's, or a
        client's), with the driver's phases first (restore, first contact)."""
        rec = self._read(record_id, nir, network, caller)
        if rec.suspended:
            self._restore_if_lifted(record_id, rec)
        return self._engine_decides(
            record_id,
            ts,
            nir,
            person,
            given,
            network,
            caller,
            answered_by_client=answered_by_client,
        )

    def _engine_decides(  # noqa: PLR0917
        self,
        record_id: str,
        ts: int,
        nir: str,
        person: Person | None,
        given: int | None,
        network: str,
        caller: Caller,
        *,
        answered_by_client: bool = False,
    ) -> _Decided:
        """Called under the lock: the engine's decision, its writes sent when it has
        decided; decided again if another worker saved the record meanwhile."""
        for attempt in range(_MAX_RETRIES):
            try:
                with self.state.deferred_writes():
                    return self.engine.decide_resolved(
                        ts,
                        record_id,
                        nir,
                        person,
                        given,
                        network,
                        caller.user_agent,
                        caller.session_id,
                        answered_by_client=answered_by_client,
                    )
            except StaleRecord:
                if attempt:
                    self._pause_unlocked(_RETRY_PAUSE_SECONDS * attempt * random.random())  # noqa: S311
                continue
        raise StaleRecord(record_id)

    def _pause_unlocked(self, seconds: float) -> None:
        """Called under the lock: wait without it, so that the worker's lookups of other
        accounts go on meanwhile (the retry reads the record afresh anyway)."""
        self._lock.release()
        try:
            time.sleep(seconds)
        finally:
            self._lock.acquire()

    def _read(self, account_id: str, nir: str, network: str, caller: Caller) -> AccountState:
        """Called under the lock: the account's record, with the lookup's registry facts
        read along with it where the state saves a round trip that way."""
        pro = self.directory.professional(account_id)
        if pro is None:
            return self.state.account(account_id)  # the engine refuses it (fails closed)
        return self.state.prefetch(
            account_id,
            pro.unit,
            nir,
            network=network,
            device=caller.user_agent,
            session_id=caller.session_id,
        )

    def _restore_if_lifted(self, account_id: str, rec: AccountState) -> None:
        """Called under the lock for a record marked suspended: the engine restores it
        if an operator lifted the guard's suspension since it was committed (held, and
        the database says active); then the mark it saw is released."""
        mark = self.state.held_suspension(account_id)
        if mark is None:
            return  # being written by the worker that decided it (see _deny)
        if self.directory.account_status(account_id) != "active":
            return  # still suspended: the engine denies
        self.engine.restore(account_id, rec)
        self.state.release_suspension(account_id, mark)
        log.info("guard_record_restored", account_id=account_id)


def _now_us() -> int:
    return time.time_ns() // 1000


def _codes(reasons: tuple[str, ...]) -> str:
    """Reason codes as the audit trail stores them (comma-separated, at most 256 chars)."""
    return ",".join(reasons)[:256]


def _guard_nir(raw: str) -> str:
    """The NIR as the directory keys it when it parses; else the compacted input."""
    try:
        return parse_nir(raw).value
    except InvalidNIR:
        return compact(raw)[:32]
