"""The guard's engine on a tiny hand-built world: each rule, and what it leaves alone.

Every test runs on the pure-Python engine and on the compiled one
(:mod:`rempart.guard.native`; skipped when no current build is installed, failed under CI).
"""

from __future__ import annotations

import importlib
import math
import struct
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from rempart.guard.config import default_config
from rempart.guard.directory import MemoryDirectory
from rempart.guard.engine import round4
from rempart.guard.events import ClaimEvent, Decision, LookupEvent, to_micros
from rempart.guard.native import PURE, Implementation
from tests.compiled_engine import compiled_engine
from tests.guard_world import ADDRESS, WINDOW_START, TinyWorld, tiny_world

DAY2 = WINDOW_START + timedelta(days=1)  # a Tuesday


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyWorld, MemoryDirectory]:
    world = tiny_world(window=False)
    out = world.write(tmp_path_factory.mktemp("tiny"))
    return world, MemoryDirectory.from_world(out)


class Driver:
    """A guard that learnt the tiny world's history, and a way to send it lookups."""

    def __init__(
        self, world: TinyWorld, directory: MemoryDirectory, engine: Implementation
    ) -> None:
        self.world = world
        self.guard = engine.guard(
            directory, engine.state(), default_config(), history_until=to_micros(WINDOW_START)
        )
        self.next_id = 1_000_000
        events: list[tuple[datetime, int, object]] = []
        for row in world.lookups:
            events.append((row["ts"], 0, row))  # type: ignore[arg-type]
        for ts, account, nir in world.claims:
            if ts < WINDOW_START:
                events.append((ts, 1, ClaimEvent(to_micros(ts), account, nir)))
        events.sort(key=lambda e: (e[0], e[1]))
        for _, kind, payload in events:
            if kind == 1:
                assert isinstance(payload, ClaimEvent)
                self.guard.observe_claim(payload)
            else:
                self.lookup_row(payload)  # type: ignore[arg-type]

    def lookup_row(self, row: dict[str, object]) -> Decision:
        self.next_id += 1
        return self.guard.decide(
            LookupEvent(
                self.next_id,
                to_micros(row["ts"]),  # type: ignore[arg-type]
                str(row["account_id"]),
                str(row["nir"]),
                row["birth_date"],  # type: ignore[arg-type]
                str(row["ip"]),
                str(row["user_agent"]),
                str(row["session_id"]),
                str(row["auth"]),
                str(row["channel"]),
            )
        )

    def lookup(
        self,
        ts: datetime,
        account: str,
        person: int | None,
        *,
        nir: str | None = None,
        birth: str | None = None,
        ip: str | None = None,
        agent: str | None = None,
        session: str | None = None,
    ) -> Decision:
        p = self.world.people[person] if person is not None else None
        home_ip, home_agent = ADDRESS[account]
        return self.lookup_row(
            {
                "ts": ts,
                "account_id": account,
                "nir": nir if nir is not None else (p.nir if p else ""),
                "birth_date": birth if birth is not None else (p.birth.isoformat() if p else None),
                "ip": ip or home_ip,
                "user_agent": agent or home_agent,
                "session_id": session or f"{account}-{ts.date()}",
                "auth": "totp",
                "channel": "portal",
            }
        )


@pytest.fixture(params=["pure", "compiled"])
def driver(world: tuple[TinyWorld, MemoryDirectory], request: pytest.FixtureRequest) -> Driver:
    engine = PURE
    if request.param == "compiled":
        engine = compiled_engine()
    return Driver(*world, engine)


def strangers(world: TinyWorld, account: str, department: str) -> list[int]:
    """People of ``department`` whom nothing ties to ``account``."""
    linked = set(world.care[account])
    return [i for i in world.by_department(department) if i not in linked]


def test_an_own_patient_is_allowed_without_reasons(driver: Driver) -> None:
    patient = driver.world.care["gp1"][0]
    decision = driver.lookup(DAY2 + timedelta(hours=9), "gp1", patient)
    assert decision.decision == "allow"
    assert decision.reasons == ()


def test_a_stranger_is_allowed_but_marked_unexplained(driver: Driver) -> None:
    person = strangers(driver.world, "gp1", "75")[0]
    decision = driver.lookup(DAY2 + timedelta(hours=9), "gp1", person)
    assert decision.decision == "allow"
    assert decision.reasons == ("unexplained",)


