"""The portal's glue to FastAPI: who the professional is, forms and script calls checked
against cross-site forgery, pages rendered with the portal's layout.

The session cookie holds the same access token the API hands out (its session is the
API's: same idle and absolute timeouts, same revocation, same suspension). Every portal
route depends on :func:`current_professional`; every form handler reads its body through
:func:`checked_form`, every call from the portal's script through :func:`checked_json`.
A missing or ended session, a suspended account and a refused form are exceptions that
:func:`install_handlers` turns into a redirect to the login page or a French page — a
route never builds those answers itself.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, JSONResponse, Response

from rempart.api.deps import origin_of, services_of
from rempart.audit.events import Origin
from rempart.auth.service import AccountSuspended, IssuedToken, Principal
from rempart.auth.sessions import SessionExpired
from rempart.auth.tokens import InvalidToken
from rempart.auth.webauthn import AuthenticationCredentialJSON
from rempart.console.display import when
from rempart.store.engine import session_scope
from rempart.store.models import Professional
from rempart.web import PageRenderer, page_response
from rempart.web.forms import form_token, redirect, same_site, token_accepted
from rempart.web.pages import SCRIPT_PATH, SCRIPTED_PAGE_CSP

__all__ = [
    "CSRF_HEADER",
    "MFA_COOKIE",
    "PORTAL",
    "SESSION_COOKIE",
    "CsrfRefused",
    "LoginRequired",
    "PortalSession",
    "PortalSuspended",
    "checked_form",
    "checked_json",
    "clear_session_cookie",
    "current_professional",
    "install_handlers",
    "json_error",
    "key_answer",
    "portal_origin",
    "redirect",
    "render",
    "set_session_cookie",
]

PORTAL = "/portail"
SESSION_COOKIE = "__Host-rempart-portail"
# Between the password and the second factor: the short-lived token of the first step.
MFA_COOKIE = "__Host-rempart-portail-mfa"
# Before any session: a nonce the login form's token is derived from.
LOGIN_COOKIE = "__Host-rempart-portail-login"
# The header the portal's script sends its CSRF token in (a form field cannot carry it).
CSRF_HEADER = "x-csrf-token"

COOKIE: dict[str, Any] = {"path": "/", "secure": True, "httponly": True, "samesite": "strict"}

# Times in Paris time, French format: ``{{ when(moment) }}``.
pages = PageRenderer({"script": SCRIPT_PATH, "when": when})

# The navigation, in order: (path, label).
NAVIGATION: tuple[tuple[str, str], ...] = (
    (f"{PORTAL}/", "Consulter les droits"),
    (f"{PORTAL}/consultations", "Mes consultations"),
    (f"{PORTAL}/securite", "Sécurité du compte"),
)


@dataclass(frozen=True)
class PortalSession:
    """The professional behind a request, and what the pages need of them."""

    principal: Principal
    name: str

    @property
    def account_id(self) -> str:
        return self.principal.account_id


class LoginRequired(Exception):
    """No live session: the handler redirects to the login page."""


class PortalSuspended(Exception):
    """The account is suspended: the page says so and who to call."""


class CsrfRefused(Exception):
    """A form or a script call without this session's token, or sent from another site."""


def _professional_name(session: Session, account_id: str) -> str:
    row = session.execute(
        select(Professional.first_name, Professional.last_name).where(
            Professional.account_id == account_id
        )
    ).one_or_none()
    return f"{row.first_name} {row.last_name}" if row is not None else ""


def _resolve(request: Request) -> PortalSession:
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        raise LoginRequired()
    services = services_of(request)
    try:
        with session_scope(services.sessions) as session:
            principal = services.auth.authenticate(session, token)
            name = _professional_name(session, principal.account_id)
    except AccountSuspended as exc:
        raise PortalSuspended() from exc
    except (InvalidToken, SessionExpired) as exc:
        raise LoginRequired() from exc
    return PortalSession(principal=principal, name=name)


async def current_professional(request: Request) -> PortalSession:
    """A dependency: the request's professional (a live session of an active account).

    Written as an ``async`` dependency that hands the database work to the thread pool,
    so the route itself may be ``def`` or ``async def``."""
    current = await run_in_threadpool(_resolve, request)
    request.state.portal = current
    return current


def csrf_token(request: Request, current: PortalSession) -> str:
    """Derived from the session (a new session, a new token): a page of another site can
    neither read it nor compute it."""
    key = services_of(request).settings.keys.for_purpose("portal-csrf")
    return form_token(key, current.principal.session_id)


