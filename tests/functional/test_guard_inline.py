"""The guard inline in the API, through real HTTP, on SQLite and on PostgreSQL, with
its state in process and in the real Redis (``REMPART_REDIS_URL``, a key prefix per
test).

A scripted robot with a valid password + TOTP session is contained within a
handful of records and its account suspended (an alert is listed, an operator
restores it); an honest pharmacist reading the pharmacy's own customers passes;
a step-up answered with a security key goes on. Several workers sharing one Redis,
and Redis going away: ``test_guard_inline_redis.py``.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import select, update
from typer.testing import CliRunner

from rempart.audit.models import AuditEvent
from rempart.cli import app
from rempart.config import Settings, load_settings
from rempart.devtools.soft_authenticator import SoftAuthenticator
from rempart.guard.inline import DatabaseDirectory, InlineGuard
from rempart.guard.redis_state import RedisState
from rempart.nir import make_nir
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Account, CareLink, Insured, Professional, WebAuthnCredential
from tests.conftest import FAST_HASHING
from tests.functional.conftest import (
    PROXY,
    Login,
    Person,
    guard_state_settings,
    log_in,
    make_login,
    totp_code,
)

ORIGIN = "http://testserver"
API = "/api/v1/auth"
STEP_UP_ACRS = 'acr_values="cps webauthn"'
PHARMACY = {"X-Forwarded-For": "203.0.113.20", "User-Agent": "LogicielOfficine/5.2"}
ROBOT = {"X-Forwarded-For": "198.51.100.66", "User-Agent": "python-requests/2.32.3"}
runner = CliRunner()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def guard_redis(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The guard's state: in process, or in the real Redis under a key prefix of this
    test's own (removed afterwards). The settings that say so."""
    with guard_state_settings(request, "inline") as overrides:
        yield overrides


def guard_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        webauthn_rp_id="testserver",
        webauthn_origins=[ORIGIN],
        trusted_proxies=PROXY,  # the robot and the pharmacy come from their own networks
        **FAST_HASHING,
        **overrides,
    )


@pytest.fixture
def settings(database_url: str, tmp_path: Path, guard_redis: dict[str, str]) -> Settings:
    return guard_settings(database_url, tmp_path, **guard_redis)


def _person(session: Any, order: int, department: str, born: date) -> Person:
    nir = make_nir(
        sex=1 + order % 2,
        year=born.year,
        month=born.month,
        department=department,
        commune="055",
        order=order,
    )
    session.add(
        Insured(
            nir=nir.value,
            birth_date=born,
            sex=1 + order % 2,
            last_name=f"Nom{order}",
            first_name="Camille",
            department=department,
            treating_doctor=None,
            c2s=False,
            ame=False,
            ald=False,
            email=None,
            street="1 rue des Lilas",
            postcode="75011",
            city="Paris",
        )
    )
    return Person(nir=nir, birth_date=born, last_name=f"Nom{order}")


@pytest.fixture
def town(services: Services) -> tuple[list[Person], list[Person]]:
    return build_town(services)


def build_town(
    services: Services,
    accounts: tuple[str, ...] = ("ph-lilas-2", "ph-lilas"),
    organization: str = "org-lilas",
) -> tuple[list[Person], list[Person]]:
    """A pharmacy in Paris (``accounts``, one organisation); 12 customers with care links
    to it, spread over its accounts in turn (some through a colleague's account), and 40
    strangers living in Marseille."""
    customers: list[Person] = []
    strangers: list[Person] = []
    with session_scope(services.sessions) as session:
        for account_id in accounts:
            session.add(
                Professional(
                    account_id=account_id,
                    rpps=None,
                    profession="pharmacie",
                    department="75",
                    organization_id=organization,
                    last_name="Lilas",
                    first_name="Pharmacie",
                    email=f"{account_id}@officine.example",
                )
            )
        session.flush()
        for i in range(12):
            customers.append(_person(session, 100 + i, "75", date(1950 + i, 1 + i % 12, 15)))
        for i in range(40):
            strangers.append(_person(session, 300 + i, "13", date(1960 + i % 40, 1 + i % 12, 3)))
        session.flush()
        for i, person in enumerate(customers):
            session.add(
                CareLink(
                    account_id=accounts[i % len(accounts)],
                    nir=person.nir.value,
                    since=date(2024, 1, 1),
                )
            )
    return customers, strangers