def test_an_earlier_claim_explains_and_a_later_one_does_not(driver: Driver) -> None:
    person = strangers(driver.world, "ph2", "75")[0]
    nir = driver.world.people[person].nir
    at = DAY2 + timedelta(hours=10)
    driver.guard.observe_claim(ClaimEvent(to_micros(at + timedelta(minutes=5)), "ph2", nir))
    assert "unexplained" in driver.lookup(at, "ph2", person).reasons
    other = strangers(driver.world, "ph2", "75")[1]
    other_nir = driver.world.people[other].nir
    driver.guard.observe_claim(ClaimEvent(to_micros(at), "ph2", other_nir))
    assert driver.lookup(at + timedelta(minutes=1), "ph2", other).reasons == ()


def test_a_colleague_of_the_same_organisation_is_explained(driver: Driver) -> None:
    patient = driver.world.care["ph1a"][0]
    if patient in driver.world.care["ph1b"]:
        patient = next(p for p in driver.world.care["ph1a"] if p not in driver.world.care["ph1b"])
    assert driver.lookup(DAY2 + timedelta(hours=9), "ph1b", patient).reasons == ()


def test_an_unknown_account_is_an_error(driver: Driver) -> None:
    engine = importlib.import_module(type(driver.guard).__module__)  # pure or compiled
    with pytest.raises(engine.UnknownAccount):
        driver.guard.decide(
            LookupEvent(
                1, to_micros(DAY2), "nobody", "1", None, "1.2.3.4", "ua", "s", "totp", "portal"
            )
        )


def test_unexplained_lookups_spend_a_budget_then_step_up_for_the_day(driver: Driver) -> None:
    far = strangers(driver.world, "gp1", "13")
    decisions = [
        driver.lookup(DAY2 + timedelta(hours=9, minutes=3 * k), "gp1", far[k]) for k in range(60)
    ]
    kinds = [d.decision for d in decisions]
    first = kinds.index("step_up")
    assert 3 <= first <= 20
    assert decisions[first].reasons[0] == "budget_exhausted"
    assert decisions[first + 1].reasons[0] == "challenged"
    # Volume alone, from the practice's own network and browser at a human pace, is
    # never suspended, however far beyond the budget it goes: the doctor passes the
    # step-up with the CPS card or a key.
    assert set(kinds[first:]) == {"step_up"}
    assert decisions[-1].score > default_config().budget.deny_factor


def test_the_same_volume_from_a_network_new_to_the_account_is_denied(driver: Driver) -> None:
    far = strangers(driver.world, "gp1", "13")
    decisions = [
        driver.lookup(DAY2 + timedelta(hours=9, minutes=3 * k), "gp1", far[k], ip="192.0.2.77")
        for k in range(60)
    ]
    kinds = [d.decision for d in decisions]
    denied = kinds.index("deny")
    assert set(kinds[kinds.index("step_up") : denied]) == {"step_up"}
    assert decisions[denied].reasons[0] == "budget_far_exceeded"
    assert "new_network" in decisions[denied].reasons


def test_a_resort_pharmacy_billing_its_tourists_at_the_counter_is_never_suspended(
    driver: Driver,
) -> None:
    """The holiday surge: many far-away patients nobody explains, at the counter's pace,
    from the pharmacy's usual place and software, each billed minutes later."""
    tourists = strangers(driver.world, "ph2", "75")[:150]
    kinds = []
    for k, person in enumerate(tourists):
        at = DAY2 + timedelta(hours=8, minutes=3 * k)
        kinds.append(driver.lookup(at, "ph2", person).decision)
        nir = driver.world.people[person].nir
        claim = ClaimEvent(to_micros(at + timedelta(minutes=2)), "ph2", nir)
        driver.guard.observe_claim(claim)
    assert "deny" not in kinds
    # Billing gives each lookup's cost back: the budget never runs out.
    assert kinds.count("step_up") == 0


def test_without_billing_the_same_surge_is_stepped_up_never_suspended(driver: Driver) -> None:
    tourists = strangers(driver.world, "ph2", "75")[:150]
    kinds = [
        driver.lookup(DAY2 + timedelta(hours=8, minutes=3 * k), "ph2", person).decision
        for k, person in enumerate(tourists)
    ]
    assert "step_up" in kinds
    assert "deny" not in kinds


