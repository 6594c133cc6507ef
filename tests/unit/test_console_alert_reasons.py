"""Every reason code the guard writes has a French sentence for the console; an unknown
code is shown as it is."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from rempart.console.activity import Bar, chart
from rempart.console.alert_reasons import CLIENT_PREFIX, FRENCH, RULES, explain, explain_all
from rempart.guard.inline import CLIENT_REASON_PREFIX
from rempart.guard.signals import REASONS

GUARD = Path(__file__).parents[2] / "src" / "rempart" / "guard"


def test_every_signal_and_rule_is_in_french() -> None:
    assert set(REASONS) <= set(FRENCH)
    assert set(RULES) <= set(FRENCH)


def test_every_rule_the_engine_names_is_in_french() -> None:
    # The engine's rules are the strings of the rule phase's `return KIND, "..."` and the
    # strangers phase's `stranger_rule = "..."`; the inline driver's own codes are the
    # tuples it prepends.
    phases = (GUARD / "phases.py").read_text(encoding="utf-8")
    rules = set(re.findall(r'return (?:DENY|STEP_UP), "(\w+)"', phases))
    rules |= set(re.findall(r'"(\w+)"', " ".join(re.findall(r"stranger_rule = (.+)", phases))))
    rules -= {"campaign"}  # named after the network or the device (campaign_*)
    assert {"robot", "budget_far_exceeded", "stranger_new_place", "stranger_off_hours"} <= rules
    assert rules <= set(FRENCH)
    inline = (GUARD / "inline.py").read_text(encoding="utf-8")
    own = set(re.findall(r'\(\("(\w+)",', inline)) | set(re.findall(r'_codes\(\("(\w+)"', inline))
    assert own
    assert own <= set(FRENCH)


def test_a_client_reason_names_the_software_and_an_unknown_code_shows_as_is() -> None:
    assert CLIENT_PREFIX == CLIENT_REASON_PREFIX
    client = explain("client:robot")
    assert client.client
    assert client.known
    assert client.text.startswith("Logiciel métier : ")
    unknown = explain("brand_new_rule")
    assert (unknown.known, unknown.text) == (False, "brand_new_rule")
    assert [r.code for r in explain_all("robot,,unexplained")] == ["robot", "unexplained"]


def test_a_chart_scales_to_its_largest_bar() -> None:
    start = datetime(2026, 12, 4, tzinfo=UTC)
    drawn = chart(
        (Bar(start, "a", 10, 5, False), Bar(start, "b", 0, 0, True)), width=100, height=112
    )
    assert drawn.top == 10
    first, second = drawn.bars
    assert (first.height, first.y) == (100.0, 12.0)
    assert first.deny_height == 50.0
    assert second.height == 0.0
    assert chart(()).bars == ()
