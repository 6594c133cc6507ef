"""The console's door: operators log in with password and TOTP, sessions end when they
should, roles keep to their pages, and a form from elsewhere does nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from rempart.audit.models import AuditEvent
from rempart.console.operators import InvalidOperator
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import OperatorSession
from tests.functional.console_helpers import (
    OperatorLogin,
    console_client,
    console_login,
    form_token,
    fresh_code,
    make_operator,
)


@pytest.fixture
def console(services: Services) -> Iterator[TestClient]:
    with console_client(services) as client:
        yield client


@pytest.fixture
def analyst(services: Services) -> OperatorLogin:
    return make_operator(services, "alice.analyste", "analyst")


def test_pages_need_a_session(console: TestClient) -> None:
    response = console.get("/console/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/connexion"


def test_login_sets_a_host_only_secure_cookie(
    console: TestClient, services: Services, analyst: OperatorLogin
) -> None:
    page = console.get("/console/connexion")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    response = console.post(
        "/console/connexion",
        data={
            "csrf": form_token(page.text),
            "login": analyst.login,
            "password": analyst.password,
            "code": fresh_code(analyst),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookie = next(
        v for k, v in response.headers.multi_items() if k == "set-cookie" and "console=" in v
    )
    assert cookie.startswith("__Host-rempart-console=")
    for attribute in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"):
        assert attribute.lower() in cookie.lower()
    assert "domain=" not in cookie.lower()
    overview = console.get("/console/")
    assert overview.status_code == 200
    assert "alice.analyste" in overview.text
    with services.audit_engine.connect() as connection:
        events = connection.execute(
            select(AuditEvent.event, AuditEvent.outcome, AuditEvent.account_id)
        ).all()
    assert ("operator_login", "ok", "operator:alice.analyste") in events


@pytest.mark.parametrize("wrong", ["password", "code", "login"])
def test_every_wrong_part_gets_the_same_answer(
    console: TestClient, analyst: OperatorLogin, wrong: str
) -> None:
    page = console.get("/console/connexion")
    data = {
        "csrf": form_token(page.text),
        "login": analyst.login,
        "password": analyst.password,
        "code": fresh_code(analyst),
    }
    data[wrong] = {"password": "not the password at all", "code": "000000", "login": "eve"}[wrong]
    if wrong == "code" and data["code"] == fresh_code(analyst):
        data["code"] = "111111"
    response = console.post("/console/connexion", data=data, follow_redirects=False)
    assert response.status_code == 401
    assert "Identifiant, mot de passe ou code à usage unique incorrect." in response.text
    assert console.get("/console/", follow_redirects=False).status_code == 303


def test_a_code_is_accepted_once(
    console: TestClient, services: Services, analyst: OperatorLogin
) -> None:
    code = fresh_code(analyst)
    console_login(console, analyst, code)
    with console_client(services) as other:
        page = other.get("/console/connexion")
        replay = other.post(
            "/console/connexion",
            data={
                "csrf": form_token(page.text),
                "login": analyst.login,
                "password": analyst.password,
                "code": code,
            },
            follow_redirects=False,
        )
    assert replay.status_code == 401


def test_login_form_without_its_token_is_refused(
    console: TestClient, analyst: OperatorLogin
) -> None:
    console.get("/console/connexion")
    response = console.post(
        "/console/connexion",
        data={
            "csrf": "forged",
            "login": analyst.login,
            "password": analyst.password,
            "code": fresh_code(analyst),
        },
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "Formulaire refusé" in response.text


def test_a_post_from_another_site_is_refused(console: TestClient, analyst: OperatorLogin) -> None:
    console_login(console, analyst)
    token = form_token(console.get("/console/").text)
    forged = console.post(
        "/console/deconnexion",
        data={"csrf": token},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    assert console.get("/console/").status_code == 200  # still logged in


def test_logout_ends_the_session(console: TestClient, analyst: OperatorLogin) -> None:
    console_login(console, analyst)
    token = form_token(console.get("/console/").text)
    without = console.post("/console/deconnexion", data={}, follow_redirects=False)
    assert without.status_code == 403
    done = console.post("/console/deconnexion", data={"csrf": token}, follow_redirects=False)
    assert done.status_code == 303
    assert console.get("/console/", follow_redirects=False).status_code == 303


def test_idle_and_absolute_timeouts(
    console: TestClient, services: Services, analyst: OperatorLogin
) -> None:
    console_login(console, analyst)
    assert console.get("/console/").status_code == 200
    idle = datetime.now(UTC) - timedelta(seconds=services.settings.console_idle_seconds + 1)
    with session_scope(services.sessions) as session:
        session.execute(update(OperatorSession).values(last_seen_at=idle))
    assert console.get("/console/", follow_redirects=False).status_code == 303

    console_login(console, analyst, _next_code(analyst))
    assert console.get("/console/").status_code == 200
    with session_scope(services.sessions) as session:
        session.execute(
            update(OperatorSession)
            .where(OperatorSession.revoked_at.is_(None))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert console.get("/console/", follow_redirects=False).status_code == 303


def _next_code(operator: OperatorLogin) -> str:
    """The next step's code (the current one was used by the first login)."""
    return operator.totp.at(time.time() + 30)


def test_operator_logins_and_roles_are_checked(services: Services) -> None:
    for login, role, code in (
        ("Bad Login!", "analyst", "invalid_login"),
        ("bob", "superuser", "invalid_role"),
    ):
        with pytest.raises(InvalidOperator) as raised, session_scope(services.sessions) as s:
            services.operators.create(
                s, login=login, role=role, password="a long enough passphrase 77", created_by="t"
            )
        assert raised.value.code == code