@pytest.fixture
def pharmacist(services: Services) -> Login:
    return make_login(services, "pharmacie.lilas", account_id="ph-lilas")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def lookup(
    client: TestClient, token: str, person: Person, origin: dict[str, str] | None = None
) -> Any:
    return client.post(
        "/api/v1/rights/lookup",
        json={"nir": person.nir.value, "birth_date": person.birth_date.isoformat()},
        headers={**bearer(token), **(origin or PHARMACY)},
    )


def yesterday_at_the_counter(
    client: TestClient, services: Services, login: Login, customers: list[Person]
) -> None:
    """The owner's ordinary use the day before (the guard's clock set to yesterday,
    a lookup every ten minutes from 09:00 UTC): the guard knows the pharmacy's network."""
    guard = services.guard
    assert guard is not None
    clock = guard.clock
    yesterday = (int(time.time()) // 86_400 - 1) * 86_400
    moments = itertools.count(yesterday * 1_000_000 + 9 * 3_600_000_000, 600_000_000)
    guard.clock = lambda: next(moments)
    try:
        token = totp_session(client, login, ahead=-1)
        for person in customers:
            assert lookup(client, token, person).status_code == 200
    finally:
        guard.clock = clock


def totp_session(client: TestClient, login: Login, *, ahead: int = 0) -> str:
    """A password + TOTP login; ``ahead`` steps of 30 s ahead (a code serves once)."""
    first = client.post(f"{API}/login", json={"login": login.login, "password": login.password})
    assert first.status_code == 200, first.text
    second = client.post(
        f"{API}/mfa/totp",
        json={
            "mfa_token": first.json()["mfa_token"],
            "code": totp_code(login, ahead),
        },
    )
    assert second.status_code == 200, second.text
    token: str = second.json()["access_token"]
    return token


def reset_after_restore(client: TestClient, login: Login, printed: str) -> Login:
    """The owner after ``accounts restore``: a new password set with the posted reset code,
    the posted TOTP seed in her app. Returns her new credentials."""
    reset_code, uri = printed.split()
    password = "un nouveau mot de passe pour la pharmacie 7"
    reset = client.post(
        f"{API}/password/reset",
        json={
            "login": login.login,
            "new_password": password,
            "method": "operator_code",
            "code": reset_code,
        },
    )
    assert reset.status_code == 204, reset.text
    totp = pyotp.TOTP(pyotp.parse_uri(uri).secret)
    return Login(login.account_id, login.login, password, totp)


def lookup_entries(services: Services, account_id: str) -> list[AuditEvent]:
    with session_scope(services.sessions) as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.event == "lookup", AuditEvent.account_id == account_id)
                .order_by(AuditEvent.ts_us)
            )
        )


def cli_env(services: Services) -> dict[str, str]:
    settings = services.settings
    env = {
        "REMPART_DATABASE_URL": services.engine.url.render_as_string(hide_password=False),
        "REMPART_DATA_DIR": str(settings.data_dir),
    }
    env.update({f"REMPART_{k.upper()}": str(v) for k, v in FAST_HASHING.items()})
    return env


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _samples(name: str, **labels: str) -> dict[str, float]:
    """The samples of ``name`` with ``labels``, by their ``rule``."""
    found: dict[str, float] = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                found[sample.labels["rule"]] = sample.value
    return found


