"""The metrics' labels come from closed sets: a value outside becomes ``other``, so a
client cannot put what it typed into a label nor grow the number of series."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from rempart.auth.throttle import LoginThrottle, MemoryCounterStore, ThrottleLimits
from rempart.guard.engine import _STRANGER_RULES
from rempart.guard.signals import REASONS
from rempart.ops import metrics


def _value(name: str, **labels: str) -> float:
    found = REGISTRY.get_sample_value(name, labels)
    return found or 0.0


def test_unknown_values_are_counted_as_other() -> None:
    before = _value("rempart_lookups_total", outcome="other", channel="other")
    metrics.count_lookup("1850775123456 78", "my-own-channel")
    assert _value("rempart_lookups_total", outcome="other", channel="other") == before + 1

    before = _value("rempart_guard_decisions_total", decision="deny", rule="other")
    metrics.count_guard_decision("deny", ("made_up_reason", "robot"))
    assert _value("rempart_guard_decisions_total", decision="deny", rule="other") == before + 1

    before = _value("rempart_guard_decisions_total", decision="step_up", rule="robot")
    metrics.count_guard_decision("step_up", ("client:robot",))
    assert _value("rempart_guard_decisions_total", decision="step_up", rule="robot") == before + 1

    before = _value("rempart_login_throttled_total", rule="other")
    metrics.count_login_throttled("u:pharmacie.lilas:b")
    assert _value("rempart_login_throttled_total", rule="other") == before + 1

    before = _value(
        "rempart_http_requests_total", method="other", route="<unmatched>", status="405"
    )
    metrics.observe_request("BREW", "<unmatched>", 405, 0.001)
    assert (
        _value("rempart_http_requests_total", method="other", route="<unmatched>", status="405")
        == before + 1
    )


def test_the_newest_claim_is_the_largest_time_fed() -> None:
    metrics.claim_applied("table", 2_000_000_000_000_000)
    metrics.claim_applied("table", 1_000_000_000_000_000)  # fed later, older claim
    assert _value("rempart_claims_applied_timestamp_seconds", feed="table") == 2_000_000_000


def test_an_audit_append_that_fails_is_counted_not_timed() -> None:
    failures = _value("rempart_audit_append_failures_total")
    timed = _value("rempart_audit_append_seconds_count")
    with pytest.raises(RuntimeError), metrics.audit_append_timer():
        raise RuntimeError("database away")
    with metrics.audit_append_timer():
        pass
    assert _value("rempart_audit_append_failures_total") == failures + 1
    assert _value("rempart_audit_append_seconds_count") == timed + 1


def test_the_closed_sets_name_every_rule_the_guard_and_the_throttle_give() -> None:
    """A rule the code gives but the set lacks would be counted as ``other`` and vanish
    from the dashboard and the alerts: the sets are held to the code's own names."""
    guard_rules = {*REASONS, *_STRANGER_RULES, "stranger_persisting", "guard_unavailable"}
    assert guard_rules <= metrics.GUARD_RULES, guard_rules - metrics.GUARD_RULES
    throttle = LoginThrottle(
        MemoryCounterStore(), ThrottleLimits(), secret=b"throttle-test-secret-0123456789"
    )
    names = {rule.name for rule in throttle._rules("dr.martin", "192.0.2.1")}
    assert names == metrics.THROTTLE_RULES
