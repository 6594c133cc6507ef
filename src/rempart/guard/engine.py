"""The guard's engine: one decision per lookup, from what came before it only.

See the package docstring (:mod:`rempart.guard`) for the budget and the rules.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from rempart.guard.config import GuardConfig
from rempart.guard.directory import (
    Directory,
    Person,
    Professional,
    birth_day,
    department_distance,
)
from rempart.guard.events import (
    ALLOW,
    DAY_US,
    DENY,
    HOUR_US,
    STEP_UP,
    ClaimEvent,
    Decision,
    DecisionKind,
)
from rempart.guard.events import LookupEvent as Lookup
from rempart.guard.phases import (
    DEVICE_KEY,
    Strangers,
    conversion,
    cost,
    enumeration,
    explanation,
    rule,
    strangers,
    velocity,
)
from rempart.guard.signals import (
    budget_capacity,
    far_weight,
    malformed,
    network_of,
    off_hours,
    velocity_limits,
)
from rempart.guard.state import AccountState, GuardState, StaleRecord

__all__ = ["Guard", "UnknownAccount"]


class UnknownAccount(LookupError):
    """A lookup or claim names an account the directory does not know."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"unknown account {account_id!r}")
        self.account_id = account_id


@dataclass(frozen=True, slots=True)
class _Peer:
    """A peer group's baselines: what an account with a short history leans on."""

    accounts: int
    high_unexplained: float
    peaks: tuple[float, ...]
    hours: tuple[int, ...]
    conversion: float


class _Account:
    """Facts about an account cached by the engine: its directory entry, its peer
    group, and the velocity limits and budget capacity of its current baselines.

    The limits and the capacity depend on the record's ``peaks``,
    ``high_unexplained`` and ``days`` (and on the peer group), and the first two
    change only when a clean day is folded in, which increments ``days``: the
    cache is keyed by ``days`` (``limits_days``). Peer groups are cached until
    :meth:`Guard.refresh_peers`, which drops every entry.
    """

    __slots__ = (
        "capacity",
        "department",
        "distances",
        "group",
        "limits",
        "limits_days",
        "peer",
        "professional",
        "unit",
    )

    def __init__(self, professional: Professional, peer: _Peer | None) -> None:
        self.professional = professional
        self.peer = peer
        self.unit = professional.unit
        self.department = professional.department
        self.group = _peer_keys(professional)[0]
        self.limits: list[float] = []
        self.capacity = 0.0
        self.limits_days = -1
        self.distances: dict[str, int] = {}

    def distance(self, department: str) -> int:
        """:func:`department_distance` from the account's department, remembered."""
        found = self.distances.get(department)
        if found is None:
            found = self.distances[department] = department_distance(department, self.department)
        return found


_MAX_RETRIES = 5
_SUSPENDED = ("account_suspended",)
_BILLABLE_CAP = 512
"""Persons remembered per day for a claim's refund: an honest day's unexplained
persons, not a robot's thousands (it would bill none of them anyway)."""
_STRANGER_RULES = frozenset(
    ("refused_network", "concurrent_new_network", "stranger_off_hours", "stranger_new_place")
)


