"""Each phase of the guard's decision on its own (:mod:`rempart.guard.phases`)."""

from __future__ import annotations

from collections import deque
from math import exp

import pytest

from rempart.guard.config import default_config
from rempart.guard.directory import Person
from rempart.guard.phases import (
    DEVICE_KEY,
    Strangers,
    attacker_evidence,
    conversion,
    cost,
    enumeration,
    explanation,
    rule,
    strangers,
    velocity,
)
from rempart.guard.state import AccountState, Context

CFG = default_config()
PERSON = Person(birth_day=10_000, department="75", doctor_unit="gp1", ref=0)
S = 1_000_000  # a second in µs
HOME = "203.0.113.0/24"
AWAY = "192.0.2.0/24"


def no_care(_unit: str, _person: Person) -> bool:
    return False


def seen(**changes: object) -> Strangers:
    """A lookup from the account's own known network and device, unless changed."""
    fields = {
        "network_known": True,
        "device_known": True,
        "moved": False,
        "campaign": 0,
        "net_key": HOME,
        "rule": "",
        "count": 0,
        "new_device": False,
        "refused": False,
        "pair_key": "",
        "settled": True,
        "campaign_reason": "",
    }
    fields.update(changes)
    return Strangers(**fields)  # type: ignore[arg-type]


def context(**changes: object) -> Context:
    fields: dict[str, object] = {
        "claimed_at": -1,
        "seen": False,
        "network_known": 5,
        "device_known": 5,
        "network_units": 0,
        "device_units": 0,
        "network_popular": False,
        "device_popular": False,
        "session_network": None,
    }
    fields.update(changes)
    return Context(**fields)  # type: ignore[arg-type]


# -- explanation -------------------------------------------------------------------------


def test_explanation_needs_the_person_with_the_birth_date_on_record() -> None:
    assert explanation("gp1", None, 10_000, -1, 5, no_care) == (False, False)
    assert explanation("gp1", PERSON, 10_001, -1, 5, no_care) == (False, False)
    assert explanation("gp1", PERSON, 10_000, -1, 5, no_care) == (True, True)  # the doctor
    assert explanation("ph1", PERSON, 10_000, -1, 5, no_care) == (True, False)
    assert explanation("ph1", PERSON, 10_000, 4, 5, no_care) == (True, True)  # billed before
    assert explanation("ph1", PERSON, 10_000, -1, 5, lambda u, _p: u == "ph1") == (True, True)


# -- velocity ----------------------------------------------------------------------------


def test_velocity_counts_the_lookup_and_decays_each_scale_on_its_own() -> None:
    scales = [10.0 * S, 60.0 * S, 600.0 * S, 3600.0 * S]
    limits = [6.0, 15.0, 80.0, 300.0]
    counted, ratio, pace = velocity([0.0] * 4, 0, scales, limits)
    assert counted == [1.0] * 4
    assert ratio == pytest.approx(1 / 6) == pace
    counted, ratio, pace = velocity([12.0, 30.0, 0.0, 0.0], -10 * S, scales, limits)
    assert counted[0] == pytest.approx(12.0 * exp(-1) + 1.0)
    assert counted[1] == pytest.approx(30.0 * exp(-1 / 6) + 1.0)
    assert pace == pytest.approx(counted[0] / 6)
    assert ratio == pytest.approx(max(counted[0] / 6, counted[1] / 15))


def test_velocity_with_other_than_four_scales() -> None:
    counted, ratio, pace = velocity([4.0, 4.0], 0, [1.0 * S, 2.0 * S], [5.0, 2.0])
    assert counted == [5.0, 5.0]
    assert (ratio, pace) == (2.5, 1.0)


# -- enumeration -------------------------------------------------------------------------


def test_enumeration_steps_up_then_denies_as_misses_pile_up() -> None:
    rec = AccountState()
    cfg = CFG.enumeration
    levels = []
    for k in range(30):
        total, misses, level, pressure = enumeration(rec, k * S, True, 3600.0 * S, cfg)
        rec.enum_total, rec.enum_missed, rec.enum_ts = total, misses, k * S
        levels.append(level)
    # The counts decay a little between lookups a second apart: the min_count-th miss
    # is just under min_count, the next one over.
    assert levels.index(1) == int(cfg.min_count)
    assert levels.index(2) == int(cfg.deny_count)
    assert pressure > 1.0


def test_enumeration_ignores_an_account_that_finds_its_persons() -> None:
    rec = AccountState(enum_total=100.0, enum_missed=4.0, enum_ts=0)
    total, misses, level, pressure = enumeration(rec, S, False, 3600.0 * S, CFG.enumeration)
    assert level == 0
    assert misses < 4.0 < total
    assert 0 < pressure < 1


# -- conversion --------------------------------------------------------------------------


