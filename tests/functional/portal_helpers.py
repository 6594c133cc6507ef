"""Professionals in the portal's tests: a test client as a browser sees the portal
(https: the ``__Host-`` cookies are ``Secure``), logged in through the real login pages,
and a page's form token."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import httpx
from fastapi.testclient import TestClient

from rempart.api import create_app
from rempart.services import Services
from tests.functional.conftest import PEER, Login, totp_code

PORTAL_BASE = "https://testserver"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


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
