"""Operators for the console tests: create one with a role, log it in through the real
login form (CSRF token read from the page), read a page's form token."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pyotp
from fastapi.testclient import TestClient

from rempart.api import create_app
from rempart.services import Services
from rempart.store.engine import session_scope
from tests.functional.conftest import PEER

OPERATOR_PASSWORD = "console de garde, nuit du mardi 7"
# Secure cookies (__Host-) travel over https only: the console's test client uses it.
CONSOLE_BASE = "https://testserver"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass(frozen=True)
class OperatorLogin:
    login: str
    role: str
    password: str
    totp: pyotp.TOTP


def make_operator(services: Services, login: str, role: str) -> OperatorLogin:
    with session_scope(services.sessions) as session:
        created = services.operators.create(
            session, login=login, role=role, password=OPERATOR_PASSWORD, created_by="tests"
        )
    secret = pyotp.parse_uri(created.otpauth_uri).secret
    return OperatorLogin(login, role, OPERATOR_PASSWORD, pyotp.TOTP(secret))


def fresh_code(operator: OperatorLogin) -> str:
    """A code of the current step, never computed in the last 2 s of a step. A code is
    accepted once: a second login waits for the next step."""
    left = 30 - time.time() % 30
    if left < 2:
        time.sleep(left + 0.05)
    code: str = operator.totp.now()
    return code


def form_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def console_login(client: TestClient, operator: OperatorLogin, code: str | None = None) -> None:
    """Logs ``operator`` in through the login form; the session cookie stays in ``client``."""
    page = client.get("/console/connexion")
    assert page.status_code == 200, page.text
    response = client.post(
        "/console/connexion",
        data={
            "csrf": form_token(page.text),
            "login": operator.login,
            "password": operator.password,
            "code": code or fresh_code(operator),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


@contextmanager
def console_client(services: Services) -> Iterator[TestClient]:
    """The real app, as a browser on the console sees it (https: Secure cookies)."""
    with TestClient(create_app(services=services), base_url=CONSOLE_BASE, client=PEER) as client:
        yield client


@contextmanager
def logged_in(services: Services, operator: OperatorLogin) -> Iterator[TestClient]:
    with console_client(services) as client:
        console_login(client, operator)
        yield client


def post_form(
    client: TestClient, path: str, data: Mapping[str, str | list[str]] | None = None
) -> httpx.Response:
    """Posts a form with the session's CSRF token (read from the overview's logout form)."""
    token = form_token(client.get("/console/").text)
    response: httpx.Response = client.post(
        path, data={"csrf": token, **(data or {})}, follow_redirects=False
    )
    return response
