"""The guard's signals: small pure functions, each with the reason code it may raise.

The engine (:mod:`rempart.guard.engine`) reads the state, calls these, and
combines their answers; none of them keeps anything between calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from rempart.guard.config import (
    BudgetConfig,
    CampaignConfig,
    ConversionConfig,
    EnumerationConfig,
    HoursConfig,
)
from rempart.guard.directory import Person
from rempart.network import network_of
from rempart.nir import is_valid_nir

__all__ = [
    "REASONS",
    "budget_capacity",
    "campaign_level",
    "enumeration_level",
    "explained_by",
    "far_weight",
    "low_conversion",
    "network_of",
    "off_hours",
    "session_moved",
    "velocity_limits",
]

REASONS: dict[str, str] = {
    "account_suspended": "the account is suspended until an operator restores it",
    "unexplained": "no care link, declared doctor or earlier claim explains this person",
    "far_patient": "the person lives far from the practice (not its or a neighbouring department)",
    "new_network": "the account never worked from this network",
    "new_device": "the account never worked from this device (user agent)",
    "off_hours": "the account hardly ever works at this hour",
    "low_conversion": "the account's recent unexplained lookups seldom led to a claim",
    "campaign_network": "this network, new to the account, serves other unrelated accounts",
    "campaign_device": "this device, new to the account, serves other unrelated accounts",
    "not_found": "no insured person has this NIR and birth date",
    "malformed_nir": "the NIR is not a valid number",
    "enumeration": "many lookups of the account find no one: numbers are being tried",
    "velocity": "the account looks up faster than it ever did",
    "robot": "machine-speed unexplained lookups beyond the account's budget",
    "budget_exhausted": "the account's daily budget of unexplained lookups is spent",
    "budget_far_exceeded": "unexplained lookups went on far beyond the daily budget",
    "challenged": "a step-up was asked today; unexplained lookups wait for it",
    "session_new_network": "an existing session came back from a network the account never used",
    "stranger_new_place": "a network and a device both new to an account whose own are known",
}


def explained_by(
    unit: str, person: Person, claimed_at: int, ts: int, care_linked: Callable[[str, Person], bool]
) -> bool:
    """Whether ``unit`` may look ``person`` up at ``ts``: it is the person's declared
    doctor, billed them before (``claimed_at``, -1 for never), or has a care link with
    them (asked last: the directory may have to look it up)."""
    return person.doctor_unit == unit or 0 <= claimed_at <= ts or care_linked(unit, person)


def velocity_limits(
    floors: Sequence[float],
    own_peaks: Sequence[float],
    peer_peaks: Sequence[float] | None,
    peak_factor: float,
    *,
    trusted_history: bool,
) -> list[float]:
    """Limit per scale: the floor, or ``peak_factor`` times the learnt peak (the account's,
    or the larger of its own and its peer group's while its history is short)."""
    limits = []
    for i, floor in enumerate(floors):
        peak = own_peaks[i] if i < len(own_peaks) else 0.0
        if not trusted_history and peer_peaks is not None:
            peak = max(peak, peer_peaks[i])
        limits.append(max(floor, peak_factor * peak))
    return limits


def budget_capacity(
    high: float, days: int, peer_high: float | None, min_days: int, cfg: BudgetConfig
) -> float:
    """The day's budget of unexplained lookups: ``factor * high + margin``, clamped; an
    account with fewer than ``min_days`` days leans on its peer group's high day.

    >>> from rempart.guard.config import default_config
    >>> budget_capacity(20.0, 30, None, 5, default_config().budget)
    34.0
    """
    if days < min_days and peer_high is not None:
        weight = days / min_days
        high = weight * high + (1 - weight) * max(peer_high, high)
    return min(cfg.max, max(cfg.min, cfg.factor * high + cfg.margin))


def enumeration_level(total: float, missed: float, cfg: EnumerationConfig) -> int:
    """0 nothing, 1 step-up, 2 deny, from decayed counts of lookups and not-found ones."""
    if total <= 0:
        return 0
    share = missed / total
    if missed >= cfg.deny_count and share >= cfg.deny_share:
        return 2
    if missed >= cfg.min_count and share >= cfg.step_up_share:
        return 1
    return 0


def campaign_level(known: bool, popular: bool, other_units: int, cfg: CampaignConfig) -> int:
    """0 nothing, 1 weigh unexplained lookups, 2 step them up: a network or device new to
    the account, uncommon in the history, that other unrelated units use."""
    if known or popular:
        return 0
    if other_units >= cfg.step_up_units:
        return 2
    if other_units >= cfg.min_units:
        return 1
    return 0


def off_hours(hours: Sequence[int], hour: int, cfg: HoursConfig) -> bool | None:
    """Whether ``hour`` (and its neighbours) hold less than ``cfg.share`` of the lookups;
    None when the histogram holds too few lookups to tell."""
    total = sum(hours)
    if total < cfg.min_lookups:
        return None
    near = hours[hour - 1] + hours[hour] + hours[(hour + 1) % 24]
    return near < 3 * cfg.share * total


def far_weight(distance: int, far_seen: int, near_seen: int, weight: float) -> float:
    """Extra cost of a patient living ``distance`` away (2: neither the practice's
    department nor a neighbour), less for accounts used to far patients."""
    if distance < 2:
        return 0.0
    seen = far_seen + near_seen
    usual = far_seen / seen if seen >= 20 else 0.0
    return weight * (1.0 - usual)


def low_conversion(matured: float, converted: float, base: float, cfg: ConversionConfig) -> bool:
    """Recent unexplained lookups turn into claims far less than they used to (``base``,
    the account's or its peer group's rate; no verdict without one or without data)."""
    if base <= 0 or matured < cfg.min_matured:
        return False
    return converted / matured < cfg.ratio * base


def session_moved(session_network: str | None, network: str, network_known: bool) -> bool:
    """A session seen before, now used from a network the account never used."""
    return session_network is not None and session_network != network and not network_known


@lru_cache(maxsize=65_536)
def malformed(nir: str) -> bool:
    """Whether a NIR that the directory does not know is not even a valid number."""
    return not is_valid_nir(nir)
