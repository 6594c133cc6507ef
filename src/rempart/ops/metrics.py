"""The service's Prometheus metrics, defined once; the feature modules call the helpers.

No label ever carries personal data or anything a client chooses: no NIR, login,
account or professional id, no address, no raw path. Every label comes from a small
closed set (a value outside it is counted as ``other``), so that a hostile client
cannot grow the number of series either.

Several workers (``rempart serve --workers N``): ``serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` to a fresh directory before the workers start;
prometheus-client then keeps each worker's values in files there and ``/metrics``
sums them (:func:`exposition`). It decides when it is imported, as this module does:
one process (tests, the demo, one worker) keeps its values in memory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric

__all__ = [
    "MULTIPROCESS",
    "audit_append_timer",
    "claim_applied",
    "count_guard_decision",
    "count_login_throttled",
    "count_lookup",
    "count_shed",
    "count_step_up",
    "exposition",
    "follower_pass",
    "observe_request",
    "worker_exit",
]

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ

# One ``_created`` series per counter and label set doubles the scrape for nothing a
# dashboard or an alert here uses.
disable_created_metrics()  # type: ignore[no-untyped-call]

OTHER = "other"

# The audit's outcome codes of a lookup (rempart.rights.service, the guard's refusals).
LOOKUP_OUTCOMES = frozenset(
    {
        "ok",
        "not_found",
        "invalid_nir",
        "invalid_birth_date",
        "insufficient_user_authentication",
        "account_suspended",
        "client_suspended",
        "guard_unavailable",
        "audit_unavailable",
    }
)
# The lookup channels (the guard's two, and the FHIR facade's: rempart.fhir.CHANNEL).
CHANNELS = frozenset({"portal", "software", "fhir"})
DECISIONS = frozenset({"allow", "step_up", "deny", "error"})
# The rules and signals the guard names first in a decision's reasons, as the engine
# gives them (guard.signals.REASONS, the phases' rules; tests/unit/test_ops_metrics.py
# holds this set to them).
GUARD_RULES = frozenset(
    {
        "account_suspended",
        "unexplained",
        "far_patient",
        "new_network",
        "new_device",
        "off_hours",
        "low_conversion",
        "campaign_network",
        "campaign_device",
        "not_found",
        "malformed_nir",
        "enumeration",
        "velocity",
        "robot",
        "budget_exhausted",
        "budget_far_exceeded",
        "challenged",
        "session_new_network",
        "stranger_persisting",
        "refused_network",
        "concurrent_new_network",
        "stranger_off_hours",
        "stranger_new_place",
        "guard_unavailable",
        "none",
    }
)
# The login throttle's rules (auth.throttle.LoginThrottle._rules).
THROTTLE_RULES = frozenset(
    {
        "address_attempts",
        "address_failures",
        "address_logins",
        "address_failed_logins",
        "network_logins",
        "network_failed_logins",
        "account_backoff",
        "account_wide_backoff",
    }
)
STEP_UP_SOURCES = frozenset({"guard", "new_origin", "requirement"})
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

LOOKUPS = Counter(
    "rempart_lookups",
    "Rights lookups answered or refused, by audit outcome and channel.",
    ["outcome", "channel"],
)
GUARD_DECISIONS = Counter(
    "rempart_guard_decisions",
    "The guard's decisions on lookups, by decision and leading rule (first reason).",
    ["decision", "rule"],
)
AUDIT_APPEND_SECONDS = Histogram(
    "rempart_audit_append_seconds",
    "Time to append entries to the audit trail (the lookup's commit excluded).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
AUDIT_APPEND_FAILURES = Counter(
    "rempart_audit_append_failures",
    "Audit appends that failed (the lookup was refused with audit_unavailable).",
)
LOGIN_THROTTLED = Counter(
    "rempart_login_throttled",
    "Login attempts refused by the throttle (429), by the rule that refused.",
    ["rule"],
)
STEP_UP_CHALLENGES = Counter(
    "rempart_step_up_challenges",
    "Step-up challenges (RFC 9470) sent, by what asked: the guard, a login from a new "
    "origin, a route's requirement.",
    ["source"],
)
HTTP_REQUESTS = Counter(
    "rempart_http_requests",
    "HTTP requests by method, route template and status.",
    ["method", "route", "status"],
)
SHED_LANES = frozenset({"worker", "public"})
REQUESTS_SHED = Counter(
    "rempart_requests_shed",
    "Requests refused at the door with 503 overloaded (rempart.api.shedding), by lane: the "
    "worker's bound, or the public checks' own.",
    ["lane"],
)
for _lane in SHED_LANES:  # both series exist from the start: an alert's ratio needs them
    REQUESTS_SHED.labels(_lane)
HTTP_DURATION = Histogram(
    "rempart_http_request_duration_seconds",
    "HTTP request latency by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CLAIMS_APPLIED_TS = Gauge(
    "rempart_claims_applied_timestamp_seconds",
    "Claim time of the newest claim fed to the guard, by feed (table follower, stream); "
    "with several workers the most behind one.",
    ["feed"],
    multiprocess_mode="livemin",
)
CLAIMS_FOLLOWER_PASS_TS = Gauge(
    "rempart_claims_follower_pass_timestamp_seconds",
    "When the claims table follower last completed a pass; with several workers the "
    "most behind one.",
    multiprocess_mode="livemin",
)
CLAIMS_FEEDS = frozenset({"table", "stream"})


def _closed(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else OTHER


def count_lookup(outcome: str, channel: str) -> None:
    LOOKUPS.labels(_closed(outcome, LOOKUP_OUTCOMES), _closed(channel, CHANNELS)).inc()


def count_guard_decision(decision: str, reasons: Iterable[str]) -> None:
    first = next(iter(reasons), "none")
    GUARD_DECISIONS.labels(
        _closed(decision, DECISIONS), _closed(first.removeprefix("client:"), GUARD_RULES)
    ).inc()


def count_login_throttled(rule: str) -> None:
    LOGIN_THROTTLED.labels(_closed(rule, THROTTLE_RULES)).inc()


def count_step_up(source: str) -> None:
    STEP_UP_CHALLENGES.labels(_closed(source, STEP_UP_SOURCES)).inc()


@contextmanager
def audit_append_timer() -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    except Exception:
        AUDIT_APPEND_FAILURES.inc()
        raise
    AUDIT_APPEND_SECONDS.observe(time.perf_counter() - started)


def count_shed(lane: str) -> None:
    REQUESTS_SHED.labels(_closed(lane, SHED_LANES)).inc()


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """``route``: the matched route's template (``<unmatched>`` when none), never a path."""
    method = _closed(method, METHODS)
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(seconds)