def test_a_claim_gives_back_only_what_the_account_spent_on_that_person(driver: Driver) -> None:
    far = strangers(driver.world, "gp1", "13")
    at = DAY2 + timedelta(hours=9)
    first = driver.lookup(at, "gp1", far[0])
    assert first.reasons == ("unexplained", "far_patient")
    rec = driver.guard._state.account("gp1")
    before = rec.spent
    assert before > 0
    # Another account's claim, or a claim of a person not read today, gives nothing back.
    nir = driver.world.people[far[0]].nir
    driver.guard.observe_claim(ClaimEvent(to_micros(at), "gp2", nir))
    other = driver.world.people[far[1]].nir
    driver.guard.observe_claim(ClaimEvent(to_micros(at + timedelta(minutes=1)), "gp1", other))
    assert driver.guard._state.account("gp1").spent == before
    driver.guard.observe_claim(ClaimEvent(to_micros(at + timedelta(minutes=2)), "gp1", nir))
    assert driver.guard._state.account("gp1").spent == before - 2.0
    # Once only.
    driver.guard.observe_claim(ClaimEvent(to_micros(at + timedelta(minutes=3)), "gp1", nir))
    assert driver.guard._state.account("gp1").spent == before - 2.0


def test_own_patients_pass_after_a_step_up_and_overspending_carries_over(driver: Driver) -> None:
    far = strangers(driver.world, "gp1", "13")
    kinds = [
        driver.lookup(DAY2 + timedelta(hours=9, minutes=3 * k), "gp1", far[k]).decision
        for k in range(15)
    ]
    assert kinds[-1] == "step_up"
    patient = driver.world.care["gp1"][1]
    assert driver.lookup(DAY2 + timedelta(hours=15), "gp1", patient).decision == "allow"
    next_day = driver.lookup(DAY2 + timedelta(days=1, hours=9), "gp1", far[45])
    assert next_day.decision == "step_up"
    assert next_day.reasons[0] == "budget_exhausted"


def test_a_robot_is_stepped_up_within_a_handful_then_denied(driver: Driver) -> None:
    people = strangers(driver.world, "ph1b", "13")
    decisions = [
        driver.lookup(
            DAY2 + timedelta(hours=2, seconds=k),
            "ph1b",
            people[k % len(people)],
            ip="185.220.101.7",
            agent="python-requests/2.31",
            session="stolen",
        )
        for k in range(600)
    ]
    allowed = [d for d in decisions if d.decision == "allow"]
    assert len(allowed) <= 10
    assert decisions[-1].decision == "deny"
    assert decisions[-1].reasons == ("account_suspended",)
    # The suspension holds for the owner too, until an operator lifts it.
    patient = driver.world.care["ph1b"][0]
    assert driver.lookup(DAY2 + timedelta(hours=9), "ph1b", patient).decision == "deny"


def test_made_up_numbers_are_enumeration(driver: Driver) -> None:
    base = DAY2 + timedelta(hours=11)
    kinds = []
    for k in range(40):
        decision = driver.lookup(
            base + timedelta(seconds=30 * k),
            "gp3",
            None,
            nir=f"1850375{k:06d}00",
            birth="1985-03-01",
        )
        kinds.append((decision.decision, decision.reasons[0]))
    assert kinds[0] == ("allow", "malformed_nir")
    assert ("step_up", "enumeration") in kinds
    assert kinds[-1][0] == "deny"


def test_a_session_used_from_a_new_network_is_stepped_up(driver: Driver) -> None:
    patient = driver.world.care["gp2"][0]
    at = DAY2 + timedelta(hours=9)
    assert driver.lookup(at, "gp2", patient, session="s-gp2").decision == "allow"
    moved = driver.lookup(
        at + timedelta(minutes=5), "gp2", patient, session="s-gp2", ip="192.0.2.1"
    )
    assert moved.decision == "step_up"
    assert moved.reasons[0] == "session_new_network"


STRANGER_PLACE = {
    "ip": "192.0.2.77",
    "agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
    "session": "stranger",
}


