"""The console's glue to FastAPI: who the operator is, what they may do, forms checked
against cross-site forgery, pages rendered with the layout.

Every console route depends on :func:`require` (a permission), which reads the session
cookie; every form handler reads its body through :func:`checked_form`, which refuses a
request from another site (``Origin``, ``Sec-Fetch-Site``) and one without the session's
CSRF token. Both refusals, a missing session and a role without the permission are
exceptions that :func:`install_handlers` turns into a redirect to the login page or a
French 403 page — a route never builds those answers itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, Response

from rempart.api.deps import origin_of, services_of
from rempart.audit.events import Origin
from rempart.console.operators import (
    ROLE_NAMES,
    ConsoleSession,
    OperatorSessionEnded,
    Permission,
    Role,
)
from rempart.store.engine import session_scope
from rempart.web import PageRenderer, page_response
from rempart.web.forms import redirect, same_site

__all__ = [
    "CONSOLE",
    "SESSION_COOKIE",
    "ConsoleForbidden",
    "CsrfRefused",
    "LoginRequired",
    "checked_form",
    "install_handlers",
    "operator_origin",
    "redirect",
    "render",
    "require",
    "same_site",
]

CONSOLE = "/console"
SESSION_COOKIE = "__Host-rempart-console"
LOGIN_COOKIE = "__Host-rempart-console-login"

pages = PageRenderer()

# The navigation, in order: (permission, path, label). A link shows only to a role
# that holds its permission.
NAVIGATION: tuple[tuple[Permission, str, str], ...] = (
    (Permission.OVERVIEW, f"{CONSOLE}/", "Vue d'ensemble"),
    (Permission.ALERTS, f"{CONSOLE}/alertes", "Alertes"),
    (Permission.ACCOUNTS, f"{CONSOLE}/comptes", "Comptes"),
    (Permission.INCIDENTS, f"{CONSOLE}/incidents", "Incidents"),
    (Permission.CAMPAIGNS, f"{CONSOLE}/campagnes", "Campagnes"),
    (Permission.ACCESS_HISTORY, f"{CONSOLE}/historique", "Historique d'accès"),
    (Permission.OPERATORS, f"{CONSOLE}/operateurs", "Opérateurs"),
    (Permission.CONFIGURATION, f"{CONSOLE}/configuration", "Configuration"),
)


class LoginRequired(Exception):
    """No live console session: the handler redirects to the login page."""


class ConsoleForbidden(Exception):
    """The operator's role lacks the permission (page or action)."""

    def __init__(self, current: ConsoleSession, permission: Permission) -> None:
        super().__init__(permission.value)
        self.current = current
        self.permission = permission


class CsrfRefused(Exception):
    """A form without this session's token, or sent from another site."""


def _resolve(request: Request) -> ConsoleSession:
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        raise LoginRequired()
    services = services_of(request)
    try:
        with session_scope(services.sessions) as session:
            return services.operators.resolve(session, token)
    except OperatorSessionEnded as exc:
        raise LoginRequired() from exc


def require(permission: Permission) -> Callable[[Request], Any]:
    """A dependency: the request's operator, who must hold ``permission``.

    Written as an ``async`` dependency that hands the database work to the thread
    pool, so the route itself may be ``def`` or ``async def``."""

    async def dependency(request: Request) -> ConsoleSession:
        current = await run_in_threadpool(_resolve, request)
        request.state.console = current
        if not current.can(permission):
            raise ConsoleForbidden(current, permission)
        return current

    return dependency


async def checked_form(request: Request, current: ConsoleSession) -> FormData:
    """The posted form, once it is known to come from this session's own pages."""
    if not same_site(request):
        raise CsrfRefused()
    form = await request.form()
    token = form.get("csrf")
    if not isinstance(token, str) or not services_of(request).operators.csrf_valid(current, token):
        raise CsrfRefused()
    return form


def render(
    request: Request,
    current: ConsoleSession | None,
    template: str,
    context: Mapping[str, object],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A console page: ``template`` under ``web/templates/`` extending
    ``console/layout.html``, with ``title`` in ``context``. The layout receives the
    operator, the navigation their role allows, the CSRF token for forms (``csrf``) and
    the organization's name."""
    services = services_of(request)
    settings = services.settings
    navigation = (
        [(path, label) for permission, path, label in NAVIGATION if current.can(permission)]
        if current is not None
        else []
    )
    html = pages.render(
        template,
        {
            "organization": settings.organization_name,
            "website": settings.organization_website,
            "operator": current,
            "role_name": ROLE_NAMES[Role(current.role)] if current is not None else "",
            "navigation": navigation,
            "current_path": request.url.path,
            "csrf": services.operators.csrf_token(current) if current is not None else "",
            "console": CONSOLE,
            **context,
        },
    )
    return page_response(html, status=status, headers=headers)


def operator_origin(request: Request, current: ConsoleSession) -> Origin:
    """Where an operator's action comes from, for the audit trail."""
    return origin_of(request, login=f"operator:{current.login}")


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        target = request.url.path
        query = {"suivant": target} if request.method == "GET" and target != f"{CONSOLE}/" else {}
        response = redirect(f"{CONSOLE}/connexion", **query)
        # Only an ended session's cookie is removed. A request from another site comes
        # without the cookie (SameSite=Strict): removing it then would let any page log
        # the operator out with a link or a form.
        if request.cookies.get(SESSION_COOKIE):
            response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True)
        return response

    @app.exception_handler(ConsoleForbidden)
    async def forbidden(request: Request, exc: ConsoleForbidden) -> Response:
        return render(
            request,
            exc.current,
            "console/forbidden.html",
            {"title": "Accès refusé"},
            status=403,
        )

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, _exc: CsrfRefused) -> Response:
        current = getattr(request.state, "console", None)
        return render(
            request,
            current,
            "console/csrf.html",
            {"title": "Erreur : formulaire refusé"},
            status=403,
        )