class Guard:
    """Decides ``allow``, ``step_up`` or ``deny`` for each lookup; learns from claims.

    Lookups with ``ts < history_until`` are trusted history: decided as usual (the
    decision is not acted upon) and learnt from without suspicion. Peer baselines
    are computed when the first lookup at or after ``history_until`` arrives (or by
    :meth:`refresh_peers`). Deterministic: the same events in the same order give
    the same decisions. Events are never modified.
    """

    def __init__(
        self,
        directory: Directory,
        state: GuardState,
        config: GuardConfig,
        *,
        history_until: int | None = None,
    ) -> None:
        self._dir = directory
        self._state = state
        self._cfg = config
        self._history_until = history_until
        self._history_done = history_until is None
        self._first_day = -1
        self._day = -1
        self._accounts: dict[str, _Account] = {}
        self._peers: dict[str, _Peer] = {}
        self._scales_us = [s * 1_000_000.0 for s in config.velocity.scales]
        self._enum_scale_us = config.enumeration.scale * 1_000_000.0
        self._conv_scale_us = config.conversion.scale * 1_000_000.0
        self._horizon_us = config.conversion.horizon * 1_000_000
        self._unit_cap = max(config.campaign.popular_units, config.campaign.step_up_units + 1)
        self._births: dict[str | None, int | None] = {}
        self._known_after = config.network.known_after
        self._first_contact = config.network.first_contact
        self._velocity_deny = config.velocity.deny_factor
        self._home_pace = config.velocity.home_pace
        self._min_days = config.learning.min_days
        self._deny_factor = config.budget.deny_factor
        self._surge_factor = config.budget.surge_factor
        self._surge_accounts = config.budget.surge_accounts
        self._surge_share = config.budget.surge_share
        self._window_us = config.concurrency.window * 1_000_000
        self._span_us = config.concurrency.span * 1_000_000
        self._probation_us = config.concurrency.probation * 1_000_000
        self._refuse_us = config.concurrency.refuse_for * 1_000_000
        self._concurrent_min = config.concurrency.min_lookups
        self._refused_deny = config.concurrency.deny_after

    # -- claims ---------------------------------------------------------------------------

    def observe_claim(self, claim: ClaimEvent) -> None:
        self.observe_claim_resolved(claim.ts, claim.account_id, claim.nir)

    def observe_claim_resolved(self, ts: int, account_id: str, nir: str) -> None:
        """:meth:`observe_claim` without building the event.

        The claim explains the unit's later lookups of the person and counts for its
        conversion. And when the account read that person today as a new unexplained
        one, the lookup's cost goes back to the day's budget: the care was billed, so
        the visit was real (a resort town's pharmacy serving tourists bills each at
        the counter; a robot never bills)."""
        info = self._accounts.get(account_id)
        if info is None:
            info = self._account(account_id)
        state = self._state
        state.add_claim(info.unit, nir, ts)
        for _ in range(_MAX_RETRIES):
            rec = state.account(account_id)
            if not rec.billable or rec.day != ts // DAY_US or rec.suspended:
                return
            paid = rec.billable.pop(state.token(nir), 0.0)
            if not paid:
                return
            rec.spent = max(0.0, rec.spent - paid)
            try:
                state.save_account(account_id, rec)
            except StaleRecord:
                continue
            return
        raise RuntimeError(f"account {account_id!r} record kept changing under us")

    # -- decisions ------------------------------------------------------------------------

    def decide(self, lookup: Lookup) -> Decision:
        person = self._dir.person(lookup.nir)
        births = self._births
        given = births.get(lookup.birth_date, -2)
        if given == -2:
            given = births[lookup.birth_date] = birth_day(lookup.birth_date)
        network = network_of(
            lookup.ip, self._cfg.network.ipv4_prefix, self._cfg.network.ipv6_prefix
        )
        kind, score, reasons = self.decide_resolved(
            lookup.ts,
            lookup.account_id,
            lookup.nir,
            person,
            given,
            network,
            lookup.user_agent,
            lookup.session_id,
        )
        return Decision(lookup.event_id, kind, score, reasons)

    def decide_resolved(  # noqa: PLR0917
        self,
        ts: int,
        account_id: str,
        nir: str,
        person: Person | None,
        given: int | None,
        network: str,
        device: str,
        session_id: str,
        *,
        answered_by_client: bool = False,
    ) -> tuple[DecisionKind, float, tuple[str, ...]]:
        """:meth:`decide` for a lookup whose reference facts the caller already resolved.

        ``person`` is ``directory.person(nir)``, ``given`` the day number of the given
        birth date (:func:`~rempart.guard.directory.birth_day`), ``network``
        :func:`~rempart.guard.signals.network_of` the address with the configured
        prefixes, ``device`` the user agent. The offline replay resolves each distinct
        value once; the answer is the same as :meth:`decide`'s.

        ``answered_by_client``: the lookup comes through a practice software whose own
        record (``client/<id>``, decided on the same lookup) answers for its refusals
        (see *Practice software* in the package docstring): a refusal decided here then
        spends nothing of this record's budget, and a ``deny`` challenges this record
        for the rest of the day instead of suspending it.
        """
        history_until = self._history_until
        if not self._history_done and ts >= (history_until or 0):
            self.end_history()
        if ts // DAY_US != self._day:
            self._new_day(ts // DAY_US)
        trusted = history_until is not None and ts < history_until
        for _ in range(_MAX_RETRIES):
            try:
                return self._decide(
                    ts,
                    account_id,
                    nir,
                    person,
                    given,
                    network,
                    device,
                    session_id,
                    answered_by_client,
                    trusted,
                )
            except StaleRecord:
                continue
        raise RuntimeError(f"account {account_id!r} record kept changing under us")

    # -- the account's lifecycle ----------------------------------------------------------

    def learn(  # noqa: PLR0917
        self,
        ts: int,
        account_id: str,
        nir: str,
        person: Person | None,
        given: int | None,
        network: str,
        device: str,
        session_id: str,
    ) -> None:
        """A lookup of trusted history, whatever ``history_until`` says: the warm start
        feeds the audit trail's recent lookups through it, as the replay's lookups
        before ``history_until`` go (decided, never acted upon, learnt from). Call
        :meth:`end_history` after the last one."""
        if ts // DAY_US != self._day:
            self._new_day(ts // DAY_US)
        for _ in range(_MAX_RETRIES):
            try:
                self._decide(
                    ts, account_id, nir, person, given, network, device, session_id, False, True
                )
            except StaleRecord:
                continue
            return
        raise RuntimeError(f"account {account_id!r} record kept changing under us")

    def end_history(self) -> None:
        """The end of the trusted history: each account's conversion rate fixed, what
        history spent cleared, common networks and devices frozen, peer groups
        computed. Once per deployment (drivers sharing a state run it once between
        them); the replay's and a learning window's end come here at their first
        lookup after ``history_until``."""
        for _ in range(_MAX_RETRIES):
            try:
                self.refresh_peers(end_of_history=True)
            except StaleRecord:
                continue  # a straggling decision of the history saved a record
            return
        raise RuntimeError("records kept changing while ending the history")

    def _new_day(self, day: int) -> None:
        """A young deployment (its first lookups fewer than ``learning.min_days`` days
        ago, with no longer history) recomputes the peer groups every new day from the
        accounts' clean days so far: an account without history leans on its peers for
        velocity and budget, and a deployment without history gets peers from its first
        days rather than never."""
        if self._first_day < 0:
            self._first_day = day
        self._day = day
        if self._history_done and 0 < day - self._first_day <= self._cfg.learning.min_days:
            self.refresh_peers(today=day)
            # And what is common infrastructure (a practice software's user agent, a
            # hospital's network), as the end of a history freezes it.
            self._state.freeze_popular(self._cfg.campaign.popular_units)

    def history_ended_elsewhere(self) -> None:
        """Another driver sharing the state ended the history (:meth:`end_history`): the
        peer groups from the shared records, and nothing left to end here."""
        self.refresh_peers()
        self._history_done = True

    def restore(self, account_id: str, rec: AccountState | None = None) -> AccountState:
        """An operator restored the account after the guard suspended it (the driver
        knows: the database is the authority). The incident is judged: the suspension,
        the day's challenge and carried-over debt go, and so do the burst's counters and
        the networks it used moments ago, which must not weigh on the owner's first
        lookups (the owner's own place, minutes after, is no concurrent use); networks
        and devices refused as strangers stay refused. ``rec``: the record as the driver
        read it (default: read now); a record saved meanwhile is read again. Returns the
        record as saved."""
        if rec is None:
            rec = self._state.account(account_id)
        for _ in range(_MAX_RETRIES):
            if not rec.suspended:
                return rec
            rec.suspended = False
            rec.suspended_reason = ""
            rec.spent = 0.0
            rec.challenged = False
            rec.refused_lookups = 0
            rec.velocity = [0.0] * len(rec.velocity)
            rec.enum_total = rec.enum_missed = 0.0
            rec.net_last = rec.net_prev = ""
            rec.net_last_ts = rec.net_prev_ts = -1
            try:
                self._state.save_account(account_id, rec)
            except StaleRecord:
                rec = self._state.account(account_id)  # saved meanwhile: look again
                continue
            return rec
        raise StaleRecord(account_id)

    def _decide(  # noqa: PLR0915, PLR0917 - the phases in order, then the record
        self,
        ts: int,
        account_id: str,
        nir: str,
        person: Person | None,
        given: int | None,
        network: str,
        device: str,
        session_id: str,
        answered_by_client: bool,
        trusted: bool,
    ) -> tuple[DecisionKind, float, tuple[str, ...]]:
        cfg = self._cfg
        info = self._accounts.get(account_id)
        if info is None:
            info = self._account(account_id)
        unit = info.unit
        peer = info.peer
        state = self._state
        rec = state.account(account_id)
        if rec.day < 0 and self._first_contact:
            self._meet(rec, account_id, unit, network, device, session_id, ts, trusted=trusted)
        day = ts // DAY_US
        if rec.day != day:
            self._roll(rec, day, info)
        if rec.suspended:
            rec.day_flagged = True
            state.save_account(account_id, rec)
            return DENY, self._deny_factor, _SUSPENDED

        ctx = state.context(
            account_id, unit, nir, network=network, device=device, session_id=session_id
        )
        reasons: list[str] = []

        # 1. Who is read, and is it explained?
        found, explained = explanation(
            unit, person, given, ctx.claimed_at, ts, self._dir.care_linked
        )
        missed = not found
        if missed:
            reasons.append("malformed_nir" if person is None and malformed(nir) else "not_found")
        new_exposure = found and not explained and not ctx.seen

        # 2. Velocity. The decayed counters all last changed at the same instant (the
        # previous decision): velocity_ts == enum_ts == conv_ts.
        last = rec.velocity_ts
        if not rec.velocity:
            rec.velocity = [0.0] * len(self._scales_us)
            rec.velocity_day_max = [0.0] * len(self._scales_us)
        if info.limits_days != rec.days:
            self._refresh_limits(rec, info)
        new_vel, velocity_ratio, pace_ratio = velocity(
            rec.velocity, last - ts if ts > last else 0, self._scales_us, info.limits
        )

        # 3. Enumeration.
        enum_total, enum_missed, enumeration_now, enum_pressure = enumeration(
            rec, ts, missed, self._enum_scale_us, cfg.enumeration
        )

        # 4. Conversion.
        base = rec.conversion_base if rec.conversion_base >= 0 else -1.0
        if base < 0 and peer is not None:
            base = peer.conversion
        poor_conversion = conversion(
            rec, ts, state.claimed_at, base, self._conv_scale_us, self._horizon_us, cfg.conversion
        )

        # 5. Networks and devices.
        off = self._off_hours(rec, peer, ts)
        seen = strangers(
            rec,
            ctx,
            ts,
            network,
            state.token,
            device,
            off,
            self._known_after,
            cfg.campaign,
            self._probation_us,
            self._window_us,
            self._span_us,
            self._refuse_us,
            self._concurrent_min,
            rec.days >= self._min_days,
        )

        # 6. The cost of a new unexplained person against the day's budget.
        spent_now = 0.0
        if new_exposure:
            assert person is not None
            weights = cfg.weights
            spent_now = cost(
                reasons,
                far_weight(
                    info.distance(person.department),
                    rec.far_seen,
                    rec.near_seen,
                    weights.far_patient,
                ),
                seen,
                off,
                poor_conversion,
                weights,
            )
        capacity = info.capacity
        spent = rec.spent + spent_now
        if (
            new_exposure
            and spent > capacity
            and self._surge_factor > 1.0
            and seen.settled
            and not seen.campaign
            and not seen.rule
            and not seen.refused
        ):
            capacity = self._surge(account_id, info, day, capacity)
        score = max(max(spent / capacity, velocity_ratio), enum_pressure)  # noqa: PLW3301

        # 7. The rule.
        decision, why = rule(
            enumeration_now,
            velocity_ratio,
            pace_ratio,
            explained and seen.settled,
            spent,
            capacity,
            new_exposure,
            missed,
            seen,
            rec.challenged,
            rec.refused_lookups,
            self._velocity_deny,
            self._home_pace,
            self._deny_factor,
            self._refused_deny,
            rec.days >= self._min_days,
        )
        if why and why == seen.campaign_reason:
            reasons.remove(why)  # the cost phase listed it: it leads as the rule instead
        if why:
            reasons.insert(0, why)

        self._record(
            rec,
            account_id,
            unit,
            nir,
            ts,
            info,
            person if found else None,
            new_vel,
            enum_total,
            enum_missed,
            seen,
            network,
            device,
            session_id,
            decision,
            why,
            spent,
            spent_now,
            trusted=trusted,
            new_exposure=new_exposure,
            explained=explained,
            answered_by_client=answered_by_client,
        )
        return decision, round4(score), tuple(reasons)

    def _record(  # noqa: PLR0912, PLR0915, PLR0917
        self,
        rec: AccountState,
        account_id: str,
        unit: str,
        nir: str,
        ts: int,
        info: _Account,
        person: Person | None,
        new_vel: list[float],
        enum_total: float,
        enum_missed: float,
        seen: Strangers,
        network: str,
        device: str,
        session_id: str,
        decision: DecisionKind,
        why: str,
        spent: float,
        charged: float,
        *,
        trusted: bool,
        new_exposure: bool,
        explained: bool,
        answered_by_client: bool,
    ) -> None:
        """The decision's changes to the record, in one block, then to the registries."""
        state = self._state
        rec.velocity = new_vel
        rec.velocity_ts = ts
        day_max = rec.velocity_day_max
        for i in range(len(new_vel)):
            day_max[i] = max(day_max[i], new_vel[i])
        rec.enum_total, rec.enum_missed, rec.enum_ts = enum_total, enum_missed, ts
        net_key = seen.net_key
        if rec.net_last == net_key:
            rec.net_last_ts = ts
        else:
            rec.net_prev, rec.net_prev_ts = rec.net_last, rec.net_last_ts
            rec.net_last, rec.net_last_ts = net_key, ts
        rec.day_lookups += 1
        if new_exposure:
            rec.day_unexplained += 1
        allowed = decision == ALLOW or trusted
        if not trusted:  # history teaches; it neither spends nor flags
            # A stranger's refused lookups are not the owner's, nor a client's the
            # professional's it named (the client's own record spends them).
            if why not in _STRANGER_RULES and (decision == ALLOW or not answered_by_client):
                rec.spent = spent
                if charged and len(rec.billable) < _BILLABLE_CAP:
                    rec.billable[state.token(nir)] = charged
            if not seen.network_known and net_key not in rec.probation:
                rec.probation[net_key] = ts
            if not seen.device_known:
                rec.probation.setdefault(DEVICE_KEY + state.token(device), ts)
            if seen.count:
                rec.concurrent[net_key] = seen.count
            if decision != ALLOW:
                rec.day_flagged = True
                if decision == STEP_UP:
                    # A refused network and device answer for themselves: the owner's
                    # own network is not challenged by what a stranger did.
                    if why == seen.rule:
                        rec.refused[seen.pair_key] = ts
                    elif why == "refused_network" and seen.new_device:
                        # Only a device new to the account counts towards a denial: a
                        # user agent string the account uses is weak evidence of a
                        # stranger (a hospital's new network with its usual browsers).
                        rec.refused_lookups += 1
                    elif why != "refused_network":
                        rec.challenged = True
                elif answered_by_client:
                    # The client that asked is suspended, not the professional it named.
                    rec.challenged = True
                else:
                    rec.suspended = True
                    rec.suspended_reason = why
        if allowed:
            rec.hours[(ts % DAY_US) // HOUR_US] += 1
            if person is not None:
                if info.distance(person.department) == 2:
                    rec.far_seen += 1
                else:
                    rec.near_seen += 1
            if new_exposure:
                rec.pending.append((ts, unit + "|" + nir))
        state.save_account(account_id, rec)
        vouch = 0
        if allowed and (explained or trusted):
            vouch = self._known_after if trusted else 1
        state.remember(
            account_id,
            unit,
            None if person is None else nir,
            network=network,
            device=device,
            session_id=session_id,
            read=allowed and person is not None,
            vouch=vouch,
            cap=self._unit_cap,
        )

    def _surge(self, account_id: str, info: _Account, day: int, capacity: float) -> float:
        """An account over its budget from its usual network and device: a regional
        surge when enough of its peer group (profession and department) are too today
        (the area's pharmacies in the holidays surge together; a compromised account
        works from elsewhere), today or yesterday (a season lasts: the area's earliest
        riser need not wait for the others to run out); then the day's capacity is
        ``budget.surge_factor`` times larger for those working from their usual place."""
        today, yesterday = self._state.surging(info.group, day, account_id)
        count = max(today, yesterday)
        peer = self._peers.get(info.group)
        size = peer.accounts if peer is not None else 0
        if count >= max(float(self._surge_accounts), self._surge_share * size):
            return capacity * self._surge_factor
        return capacity

    def _meet(  # noqa: PLR0917
        self,
        rec: AccountState,
        account_id: str,
        unit: str,
        network: str,
        device: str,
        session: str,
        ts: int,
        *,
        trusted: bool,
    ) -> None:
        """First contact: an account the guard has never seen has no network or device
        to compare with, and every one would count as new (an honest professional's
        second stranger would already be stepped up). So its first lookup's network and
        device become its baseline, as the networks of the history do. The budget still
        bounds a never-seen account taken over (``network.first_contact``).

        Outside a trusted history the first network is also on probation, as any
        network first seen after the history: whoever came first may be an attacker
        already at work on a fresh deployment, and a baseline that is not on probation
        would make the owner, arriving next from the practice, the stranger. Only for
        concurrent use, though: not at its off hours (a fresh deployment knows no hours
        yet), and its device is not on probation (a device on probation makes a stranger
        at its first concurrent lookup: a practice's second line would suspend it)."""
        if not trusted:
            rec.first_network = self._state.token(network)
            rec.probation[rec.first_network] = ts
        self._state.remember(
            account_id,
            unit,
            None,
            network=network,
            device=device,
            session_id=session,
            read=False,
            vouch=self._known_after,
            cap=self._unit_cap,
        )

    def _off_hours(self, rec: AccountState, peer: _Peer | None, ts: int) -> bool:
        """An hour the account (or, with too little history, its peers) hardly works."""
        hours: list[int] | tuple[int, ...] = rec.hours
        if sum(hours) < self._cfg.hours.min_lookups and peer is not None:
            hours = peer.hours
        return bool(off_hours(hours, (ts % DAY_US) // HOUR_US, self._cfg.hours))

    # -- baselines ------------------------------------------------------------------------

    def _refresh_limits(self, rec: AccountState, info: _Account) -> None:
        """Velocity limits and budget capacity of the account's current baselines."""
        cfg = self._cfg
        peer = info.peer
        info.limits = velocity_limits(
            cfg.velocity.floor,
            rec.peaks,
            peer.peaks if peer is not None else None,
            cfg.velocity.peak_factor,
            trusted_history=rec.days >= cfg.learning.min_days,
        )
        info.capacity = budget_capacity(
            rec.high_unexplained,
            rec.days,
            peer.high_unexplained if peer is not None else None,
            cfg.learning.min_days,
            cfg.budget,
        )
        info.limits_days = rec.days

    def _roll(self, rec: AccountState, day: int, info: _Account) -> None:
        """A new budget day: fold a clean day into the baselines, carry any overspending."""
        if rec.day >= 0 and rec.day_lookups > 0 and not rec.day_flagged:
            rec.days += 1
            rec.high_unexplained = max(
                rec.high_unexplained * self._cfg.learning.high_decay, float(rec.day_unexplained)
            )
            if rec.velocity_day_max:
                if len(rec.peaks) != len(rec.velocity_day_max):
                    rec.peaks = [0.0] * len(rec.velocity_day_max)
                rec.peaks = [
                    max(a, b) for a, b in zip(rec.peaks, rec.velocity_day_max, strict=True)
                ]
        if info.limits_days != rec.days:
            self._refresh_limits(rec, info)
        rec.spent = max(0.0, rec.spent - info.capacity)
        if rec.probation or rec.refused:
            start = day * DAY_US
            rec.probation = {
                k: t for k, t in rec.probation.items() if start - t < self._probation_us
            }
            rec.refused = {k: t for k, t in rec.refused.items() if start - t < self._refuse_us}
            rec.concurrent = {k: n for k, n in rec.concurrent.items() if k in rec.probation}
        rec.day = day
        if rec.billable:
            rec.billable = {}
        rec.challenged = False
        rec.day_lookups = 0
        rec.day_unexplained = 0
        rec.day_flagged = False
        rec.velocity_day_max = [0.0] * len(self._scales_us)

    def refresh_peers(self, *, end_of_history: bool = False, today: int = -1) -> None:
        """Recompute the peer groups' baselines from the accounts' own.

        At the end of history this also fixes each account's conversion rate, clears
        what history spent, and freezes which networks and devices are common. With
        ``today`` (a young deployment's new day), an account's last clean day before
        it counts though the account has not rolled into a new day yet (nothing is
        saved: the account folds it in itself at its next lookup).
        """
        cfg = self._cfg
        scales = len(cfg.velocity.scales)
        # Per group: each member's high day, velocity peaks, hours, conversion rate.
        groups: dict[str, list[tuple[float, list[float], list[int], float]]] = {}
        for pro in self._dir.accounts():
            rec = self._state.account(pro.account_id)
            if end_of_history:
                rec.spent = 0.0
                if rec.conv_matured >= cfg.conversion.min_matured:
                    rec.conversion_base = rec.conv_converted / rec.conv_matured
                self._state.save_account(pro.account_id, rec)
            days = rec.days
            high = rec.high_unexplained
            peaks = rec.peaks if len(rec.peaks) == scales else [0.0] * scales
            if 0 <= rec.day < today and rec.day_lookups > 0 and not rec.day_flagged:
                days += 1
                high = max(high * cfg.learning.high_decay, float(rec.day_unexplained))
                if len(rec.velocity_day_max) == scales:
                    peaks = [max(a, b) for a, b in zip(peaks, rec.velocity_day_max, strict=True)]
            if days < 1:
                continue
            member = (high, peaks, rec.hours, rec.conversion_base)
            for key in _peer_keys(pro):
                groups.setdefault(key, []).append(member)
        peers: dict[str, _Peer] = {}
        for key, members in groups.items():
            rates = [m[3] for m in members if m[3] >= 0]
            peers[key] = _Peer(
                accounts=len(members),
                high_unexplained=statistics.median(m[0] for m in members),
                peaks=tuple(statistics.median(m[1][i] for m in members) for i in range(scales)),
                hours=tuple(sum(m[2][h] for m in members) for h in range(24)),
                conversion=statistics.median(rates) if rates else -1.0,
            )
        self._peers = peers
        self._accounts.clear()
        if end_of_history:
            self._state.freeze_popular(cfg.campaign.popular_units)
            self._history_done = True

    def _account(self, account_id: str) -> _Account:
        info = self._accounts.get(account_id)
        if info is not None:
            return info
        pro = self._dir.professional(account_id)
        if pro is None:
            raise UnknownAccount(account_id)
        peer = None
        for key in _peer_keys(pro):
            candidate = self._peers.get(key)
            if candidate is not None and candidate.accounts >= self._cfg.learning.peer_min_accounts:
                peer = candidate
                break
        if peer is None:
            peer = self._peers.get(_peer_keys(pro)[-1])
        info = self._accounts[account_id] = _Account(pro, peer)
        return info


def _peer_keys(pro: Professional) -> tuple[str, str]:
    """Peer groups, narrowest first: (profession, department), then the profession."""
    return (f"{pro.profession}|{pro.department}", pro.profession)


def round4(x: float) -> float:
    """``round(x, 4)``, bit for bit, without its decimal conversion in the usual case.

    ``round`` rounds the exact value of ``x`` to 4 decimals (half to even) and reads
    the decimal back: the double nearest to ``k / 10**4`` for the rounded integer ``k``,
    which is what the division below gives (``k`` and ``10**4`` are exact doubles and
    the division is correctly rounded). ``p = x * 10**4`` is off the exact product by
    at most ``2**-53 * p``; when its fractional part is farther than ``1e-15 * p`` from
    a half, the exact product rounds to the same ``k``. Otherwise (a near tie), and
    outside ``(0, 1e11)``, ``round`` itself answers.

    >>> [round4(v) == round(v, 4) for v in (0.123456, 2.00005, 1 / 3, 7.0)]
    [True, True, True, True]
    """
    if 0.0 < x < 1e11:
        p = x * 10_000.0
        frac = p % 1.0
        if abs(frac - 0.5) > p * 1e-15:
            return (p - frac + (1.0 if frac > 0.5 else 0.0)) / 10_000.0
    return round(x, 4)