def test_a_new_place_used_alongside_the_practice_is_refused_even_for_own_patients(
    driver: Driver,
) -> None:
    at = DAY2 + timedelta(hours=9)
    patients = driver.world.care["gp2"]
    assert driver.lookup(at, "gp2", patients[0]).decision == "allow"
    # The same account from a network and a browser it never used, alongside the
    # practice: a first lookup there is a place among others; back and forth is not.
    first = driver.lookup(at + timedelta(minutes=5), "gp2", patients[4], **STRANGER_PLACE)
    assert first.decision == "allow"
    assert driver.lookup(at + timedelta(minutes=8), "gp2", patients[5]).decision == "allow"
    other = driver.lookup(at + timedelta(minutes=10), "gp2", patients[1], **STRANGER_PLACE)
    assert other.decision == "step_up"
    assert other.reasons[0] == "concurrent_new_network"
    # That place stays refused the next days, own patients included, practice or not.
    later = driver.lookup(at + timedelta(days=1, hours=3), "gp2", patients[2], **STRANGER_PLACE)
    assert later.decision == "step_up"
    assert later.reasons[0] == "refused_network"
    # The owner, from the practice, is not challenged by what the stranger did.
    own = driver.lookup(at + timedelta(days=1, hours=3, minutes=1), "gp2", patients[3])
    assert own.decision == "allow"


def test_a_new_place_alone_is_not_concurrent_use(driver: Driver) -> None:
    # A new network and browser with nothing else in use for hours (a locum, a new
    # computer at home): no concurrency, own patients are read.
    at = DAY2 + timedelta(hours=20)
    patients = driver.world.care["gp2"]
    decision = driver.lookup(at, "gp2", patients[0], **STRANGER_PLACE)
    assert decision.decision == "allow"
    assert "concurrent_new_network" not in decision.reasons


def test_a_new_place_stays_a_stranger_during_its_probation(driver: Driver) -> None:
    # A robot reading the practice's own patients before it opens: its explained
    # lookups do not make it familiar, so when the practice shows up the robot's next
    # lookup is concurrent use.
    at = DAY2 + timedelta(hours=6)
    patients = driver.world.care["gp2"]
    for n in range(4):
        early = driver.lookup(at + timedelta(minutes=n), "gp2", patients[n], **STRANGER_PLACE)
        assert early.decision == "allow"
    opening = at + timedelta(hours=2, minutes=30)
    assert driver.lookup(opening, "gp2", patients[5]).decision == "allow"
    robot = driver.lookup(opening + timedelta(minutes=2), "gp2", patients[6], **STRANGER_PLACE)
    assert robot.decision == "allow"  # the robot's earlier lookups are over span ago
    assert driver.lookup(opening + timedelta(minutes=4), "gp2", patients[7]).decision == "allow"
    robot = driver.lookup(opening + timedelta(minutes=6), "gp2", patients[8], **STRANGER_PLACE)
    assert robot.decision == "step_up"
    assert robot.reasons[0] == "concurrent_new_network"


def test_a_known_browser_on_a_new_network_alongside_the_practice_is_refused_after_a_few(
    driver: Driver,
) -> None:
    # The practice's usual user agent string (shared by millions of browsers) on a new
    # network, in use alongside the practice all morning: a scraper with an ordinary
    # browser. A handful passes; then that network is refused.
    at = DAY2 + timedelta(hours=9)
    patients = driver.world.care["gp2"]
    decisions = []
    for n in range(8):
        t = at + timedelta(minutes=10 * n)
        assert driver.lookup(t, "gp2", patients[n]).decision == "allow"
        decisions.append(
            driver.lookup(
                t + timedelta(minutes=1), "gp2", patients[n + 8], ip="192.0.2.90", session="s9"
            )
        )
    kinds = [d.decision for d in decisions]
    limit = default_config().concurrency.min_lookups
    # The first lookup from there is not yet back and forth; then limit of them are.
    assert kinds[:limit] == ["allow"] * limit
    assert kinds[limit] == "step_up"
    assert decisions[limit].reasons[0] == "concurrent_new_network"
    assert decisions[-1].reasons[0] == "refused_network"


