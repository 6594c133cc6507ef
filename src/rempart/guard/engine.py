"""The guard's engine: one decision per lookup, from what came before it only.

See the package docstring (:mod:`rempart.guard`) for the budget and the rules.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from math import exp

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
from rempart.guard.signals import (
    budget_capacity,
    enumeration_level,
    far_weight,
    low_conversion,
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
_DEVICE = "d|"  # a device's key among the networks in AccountState.probation
_STRANGER_RULES = frozenset(("refused_network", "concurrent_new_network", "stranger_off_hours"))


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
        self._accounts: dict[str, _Account] = {}
        self._peers: dict[str, _Peer] = {}
        self._scales_us = [s * 1_000_000.0 for s in config.velocity.scales]
        self._enum_scale_us = config.enumeration.scale * 1_000_000.0
        self._enum_min_count = config.enumeration.min_count
        self._conv_scale_us = config.conversion.scale * 1_000_000.0
        self._horizon_us = config.conversion.horizon * 1_000_000
        self._unit_cap = max(config.campaign.popular_units, config.campaign.step_up_units + 1)
        self._births: dict[str | None, int | None] = {}
        self._known_after = config.network.known_after
        self._four_scales = len(self._scales_us) == 4
        self._min_matured = config.conversion.min_matured
        self._campaign_min = config.campaign.min_units
        self._campaign_step = config.campaign.step_up_units
        self._velocity_deny = config.velocity.deny_factor
        self._deny_factor = config.budget.deny_factor
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
        """:meth:`observe_claim` without building the event."""
        info = self._accounts.get(account_id)
        if info is None:
            info = self._account(account_id)
        self._state.add_claim(info.unit, nir, ts)

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
        if not self._history_done and ts >= (self._history_until or 0):
            self.refresh_peers(end_of_history=True)
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
                )
            except StaleRecord:
                continue
        raise RuntimeError(f"account {account_id!r} record kept changing under us")

    def _decide(  # noqa: PLR0912, PLR0915, PLR0917
        self,
        ts: int,
        account_id: str,
        nir: str,
        person: Person | None,
        given: int | None,
        network: str,
        device: str,
        session_id: str,
        answered_by_client: bool = False,
    ) -> tuple[DecisionKind, float, tuple[str, ...]]:
        cfg = self._cfg
        info = self._accounts.get(account_id)
        if info is None:
            info = self._account(account_id)
        unit = info.unit
        peer = info.peer
        history_until = self._history_until
        trusted = history_until is not None and ts < history_until
        state = self._state
        rec = state.account(account_id)
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

        # Who is read, and is it explained?
        found = person is not None and given == person.birth_day
        explained = False
        if found:
            assert person is not None
            explained = (
                person.doctor_unit == unit
                or 0 <= ctx.claimed_at <= ts
                or self._dir.care_linked(unit, person)
            )
        missed = not found
        if missed:
            reasons.append("malformed_nir" if person is None and malformed(nir) else "not_found")
        new_exposure = found and not explained and not ctx.seen

        # The decayed counters all last changed at the same instant (the previous
        # decision): velocity_ts == enum_ts == conv_ts.
        last = rec.velocity_ts
        elapsed = last - ts if ts > last else 0

        # Velocity at several scales.
        vel = rec.velocity
        if not vel:
            vel = rec.velocity = [0.0] * len(self._scales_us)
            rec.velocity_day_max = [0.0] * len(self._scales_us)
        if info.limits_days != rec.days:
            self._refresh_limits(rec, info)
        if self._four_scales:  # the usual configuration, unrolled (same arithmetic)
            v0, v1, v2, v3 = vel
            if elapsed:
                s0, s1, s2, s3 = self._scales_us
                v0 = v0 * exp(elapsed / s0) + 1.0
                v1 = v1 * exp(elapsed / s1) + 1.0
                v2 = v2 * exp(elapsed / s2) + 1.0
                v3 = v3 * exp(elapsed / s3) + 1.0
            else:
                v0 += 1.0
                v1 += 1.0
                v2 += 1.0
                v3 += 1.0
            new_vel = [v0, v1, v2, v3]
            l0, l1, l2, l3 = info.limits
            # max() two at a time: the builtin's comparisons in its order, and compiled
            # (rempart.guard.native) inline, where the builtin of 3+ values boxes each one.
            velocity_ratio = max(max(max(v0 / l0, v1 / l1), v2 / l2), v3 / l3)  # noqa: PLW3301
        else:
            if elapsed:
                new_vel = [
                    v * exp(elapsed / s) + 1.0 for v, s in zip(vel, self._scales_us, strict=True)
                ]
            else:
                new_vel = [v + 1.0 for v in vel]
            velocity_ratio = max([v / lim for v, lim in zip(new_vel, info.limits, strict=True)])

        # Enumeration: not-found and malformed rates.
        if rec.enum_ts < ts:
            enum_decay = exp((rec.enum_ts - ts) / self._enum_scale_us)
            enum_total = rec.enum_total * enum_decay + 1.0
            enum_missed = rec.enum_missed * enum_decay + missed
        else:
            enum_total = rec.enum_total + 1.0
            enum_missed = rec.enum_missed + missed
        enumeration = 0
        if enum_missed >= self._enum_min_count:  # validated: deny_count >= min_count
            enumeration = enumeration_level(enum_total, enum_missed, cfg.enumeration)

        # Conversion: unexplained lookups that matured with or without a claim.
        pending = rec.pending
        if pending and pending[0][0] + self._horizon_us <= ts:
            matured, converted = self._mature(rec, ts)
        else:  # nothing matures: _mature's decay alone
            matured = rec.conv_matured
            converted = rec.conv_converted
            if rec.conv_ts < ts:
                decay = exp((rec.conv_ts - ts) / self._conv_scale_us)
                matured *= decay
                converted *= decay
            rec.conv_matured, rec.conv_converted, rec.conv_ts = matured, converted, ts
        base = rec.conversion_base if rec.conversion_base >= 0 else -1.0
        if base < 0 and peer is not None:
            base = peer.conversion
        poor_conversion = (
            base > 0
            and matured >= self._min_matured
            and low_conversion(matured, converted, base, cfg.conversion)
        )

        # Networks and devices.
        known_after = self._known_after
        network_known = ctx.network_known >= known_after
        device_known = ctx.device_known >= known_after
        moved = (
            ctx.session_network is not None and ctx.session_network != network and not network_known
        )
        # campaign_level() of both, inline; validated: step_up_units >= min_units >= 1.
        campaign = 0
        min_units = self._campaign_min
        if not network_known and ctx.network_units >= min_units and not ctx.network_popular:
            campaign = 2 if ctx.network_units >= self._campaign_step else 1
        if (
            campaign < 2
            and not device_known
            and ctx.device_units >= min_units
            and not ctx.device_popular
        ):
            campaign = 2 if ctx.device_units >= self._campaign_step else 1

        # A stranger (a network new to the account, or still on probation) in use while
        # another network of the account was in use moments ago (a personal account in
        # two places), or at an hour the account never works.
        token = state.token
        net_key = token(network)
        on_probation = False
        if rec.probation:
            since = rec.probation.get(net_key, -1)
            on_probation = since >= 0 and ts - since < self._probation_us
        stranger_rule = ""
        stranger_count = 0
        new_device = False
        if not network_known or on_probation:
            new_device = not device_known
            if not new_device and rec.probation:
                since = rec.probation.get(_DEVICE + token(device), -1)
                new_device = since >= 0 and ts - since < self._probation_us
            # In use alongside: this network, then another, then this one again, within
            # span, the other one within window (a switch, after an ISP change or between
            # two sites at noon, leaves the other network behind).
            concurrent = (
                rec.net_prev == net_key
                and ts - rec.net_prev_ts <= self._span_us
                and ts - rec.net_last_ts <= self._window_us
            )
            late = not concurrent and self._off_hours(rec, peer, ts)
            if concurrent or late:
                stranger_count = rec.concurrent.get(net_key, 0) + 1
                # A new device alongside the practice is a stranger at once; otherwise
                # (a user agent string is shared by millions of browsers; a late evening
                # at home happens) after a few such lookups: legitimate parallel use, a
                # phone's connection during a home visit, stays within a handful.
                if (concurrent and new_device) or stranger_count >= self._concurrent_min:
                    stranger_rule = "concurrent_new_network" if concurrent else "stranger_off_hours"
        pair_key = ""
        refused = False
        if stranger_rule or rec.refused:
            pair_key = net_key + "|" + token(device)
            refused_at = rec.refused.get(pair_key, -1)
            refused = refused_at >= 0 and ts - refused_at < self._refuse_us

        # The cost of a new unexplained person against the day's budget.
        cost = 0.0
        if new_exposure:
            assert person is not None
            weights = cfg.weights
            reasons.append("unexplained")
            cost = 1.0
            far = far_weight(
                info.distance(person.department),
                rec.far_seen,
                rec.near_seen,
                weights.far_patient,
            )
            if far > 0:
                cost += far
                reasons.append("far_patient")
            if not network_known:
                cost += weights.new_network
                reasons.append("new_network")
            if not device_known:
                cost += weights.new_device
                reasons.append("new_device")
            if self._off_hours(rec, peer, ts):
                cost += weights.off_hours
                reasons.append("off_hours")
            if campaign:
                cost += weights.campaign
                if ctx.network_units > ctx.device_units:
                    reasons.append("campaign_network")
                else:
                    reasons.append("campaign_device")
            if poor_conversion:
                cost += weights.low_conversion
                reasons.append("low_conversion")
        capacity = info.capacity
        spent = rec.spent + cost
        enum_pressure = 0.0
        if enum_missed:
            enum_pressure = enum_missed / self._enum_min_count * min(1.0, enum_missed / enum_total)
        score = max(max(spent / capacity, velocity_ratio), enum_pressure)  # noqa: PLW3301 (as above)

        # The rules, most severe first.
        decision: DecisionKind = ALLOW
        rule = ""
        if enumeration == 2:
            decision, rule = DENY, "enumeration"
        elif velocity_ratio > self._velocity_deny and spent >= capacity:
            decision, rule = DENY, "robot"
        elif new_exposure and spent >= self._deny_factor * capacity:
            decision, rule = DENY, "budget_far_exceeded"
        elif refused and new_device and rec.refused_lookups + 1 >= self._refused_deny:
            decision, rule = DENY, "stranger_persisting"
        elif enumeration == 1:
            decision, rule = STEP_UP, "enumeration"
        elif velocity_ratio > 1.0:
            decision, rule = STEP_UP, "velocity"
        elif moved:
            decision, rule = STEP_UP, "session_new_network"
        elif refused:
            decision, rule = STEP_UP, "refused_network"
        elif stranger_rule:
            decision, rule = STEP_UP, stranger_rule
        elif new_exposure or missed:
            if rec.challenged:
                decision, rule = STEP_UP, "challenged"
            elif new_exposure and campaign == 2:
                decision, rule = STEP_UP, "campaign"
            elif new_exposure and spent > capacity:
                decision, rule = STEP_UP, "budget_exhausted"
        if rule == "campaign":
            rule = reasons[-1] if reasons[-1].startswith("campaign") else "campaign_network"
            reasons.remove(rule)
        if rule:
            reasons.insert(0, rule)

        # Change the record in one block.
        rec.velocity = new_vel
        rec.velocity_ts = ts
        day_max = rec.velocity_day_max
        if self._four_scales:
            day_max[0] = v0 if v0 > day_max[0] else day_max[0]
            day_max[1] = v1 if v1 > day_max[1] else day_max[1]
            day_max[2] = v2 if v2 > day_max[2] else day_max[2]
            day_max[3] = v3 if v3 > day_max[3] else day_max[3]
        else:
            rec.velocity_day_max = [
                v if v > m else m for v, m in zip(new_vel, day_max, strict=True)
            ]
        rec.enum_total, rec.enum_missed, rec.enum_ts = enum_total, enum_missed, ts
        if rec.net_last == net_key:
            rec.net_last_ts = ts
        else:
            rec.net_prev, rec.net_prev_ts = rec.net_last, rec.net_last_ts
            rec.net_last, rec.net_last_ts = net_key, ts
        rec.day_lookups += 1
        if new_exposure:
            rec.day_unexplained += 1
        allowed = decision == ALLOW or trusted
        if trusted:
            pass  # history teaches; it neither spends nor flags
        else:
            # A stranger's refused lookups are not the owner's, nor a client's the
            # professional's it named (the client's own record spends them).
            if rule not in _STRANGER_RULES and (decision == ALLOW or not answered_by_client):
                rec.spent = spent
            if not network_known and net_key not in rec.probation:
                rec.probation[net_key] = ts
            if not device_known:
                rec.probation.setdefault(_DEVICE + token(device), ts)
            if stranger_count:
                rec.concurrent[net_key] = stranger_count
            if decision != ALLOW:
                rec.day_flagged = True
                if decision == STEP_UP:
                    # A refused network and device answer for themselves: the owner's
                    # own network is not challenged by what a stranger did.
                    if rule == stranger_rule:
                        rec.refused[pair_key] = ts
                    elif rule == "refused_network" and new_device:
                        # Only a device new to the account counts towards a denial: a
                        # user agent string the account uses is weak evidence of a
                        # stranger (a hospital's new network with its usual browsers).
                        rec.refused_lookups += 1
                    elif rule != "refused_network":
                        rec.challenged = True
                elif answered_by_client:
                    # The client that asked is suspended, not the professional it named.
                    rec.challenged = True
                else:
                    rec.suspended = True
                    rec.suspended_reason = rule
        if allowed:
            rec.hours[(ts % DAY_US) // HOUR_US] += 1
            if found:
                assert person is not None
                if info.distance(person.department) == 2:
                    rec.far_seen += 1
                else:
                    rec.near_seen += 1
            if new_exposure:
                rec.pending.append((ts, unit + "|" + nir))
        state.save_account(account_id, rec)
        vouch = 0
        if allowed and (explained or trusted):
            vouch = known_after if trusted else 1
        state.remember(
            account_id,
            unit,
            nir if found else None,
            network=network,
            device=device,
            session_id=session_id,
            read=allowed and found,
            vouch=vouch,
            cap=self._unit_cap,
        )
        return decision, round4(score), tuple(reasons)

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

    def _mature(self, rec: AccountState, ts: int) -> tuple[float, float]:
        """Settle pending unexplained lookups older than the horizon; decayed counts."""
        matured = rec.conv_matured
        converted = rec.conv_converted
        if rec.conv_ts < ts:  # decayed(), one exp for both counters
            decay = exp((rec.conv_ts - ts) / self._conv_scale_us)
            matured *= decay
            converted *= decay
        pending = rec.pending
        horizon = self._horizon_us
        while pending and pending[0][0] + horizon <= ts:
            looked_at, key = pending.popleft()
            claim_unit, _, nir = key.partition("|")
            claimed = self._state.claimed_at(claim_unit, nir)
            matured += 1.0
            if looked_at <= claimed <= looked_at + horizon:
                converted += 1.0
        rec.conv_matured, rec.conv_converted, rec.conv_ts = matured, converted, ts
        return matured, converted

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
        rec.challenged = False
        rec.day_lookups = 0
        rec.day_unexplained = 0
        rec.day_flagged = False
        rec.velocity_day_max = [0.0] * len(self._scales_us)

    def refresh_peers(self, *, end_of_history: bool = False) -> None:
        """Recompute the peer groups' baselines from the accounts' own.

        At the end of history this also fixes each account's conversion rate, clears
        what history spent, and freezes which networks and devices are common.
        """
        cfg = self._cfg
        groups: dict[str, list[AccountState]] = {}
        for pro in self._dir.accounts():
            rec = self._state.account(pro.account_id)
            if end_of_history:
                rec.spent = 0.0
                if rec.conv_matured >= cfg.conversion.min_matured:
                    rec.conversion_base = rec.conv_converted / rec.conv_matured
                self._state.save_account(pro.account_id, rec)
            if rec.days < 1:
                continue
            for key in _peer_keys(pro):
                groups.setdefault(key, []).append(rec)
        scales = len(cfg.velocity.scales)
        peers: dict[str, _Peer] = {}
        for key, members in groups.items():
            peaks = tuple(
                statistics.median(m.peaks[i] if len(m.peaks) == scales else 0.0 for m in members)
                for i in range(scales)
            )
            hours = tuple(sum(m.hours[h] for m in members) for h in range(24))
            rates = [m.conversion_base for m in members if m.conversion_base >= 0]
            peers[key] = _Peer(
                accounts=len(members),
                high_unexplained=statistics.median(m.high_unexplained for m in members),
                peaks=peaks,
                hours=hours,
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
