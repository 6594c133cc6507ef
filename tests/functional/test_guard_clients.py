"""Practice software and the guard (issue 10, finding 4), through real HTTP, on SQLite
and PostgreSQL, with the guard's state in process and in the real Redis.

The attack: one OAuth client of a pharmacy acts in turn as each of its four
pharmacists and reads strangers. Before, each professional had a budget of their
own (4 x 3 strangers read) and each was suspended in turn, while the client kept
getting tokens. Now the client has a record of its own that the same engine
decides on: the total it reads is bounded by one budget, the client is
suspended (its token dead, no new token, one alert naming it), and no
professional account is suspended. An honest client reading the pharmacy's
own customers is not disturbed.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from rempart.audit.models import AuditEvent
from rempart.auth.clients import ClientSecret
from rempart.cli import app
from rempart.config import Settings
from rempart.guard.inline import client_record
from rempart.nir import make_nir
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Account
from tests.functional.conftest import Login, Person, guard_state_settings, log_in, make_login
from tests.functional.test_guard_inline import (
    PHARMACY,
    ROBOT,
    build_town,
    cli_env,
    guard_settings,
    redis_dump,
)

ORG = "org-lilas"
PHARMACISTS = ("ph-anne", "ph-bruno", "ph-chloe", "ph-david")
TOKEN_PATH = "/api/v1/oauth/token"
runner = CliRunner()

BUDGET_STRANGERS = 3
"""What one budget reads with the default guard file: a record seen for the first
time gets the cold-start capacity (``budget.min`` = 6) and its first network and
device as its baseline, and a stranger living far away costs 1 + 1 (far patient)."""


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def state_store(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The guard's state: in process, or in the real Redis under a prefix of its own."""
    with guard_state_settings(request, "clients") as settings:
        yield settings


@pytest.fixture
def settings(database_url: str, tmp_path: Path, state_store: dict[str, str]) -> Settings:
    return guard_settings(database_url, tmp_path, **state_store)


@pytest.fixture
def pharmacy(services: Services) -> tuple[list[Login], list[Person], list[Person]]:
    """Four pharmacists of one pharmacy (one organisation), 12 customers with care links
    to it (spread over the four accounts), 40 strangers living in Marseille."""
    logins = [make_login(services, f"{a}.lilas", account_id=a) for a in PHARMACISTS]
    customers, strangers = build_town(services, PHARMACISTS, ORG)
    return logins, customers, strangers


def new_client(services: Services) -> ClientSecret:
    with session_scope(services.sessions) as session:
        return services.clients.create(session, organization_id=ORG, label="LGC Officine")


def token_response(client: TestClient, creds: ClientSecret) -> httpx.Response:
    response: httpx.Response = client.post(
        TOKEN_PATH,
        content=str(
            httpx.QueryParams(
                {
                    "grant_type": "client_credentials",
                    "client_id": creds.client_id,
                    "client_secret": creds.client_secret,
                }
            )
        ),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    return response


def get_token(client: TestClient, creds: ClientSecret) -> str:
    response = token_response(client, creds)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def soft_lookup(
    client: TestClient,
    token: str,
    person: Person,
    acting: str,
    origin: dict[str, str],
    *,
    nir: str | None = None,
) -> httpx.Response:
    response: httpx.Response = client.post(
        "/api/v1/rights/lookup",
        json={"nir": nir or person.nir.value, "birth_date": person.birth_date.isoformat()},
        headers={
            "Authorization": f"Bearer {token}",
            "X-Acting-Professional": acting,
            **origin,
        },
    )
    return response


def statuses_of(services: Services) -> dict[str, str]:
    with session_scope(services.sessions) as session:
        rows = session.execute(
            select(Account.account_id, Account.status).where(Account.account_id.in_(PHARMACISTS))
        ).all()
    return {row.account_id: row.status for row in rows}


def audit_events(services: Services, name: str) -> list[AuditEvent]:
    with session_scope(services.sessions) as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.ts_us)
            )
        )