def test_a_new_network_in_the_dead_of_night_is_refused_after_a_few(driver: Driver) -> None:
    # The practice's usual user agent string from a network the account never used, at
    # 2 in the morning: a handful of the practice's own patients pass, then it is refused.
    at = DAY2 + timedelta(hours=2)
    patients = driver.world.care["gp2"]
    kinds = [
        driver.lookup(
            at + timedelta(minutes=n), "gp2", patients[n], ip="192.0.2.150", session="night"
        )
        for n in range(8)
    ]
    limit = default_config().concurrency.min_lookups
    assert [k.decision for k in kinds[: limit - 1]] == ["allow"] * (limit - 1)
    assert kinds[limit - 1].decision == "step_up"
    assert kinds[limit - 1].reasons[0] == "stranger_off_hours"
    assert kinds[-1].reasons[0] == "refused_network"
    # In the day, the practice's own network is not challenged by it.
    assert driver.lookup(at + timedelta(hours=8), "gp2", patients[9]).decision == "allow"


def test_a_switch_to_a_new_network_is_not_concurrent_use(driver: Driver) -> None:
    # An ISP change at 10:00 (or the afternoon at a second site): the old network is left
    # behind, the new one carries on alone with the same software.
    at = DAY2 + timedelta(hours=9)
    patients = driver.world.care["gp2"]
    for n in range(4):
        assert driver.lookup(at + timedelta(minutes=15 * n), "gp2", patients[n]).decision == (
            "allow"
        )
    after = [
        driver.lookup(
            at + timedelta(hours=1, minutes=5 * n),
            "gp2",
            patients[n + 4],
            ip="192.0.2.60",
            session="after-the-switch",
        )
        for n in range(10)
    ]
    assert {d.decision for d in after} == {"allow"}


def test_a_refused_stranger_that_keeps_trying_is_denied(driver: Driver) -> None:
    at = DAY2 + timedelta(hours=9)
    patients = driver.world.care["gp2"]
    assert driver.lookup(at, "gp2", patients[0]).decision == "allow"
    driver.lookup(at + timedelta(minutes=1), "gp2", patients[1], **STRANGER_PLACE)
    assert driver.lookup(at + timedelta(minutes=2), "gp2", patients[2]).decision == "allow"
    first = driver.lookup(at + timedelta(minutes=3), "gp2", patients[3], **STRANGER_PLACE)
    assert first.reasons[0] == "concurrent_new_network"
    limit = default_config().concurrency.deny_after
    kinds = [
        driver.lookup(
            at + timedelta(minutes=4 + n), "gp2", patients[n % 10], **STRANGER_PLACE
        ).reasons[0]
        for n in range(limit)
    ]
    assert kinds[: limit - 1] == ["refused_network"] * (limit - 1)
    assert kinds[-1] == "stranger_persisting"
    # The account is suspended: the owner too is denied until an operator restores it.
    owner = driver.lookup(at + timedelta(minutes=5 + limit), "gp2", patients[0])
    assert owner.decision == "deny"


def test_a_refused_network_with_the_usual_browser_is_never_denied(driver: Driver) -> None:
    # A hospital's new network with its usual browsers, back and forth with the old one:
    # refused (its staff pass the step-up), but never a suspension for it.
    at = DAY2 + timedelta(hours=8)
    patients = driver.world.care["gp2"]
    limit = default_config().concurrency.deny_after
    kinds = set()
    for n in range(limit + 20):
        t = at + timedelta(minutes=2 * n)
        driver.lookup(t, "gp2", patients[n % 10])
        kinds.add(
            driver.lookup(
                t + timedelta(minutes=1), "gp2", patients[n % 10], ip="192.0.2.91", session="h"
            ).decision
        )
    assert kinds == {"allow", "step_up"}


def test_a_known_browser_on_a_new_network_is_not_a_stranger(driver: Driver) -> None:
    # The practice's own browser on a mobile network, alongside the practice line (a
    # laptop on a phone's connection during a home visit, logged in anew): new network,
    # known device, no refusal.
    at = DAY2 + timedelta(hours=10)
    patients = driver.world.care["gp2"]
    assert driver.lookup(at, "gp2", patients[0]).decision == "allow"
    mobile = driver.lookup(
        at + timedelta(minutes=5), "gp2", patients[1], ip="192.0.2.200", session="mobile"
    )
    assert mobile.decision == "allow"


