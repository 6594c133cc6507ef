"""Pro Santé Connect from the portal, against the real local OpenID Connect provider:
the login ends in a portal session (a cookie and a page that moves on), and a CPS card
login started from a live session replaces it."""

from __future__ import annotations

import re

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select

from rempart.auth.levels import ACR_CPS, ACR_PSC
from rempart.portal.lookup_flow import keep_pending
from rempart.portal.routes_lookup import PENDING_COOKIE, RESULT_PATH
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import AuthSession
from tests.functional.conftest import Person
from tests.functional.oidc_provider import log_in_at_provider
from tests.functional.portal_helpers import portal_client
from tests.functional.test_psc import (  # noqa: F401 - fixtures shared with the API's tests
    martin,
    provider,
    settings,
)

COOKIE = "__Host-rempart-portail"
_REFRESH = re.compile(r'<meta http-equiv="refresh" content="0; url=([^"]+)">')


def start_from_portal(client: TestClient) -> str:
    response = client.get("/portail/psc", follow_redirects=False)
    assert response.status_code == 302, response.text
    location: str = response.headers["location"]
    return location


def come_back(client: TestClient, url: str, account: str) -> httpx.Response:
    answer = log_in_at_provider(url, account)
    response: httpx.Response = client.get("/api/v1/auth/psc/callback", params=answer)
    return response


def acr_of(services: Services, token: str) -> str:
    with session_scope(services.sessions) as session:
        return services.auth.authenticate(session, token).acr


def test_an_e_cps_login_from_the_portal_opens_a_portal_session(
    services: Services,
    martin: str,  # noqa: F811
) -> None:
    with portal_client(services) as client:
        assert "Se connecter avec Pro Santé Connect" in client.get("/portail/connexion").text
        back = come_back(client, start_from_portal(client), "claire-ecps")
        assert back.status_code == 200, back.text
        assert back.headers["content-type"].startswith("text/html")
        # Not a redirect: the page moves on by itself, so that the Strict cookie goes along.
        found = _REFRESH.search(back.text)
        assert found is not None
        assert found.group(1) in ("/portail/", "/portail/avis")
        token = client.cookies.get(COOKIE)
        assert token is not None
        assert acr_of(services, token) == ACR_PSC
        assert client.get("/portail/avis").status_code == 200
        # No bearer token in the page: the portal's session lives in its cookie only.
        assert "access_token" not in back.text


def test_a_card_login_from_a_live_session_replaces_it(
    services: Services,
    martin: str,  # noqa: F811
) -> None:
    with portal_client(services) as client:
        back = come_back(client, start_from_portal(client), "claire-ecps")
        first = client.cookies.get(COOKIE)
        assert back.status_code == 200
        assert first is not None
        back = come_back(client, start_from_portal(client), "claire-card")
        second = client.cookies.get(COOKIE)
        assert second is not None
        assert second != first
        assert acr_of(services, second) == ACR_CPS
        with session_scope(services.sessions) as session:
            rows = session.scalars(
                select(AuthSession).where(AuthSession.account_id == martin)
            ).all()
            ended = [row.revoked_reason for row in rows if row.revoked_at is not None]
        assert ended == ["step_up"]


def test_the_card_asked_for_by_the_guard_resumes_the_waiting_lookup(
    services: Services,
    martin: str,  # noqa: F811
    people: list[Person],
) -> None:
    """A lookup waits for the card (kept for the session that asked); the card login
    started from the verification page replaces that session and answers it."""
    with portal_client(services) as client:
        come_back(client, start_from_portal(client), "claire-ecps")
        old = client.cookies.get(COOKIE)
        assert old is not None
        with session_scope(services.sessions) as session:
            replaced = services.auth.authenticate(session, old)
            handle = keep_pending(
                services,
                session,
                replaced,
                raw_nir=people[0].nir.value,
                raw_birth_date=people[0].birth_date.isoformat(),
            )
        client.cookies.set(PENDING_COOKIE, handle)
        url = client.get("/portail/psc?reprendre=1", follow_redirects=False)
        back = come_back(client, url.headers["location"], "claire-card")
        assert back.status_code == 200, back.text
        found = _REFRESH.search(back.text)
        assert found is not None
        assert found.group(1) == RESULT_PATH
        card = client.get(RESULT_PATH)
        assert card.status_code == 200, card.text
        assert people[0].last_name.upper() in card.text.upper()
        assert acr_of(services, client.cookies.get(COOKIE) or "") == ACR_CPS