def cli_json(services: Services, *args: str) -> Any:
    result = runner.invoke(app, [*args, "--json"], env=cli_env(services))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_client_rotating_professionals_gets_one_budget_and_is_suspended_alone(
    client: TestClient,
    services: Services,
    pharmacy: tuple[list[Login], list[Person], list[Person]],
) -> None:
    logins, customers, strangers = pharmacy
    creds = new_client(services)
    token = get_token(client, creds)  # stolen practice-software credentials

    # The robot reads strangers as each pharmacist in turn.
    statuses: list[int] = []
    answers: list[httpx.Response] = []
    for person, acting in zip(strangers, itertools.cycle(PHARMACISTS), strict=False):
        response = soft_lookup(client, token, person, acting, ROBOT)
        statuses.append(response.status_code)
        answers.append(response)
        if response.status_code == 403:
            break
    # One budget for the whole client, not one per professional named (4 x 3 before).
    assert statuses.count(200) <= BUDGET_STRANGERS, statuses
    assert set(statuses[statuses.count(200) :]) <= {401, 403}, statuses
    step_ups = [a for a in answers if a.status_code == 401]
    assert step_ups, statuses
    for answer in step_ups:  # a step-up stays RFC 9470's challenge: the software cannot pass it
        assert "insufficient_user_authentication" in answer.headers["www-authenticate"]
    assert statuses[-1] == 403, statuses
    assert answers[-1].json()["error"] == "client_suspended"
    assert len(statuses) <= 30, statuses
    # Rotating professionals resets nothing: the step-ups and the deny came while
    # naming each of the four in turn.
    assert len(statuses) > 2 * len(PHARMACISTS)

    # The client is suspended: its token is dead, it gets no new one.
    after = soft_lookup(client, token, strangers[-1], PHARMACISTS[0], ROBOT)
    assert after.status_code == 401
    assert after.json()["error"] == "invalid_token"
    refused = token_response(client, creds)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    reasons = [e.reasons for e in audit_events(services, "client_token_refused")]
    assert "client_suspended" in reasons

    # No professional account is suspended, and each still works from the pharmacy
    # (an hour later: the robot's burst no longer weighs on their velocity).
    assert statuses_of(services) == dict.fromkeys(PHARMACISTS, "active")
    guard = services.guard
    assert guard is not None
    guard.clock = lambda: time.time_ns() // 1000 + 3_600_000_000
    for login, customer in zip(logins, customers, strict=False):
        own = log_in(client, login)
        response = client.post(
            "/api/v1/rights/lookup",
            json={"nir": customer.nir.value, "birth_date": customer.birth_date.isoformat()},
            headers={"Authorization": f"Bearer {own}", **PHARMACY},
        )
        assert response.status_code == 200, audit_events(services, "lookup")[-1].reasons

    # One alert, naming the client (and the professional the denied lookup named).
    alerts = cli_json(services, "guard", "alerts")
    assert len(alerts) == 1, alerts
    (alert,) = alerts
    assert alert["client_id"] == creds.client_id
    assert alert["account_id"] in PHARMACISTS
    assert alert["decision"] == "deny"
    assert alert["session_id"].startswith(f"client:{creds.client_id}:")
    denied = [e for e in audit_events(services, "lookup") if e.decision == "deny"]
    assert len(denied) == 1
    assert denied[0].outcome == "client_suspended"
    assert denied[0].ts_us == alert["audit_ts_us"]
    assert any(r.startswith("client:") for r in denied[0].reasons.split(","))
    (suspension,) = audit_events(services, "client_suspended")
    assert suspension.session_id == f"client:{creds.client_id}"
    assert suspension.reasons.startswith("guard:")
    assert audit_events(services, "account_suspended") == []

    # The operator sees it, and restores it: the old token stays dead, a new one works.
    (listed,) = cli_json(services, "clients", "list")
    assert listed["status"] == "suspended"
    assert listed["suspended_by"] == suspension.reasons
    restored = runner.invoke(
        app,
        ["clients", "restore", "--client-id", creds.client_id, "--operator", "alice"],
        env=cli_env(services),
    )
    assert restored.exit_code == 0, restored.output
    assert audit_events(services, "client_restored")[0].reasons == "operator:alice"
    assert soft_lookup(client, token, customers[0], PHARMACISTS[0], PHARMACY).status_code == 401
    fresh = get_token(client, creds)
    response = soft_lookup(client, fresh, customers[0], PHARMACISTS[0], PHARMACY)
    assert response.status_code == 200, response.text
    (listed,) = cli_json(services, "clients", "list")
    assert listed["status"] == "active"
    again = runner.invoke(
        app,
        ["clients", "restore", "--client-id", creds.client_id, "--operator", "alice"],
        env=cli_env(services),
    )
    assert again.exit_code != 0

    if services.settings.redis_url:
        # The client's record lives beside the accounts', with nothing personal in clear.
        dump = redis_dump(services)
        assert services.settings.guard_redis_prefix + "a:" + client_record(creds.client_id) in dump
        for person in customers + strangers:
            assert person.nir.value not in dump
        for secret in ("198.51.100", "203.0.113", "python-requests", "LogicielOfficine"):
            assert secret not in dump


