"""The console's door in a browser: login with password and TOTP typed in the form (and
with the keyboard alone), the session cookie as the browser keeps it, logout; a form
posted from another site, and one with a wrong token, change nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import func, select

from rempart.api.server import free_port
from rempart.audit.models import AuditEvent
from rempart.services import Services
from tests.browser.console import (
    assert_accessible,
    csrf_of,
    expect_title,
    log_in,
    screenshot,
    submit_with_token,
)
from tests.functional.console_helpers import OperatorLogin, fresh_code, make_operator


@pytest.fixture
def analyst(services: Services) -> OperatorLogin:
    return make_operator(services, "alice.analyste", "analyst")


def _events(services: Services, event: str) -> int:
    with services.audit_engine.connect() as connection:
        count = connection.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.event == event)
        )
    return int(count or 0)


def test_login_with_totp_then_logout(
    page: Page, context: BrowserContext, services: Services, analyst: OperatorLogin
) -> None:
    page.goto("/console/")
    expect(page).to_have_url("/console/connexion")
    expect(page.get_by_role("heading", name="Console de sécurité")).to_be_visible()
    assert_accessible(page)
    screenshot(page, "console-connexion")

    # A wrong code: the same answer as any wrong part, in French, the login kept.
    page.get_by_label("Identifiant").fill(analyst.login)
    page.get_by_label("Mot de passe").fill(analyst.password)
    page.get_by_label("Code à usage unique").fill(
        "000000" if fresh_code(analyst) != "000000" else "111111"
    )
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Identifiant, mot de passe ou code à usage unique incorrect."
    )
    expect_title(page, services, "Erreur : connexion")
    expect(page.get_by_label("Identifiant")).to_have_value(analyst.login)
    assert_accessible(page)

    log_in(page, analyst)
    expect(page).to_have_url("/console/")
    # Over http on localhost, the browser keeps the Secure, host-only cookie.
    cookies = {c["name"]: c for c in context.cookies()}
    session = cookies["__Host-rempart-console"]
    assert session["secure"]
    assert session["httpOnly"]
    assert session["sameSite"] == "Strict"
    assert session["path"] == "/"
    assert session["domain"] == "localhost"
    assert _events(services, "operator_login") >= 2  # the failure and the success

    page.get_by_role("button", name="Se déconnecter").click()
    expect(page).to_have_url("/console/connexion?message=deconnecte")
    assert "__Host-rempart-console" not in {c["name"] for c in context.cookies()}
    page.goto("/console/")
    expect(page).to_have_url("/console/connexion")


def test_the_login_form_works_with_the_keyboard_alone(page: Page, analyst: OperatorLogin) -> None:
    page.goto("/console/connexion")
    # From the top of the page: the skip link first, then on to the login field.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Aller au contenu"
    for _ in range(10):
        if page.evaluate("document.activeElement.id") == "login":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "login"
    page.keyboard.type(analyst.login)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(analyst.password)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "code"
    page.keyboard.type(fresh_code(analyst))
    page.keyboard.press("Enter")
    expect(page).to_have_url("/console/")
    expect(page.get_by_text(f"{analyst.login} (")).to_be_visible()


class _Forger(BaseHTTPRequestHandler):
    """Another site: a page with a form aimed at the console."""

    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def other_site() -> Iterator[tuple[str, type[_Forger]]]:
    """A second HTTP server, on 127.0.0.1 (another origin and another site than
    localhost), serving whatever page the test gives it."""
    handler = type("Forger", (_Forger,), {})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_a_form_from_another_site_changes_nothing(
    page: Page,
    context: BrowserContext,
    server: str,
    services: Services,
    analyst: OperatorLogin,
    other_site: tuple[str, type[_Forger]],
) -> None:
    log_in(page, analyst)
    token = csrf_of(page)
    address, forger = other_site
    # Even holding the session's real token, the form gets nothing done: the browser
    # withholds the SameSite=Strict cookie from a cross-site post.
    forger.page = f"""<!DOCTYPE html><html lang="fr"><head><title>Gagnez</title></head><body>
<form method="post" action="{server}/console/deconnexion">
<input type="hidden" name="csrf" value="{token}">
<button type="submit">Gagner un cadeau</button></form></body></html>""".encode()
    attacker = context.new_page()
    attacker.goto(address)
    attacker.get_by_role("button", name="Gagner un cadeau").click()
    attacker.wait_for_load_state()
    assert urlsplit(attacker.url).path == "/console/connexion"
    assert _events(services, "operator_logout") == 0

    page.goto("/console/")
    expect(page).to_have_url("/console/")
    expect(page.get_by_text(f"{analyst.login} (")).to_be_visible()


def test_a_form_with_a_wrong_token_is_refused(
    page: Page, services: Services, analyst: OperatorLogin
) -> None:
    log_in(page, analyst)
    submit_with_token(page, "form.console-who", "forged-token")
    expect(page.get_by_role("heading", name="Formulaire refusé")).to_be_visible()
    expect_title(page, services, "Erreur : formulaire refusé")
    assert_accessible(page)
    assert _events(services, "operator_logout") == 0
    page.goto("/console/")
    expect(page.get_by_text(f"{analyst.login} (")).to_be_visible()