_newest_claim: dict[str, int] = {}


def claim_applied(feed: str, ts_us: int) -> None:
    # Fed in commit order, not claim time: the newest is the largest seen.
    if ts_us > _newest_claim.get(feed, 0):
        _newest_claim[feed] = ts_us
        CLAIMS_APPLIED_TS.labels(_closed(feed, CLAIMS_FEEDS)).set(ts_us / 1_000_000)


def follower_pass() -> None:
    CLAIMS_FOLLOWER_PASS_TS.set(time.time())


def worker_exit() -> None:
    """A worker leaving: its live gauges stop counting in the sum (multiprocess mode)."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class _Families:
    """What one scrape renders: fixed families plus those computed for it."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def _claims_lag(families: list[Metric], now: float) -> Metric:
    """Seconds between now and the newest claim fed, per feed (from the gauge above,
    summed over workers as its mode says)."""
    lag = GaugeMetricFamily(
        "rempart_claims_lag_seconds",
        "Seconds between now and the claim time of the newest claim fed to the guard, by feed.",
        labels=["feed"],
    )
    for family in families:
        if family.name != CLAIMS_APPLIED_TS._name:
            continue
        for sample in family.samples:
            feed = sample.labels.get("feed", OTHER)
            if sample.value > 0:
                lag.add_metric([feed], max(0.0, now - sample.value))
    return lag


def exposition(extra: Iterable[Callable[[], Iterable[Metric]]] = ()) -> bytes:
    """The text format of every metric: this process's, or every worker's summed, plus
    ``extra`` collectors' (computed per scrape, e.g. the queue depths)."""
    if MULTIPROCESS:
        source = CollectorRegistry()
        multiprocess.MultiProcessCollector(source)  # type: ignore[no-untyped-call]
    else:
        source = REGISTRY
    families = list(source.collect())
    for produce in extra:
        families.extend(produce())
    families.append(_claims_lag(families, time.time()))
    return generate_latest(_Families(families))
