"""Professionals in the portal's tests: a test client as a browser sees the portal
(https: the ``__Host-`` cookies are ``Secure``), logged in through the real login pages,
and a page's form token."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
from fastapi.testclient import TestClient

from rempart.api import create_app
from rempart.devtools.soft_authenticator import SoftAuthenticator
from rempart.services import Services
from rempart.store.engine import session_scope
from tests.functional.conftest import PEER, Login, totp_code

PORTAL_BASE = "https://testserver"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_SCRIPT_TOKEN = re.compile(r'data-webauthn="get"[^>]*data-csrf="([^"]+)"')


def form_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


@contextmanager
def portal_client(services: Services, *, peer: tuple[str, int] = PEER) -> Iterator[TestClient]:
    """The real app, as a browser on the portal sees it."""
    with TestClient(create_app(services=services), base_url=PORTAL_BASE, client=peer) as client:
        yield client


def portal_login(client: TestClient, login: Login) -> httpx.Response:
    """Password, then a TOTP code, through the portal's own forms. Returns the answer to
    the code (a 303 to the portal's home, or a page of notices)."""
    page = client.get("/portail/connexion")
    assert page.status_code == 200, page.text
    first = client.post(
        "/portail/connexion",
        data={"csrf": form_token(page.text), "login": login.login, "password": login.password},
        follow_redirects=False,
    )
    assert first.status_code == 303, first.text
    factor = client.get(first.headers["location"])
    assert factor.status_code == 200, factor.text
    second: httpx.Response = client.post(
        "/portail/connexion/code",
        data={"csrf": form_token(factor.text), "code": totp_code(login)},
        follow_redirects=False,
    )
    assert second.status_code in (200, 303), second.text
    return second


@contextmanager
def portal_session(services: Services, login: Login) -> Iterator[TestClient]:
    with portal_client(services) as client:
        portal_login(client, login)
        yield client


def post_form(
    client: TestClient, path: str, data: Mapping[str, str | list[str]] | None = None
) -> httpx.Response:
    """Posts a form with the session's CSRF token (read from the portal's logout form)."""
    token = form_token(client.get("/portail/securite").text)
    response: httpx.Response = client.post(
        path, data={"csrf": token, **(data or {})}, follow_redirects=False
    )
    return response


def script_call(client: TestClient, path: str, token: str, body: dict[str, Any]) -> httpx.Response:
    """A call from the portal's script: JSON, with the page's token in ``X-CSRF-Token``."""
    response: httpx.Response = client.post(
        path,
        content=json.dumps(body),
        headers={"content-type": "application/json", "x-csrf-token": token},
    )
    return response


def register_key(
    client: TestClient,
    services: Services,
    login: Login,
    key: SoftAuthenticator,
    *,
    bearer: str,
    label: str = "Clé du comptoir",
) -> None:
    """Registers ``key`` through the API in the session of ``bearer`` (a first key: with
    the enrolment code the insurer posts)."""
    with session_scope(services.sessions) as session:
        code = services.recovery.issue_enrolment_code(session, login.account_id, operator="tests")
    headers = {"Authorization": f"Bearer {bearer}"}
    options = client.post("/api/v1/auth/webauthn/register/options", json={}, headers=headers)
    assert options.status_code == 200, options.text
    registered = client.post(
        "/api/v1/auth/webauthn/register",
        json={
            "handle": options.json()["handle"],
            "credential": key.create(options.json()["options"]),
            "label": label,
            "enrolment_code": code,
        },
        headers=headers,
    )
    assert registered.status_code == 201, registered.text


def portal_login_with_key(client: TestClient, login: Login, key: SoftAuthenticator) -> None:
    """Password, then the key, through the portal's form and its script's calls."""
    page = client.get("/portail/connexion")
    first = client.post(
        "/portail/connexion",
        data={"csrf": form_token(page.text), "login": login.login, "password": login.password},
        follow_redirects=False,
    )
    assert first.status_code == 303, first.text
    factor = client.get(first.headers["location"])
    found = _SCRIPT_TOKEN.search(factor.text)
    assert found, "the second-factor page offers no key"
    options = script_call(client, "/portail/connexion/cle/options", found.group(1), {})
    assert options.status_code == 200, options.text
    done = script_call(
        client,
        "/portail/connexion/cle",
        found.group(1),
        {"handle": options.json()["handle"], "credential": key.get(options.json()["options"])},
    )
    assert done.status_code == 200, done.text