@pytest.mark.parametrize("in_use", [True, False], ids=["account-in-use", "never-seen"])
def test_a_robot_is_contained_suspended_alerted_then_restored(
    client: TestClient,
    services: Services,
    pharmacist: Login,
    town: tuple[list[Person], list[Person]],
    in_use: bool,
) -> None:
    customers, strangers = town
    if in_use:
        yesterday_at_the_counter(client, services, pharmacist, customers)
    history = len(lookup_entries(services, "ph-lilas"))
    robot = log_in(client, pharmacist)  # a phished password + TOTP: a valid session
    step_ups_before = _sample("rempart_step_up_challenges_total", source="guard")
    denials_before = _samples("rempart_guard_decisions_total", decision="deny")
    statuses: list[int] = []
    for person in strangers:
        response = lookup(client, robot, person, ROBOT)
        statuses.append(response.status_code)
        if response.status_code == 401 and "insufficient_user_authentication" in response.text:
            assert STEP_UP_ACRS in response.headers["www-authenticate"]
        if response.status_code == 403:
            assert response.json()["error"] == "account_suspended"
            break
    # Contained within a handful of records, then suspended.
    # An account in use: the robot's network and device weigh, one record. A never-seen
    # account: its first network is its baseline, the budget alone bounds it.
    assert statuses.count(200) <= (1 if in_use else 3), statuses
    assert 401 in statuses, statuses
    assert statuses[-1] == 403, statuses
    assert len(statuses) <= (12 if in_use else 30), statuses
    # The account is suspended: the robot gets nothing more, refused before the guard.
    after = lookup(client, robot, strangers[-1], ROBOT)
    assert after.status_code == 403
    assert after.json()["error"] == "account_suspended"
    with session_scope(services.sessions) as session:
        status = session.scalar(select(Account.status).where(Account.account_id == "ph-lilas"))
    assert status == "suspended"

    # Every decision is in the trail, refusals included; refused lookups read nothing.
    entries = lookup_entries(services, "ph-lilas")[history:]
    assert [e.decision for e in entries] == [
        {200: "allow", 401: "step_up", 403: "deny"}[s] for s in statuses
    ]
    for entry, code in zip(entries, statuses, strict=True):
        assert entry.reasons, entry
        if code != 200:
            assert entry.found == -1
            assert entry.categories == ""
            assert entry.outcome in {"insufficient_user_authentication", "account_suspended"}
    assert "unexplained" in entries[0].reasons.split(",")
    # The same decisions as /metrics counts them (rempart.ops.metrics), by leading rule.
    step_ups = _sample("rempart_step_up_challenges_total", source="guard") - step_ups_before
    assert step_ups == statuses.count(401)
    denials = _samples("rempart_guard_decisions_total", decision="deny")
    rule = entries[-1].reasons.split(",")[0]
    assert denials.get(rule, 0.0) - denials_before.get(rule, 0.0) == 1, (rule, denials)

    # The alert, listed by the CLI.
    env = cli_env(services)
    listed = runner.invoke(app, ["guard", "alerts", "--json", "--status", "open"], env=env)
    assert listed.exit_code == 0, listed.output
    alerts = json.loads(listed.stdout)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["account_id"] == "ph-lilas"
    assert alert["decision"] == "deny"
    assert alert["status"] == "open"
    assert alert["reasons"] == entries[-1].reasons.split(",")
    assert alert["audit_ts_us"] == entries[-1].ts_us
    acknowledged = runner.invoke(
        app, ["guard", "alerts", "--json", "--status", "acknowledged"], env=env
    )
    assert json.loads(acknowledged.stdout) == []
    assert runner.invoke(app, ["guard", "alerts", "--status", "closed"], env=env).exit_code != 0

    # Suspended: no login either, until an operator restores the account.
    refused = client.post(
        f"{API}/login", json={"login": pharmacist.login, "password": pharmacist.password}
    )
    assert refused.status_code in {401, 403}
    restored = runner.invoke(
        app, ["accounts", "restore", "--account-id", "ph-lilas", "--operator", "alice"], env=env
    )
    assert restored.exit_code == 0, restored.output
    # The restore forced new credentials: the insurer posts the reset code and the new
    # TOTP seed; the owner chooses a new password with the code.
    owner = reset_after_restore(client, pharmacist, restored.stdout)
    # The owner, after the restore: the pharmacy's customers pass again.
    token = totp_session(client, owner, ahead=1)
    for person in customers[:4]:
        response = lookup(client, token, person)
        assert response.status_code == 200, lookup_entries(services, "ph-lilas")[-1].reasons
    assert lookup_entries(services, "ph-lilas")[-1].decision == "allow"

    if services.settings.redis_url:
        # The state was in Redis, under the deployment's prefix, with nothing personal
        # in clear: no NIR, no address, no user agent.
        guard = services.guard
        assert guard is not None
        assert isinstance(guard.state, RedisState)
        dump = redis_dump(services)
        assert services.settings.guard_redis_prefix + "a:ph-lilas" in dump
        for person in customers + strangers:
            assert person.nir.value not in dump
        for secret in ("198.51.100", "203.0.113", "python-requests", "LogicielOfficine"):
            assert secret not in dump


