"""The demo's operations chapter: what the people who run Rempart watch.

Over the same HTTP service as the rest of the story: ``/health/ready`` (each dependency
checked), a few series of ``/metrics`` (what the story did, as Prometheus reads it), and
the public checks' lane shedding a burst: a dozen long messages sent at once to the
anonymous message checker, of which the lane takes a few and refuses the rest at once
(``503 overloaded`` with ``Retry-After``) while a professional's request still passes.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

__all__ = ["OperationsReport", "chapter_operations"]

_BURST = 12
# A long message, as a flood would send them: the checker reads every sentence of it.
_LONG_SMS = " ".join(
    f"Message {i} : votre carte Vitale doit être renouvelée avant vendredi, "
    f"rendez-vous sur le site indiqué pour éviter la suspension de vos droits."
    for i in range(600)
)
_SERIES = (
    ("rempart_lookups_total", "outcome"),
    ("rempart_guard_decisions_total", "decision"),
    ("rempart_requests_shed_total", "lane"),
)


@dataclass(frozen=True)
class OperationsReport:
    ready: bool
    checks: dict[str, str]
    lookups: dict[str, float]
    decisions: dict[str, float]
    burst: dict[str, int]  # "200", "503 overloaded", ... for the burst of public checks
    retry_after: bool
    professional_status: int


def chapter_operations(console: Console, http: httpx.Client) -> OperationsReport:
    ready = http.get("/health/ready")
    checks: dict[str, str] = ready.json().get("checks", {})
    console.print(
        f"  GET /health/ready → {ready.status_code}: "
        + ", ".join(f"{name} {state}" for name, state in checks.items())
        + "   (GET /health/live answers while the process lives)"
    )
    burst, retry_after, professional = _burst_of_public_checks(http)
    console.print(
        f"  {_BURST} long messages sent at once to POST /api/v1/messages/check (anonymous): "
        + ", ".join(f"{n} x {outcome}" for outcome, n in sorted(burst.items()))
        + (", each refusal with Retry-After" if retry_after else "")
    )
    console.print(
        f"  meanwhile a professional's request (GET /api/v1/auth/sessions without a token) → "
        f"{professional}: the public checks have a lane of their own and never take every slot"
    )
    sums = _metric_sums(http.get("/metrics").text)
    table = Table(
        "series (GET /metrics, Prometheus)", "by", "values", title="What Prometheus reads"
    )
    for name, label in _SERIES:
        values = sums.get((name, label), {})
        table.add_row(
            name, label, ", ".join(f"{k}={v:g}" for k, v in sorted(values.items())) or "-"
        )
    console.print(table)
    console.print(
        "  no NIR, login or address in any label; deploy/ holds the Grafana dashboard, the "
        "alert rules and the container (Dockerfile, compose.yaml)"
    )
    return OperationsReport(
        ready=ready.status_code == 200,
        checks=checks,
        lookups=sums.get(("rempart_lookups_total", "outcome"), {}),
        decisions=sums.get(("rempart_guard_decisions_total", "decision"), {}),
        burst=dict(burst),
        retry_after=retry_after,
        professional_status=professional,
    )


def _burst_of_public_checks(http: httpx.Client) -> tuple[Counter[str], bool, int]:
    body = {"channel": "sms", "sender": "36 01", "text": _LONG_SMS}

    def check(_: int) -> tuple[str, bool]:
        answer = http.post("/api/v1/messages/check", json=body, timeout=60)
        outcome = str(answer.status_code)
        if answer.status_code >= 400:
            outcome += f" {answer.json().get('error', '?')}"
        return outcome, "retry-after" in answer.headers

    with ThreadPoolExecutor(max_workers=_BURST + 1) as pool:
        answers = pool.map(check, range(_BURST))
        professional = pool.submit(http.get, "/api/v1/auth/sessions")
        done = list(answers)
        status = professional.result().status_code
    refused = [retry for outcome, retry in done if outcome.startswith("503")]
    return Counter(o for o, _ in done), bool(refused) and all(refused), status


def _metric_sums(text: str) -> dict[tuple[str, str], dict[str, float]]:
    """Each sample of the series named in ``_SERIES``, summed over the other labels."""
    wanted = dict(_SERIES)
    sums: dict[tuple[str, str], dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            label = wanted.get(sample.name)
            if label is None or label not in sample.labels:
                continue
            by = sums.setdefault((sample.name, label), {})
            key = sample.labels[label]
            by[key] = by.get(key, 0.0) + sample.value
    return sums