def test_shared_infrastructure_across_unrelated_accounts_is_a_campaign(driver: Driver) -> None:
    at = DAY2 + timedelta(hours=10)
    kinds = []
    for n, account in enumerate(("gp1", "gp2", "gp3", "inf1", "ph2")):
        department = {"gp1": "75", "gp2": "13", "gp3": "69", "inf1": "69", "ph2": "13"}[account]
        person = strangers(driver.world, account, department)[n]
        decision = driver.lookup(
            at + timedelta(minutes=n),
            account,
            person,
            ip="198.51.100.66",
            agent="curl/8.5",
            session=f"camp-{account}",
        )
        kinds.append(decision)
    assert kinds[0].decision == "allow"
    assert any(r.startswith("campaign") for r in kinds[2].reasons)
    assert kinds[-1].decision == "step_up"
    assert kinds[-1].reasons[0].startswith("campaign")


def test_decisions_leave_the_event_as_it_was(driver: Driver) -> None:
    event = LookupEvent(
        7, to_micros(DAY2), "gp1", "x", None, "1.2.3.4", "ua", "s", "totp", "portal"
    )
    before = replace(event)
    driver.guard.decide(event)
    assert event == before


def test_micros_need_aware_datetimes() -> None:
    assert to_micros(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)) == 1_000_000
    with pytest.raises(ValueError, match="timezone"):
        to_micros(datetime(2025, 1, 1))  # noqa: DTZ001


def same_bits(a: float, b: float) -> bool:
    return struct.pack("<d", a) == struct.pack("<d", b)


@given(st.floats(allow_nan=True, allow_infinity=True))
@example(0.00005)  # ties and near ties in decimal, and the bounds of the fast path
@example(1.23445)
@example(2.5e-5)
@example(1e11)
@example(math.nextafter(1e11, 0))
@example(5e-324)
@example(-0.00001)
def test_round4_is_round_to_four_places_bit_for_bit(x: float) -> None:
    assert same_bits(round4(x), round(x, 4)) or (math.isnan(x) and math.isnan(round4(x)))


@given(st.integers(0, 10**9), st.sampled_from([-1, 0, 1]), st.integers(0, 8))
def test_round4_on_halves_and_their_neighbours(k: int, side: int, steps: int) -> None:
    x = (k + 0.5) / 10_000
    for _ in range(steps):
        x = math.nextafter(x, side * math.inf) if side else x
    assert same_bits(round4(x), round(x, 4))


@pytest.fixture(params=["pure", "compiled"])
def fresh(world: tuple[TinyWorld, MemoryDirectory], request: pytest.FixtureRequest) -> Driver:
    """A guard on a fresh deployment: no history at all (no peers, no baselines)."""
    engine = PURE
    if request.param == "compiled":
        engine = compiled_engine()
    driver = Driver.__new__(Driver)
    driver.world = world[0]
    driver.guard = engine.guard(world[1], engine.state(), default_config())
    driver.next_id = 1
    return driver


def test_practice_software_checking_the_day_list_passes_on_a_fresh_deployment(
    fresh: Driver,
) -> None:
    """The day's appointments, checked by the practice's software about once a second:
    its own patients, from its usual network and software (first contact makes them the
    account's), with no history and no peers."""
    patients = fresh.world.care["gp1"][:40]
    decisions = [
        fresh.lookup(DAY2 + timedelta(hours=7, seconds=k), "gp1", p, agent="Weda/7.2")
        for k, p in enumerate(patients)
    ]
    assert {d.decision for d in decisions} == {"allow"}


def test_the_same_list_at_a_machine_pace_is_stepped_up(fresh: Driver) -> None:
    patients = fresh.world.care["gp1"][:40]
    decisions = [
        fresh.lookup(DAY2 + timedelta(hours=7, milliseconds=200 * k), "gp1", p)
        for k, p in enumerate(patients)
    ]
    kinds = [d.decision for d in decisions]
    assert "step_up" in kinds
    assert decisions[kinds.index("step_up")].reasons[0] == "velocity"
    assert kinds.index("step_up") < 20