async def checked_form(request: Request, current: PortalSession) -> FormData:
    """The posted form, once it is known to come from this session's own pages."""
    if not same_site(request):
        raise CsrfRefused()
    form = await request.form()
    if not token_accepted(request, csrf_token(request, current), form.get("csrf")):
        raise CsrfRefused()
    return form


async def checked_json(request: Request, expected_token: str) -> dict[str, Any]:
    """The JSON body of a call from the portal's script, once it is known to come from
    this site with ``expected_token`` in :data:`CSRF_HEADER` (a session's token, or the
    login form's before there is a session). A body that is not a JSON object is ``{}``."""
    if not same_site(request):
        raise CsrfRefused()
    submitted = request.headers.get(CSRF_HEADER, "")
    if not expected_token or not hmac.compare_digest(expected_token, submitted):
        raise CsrfRefused()
    if not request.headers.get("content-type", "").startswith("application/json"):
        return {}
    try:
        body = json.loads(await request.body())
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def key_answer(body: dict[str, Any]) -> tuple[str, AuthenticationCredentialJSON] | None:
    """The handle and the browser's answer to ``navigator.credentials.get()`` posted by the
    portal's script, parsed strictly; None when either is missing or malformed."""
    handle = body.get("handle")
    try:
        credential = AuthenticationCredentialJSON.model_validate(body.get("credential"))
    except ValidationError:
        return None
    return (handle, credential) if isinstance(handle, str) else None


def json_error(code: str, message: str, status: int = 400) -> JSONResponse:
    """An answer to the portal's script: a stable code and the French sentence it shows."""
    return JSONResponse({"error": code, "message": message}, status_code=status)


def render(
    request: Request,
    current: PortalSession | None,
    template: str,
    context: Mapping[str, object],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A portal page: ``template`` under ``web/templates/`` extending
    ``portail/layout.html``, with ``title`` in ``context``. The layout receives the
    professional, the navigation, the CSRF token for forms (``csrf``) and the
    organization's name; the pages may run the portal's one script."""
    settings = services_of(request).settings
    html = pages.render(
        template,
        {
            "organization": settings.organization_name,
            "website": settings.organization_website,
            "professional": current,
            "navigation": NAVIGATION if current is not None else (),
            "current_path": request.url.path,
            "csrf": csrf_token(request, current) if current is not None else "",
            "portal": PORTAL,
            "security_contact": settings.security_contact,
            **context,
        },
    )
    return page_response(
        html,
        status=status,
        headers={"content-security-policy": SCRIPTED_PAGE_CSP, **(headers or {})},
    )


def set_session_cookie(response: Response, issued: IssuedToken) -> None:
    """The session's cookie lives as long as its session may (the absolute timeout); the
    server ends it sooner when idle."""
    response.set_cookie(SESSION_COOKIE, issued.access_token, max_age=issued.expires_in, **COOKIE)


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")


def portal_origin(request: Request) -> Origin:
    """Where a professional's request comes from, for the audit trail and the guard."""
    return origin_of(request)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        if request.headers.get(CSRF_HEADER):
            return json_error(
                "session_expired", "Votre session a pris fin : reconnectez-vous.", 401
            )
        response = redirect(f"{PORTAL}/connexion")
        # Only an ended session's cookie is removed. A request from another site comes
        # without the cookie (SameSite=Strict): removing it then would let any page log
        # the professional out with a link or a form.
        if request.cookies.get(SESSION_COOKIE):
            clear_session_cookie(response)
        return response

    @app.exception_handler(PortalSuspended)
    async def suspended(request: Request, _exc: PortalSuspended) -> Response:
        if request.headers.get(CSRF_HEADER):
            return json_error("account_suspended", "Votre compte est suspendu.", 403)
        response = render(
            request, None, "portail/suspendu.html", {"title": "Compte suspendu"}, status=403
        )
        clear_session_cookie(response)
        return response

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, _exc: CsrfRefused) -> Response:
        if request.headers.get(CSRF_HEADER) is not None:
            return json_error("csrf_refused", "Demande refusée : rechargez la page.", 403)
        current = getattr(request.state, "portal", None)
        return render(
            request,
            current,
            "portail/csrf.html",
            {"title": "Erreur : formulaire refusé"},
            status=403,
        )