def test_conversion_settles_matured_lookups_and_flags_a_rate_far_below_the_base() -> None:
    horizon = 3 * 24 * 3600 * S
    claims = {("ph1", "billed"): 5 * S}
    rec = AccountState(
        pending=deque([(0, "ph1|billed")] + [(k * S, "ph1|never") for k in range(9)])
    )
    poor = conversion(
        rec,
        horizon + 20 * S,
        lambda u, n: claims.get((u, n), -1),
        0.8,
        1e12,
        horizon,
        CFG.conversion,
    )
    assert not rec.pending
    assert rec.conv_matured == pytest.approx(10.0)
    assert rec.conv_converted == pytest.approx(1.0)
    assert poor  # 10% against a usual 80%


def test_conversion_has_no_verdict_without_a_base_rate_or_enough_data() -> None:
    rec = AccountState(pending=deque([(0, "ph1|x")] * 20))
    assert not conversion(rec, 10**13, lambda _u, _n: -1, -1.0, 1e12, 1, CFG.conversion)
    rec = AccountState(pending=deque([(0, "ph1|x")] * 3))
    assert not conversion(rec, 10**13, lambda _u, _n: -1, 0.8, 1e12, 1, CFG.conversion)


# -- strangers ---------------------------------------------------------------------------


def stranger_of(
    rec: AccountState,
    ctx: Context,
    ts: int,
    *,
    off_hours: bool = False,
    device: str = "NewBrowser/1",
    settled: bool = True,
) -> Strangers:
    c = CFG.concurrency
    return strangers(
        rec,
        ctx,
        ts,
        AWAY,
        lambda text: text,
        device,
        off_hours,
        CFG.network.known_after,
        CFG.campaign,
        c.probation * S,
        c.window * S,
        c.span * S,
        c.refuse_for * S,
        c.min_lookups,
        settled,
    )


def test_the_accounts_own_network_is_no_stranger() -> None:
    found = stranger_of(AccountState(), context(), 100 * S)
    assert found.network_known
    assert found.device_known
    assert (found.rule, found.campaign, found.moved, found.refused) == ("", 0, False, False)


def test_a_new_network_and_device_alongside_the_practice_is_a_stranger_at_once() -> None:
    rec = AccountState(net_last=HOME, net_last_ts=99 * S, net_prev=AWAY, net_prev_ts=90 * S)
    found = stranger_of(rec, context(network_known=0, device_known=0), 100 * S)
    assert found.rule == "concurrent_new_network"
    assert found.new_device
    assert found.count == 1
    assert found.pair_key == AWAY + "|NewBrowser/1"


def test_a_refused_stranger_stays_refused_and_a_session_that_moved_is_seen() -> None:
    rec = AccountState(refused={AWAY + "|NewBrowser/1": 50 * S})
    found = stranger_of(rec, context(network_known=0, session_network=HOME), 100 * S)
    assert found.refused
    assert found.moved
    rec = AccountState(probation={AWAY: 0, DEVICE_KEY + "NewBrowser/1": 0})
    on_probation = stranger_of(rec, context(), 3600 * S, off_hours=True)
    assert on_probation.new_device
    assert on_probation.count == 1


def test_a_network_other_units_use_is_a_campaign() -> None:
    cfg = CFG.campaign
    weigh = stranger_of(AccountState(), context(network_known=0, network_units=cfg.min_units), 1)
    assert weigh.campaign == 1
    assert weigh.campaign_reason == "campaign_network"
    step = stranger_of(AccountState(), context(device_known=0, device_units=cfg.step_up_units), 1)
    assert step.campaign == 2
    assert step.campaign_reason == "campaign_device"
    common = context(network_known=0, network_units=50, network_popular=True)
    assert stranger_of(AccountState(), common, 1).campaign == 0
    assert stranger_of(AccountState(), common, 1).campaign_reason == ""


# -- cost --------------------------------------------------------------------------------


def test_cost_adds_a_weight_per_anomaly_with_its_reason() -> None:
    w = CFG.weights
    reasons: list[str] = []
    assert cost(reasons, 0.0, seen(), False, False, w) == 1.0
    assert reasons == ["unexplained"]
    reasons = []
    anomalies = seen(
        network_known=False, device_known=False, campaign=1, campaign_reason="campaign_device"
    )
    total = cost(reasons, 0.5, anomalies, True, True, w)
    assert total == 1.0 + 0.5 + w.new_network + w.new_device + w.off_hours + w.campaign + (
        w.low_conversion
    )
    assert reasons == [
        "unexplained",
        "far_patient",
        "new_network",
        "new_device",
        "off_hours",
        "campaign_device",
        "low_conversion",
    ]


# -- rule --------------------------------------------------------------------------------


