"""Logging in to the portal through its pages: password then code, a key as the second
factor, a passkey alone; the cookies, the refusals, the logout, a suspended account."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from rempart.audit.models import AuditEvent
from rempart.config import Settings, load_settings
from rempart.devtools.soft_authenticator import SoftAuthenticator
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Account
from tests.conftest import FAST_HASHING
from tests.functional.conftest import PROXY, Login, log_in
from tests.functional.portal_helpers import (
    PORTAL_BASE,
    form_token,
    portal_client,
    portal_login,
    register_key,
    script_call,
)

COOKIE = "__Host-rempart-portail"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        webauthn_rp_id="testserver",
        webauthn_origins=[PORTAL_BASE],
        webauthn_key_probation_hours=0,
        trusted_proxies=PROXY,  # a test plays other networks with X-Forwarded-For
        **FAST_HASHING,
    )


def set_cookie_headers(response: Any) -> list[str]:
    return [v for k, v in response.headers.multi_items() if k == "set-cookie"]


def events(services: Services, name: str) -> list[AuditEvent]:
    with session_scope(services.sessions) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def with_key(services: Services, client: TestClient, login: Login) -> SoftAuthenticator:
    """A passkey registered through the API (a first key: the code the insurer posts)."""
    key = SoftAuthenticator.platform_passkey(origin=PORTAL_BASE)
    register_key(
        client, services, login, key, bearer=log_in(client, login), label="Passkey du comptoir"
    )
    client.cookies.clear()
    return key


def test_password_then_code_opens_a_session_cookie_bound_to_the_apis_session(
    services: Services, pharmacist: Login
) -> None:
    with portal_client(services) as client:
        page = client.get("/portail/connexion")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "Se connecter avec une clé de sécurité ou une passkey" in page.text
        answer = portal_login(client, pharmacist)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/portail/"
        cookie = next(c for c in set_cookie_headers(answer) if c.startswith(f"{COOKIE}="))
        for attribute in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"):
            assert attribute.lower() in cookie.lower()
        absolute = services.settings.session_absolute_seconds
        assert f"Max-Age={absolute}" in cookie
        token = client.cookies.get(COOKIE)
        assert token
        # The cookie is the API's own session: the same token answers the API.
        sessions = client.get("/api/v1/auth/sessions", headers={"Authorization": f"Bearer {token}"})
        assert sessions.status_code == 200
        assert len(sessions.json()) == 1
        assert client.get("/portail/avis").status_code == 200
    assert [e.account_id for e in events(services, "login_succeeded")] == [pharmacist.account_id]


def test_wrong_password_or_code_is_said_in_french_and_opens_nothing(
    services: Services, pharmacist: Login
) -> None:
    with portal_client(services) as client:
        page = client.get("/portail/connexion")
        wrong = client.post(
            "/portail/connexion",
            data={"csrf": form_token(page.text), "login": pharmacist.login, "password": "non"},
        )
        assert wrong.status_code == 401
        assert "Identifiant ou mot de passe incorrect." in wrong.text
        first = client.post(
            "/portail/connexion",
            data={
                "csrf": form_token(page.text),
                "login": pharmacist.login,
                "password": pharmacist.password,
            },
            follow_redirects=False,
        )
        factor = client.get(first.headers["location"])
        bad_code = client.post(
            "/portail/connexion/code", data={"csrf": form_token(factor.text), "code": "000000"}
        )
        assert bad_code.status_code == 401
        assert "Code incorrect" in bad_code.text
        assert client.cookies.get(COOKIE) is None
        assert client.get("/portail/avis", follow_redirects=False).headers["location"] == (
            "/portail/connexion"
        )


def test_a_login_form_from_another_site_is_refused(services: Services, pharmacist: Login) -> None:
    with portal_client(services) as client:
        page = client.get("/portail/connexion")
        data = {"login": pharmacist.login, "password": pharmacist.password}
        no_token = client.post("/portail/connexion", data=data)
        assert no_token.status_code == 403
        assert "Formulaire refusé" in no_token.text
        cross_site = client.post(
            "/portail/connexion",
            data={"csrf": form_token(page.text), **data},
            headers={"sec-fetch-site": "cross-site"},
        )
        assert cross_site.status_code == 403
    assert events(services, "login_password_ok") == []


def test_logout_ends_the_apis_session_too(services: Services, pharmacist: Login) -> None:
    with portal_client(services) as client:
        portal_login(client, pharmacist)
        token = client.cookies.get(COOKIE)
        page = client.get("/portail/avis")
        out = client.post(
            "/portail/deconnexion", data={"csrf": form_token(page.text)}, follow_redirects=False
        )
        assert out.status_code == 303
        assert out.headers["location"] == "/portail/connexion?message=deconnecte"
        again = client.get("/api/v1/auth/sessions", headers={"Authorization": f"Bearer {token}"})
        assert again.status_code == 401


def test_a_suspended_account_is_told_who_to_call(services: Services, pharmacist: Login) -> None:
    with portal_client(services) as client:
        portal_login(client, pharmacist)
        with session_scope(services.sessions) as session:
            session.execute(
                update(Account)
                .where(Account.account_id == pharmacist.account_id)
                .values(status="suspended")
            )
        page = client.get("/portail/avis")
        assert page.status_code == 403
        assert "Votre compte est suspendu" in page.text
        assert services.settings.security_contact in page.text
        assert any(c.startswith(f'{COOKIE}=""') for c in set_cookie_headers(page))


def test_a_security_key_as_the_second_factor(services: Services, pharmacist: Login) -> None:
    with portal_client(services) as client:
        key = with_key(services, client, pharmacist)
        page = client.get("/portail/connexion")
        first = client.post(
            "/portail/connexion",
            data={
                "csrf": form_token(page.text),
                "login": pharmacist.login,
                "password": pharmacist.password,
            },
            follow_redirects=False,
        )
        factor = client.get(first.headers["location"])
        assert "Utiliser ma clé de sécurité" in factor.text
        token = factor.text.split('data-csrf="')[1].split('"')[0]
        # The script's calls need the page's token: without it, nothing.
        refused = script_call(client, "/portail/connexion/cle/options", "x", {})
        assert refused.status_code == 403
        assert refused.json()["error"] == "csrf_refused"
        options = script_call(client, "/portail/connexion/cle/options", token, {})
        assert options.status_code == 200, options.text
        answer = key.get(options.json()["options"])
        done = script_call(
            client,
            "/portail/connexion/cle",
            token,
            {"handle": options.json()["handle"], "credential": answer},
        )
        assert done.status_code == 200, done.text
        assert done.json()["next"] in ("/portail/", "/portail/avis")
        assert client.get("/portail/avis").status_code == 200


def test_a_passkey_alone_logs_in_and_a_key_without_user_verification_does_not(
    services: Services, pharmacist: Login
) -> None:
    with portal_client(services) as client:
        key = with_key(services, client, pharmacist)
        page = client.get("/portail/connexion")
        token = page.text.split('data-csrf="')[1].split('"')[0]
        held = next(iter(key.credentials))

        # A key that only proves presence is one factor: it does not log in alone.
        key.user_verified = False
        options = script_call(client, "/portail/connexion/passkey/options", token, {})
        assert options.status_code == 200, options.text
        assert options.json()["options"]["userVerification"] == "required"
        assert options.json()["options"].get("allowCredentials", []) == []
        refused = script_call(
            client,
            "/portail/connexion/passkey",
            token,
            {
                "handle": options.json()["handle"],
                "credential": key.get(options.json()["options"], credential_id=held),
            },
        )
        assert refused.status_code == 401
        assert refused.json()["error"] == "webauthn_invalid"
        assert client.cookies.get(COOKIE) is None

        key.user_verified = True
        options = script_call(client, "/portail/connexion/passkey/options", token, {})
        done = script_call(
            client,
            "/portail/connexion/passkey",
            token,
            {
                "handle": options.json()["handle"],
                "credential": key.get(options.json()["options"], credential_id=held),
            },
        )
        assert done.status_code == 200, done.text
        assert client.get("/portail/avis").status_code == 200
    logins = events(services, "login_succeeded")
    assert logins[-1].reasons == "passkey"
    assert logins[-1].acr == "webauthn"
    failed = events(services, "login_failed")
    assert [(e.outcome, e.reasons) for e in failed] == [("webauthn_invalid", "passkey")]


def test_a_recovery_code_as_the_second_factor(services: Services, pharmacist: Login) -> None:
    with portal_client(services) as client:
        # Recovery codes need a proof a mailbox thief lacks: the enrolment code.
        with session_scope(services.sessions) as session:
            enrolment = services.recovery.issue_enrolment_code(
                session, pharmacist.account_id, operator="tests"
            )
        bearer = {"Authorization": f"Bearer {log_in(client, pharmacist)}"}
        codes = client.post(
            "/api/v1/auth/recovery-codes", json={"enrolment_code": enrolment}, headers=bearer
        )
        assert codes.status_code == 201, codes.text
        client.cookies.clear()
        page = client.get("/portail/connexion")
        first = client.post(
            "/portail/connexion",
            data={
                "csrf": form_token(page.text),
                "login": pharmacist.login,
                "password": pharmacist.password,
            },
            follow_redirects=False,
        )
        factor = client.get(first.headers["location"])
        done = client.post(
            "/portail/connexion/secours",
            data={"csrf": form_token(factor.text), "code": codes.json()["codes"][0]},
            follow_redirects=False,
        )
        assert done.status_code == 303, done.text
        assert client.get("/portail/avis").status_code == 200


def test_passkey_refusals_from_many_networks_do_not_block_anyone_elses_passkey(
    services: Services, pharmacist: Login
) -> None:
    """No login is typed with a passkey alone: the throttle counts per address. Refusals
    sent from more networks than the account-wide limit back off those networks, not the
    pharmacist's own passkey login from hers."""
    with portal_client(services) as client:
        key = with_key(services, client, pharmacist)
        held = next(iter(key.credentials))
        limit = services.settings.throttle_account_wide_failures
        for n in range(limit + 1):
            network = {"X-Forwarded-For": f"198.51.{n}.7"}
            page = client.get("/portail/connexion", headers=network)
            token = page.text.split('data-csrf="')[1].split('"')[0]
            options = client.post(
                "/portail/connexion/passkey/options",
                content="{}",
                headers={"content-type": "application/json", "x-csrf-token": token, **network},
            )
            assert options.status_code == 200, options.text
            key.user_verified = False  # refused: a key that did not verify its user
            forged = key.get(options.json()["options"], credential_id=held)
            refused = client.post(
                "/portail/connexion/passkey",
                json={"handle": options.json()["handle"], "credential": forged},
                headers={"x-csrf-token": token, **network},
            )
            assert refused.status_code == 401, refused.text
        key.user_verified = True
        page = client.get("/portail/connexion")
        token = page.text.split('data-csrf="')[1].split('"')[0]
        options = script_call(client, "/portail/connexion/passkey/options", token, {})
        done = script_call(
            client,
            "/portail/connexion/passkey",
            token,
            {
                "handle": options.json()["handle"],
                "credential": key.get(options.json()["options"], credential_id=held),
            },
        )
        assert done.status_code == 200, done.text
    failed = [e for e in events(services, "login_failed") if e.reasons == "passkey"]
    assert len(failed) == limit + 1
