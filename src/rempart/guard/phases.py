"""The phases of one decision, in the order the engine runs them.

:meth:`rempart.guard.engine.Guard.decide_resolved` reads the account's record and
the lookup's registry facts, then runs:

1. :func:`explanation`: is the person found, and is the lookup explained?
2. :func:`velocity`: the decayed lookup counters against the account's limits;
3. :func:`enumeration`: the not-found and malformed rates;
4. :func:`conversion`: whether unexplained lookups still turn into claims;
5. :func:`strangers`: the network and device (known, on probation, a campaign, a
   stranger alongside the practice, refused earlier);
6. :func:`cost`: what a new unexplained person costs against the day's budget;
7. :func:`rule`: the decision, most severe rule first;

and changes the record in one block. Each phase is a function of its inputs
(:func:`conversion` also settles the record's matured lookups, as the decision
would anyway); none keeps anything between calls. The small rules they combine
live in :mod:`rempart.guard.signals`, each defined once.

The phases are compiled with the engine (:mod:`rempart.guard.native`): plain
functions over numbers, strings and tuples, which mypyc calls directly.
"""

from __future__ import annotations

from collections.abc import Callable
from math import exp

from rempart.guard.config import (
    CampaignConfig,
    ConversionConfig,
    EnumerationConfig,
    WeightsConfig,
)
from rempart.guard.directory import Person
from rempart.guard.events import ALLOW, DENY, STEP_UP, DecisionKind
from rempart.guard.signals import (
    campaign_level,
    enumeration_level,
    explained_by,
    low_conversion,
    session_moved,
)
from rempart.guard.state import AccountState, Context

__all__ = [
    "DEVICE_KEY",
    "Strangers",
    "attacker_evidence",
    "conversion",
    "cost",
    "enumeration",
    "explanation",
    "rule",
    "strangers",
    "velocity",
]

DEVICE_KEY = "d|"
"""A device's key among the networks in :attr:`AccountState.probation`."""


# -- 1. explanation ----------------------------------------------------------------------


def explanation(  # noqa: PLR0917
    unit: str,
    person: Person | None,
    given: int | None,
    claimed_at: int,
    ts: int,
    care_linked: Callable[[str, Person], bool],
) -> tuple[bool, bool]:
    """(found, explained): the person exists with the given birth date, and the unit
    may look them up (declared doctor, an earlier claim, a care link; the directory's
    care links are asked last, as they may cost a lookup)."""
    if person is None or given != person.birth_day:
        return False, False
    return True, explained_by(unit, person, claimed_at, ts, care_linked)


# -- 2. velocity -------------------------------------------------------------------------


def velocity(
    counters: list[float], elapsed: int, scales_us: list[float], limits: list[float]
) -> tuple[list[float], float, float]:
    """The counters with this lookup counted (each decayed over ``-elapsed`` µs, the
    time since the previous decision, on its own scale), the largest ratio of a
    counter to its limit, and the ratio at the shortest scale (the pace right now)."""
    if len(counters) == 4:  # the usual configuration, unrolled (same arithmetic)
        v0, v1, v2, v3 = counters
        if elapsed:
            s0, s1, s2, s3 = scales_us
            v0 = v0 * exp(elapsed / s0) + 1.0
            v1 = v1 * exp(elapsed / s1) + 1.0
            v2 = v2 * exp(elapsed / s2) + 1.0
            v3 = v3 * exp(elapsed / s3) + 1.0
        else:
            v0 += 1.0
            v1 += 1.0
            v2 += 1.0
            v3 += 1.0
        l0, l1, l2, l3 = limits
        r0 = v0 / l0
        # max() two at a time: the builtin's comparisons in its order, and compiled
        # inline, where the builtin of 3+ values boxes each one.
        return [v0, v1, v2, v3], max(max(max(r0, v1 / l1), v2 / l2), v3 / l3), r0  # noqa: PLW3301
    if elapsed:
        counted = [v * exp(elapsed / s) + 1.0 for v, s in zip(counters, scales_us, strict=True)]
    else:
        counted = [v + 1.0 for v in counters]
    ratios = [v / lim for v, lim in zip(counted, limits, strict=True)]
    return counted, max(ratios), ratios[0]


