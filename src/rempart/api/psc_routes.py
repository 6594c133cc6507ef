"""Pro Santé Connect login: send the browser to the provider, take its answer back.

``GET /api/v1/auth/psc/start`` redirects to the provider (or, asked for JSON,
names the URL). The provider sends the browser back to
``GET /api/v1/auth/psc/callback?code=…&state=…``, which answers with the same
bearer token as the other logins. Every refusal has a stable code, a generic
detail and an event in the trail with the precise reason.

``start`` binds the login to the browser: an HttpOnly cookie holds a random value
whose hash is stored with the state, and the callback refuses a state that arrives
without it (``psc_browser_mismatch``), then clears it whatever the outcome. The
cookie is ``SameSite=Lax``: the callback is a top-level redirect from the provider's
site, which ``Strict`` would strip of it. Over https it is ``Secure`` and
``__Host-``-prefixed (no subdomain can set or shadow it).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from rempart.api.deps import (
    ERROR_RESPONSES,
    client_address,
    origin_of,
    services_of,
    token_response,
)
from rempart.api.errors import error_response
from rempart.api.schemas import TokenResponse
from rempart.auth.psc import PscCallbackInvalid, PscClient, PscError, PscNotConfigured
from rempart.portal.psc_login import finish_portal_login
from rempart.services import Services
from rempart.store.engine import session_scope

__all__ = ["begin_login", "router"]

router = APIRouter(prefix="/api/v1/auth/psc", tags=["auth"])

_MAX_CODE_LENGTH = 2048
_MAX_STATE_LENGTH = 256
# Rempart's states are URL-safe base64; codes are printable ASCII (RFC 6749 A.11).
_STATE_SHAPE = re.compile(r"[A-Za-z0-9_-]+")
_CODE_SHAPE = re.compile(r"[\x21-\x7e]+")
_BROWSER_SHAPE = re.compile(r"[A-Za-z0-9_-]{32,64}")


class PscStartResponse(BaseModel):
    authorization_url: str


def _psc(services: Services) -> PscClient:
    client = services.psc
    if client is None:
        raise PscNotConfigured()
    return client


def _browser_cookie(psc: PscClient) -> tuple[str, bool]:
    """The cookie's name and whether it is Secure: where the provider sends the browser
    back (the redirect URI) decides, since that is where the cookie must come along."""
    secure = psc.redirect_uri.startswith("https://")
    return ("__Host-rempart_psc" if secure else "rempart_psc"), secure


def _refused(request: Request, exc: PscError) -> PscError:
    services_of(request).auth.events.record_event(
        "login_failed", outcome=exc.code, reasons=exc.reason, origin=origin_of(request)
    )
    return exc


@router.get(
    "/start",
    responses={
        302: {"description": "Redirect to the provider's authorization endpoint"},
        200: {"model": PscStartResponse, "description": "With Accept: application/json"},
        **ERROR_RESPONSES,
    },
    response_class=Response,
)
def psc_start(request: Request) -> Response:
    """Begins a Pro Santé Connect login: a single-use state, a nonce and a PKCE
    verifier are kept server-side for 10 minutes."""
    return begin_login(request)


def begin_login(request: Request, then: Mapping[str, str] | None = None) -> Response:
    """The start of a login, for the API or the portal (``then`` says what the callback
    does after it: kept server-side with the state)."""
    services = services_of(request)
    psc = _psc(services)
    # Anyone may start a login, and each start stores a challenge: counted per address
    # like any login attempt, so one source cannot fill the table.
    services.auth.throttle.check("psc:start", client_address(request))
    browser = secrets.token_urlsafe(32)
    try:
        with session_scope(services.sessions) as session:
            url = psc.start(session, browser=browser, then=then)
    except PscError as exc:
        raise _refused(request, exc) from None
    response: Response
    if "application/json" in request.headers.get("accept", ""):
        response = JSONResponse({"authorization_url": url})
    else:
        response = RedirectResponse(url, status_code=302)
    name, secure = _browser_cookie(psc)
    response.set_cookie(
        name,
        browser,
        max_age=psc.state_ttl_seconds,
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )
    return response


@router.get("/callback", response_model=TokenResponse, responses=ERROR_RESPONSES)
def psc_callback(request: Request) -> Response:
    """Where the provider sends the browser back: ``code`` and ``state``, each once, in
    the browser that started the login."""
    psc = _psc(services_of(request))
    name, secure = _browser_cookie(psc)
    browser = request.cookies.get(name, "")
    response: Response
    try:
        response = _finish(request, psc, browser if _BROWSER_SHAPE.fullmatch(browser) else "")
    except PscError as exc:
        _refused(request, exc)
        response = error_response(exc.status, exc.code, exc.detail, exc.headers)
    # Spent either way: the state it was bound to cannot serve again.
    response.delete_cookie(name, path="/", secure=secure, httponly=True, samesite="lax")
    return response


def _finish(request: Request, psc: PscClient, browser: str) -> Response:
    """The callback's checks and the login; a refusal raises :class:`PscError`."""
    services = services_of(request)
    query = request.query_params
    if any(len(query.getlist(name)) > 1 for name in query):
        raise PscCallbackInvalid("duplicated_parameter")
    state = query.get("state", "")
    if "error" in query:
        if len(state) <= _MAX_STATE_LENGTH and _STATE_SHAPE.fullmatch(state):
            with session_scope(services.sessions) as session:
                psc.abandon(session, state=state)
        raise PscCallbackInvalid("provider_error")
    code = query.get("code", "")
    if not code or not state:
        raise PscCallbackInvalid("missing_parameter")
    if len(code) > _MAX_CODE_LENGTH or len(state) > _MAX_STATE_LENGTH:
        raise PscCallbackInvalid("oversized_parameter")
    if not _CODE_SHAPE.fullmatch(code) or not _STATE_SHAPE.fullmatch(state):
        raise PscCallbackInvalid("malformed_parameter")
    with session_scope(services.sessions) as session:
        identity = psc.finish(
            session, code=code, state=state, browser=browser, iss=query.get("iss")
        )
        if identity.then.get("to") == "portal":
            # The portal's own ending: a session cookie and its page, not a bearer token.
            return finish_portal_login(request, session, identity)
        issued = services.auth.complete_login(
            session,
            account_id=identity.account_id,
            acr=identity.acr,
            origin=origin_of(request),
            method="psc",
        )
    body = token_response(issued)
    return JSONResponse(body.model_dump(mode="json", exclude_none=True))