def test_enumeration_through_a_client_suspends_the_client_not_the_professional(
    client: TestClient,
    services: Services,
    pharmacy: tuple[list[Login], list[Person], list[Person]],
) -> None:
    _, _, strangers = pharmacy
    creds = new_client(services)
    token = get_token(client, creds)
    # Made-up NIRs, all as one pharmacist: both records see the enumeration.
    statuses: list[int] = []
    for order in range(1, 60):
        made_up = make_nir(sex=1, year=1970, month=5, department="75", commune="101", order=order)
        response = soft_lookup(
            client, token, strangers[0], PHARMACISTS[0], ROBOT, nir=made_up.value
        )
        statuses.append(response.status_code)
        if response.status_code == 403:
            assert response.json()["error"] == "client_suspended"
            break
    assert statuses[-1] == 403, statuses
    assert statuses_of(services) == dict.fromkeys(PHARMACISTS, "active")
    (alert,) = cli_json(services, "guard", "alerts")
    assert alert["client_id"] == creds.client_id
    assert "enumeration" in alert["reasons"] or "client:enumeration" in alert["reasons"]
    assert token_response(client, creds).status_code == 401


def test_an_honest_client_reading_its_pharmacists_customers_passes(
    client: TestClient,
    services: Services,
    pharmacy: tuple[list[Login], list[Person], list[Person]],
) -> None:
    _, customers, strangers = pharmacy
    guard = services.guard
    assert guard is not None
    # A day's pace: a lookup every four minutes from 08:00 UTC (the guard's clock).
    day = int(time.time()) // 86_400 * 86_400
    moments = itertools.count(day * 1_000_000 + 8 * 3_600_000_000, 240_000_000)
    guard.clock = lambda: next(moments)
    creds = new_client(services)
    token = get_token(client, creds)
    # Every customer, three times, by whichever pharmacist serves at the counter (the
    # care link may be with a colleague: the organisation explains it), a typo, and one
    # walk-in customer the pharmacy has never seen.
    for round_ in range(3):
        for i, person in enumerate(customers):
            acting = PHARMACISTS[(i + round_) % 4]
            response = soft_lookup(client, token, person, acting, PHARMACY)
            assert response.status_code == 200, response.text
    typo = client.post(
        "/api/v1/rights/lookup",
        json={"nir": customers[0].nir.value, "birth_date": "1900-01-01"},
        headers={
            "Authorization": f"Bearer {token}",
            "X-Acting-Professional": PHARMACISTS[1],
            **PHARMACY,
        },
    )
    assert typo.status_code == 404
    assert soft_lookup(client, token, strangers[0], PHARMACISTS[2], PHARMACY).status_code == 200
    entries = audit_events(services, "lookup")
    assert len(entries) == 3 * len(customers) + 2
    assert {e.decision for e in entries} == {"allow"}
    assert entries[0].reasons == ""  # explained for the professional and for the client
    assert "client:unexplained" in entries[-1].reasons.split(",")
    assert "unexplained" in entries[-1].reasons.split(",")
    assert statuses_of(services) == dict.fromkeys(PHARMACISTS, "active")
    (listed,) = cli_json(services, "clients", "list")
    assert listed["status"] == "active"
    assert cli_json(services, "guard", "alerts") == []