# -- 3. enumeration ----------------------------------------------------------------------


def enumeration(
    rec: AccountState, ts: int, missed: bool, scale_us: float, cfg: EnumerationConfig
) -> tuple[float, float, int, float]:
    """The decayed counts of lookups and of not-found ones with this lookup, the level
    (0 nothing, 1 step up, 2 deny) and the pressure the score shows (about 1 at the
    step-up's count)."""
    if rec.enum_ts < ts:
        decay = exp((rec.enum_ts - ts) / scale_us)
        total = rec.enum_total * decay + 1.0
        misses = rec.enum_missed * decay + missed
    else:
        total = rec.enum_total + 1.0
        misses = rec.enum_missed + missed
    level = 0
    pressure = 0.0
    if misses:
        min_count = cfg.min_count
        if misses >= min_count:  # validated: deny_count >= min_count
            level = enumeration_level(total, misses, cfg)
        pressure = misses / min_count * min(1.0, misses / total)
    return total, misses, level, pressure


# -- 4. conversion -----------------------------------------------------------------------


def conversion(  # noqa: PLR0917
    rec: AccountState,
    ts: int,
    claimed_at: Callable[[str, str], int],
    base: float,
    scale_us: float,
    horizon_us: int,
    cfg: ConversionConfig,
) -> bool:
    """Whether the account's recent unexplained lookups turn into claims far less than
    ``base`` (its own learnt rate, or its peers'; negative: unknown). Settles the
    pending lookups older than the horizon (converted when the unit billed the person
    within it) and decays the counters to ``ts``, in the record."""
    matured = rec.conv_matured
    converted = rec.conv_converted
    if rec.conv_ts < ts:
        decay = exp((rec.conv_ts - ts) / scale_us)
        matured *= decay
        converted *= decay
    pending = rec.pending
    while pending and pending[0][0] + horizon_us <= ts:
        looked_at, key = pending.popleft()
        claim_unit, _, nir = key.partition("|")
        claimed = claimed_at(claim_unit, nir)
        matured += 1.0
        if looked_at <= claimed <= looked_at + horizon_us:
            converted += 1.0
    rec.conv_matured, rec.conv_converted, rec.conv_ts = matured, converted, ts
    return base > 0 and low_conversion(matured, converted, base, cfg)


# -- 5. strangers ------------------------------------------------------------------------


class Strangers:
    """What the network and device of a lookup say (:func:`strangers`)."""

    __slots__ = (
        "campaign",
        "campaign_reason",
        "count",
        "device_known",
        "moved",
        "net_key",
        "network_known",
        "new_device",
        "pair_key",
        "refused",
        "rule",
        "settled",
    )

    def __init__(  # noqa: PLR0917
        self,
        network_known: bool,
        device_known: bool,
        moved: bool,
        campaign: int,
        net_key: str,
        rule: str,
        count: int,
        new_device: bool,
        refused: bool,
        pair_key: str,
        settled: bool,
        campaign_reason: str,
    ) -> None:
        self.network_known = network_known
        self.device_known = device_known
        self.moved = moved
        """A session seen before, now from a network the account never used."""
        self.campaign = campaign
        """0, 1 (weigh) or 2 (step up): a network or device new to the account that
        other unrelated units use."""
        self.net_key = net_key
        """The network as the record names it (:meth:`GuardState.token`)."""
        self.rule = rule
        """``concurrent_new_network`` or ``stranger_off_hours`` when a stranger is
        answered here, else empty."""
        self.count = count
        """The stranger's lookups alongside the practice or off hours, this one included."""
        self.new_device = new_device
        self.refused = refused
        """This network and device were refused (stepped up as a stranger) recently."""
        self.pair_key = pair_key
        self.settled = settled
        self.campaign_reason = campaign_reason
        """``campaign_network`` or ``campaign_device`` (whichever more other units use)
        when :attr:`campaign` is set, else empty."""
        """The account's own place: its network known and past probation (the first
        contact's network counts as its own from the start), its device known."""


