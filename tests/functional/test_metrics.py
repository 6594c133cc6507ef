"""GET /metrics: what the instrumented parts count, after real requests on the real
databases, that no label carries personal data, who may read it, and that several
workers of ``rempart serve`` are summed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import insert

from rempart.api import create_app
from rempart.config import Settings
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Claim, MailOutbox
from tests.functional.conftest import PASSWORD, PEER, Login, Person, log_in
from tests.functional.served import rempart_serve, settings_env

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient | httpx.Client) -> tuple[str, Samples]:
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return answer.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def lookup(client: TestClient, token: str, nir: str, birth_date: str) -> int:
    answer = client.post(
        "/api/v1/rights/lookup",
        json={"nir": nir, "birth_date": birth_date},
        headers={"Authorization": f"Bearer {token}"},
    )
    status: int = answer.status_code
    return status


def test_lookups_guard_audit_and_http_are_counted_without_personal_data(
    client: TestClient, services: Services, pharmacist: Login, people: list[Person]
) -> None:
    # The registry is the process's: the test reads differences, not totals.
    _, before = scrape(client)
    token = log_in(client, pharmacist)
    person = people[0]
    statuses = [
        lookup(client, token, person.nir.value, person.birth_date.isoformat()),
        lookup(client, token, person.nir.value, "1990-01-01"),
        lookup(client, token, "1234", "1990-01-01"),
    ]
    assert statuses == [200, 404, 422]
    text, after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    channel = "portal"  # a session opened by password and TOTP
    assert delta("rempart_lookups_total", outcome="ok", channel=channel) == 1
    assert delta("rempart_lookups_total", outcome="not_found", channel=channel) == 1
    assert delta("rempart_lookups_total", outcome="invalid_nir", channel=channel) == 1
    assert delta("rempart_audit_append_seconds_count") >= 3  # the lookups' entries, logins'
    decisions = sum(
        delta("rempart_guard_decisions_total", decision="allow", rule=rule)
        for rule in ("none", "not_found", "malformed_nir", "unexplained", "new_network")
    )
    assert decisions >= 3
    route = "/api/v1/rights/lookup"
    for status in ("200", "404", "422"):
        assert delta("rempart_http_requests_total", method="POST", route=route, status=status) == 1
    assert delta("rempart_http_request_duration_seconds_count", method="POST", route=route) == 3

    # Nothing that names a person, an account or a client, in any label or value.
    for secret in (
        person.nir.value,
        person.nir.value[:13],
        person.birth_date.isoformat(),
        person.last_name,
        pharmacist.login,
        pharmacist.account_id,
        PASSWORD,
        token,
        "127.0.0.1",
    ):
        assert secret not in text


def test_login_throttle_refusals_are_counted(client: TestClient, pharmacist: Login) -> None:
    _, before = scrape(client)
    statuses = []
    for _ in range(30):
        answer = client.post(
            "/api/v1/auth/login", json={"login": pharmacist.login, "password": "wrong " * 3}
        )
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            break
    assert statuses[-1] == 429
    _, after = scrape(client)
    refused = sum(v for (n, _), v in after.items() if n == "rempart_login_throttled_total") - sum(
        v for (n, _), v in before.items() if n == "rempart_login_throttled_total"
    )
    assert refused == 1
    grown = [
        dict(labels)["rule"]
        for (name, labels), count in after.items()
        if name == "rempart_login_throttled_total" and count > before.get((name, labels), 0.0)
    ]
    assert len(grown) == 1
    assert grown[0] != "other"  # a rule the metric knows by name


def test_queue_depths_come_from_the_database(settings: Settings, services: Services) -> None:
    with session_scope(services.sessions) as session:
        for n in range(3):
            session.add(
                MailOutbox(
                    kind="test",
                    recipient=f"r{n}@example.fr",
                    subject="s",
                    body_text="b",
                    created_at=datetime.now(UTC) - timedelta(minutes=10),
                )
            )
    with TestClient(create_app(services=services), client=PEER) as client:
        _, samples = scrape(client)
    assert value(samples, "rempart_outbox_depth") == 3
    assert value(samples, "rempart_outbox_oldest_age_seconds") >= 500
    assert value(samples, "rempart_campaign_queue_depth", channel="email") == 0
    assert value(samples, "rempart_campaign_queue_depth", channel="letter") == 0
    # The readiness checks, run at the scrape.
    assert value(samples, "rempart_ready", check="database") == 1
    assert value(samples, "rempart_ready", check="audit") == 1


def test_claims_lag_follows_the_newest_claim_fed(
    settings: Settings, services: Services, pharmacist: Login, people: list[Person]
) -> None:
    claim_time = datetime.now(UTC) - timedelta(hours=1)
    with services.engine.begin() as connection:
        connection.execute(
            insert(Claim),
            [
                {
                    "claim_id": "ops-lag-1",
                    "ts_us": int(claim_time.timestamp() * 1_000_000),
                    "account_id": pharmacist.account_id,
                    "nir": people[0].nir.value,
                    "source": "file",
                    "received_at": datetime.now(UTC),
                }
            ],
        )
    with TestClient(create_app(services=services), client=PEER) as client:
        deadline = time.monotonic() + 20
        lag = 0.0
        while time.monotonic() < deadline:
            _, samples = scrape(client)
            lag = value(samples, "rempart_claims_lag_seconds", feed="table")
            if lag >= 3600:
                break
            time.sleep(0.2)
    assert 3600 <= lag < 3600 + 60


def test_metrics_are_closed_to_other_networks_unless_the_token_is_shown(
    settings: Settings, services: Services
) -> None:
    token = "t" * 40
    app = create_app(services=services)
    with TestClient(app, client=("192.0.2.10", 40000)) as outsider:
        refused = outsider.get("/metrics")
        assert refused.status_code == 403
        assert refused.json()["error"] == "metrics_forbidden"
        services.settings = settings.model_copy(update={"metrics_token": SecretStr(token)})
        wrong = outsider.get("/metrics", headers={"Authorization": "Bearer " + "x" * 40})
        shown = outsider.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert wrong.status_code == 403
    assert shown.status_code == 200
    assert "rempart_http_requests_total" in shown.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_several_workers_are_summed(settings: Settings, services: Services, tmp_path: Path) -> None:
    """``rempart serve --workers 2``: each worker writes its values under the data folder
    and whichever answers the scrape sums them."""
    requests = 40
    with rempart_serve(
        settings_env(settings), tmp_path / "serve.log", workers=2, start_seconds=180
    ) as served:
        for _ in range(requests):
            # A new connection each time: the kernel spreads them over the workers.
            assert httpx.get(f"{served.base}/health/live", timeout=10).status_code == 200
        metrics_dirs = list(settings.resolved_data_dir.glob("metrics-*"))
        assert len(metrics_dirs) == 1
        writers = {p.name.rsplit("_", 1)[1] for p in metrics_dirs[0].glob("counter_*.db")}
        with httpx.Client(base_url=served.base, timeout=10) as http:
            _, samples = scrape(http)
    # Each probe counted once, whichever worker answered it (the wait for the server to
    # start asked it a few more times).
    counted = value(
        samples, "rempart_http_requests_total", method="GET", route="/health/live", status="200"
    )
    assert requests <= counted <= requests + 300
    assert len(writers) == 2  # both workers answered and wrote their counts
    assert not list(settings.resolved_data_dir.glob("metrics-*"))  # removed at the end