def redis_dump(services: Services) -> str:
    """Every key of the guard's prefix, and what it holds, as text."""
    client = services.redis_client
    assert client is not None
    prefix = services.settings.guard_redis_prefix
    dump: list[str] = []
    for raw in client.scan_iter(match=prefix + "*"):
        key = text(raw)
        dump.append(key)
        kind = text(client.type(key))
        if kind == "hash":
            dump += [f"{text(k)}={text(v)}" for k, v in client.hgetall(key).items()]
        elif kind == "set":
            dump += [text(m) for m in client.smembers(key)]
        elif kind == "string":
            dump.append(text(client.get(key)))
    return "\n".join(dump)


def text(value: bytes | str | None) -> str:
    assert value is not None
    return value.decode() if isinstance(value, bytes) else value


def test_an_honest_pharmacists_day_passes(
    client: TestClient,
    services: Services,
    pharmacist: Login,
    town: tuple[list[Person], list[Person]],
) -> None:
    customers, strangers = town
    # A day's pace: a lookup every four minutes from 08:00 UTC (the guard's clock; the
    # service runs as usual). At machine speed the velocity rule would rightly act.
    guard = services.guard
    assert guard is not None
    day = int(time.time()) // 86_400 * 86_400
    moments = itertools.count(day * 1_000_000 + 8 * 3_600_000_000, 240_000_000)
    guard.clock = lambda: next(moments)
    token = log_in(client, pharmacist)
    # Every customer (care links of either account of the pharmacy), several times a day,
    # a typo, and one walk-in customer the pharmacy has never seen.
    for _ in range(3):
        for person in customers:
            response = lookup(client, token, person)
            assert response.status_code == 200, response.text
    typo = client.post(
        "/api/v1/rights/lookup",
        json={"nir": customers[0].nir.value, "birth_date": "1900-01-01"},
        headers={**bearer(token), **PHARMACY},
    )
    assert typo.status_code == 404
    assert lookup(client, token, strangers[0]).status_code == 200
    entries = lookup_entries(services, "ph-lilas")
    assert len(entries) == 3 * len(customers) + 2
    assert {e.decision for e in entries} == {"allow"}
    assert "unexplained" in entries[-1].reasons.split(",")
    assert entries[0].reasons == ""  # an explained lookup has nothing to say
    with session_scope(services.sessions) as session:
        status = session.scalar(select(Account.status).where(Account.account_id == "ph-lilas"))
    assert status == "active"
    listed = runner.invoke(app, ["guard", "alerts", "--json"], env=cli_env(services))
    assert json.loads(listed.stdout) == []


