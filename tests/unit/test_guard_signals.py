"""Each of the guard's signals on its own."""

from __future__ import annotations

import pytest

from rempart.guard.config import default_config
from rempart.guard.directory import Person, birth_day, department_distance
from rempart.guard.signals import (
    REASONS,
    budget_capacity,
    campaign_level,
    enumeration_level,
    explained_by,
    far_weight,
    low_conversion,
    malformed,
    network_of,
    off_hours,
    session_moved,
    velocity_limits,
)

CFG = default_config()
PERSON = Person(birth_day=10_000, department="75", doctor_unit="gp1", ref=0)


def test_explained_by_a_declared_doctor_an_earlier_claim_or_a_care_link() -> None:
    asked: list[str] = []

    def care(unit: str, _person: Person) -> bool:
        asked.append(unit)
        return unit == "ph2"

    assert explained_by("gp1", PERSON, -1, 500, care)  # the declared doctor
    assert explained_by("ph1", PERSON, 400, 500, care)  # billed before the lookup
    assert not explained_by("ph1", PERSON, 600, 500, care)  # billed only afterwards
    assert explained_by("ph2", PERSON, -1, 500, care)  # a care link
    assert not explained_by("ph1", PERSON, -1, 500, care)
    # The care links (which may cost the directory a query) are asked last.
    assert asked == ["ph1", "ph2", "ph1"]


def test_velocity_limits_follow_the_learnt_peak_above_the_floor() -> None:
    limits = velocity_limits([5.0, 10.0], [1.0, 20.0], None, 2.0, trusted_history=True)
    assert limits == [5.0, 40.0]
    short = velocity_limits([5.0, 10.0], [1.0, 2.0], [4.0, 30.0], 2.0, trusted_history=False)
    assert short == [8.0, 60.0]
    trusted = velocity_limits([5.0, 10.0], [1.0, 2.0], [4.0, 30.0], 2.0, trusted_history=True)
    assert trusted == [5.0, 10.0]


def test_budget_capacity_adapts_to_the_account_and_is_clamped() -> None:
    budget = CFG.budget
    small = budget_capacity(0.0, 30, None, 5, budget)
    assert small == budget.min
    pharmacy = budget_capacity(60.0, 30, None, 5, budget)
    assert pharmacy == pytest.approx(budget.factor * 60 + budget.margin)
    assert budget_capacity(10_000.0, 30, None, 5, budget) == budget.max
    # A new account leans on its peers; its own history takes over day by day.
    assert budget_capacity(2.0, 0, 60.0, 5, budget) == pharmacy
    assert budget_capacity(2.0, 4, 60.0, 5, budget) < pharmacy


def test_enumeration_needs_both_a_count_and_a_share() -> None:
    e = CFG.enumeration
    assert enumeration_level(100.0, 1.0, e) == 0  # typos of a busy desk
    assert enumeration_level(100.0, e.min_count, e) == 0  # enough misses, small share
    assert enumeration_level(10.0, e.min_count, e) == 1
    assert enumeration_level(30.0, e.deny_count, e) == 2
    assert enumeration_level(0.0, 0.0, e) == 0


def test_campaign_only_for_uncommon_infrastructure_new_to_the_account() -> None:
    c = CFG.campaign
    assert campaign_level(False, False, c.step_up_units, c) == 2
    assert campaign_level(False, False, c.min_units, c) == 1
    assert campaign_level(False, False, c.min_units - 1, c) == 0
    assert campaign_level(True, False, 50, c) == 0  # the account's own network
    assert campaign_level(False, True, 50, c) == 0  # a network many used in the history


def test_off_hours_reads_the_histogram_and_needs_enough_of_it() -> None:
    hours = [0] * 24
    for h in range(7, 18):
        hours[h] = 100
    assert off_hours(hours, 3, CFG.hours) is True
    assert off_hours(hours, 10, CFG.hours) is False
    assert off_hours(hours, 6, CFG.hours) is False  # next to a working hour
    assert off_hours([1] * 24, 3, CFG.hours) is None  # too little history


def test_far_patients_cost_less_for_accounts_used_to_them() -> None:
    assert department_distance("75", "92") == 1
    assert far_weight(1, 0, 100, 2.0) == 0.0
    assert far_weight(2, 0, 100, 2.0) == 2.0
    assert far_weight(2, 50, 50, 2.0) == pytest.approx(1.0)
    assert far_weight(2, 5, 5, 2.0) == 2.0  # too few to tell


def test_low_conversion_compares_with_the_learnt_rate() -> None:
    conv = CFG.conversion
    assert low_conversion(20.0, 1.0, 0.8, conv) is True
    assert low_conversion(20.0, 15.0, 0.8, conv) is False
    assert low_conversion(2.0, 0.0, 0.8, conv) is False  # too few matured
    assert low_conversion(20.0, 0.0, -1.0, conv) is False  # no learnt rate


def test_a_session_moving_to_an_unknown_network() -> None:
    assert session_moved("a/24", "b/24", network_known=False) is True
    assert session_moved("a/24", "b/24", network_known=True) is False
    assert session_moved("a/24", "a/24", network_known=False) is False
    assert session_moved(None, "b/24", network_known=False) is False


def test_networks_are_prefixes() -> None:
    assert network_of("192.0.2.77") == "192.0.2.0/24"
    assert network_of("192.0.2.77", 16) == "192.0.0.0/16"
    assert network_of("2001:db8:1:2::5") == "2001:db8:1::/48"
    assert network_of("not an address") == "?not an address"


def test_malformed_and_birth_dates() -> None:
    assert malformed("123") is True
    assert malformed("185037505601270") is False
    assert birth_day("1970-01-02") == 1
    assert birth_day("1970-02-30") is None
    assert birth_day(None) is None


def test_every_reason_reads_as_a_sentence() -> None:
    assert all(text and text[0].islower() for text in REASONS.values())