def test_unexplained_lookups_at_a_software_pace_are_stepped_up_on_velocity(
    fresh: Driver,
) -> None:
    """The exemption is for the practice's own patients: strangers at a software's pace
    from the same place are no appointment list."""
    people = strangers(fresh.world, "gp1", "75")[:40]
    decisions = [
        fresh.lookup(DAY2 + timedelta(hours=7, seconds=k), "gp1", p) for k, p in enumerate(people)
    ]
    kinds = [d.decision for d in decisions]
    assert "step_up" in kinds
    assert kinds.index("step_up") <= 12


def test_a_fresh_deployment_gets_peer_groups_from_its_first_days(fresh: Driver) -> None:
    """Without history there are no peers at the start; from the second day the peer
    groups come from the accounts' clean days, and a newcomer leans on them."""
    day1 = DAY2 - timedelta(days=1)
    for k, patient in enumerate(fresh.world.care["ph1a"][:30]):
        fresh.lookup(day1 + timedelta(hours=9, minutes=k), "ph1a", patient)
    fresh.lookup(day1 + timedelta(hours=10), "ph2", fresh.world.care["ph2"][0])
    assert fresh.guard._account("ph2").peer is None  # day one: no peers yet
    fresh.lookup(DAY2 + timedelta(hours=9), "ph2", fresh.world.care["ph2"][1])
    peer = fresh.guard._account("ph2").peer
    assert peer is not None
    assert peer.accounts >= 1
    assert max(peer.peaks) > 0  # ph1a's first day, its velocity peaks included


def test_an_areas_pharmacies_surging_together_get_a_larger_budget_at_home(
    driver: Driver,
) -> None:
    """The holidays: the department's pharmacies all see many far-away patients. Once
    enough of them went over budget from their usual place, the others' budget grows
    (from their usual place only: a stolen account works from elsewhere)."""
    driver.guard._surge_accounts = 2  # the tiny world's department has two pharmacies
    tourists = strangers(driver.world, "ph1a", "13")
    tourists = [t for t in tourists if t not in driver.world.care["ph1b"]]

    def surge(account: str, people: list[int], **where: str) -> list[str]:
        return [
            driver.lookup(DAY2 + timedelta(hours=8, minutes=2 * k), account, p, **where).decision
            for k, p in enumerate(people)
        ]

    first = surge("ph1a", tourists[:60])
    alone = first.index("step_up")  # alone over its budget: a step-up
    second = surge("ph1b", tourists[60:120])
    assert second.index("step_up") > alone + 5  # the area surges: a larger budget
    assert "deny" not in first + second


def test_a_surge_gives_nothing_to_an_account_working_from_elsewhere(driver: Driver) -> None:
    driver.guard._surge_accounts = 2
    tourists = strangers(driver.world, "ph1a", "13")
    tourists = [t for t in tourists if t not in driver.world.care["ph1b"]]
    for k, p in enumerate(tourists[:60]):
        driver.lookup(DAY2 + timedelta(hours=8, minutes=2 * k), "ph1a", p)
    away = [
        driver.lookup(DAY2 + timedelta(hours=8, minutes=2 * k), "ph1b", p, ip="192.0.2.50").decision
        for k, p in enumerate(tourists[60:100])
    ]
    assert away.index("step_up") < 5


def test_a_robot_reading_the_practices_own_patients_from_elsewhere_is_no_software(
    fresh: Driver,
) -> None:
    """A relayed session's robot reads the practice's own patients at machine speed from
    its own network: two of them make that network "known", but it is on probation,
    not the practice's place, so velocity stops it as it did before the software's
    pace was allowed at home (bench_takeover's "own customers": 4 records)."""
    own = fresh.world.care["gp1"]
    for k, patient in enumerate(own[:2]):  # the owner, at the practice, first
        fresh.lookup(DAY2 + timedelta(hours=8, minutes=k), "gp1", patient)
    decisions = [
        fresh.lookup(
            DAY2 + timedelta(hours=9, milliseconds=100 * k),
            "gp1",
            patient,
            ip="192.0.2.99",
            agent="python-requests/2.32.3",
            session="robot-session",
        )
        for k, patient in enumerate(own[2:40])
    ]
    kinds = [d.decision for d in decisions]
    assert kinds.index("step_up") <= 7  # the floor's 6 in ten seconds
    assert decisions[kinds.index("step_up")].reasons[0] == "velocity"