def test_a_step_up_answered_with_a_security_key_goes_on(
    client: TestClient,
    services: Services,
    pharmacist: Login,
    town: tuple[list[Person], list[Person]],
) -> None:
    _, strangers = town
    key = SoftAuthenticator.security_key(origin=ORIGIN)
    first = log_in(client, pharmacist)
    options = client.post(f"{API}/webauthn/register/options", json={}, headers=bearer(first))
    assert options.status_code == 200, options.text
    with session_scope(services.sessions) as session:
        posted = services.recovery.issue_enrolment_code(session, "ph-lilas", operator="alice")
    registered = client.post(
        f"{API}/webauthn/register",
        json={
            "handle": options.json()["handle"],
            "credential": key.create(options.json()["options"]),
            "label": "Clé USB",
            "enrolment_code": posted,
        },
        headers=bearer(first),
    )
    assert registered.status_code == 201, registered.text
    # Past its probation (enrolled two days ago, from the pharmacy's network).
    with session_scope(services.sessions) as session:
        session.execute(
            update(WebAuthnCredential).values(created_at=datetime.now(UTC) - timedelta(days=2))
        )

    token = first
    stepped_at = None
    for i, person in enumerate(strangers[:6]):
        response = lookup(client, token, person)
        if response.status_code == 401:
            assert STEP_UP_ACRS in response.headers["www-authenticate"]
            challenge = client.post(
                f"{API}/step-up/webauthn/options", json={}, headers=bearer(token)
            )
            assert challenge.status_code == 200, challenge.text
            answered = client.post(
                f"{API}/step-up/webauthn",
                json={
                    "handle": challenge.json()["handle"],
                    "credential": key.get(challenge.json()["options"]),
                },
                headers=bearer(token),
            )
            assert answered.status_code == 200, answered.text
            token = answered.json()["access_token"]
            stepped_at = i
            response = lookup(client, token, person)  # the retry
        assert response.status_code == 200, response.text
    assert stepped_at is not None
    assert stepped_at <= 3
    entries = lookup_entries(services, "ph-lilas")
    passed = [e for e in entries if e.decision == "step_up" and e.outcome == "ok"]
    assert passed, [(e.decision, e.outcome) for e in entries]
    assert all(e.reasons.split(",")[0] == "step_up_passed" for e in passed)
    assert all(e.acr == "webauthn" for e in passed)


def test_in_the_learning_window_the_guard_records_and_does_not_act(
    client: TestClient,
    services: Services,
    pharmacist: Login,
    town: tuple[list[Person], list[Person]],
) -> None:
    _, strangers = town
    guard = services.guard
    assert guard is not None
    services.guard = InlineGuard.for_database(
        guard.config,
        services.sessions,
        auth=services.auth,
        audit=services.audit,
        pseudonym_key=services.settings.keys.pseudonym_key,
        learn_until=(int(time.time()) + 3600) * 1_000_000,
        state=services.guard_state,
    )
    token = log_in(client, pharmacist)
    for person in strangers[:20]:
        response = lookup(client, token, person, ROBOT)
        assert response.status_code == 200, response.text
    entries = lookup_entries(services, "ph-lilas")
    assert len(entries) == 20
    assert all(e.reasons.split(",")[0] == "learning" for e in entries)
    assert all(e.outcome == "ok" for e in entries)
    # What the guard would have done is on record.
    assert {e.decision for e in entries} > {"allow"}
    with session_scope(services.sessions) as session:
        status = session.scalar(select(Account.status).where(Account.account_id == "ph-lilas"))
    assert status == "active"


def test_a_guard_that_cannot_decide_refuses_the_lookup(
    client: TestClient,
    services: Services,
    pharmacist: Login,
    town: tuple[list[Person], list[Person]],
) -> None:
    # A directory whose cache keeps nothing: a person's care links are gone by the time
    # the engine asks for them, and the guard must not guess.
    _, strangers = town
    guard = services.guard
    assert guard is not None
    services.guard = InlineGuard(
        guard.config,
        DatabaseDirectory(services.sessions, size=0),
        auth=services.auth,
        audit=services.audit,
        pseudonym_key=services.settings.keys.pseudonym_key,
        state=services.guard_state,
    )
    token = log_in(client, pharmacist)
    response = lookup(client, token, strangers[0])
    assert response.status_code == 503
    assert response.json()["error"] == "guard_unavailable"
    assert "last_name" not in response.text
    (entry,) = lookup_entries(services, "ph-lilas")
    assert (entry.decision, entry.reasons, entry.outcome) == (
        "error",
        "guard_unavailable",
        "guard_unavailable",
    )
    assert entry.found == -1
