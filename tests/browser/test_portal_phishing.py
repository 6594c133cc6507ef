"""A phishing site cannot use the professional's key, in a real browser.

The portal is served as ``http://rempart.localhost:PORT`` (its relying party ID
``rempart.localhost``, as ``portail.example.fr`` would be in production; Chromium resolves
``*.localhost`` to the loopback and counts it as a secure context). The same pages, from
the same server, are reached under other host names, as a phishing kit relaying the real
site would serve them:

* from ``127.0.0.1``, another site altogether, the browser itself refuses to use the key
  of ``rempart.localhost``: the page says so in French, the key never signs, no session
  opens;
* from ``faux.rempart.localhost``, a look-alike under the relying party's own domain (a
  taken-over sub-domain), the browser lets the page use the key, the key signs, and the
  server refuses the answer: the origin the browser wrote in it is not the portal's;
* from ``rempart.localhost``, the portal itself, the same key logs in.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from rempart.audit.models import AuditEvent
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import AuthSession
from tests.browser.authenticator import VirtualKey, plug_in
from tests.browser.portal import (
    LOGOUT,
    PASSKEY,
    enrol_through_api,
    key_status,
    log_in_with_key,
    loopback,
    pharmacy,
)

REFUSED_BY_THE_BROWSER = "Cette page ne peut pas utiliser votre clé : vérifiez l'adresse du site."
REFUSED_BY_THE_SERVER = "La clé n'a pas été reconnue. Utilisez une clé enregistrée sur ce compte."


@pytest.fixture
def base_url(port: int) -> str:
    """The portal under a name of its own, so that a sub-domain can pose as it."""
    return f"http://rempart.localhost:{port}"


def _sessions(services: Services) -> int:
    with session_scope(services.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(AuthSession)) or 0)


def _refused_passkeys(services: Services) -> list[str]:
    """The outcomes of the passkey logins the server refused, from the audit trail."""
    with session_scope(services.sessions) as session:
        rows = session.scalars(
            select(AuditEvent).where(
                AuditEvent.event == "login_failed", AuditEvent.reasons == "passkey"
            )
        )
        return [row.outcome for row in rows]


def _signatures(key: VirtualKey) -> int:
    (credential,) = key.credentials()
    return int(credential["signCount"])


def _try_the_key_at(page: Page, address: str) -> str:
    """The passwordless login on the portal's pages as served at ``address``; what the
    page says."""
    page.goto(f"{address}/portail/connexion")
    page.get_by_role("button", name=PASSKEY).click()
    return key_status(page)


def test_a_phishing_origin_cannot_use_the_key(page: Page, server: str, services: Services) -> None:
    lilas = pharmacy(services)
    page.goto("/portail/connexion")
    key = plug_in(page)
    enrol_through_api(page, services, server, lilas.pharmacist)
    (credential,) = key.credentials()
    assert credential["rpId"] == "rempart.localhost"
    assert credential["isResidentCredential"] is True
    opened, signed = _sessions(services), _signatures(key)

    # Another site: the browser will not use the portal's key for it.
    elsewhere = loopback(server)
    assert _try_the_key_at(page, elsewhere) == REFUSED_BY_THE_BROWSER
    expect(page.get_by_role("button", name=LOGOUT)).to_have_count(0)
    assert (_sessions(services), _signatures(key)) == (opened, signed)
    assert _refused_passkeys(services) == []  # the server never saw an answer

    # A look-alike under the relying party's domain: the key signs, the server refuses.
    look_alike = server.replace("rempart.localhost", "faux.rempart.localhost")
    assert _try_the_key_at(page, look_alike) == REFUSED_BY_THE_SERVER
    expect(page.get_by_role("button", name=LOGOUT)).to_have_count(0)
    assert _signatures(key) > signed
    assert _sessions(services) == opened
    assert _refused_passkeys(services) == ["webauthn_invalid"]

    # The portal itself: the same key logs in.
    page.goto(server)
    log_in_with_key(page)
    assert _sessions(services) == opened + 1