def decide(**changes: object) -> tuple[str, str]:
    args: dict[str, object] = {
        "enumeration_level": 0,
        "velocity_ratio": 0.5,
        "pace_ratio": 0.5,
        "at_home": False,
        "spent": 1.0,
        "capacity": 10.0,
        "new_exposure": True,
        "missed": False,
        "seen": seen(),
        "challenged": False,
        "refused_lookups": 0,
        "velocity_deny": 4.0,
        "home_pace": 2.5,
        "budget_deny": 8.0,
        "refused_deny": 100,
        "devices_learnt": True,
    }
    args.update(changes)
    return rule(**args)  # type: ignore[arg-type]


def test_the_rules_most_severe_first() -> None:
    assert decide() == ("allow", "")
    assert decide(enumeration_level=2, velocity_ratio=9.0, spent=99.0) == ("deny", "enumeration")
    assert decide(velocity_ratio=5.0, spent=10.0) == ("deny", "robot")
    assert decide(velocity_ratio=5.0, spent=9.0) == ("step_up", "velocity")
    stranger = seen(network_known=False, refused=True, new_device=True)
    assert decide(seen=stranger, refused_lookups=99, new_exposure=False) == (
        "deny",
        "stranger_persisting",
    )
    assert decide(enumeration_level=1) == ("step_up", "enumeration")
    assert decide(seen=seen(moved=True)) == ("step_up", "session_new_network")
    assert decide(seen=seen(refused=True)) == ("step_up", "refused_network")
    assert decide(seen=seen(rule="stranger_off_hours")) == ("step_up", "stranger_off_hours")
    assert decide(challenged=True) == ("step_up", "challenged")
    assert decide(challenged=True, new_exposure=False, missed=True) == ("step_up", "challenged")
    assert decide(challenged=True, new_exposure=False) == ("allow", "")
    network_campaign = seen(campaign=2, campaign_reason="campaign_network")
    assert decide(seen=network_campaign) == ("step_up", "campaign_network")
    assert decide(spent=11.0) == ("step_up", "budget_exhausted")


def test_volume_alone_is_stepped_up_and_a_suspension_needs_evidence_of_an_attacker() -> None:
    # Eight times the budget from the account's own place at a human pace: a step-up.
    assert decide(spent=80.0) == ("step_up", "budget_exhausted")
    assert decide(spent=80.0, challenged=True) == ("step_up", "challenged")
    # The same with any evidence of an attacker: a denial (and a suspension).
    for evidence in (
        {"seen": seen(network_known=False)},
        {"seen": seen(device_known=False)},
        {"seen": seen(campaign=1, campaign_reason="campaign_device")},
        {"seen": seen(refused=True)},
        {"seen": seen(rule="concurrent_new_network")},
        {"enumeration_level": 1},
    ):
        assert decide(spent=80.0, **evidence) == ("deny", "budget_far_exceeded"), evidence
    # Machine speed with the budget spent is a robot, denied before that.
    assert decide(spent=80.0, velocity_ratio=4.5) == ("deny", "robot")


def test_attacker_evidence_is_absent_from_a_busy_day_at_home() -> None:
    assert not attacker_evidence(seen(), machine=False, enumeration_level=0, devices_learnt=True)
    assert attacker_evidence(seen(), machine=True, enumeration_level=0, devices_learnt=True)
    # A device new to a young account (a fresh deployment) is no trace; a network is.
    fresh = seen(device_known=False)
    assert attacker_evidence(fresh, machine=False, enumeration_level=0, devices_learnt=True)
    assert not attacker_evidence(fresh, machine=False, enumeration_level=0, devices_learnt=False)
    assert attacker_evidence(
        seen(network_known=False), machine=False, enumeration_level=0, devices_learnt=False
    )


def test_own_patients_from_home_pass_velocity_at_a_softwares_pace_only() -> None:
    assert decide(velocity_ratio=1.8, pace_ratio=1.8, at_home=True) == ("allow", "")
    assert decide(velocity_ratio=1.8, pace_ratio=1.8, at_home=False) == ("step_up", "velocity")
    assert decide(velocity_ratio=2.6, pace_ratio=2.6, at_home=True) == ("step_up", "velocity")
    # A longer scale over its limit while the pace is a software's: still at home.
    assert decide(velocity_ratio=3.0, pace_ratio=1.0, at_home=True) == ("allow", "")


def test_a_new_place_with_a_new_device_is_a_stranger_after_a_handful_once_settled() -> None:
    rec = AccountState(concurrent={AWAY: CFG.concurrency.min_lookups - 1})
    unknown = context(network_known=0, device_known=0)
    assert stranger_of(rec, unknown, 100 * S).rule == "stranger_new_place"
    # A young account: everything is new to it.
    assert stranger_of(rec, unknown, 100 * S, settled=False).rule == ""
    rec.concurrent[AWAY] = 0
    assert stranger_of(rec, unknown, 100 * S).rule == ""  # the first lookups: not yet
    # The same new place with a device the account knows: a new line, no stranger.
    many = AccountState(concurrent={AWAY: 50})
    assert stranger_of(many, context(network_known=0), 100 * S, device="Known/1").rule == ""