def strangers(  # noqa: PLR0917
    rec: AccountState,
    ctx: Context,
    ts: int,
    network: str,
    token: Callable[[str], str],
    device: str,
    off_hours: bool,
    known_after: int,
    campaign_cfg: CampaignConfig,
    probation_us: int,
    window_us: int,
    span_us: int,
    refuse_us: int,
    concurrent_min: int,
    settled: bool,
) -> Strangers:
    """The network and device: known to the account, a campaign, a stranger (a network
    new to the account or on probation) used alongside another network of the account,
    at its off hours (``off_hours``: the hour is one the account hardly works) or, for
    an account whose networks and devices are learnt (``settled``), with a device new
    to it too."""
    network_known = ctx.network_known >= known_after
    device_known = ctx.device_known >= known_after
    moved = session_moved(ctx.session_network, network, network_known)
    campaign = campaign_level(network_known, ctx.network_popular, ctx.network_units, campaign_cfg)
    if campaign < 2:
        campaign = max(
            campaign,
            campaign_level(device_known, ctx.device_popular, ctx.device_units, campaign_cfg),
        )
    net_key = token(network)
    on_probation = False
    if rec.probation:
        since = rec.probation.get(net_key, -1)
        on_probation = since >= 0 and ts - since < probation_us
    stranger_rule = ""
    count = 0
    new_device = False
    if not network_known or on_probation:
        new_device = not device_known
        if not new_device and rec.probation:
            since = rec.probation.get(DEVICE_KEY + token(device), -1)
            new_device = since >= 0 and ts - since < probation_us
        # In use alongside: this network, then another, then this one again, within
        # span, the other one within window (a switch, after an ISP change or between
        # two sites at noon, leaves the other network behind).
        concurrent = (
            rec.net_prev == net_key
            and ts - rec.net_prev_ts <= span_us
            and ts - rec.net_last_ts <= window_us
        )
        late = not concurrent and off_hours and net_key != rec.first_network
        if concurrent or late:
            count = rec.concurrent.get(net_key, 0) + 1
            # A new device alongside the practice is a stranger at once; otherwise (a
            # user agent string is shared by millions of browsers; a late evening at
            # home happens) after a few such lookups: legitimate parallel use, a phone's
            # connection during a home visit, stays within a handful.
            if (concurrent and new_device) or count >= concurrent_min:
                stranger_rule = "concurrent_new_network" if concurrent else "stranger_off_hours"
        elif new_device and settled and net_key != rec.first_network:
            # A new place *and* a new device for an account whose places and devices are
            # known: someone else with its credentials (a practice's new line keeps its
            # computers; a new computer stays on the practice's line), even reading the
            # practice's own patients, after a handful.
            count = rec.concurrent.get(net_key, 0) + 1
            if count >= concurrent_min:
                stranger_rule = "stranger_new_place"
    # A device the account vouched for is its own wherever it was first seen; a network
    # first seen after the history stays foreign until its probation ends (the first
    # contact's excepted): an attacker's network, made "known" by a couple of the
    # practice's patients, is not the practice.
    home = network_known and device_known and (not on_probation or net_key == rec.first_network)
    pair_key = ""
    refused = False
    if stranger_rule or rec.refused:
        pair_key = net_key + "|" + token(device)
        refused_at = rec.refused.get(pair_key, -1)
        refused = refused_at >= 0 and ts - refused_at < refuse_us
    return Strangers(
        network_known,
        device_known,
        moved,
        campaign,
        net_key,
        stranger_rule,
        count,
        new_device,
        refused,
        pair_key,
        home,
        ""
        if not campaign
        else "campaign_network"
        if ctx.network_units > ctx.device_units
        else "campaign_device",
    )


# -- 6. cost -----------------------------------------------------------------------------


def cost(  # noqa: PLR0917
    reasons: list[str],
    far: float,
    seen: Strangers,
    off_hours: bool,
    poor_conversion: bool,
    weights: WeightsConfig,
) -> float:
    """What a new unexplained person costs (1, plus a weight per anomaly seen with it);
    appends the reason codes to ``reasons``."""
    reasons.append("unexplained")
    spent = 1.0
    if far > 0:
        spent += far
        reasons.append("far_patient")
    if not seen.network_known:
        spent += weights.new_network
        reasons.append("new_network")
    if not seen.device_known:
        spent += weights.new_device
        reasons.append("new_device")
    if off_hours:
        spent += weights.off_hours
        reasons.append("off_hours")
    if seen.campaign:
        spent += weights.campaign
        reasons.append(seen.campaign_reason)
    if poor_conversion:
        spent += weights.low_conversion
        reasons.append("low_conversion")
    return spent


# -- 7. rule -----------------------------------------------------------------------------


def attacker_evidence(
    seen: Strangers, machine: bool, enumeration_level: int, devices_learnt: bool
) -> bool:
    """What an attacker leaves and an honest practice's busy day from its usual place
    and devices does not: machine speed, a network or device new to the account,
    enumeration starting, a stranger answered or refused, a campaign.

    ``devices_learnt``: the account has enough clean days for its devices to be known.
    A young account (a fresh deployment) has seen one of its browsers and software
    only; its next one is no attacker's trace, while a new network still is."""
    return (
        machine
        or not seen.network_known
        or (devices_learnt and not seen.device_known)
        or enumeration_level > 0
        or bool(seen.rule)
        or seen.refused
        or seen.campaign > 0
    )


def rule(  # noqa: PLR0911, PLR0912, PLR0917 - the rules as one ordered table
    enumeration_level: int,
    velocity_ratio: float,
    pace_ratio: float,
    at_home: bool,
    spent: float,
    capacity: float,
    new_exposure: bool,
    missed: bool,
    seen: Strangers,
    challenged: bool,
    refused_lookups: int,
    velocity_deny: float,
    home_pace: float,
    budget_deny: float,
    refused_deny: int,
    devices_learnt: bool,
) -> tuple[DecisionKind, str]:
    """The decision and its rule (empty for a plain ``allow``), most severe first.

    A deny suspends the account until an operator restores it, so every deny needs
    evidence of an attacker: enumeration, a robot's machine speed, a stranger that
    keeps trying, or, for the budget spent many times over, :func:`attacker_evidence`.
    Volume alone, an unusual but human day from the account's usual place and
    devices (a resort town's pharmacy in the holidays), is stepped up, which its
    professional passes with the CPS card or a security key; never suspended.

    ``velocity_ratio`` is the largest counter over its limit, ``pace_ratio`` the
    shortest scale's. ``at_home``: an explained lookup from the account's own place,
    its network known and past probation and its device known
    (:attr:`Strangers.settled`: a network an attacker made known with a couple of the
    practice's patients is not).
    Practice software checking the day's appointments reads the practice's own
    patients at the pace of software, faster than any person, from its usual place:
    only a pace beyond a software's (``pace_ratio`` over
    ``home_pace``) steps such a lookup up for velocity.
    """
    machine = velocity_ratio > velocity_deny
    if enumeration_level == 2:
        return DENY, "enumeration"
    if machine and spent >= capacity:
        return DENY, "robot"
    if (
        new_exposure
        and spent >= budget_deny * capacity
        and attacker_evidence(seen, machine, enumeration_level, devices_learnt)
    ):
        return DENY, "budget_far_exceeded"
    if seen.refused and seen.new_device and refused_lookups + 1 >= refused_deny:
        return DENY, "stranger_persisting"
    if enumeration_level == 1:
        return STEP_UP, "enumeration"
    if velocity_ratio > 1.0 and (not at_home or pace_ratio > home_pace):
        return STEP_UP, "velocity"
    if seen.moved:
        return STEP_UP, "session_new_network"
    if seen.refused:
        return STEP_UP, "refused_network"
    if seen.rule:
        return STEP_UP, seen.rule
    if new_exposure or missed:
        if challenged:
            return STEP_UP, "challenged"
        if new_exposure and seen.campaign == 2:
            return STEP_UP, seen.campaign_reason
        if new_exposure and spent > capacity:
            return STEP_UP, "budget_exhausted"
    return ALLOW, ""
