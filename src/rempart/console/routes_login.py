"""Logging in to the console and out of it.

Before there is a session, the login form is protected by a nonce in its own
``__Host-`` cookie and a token derived from it in the form (a page of another site
can neither read the cookie nor guess the token), and by the same-site check.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rempart.api.deps import origin_of, services_of
from rempart.auth.throttle import Throttled
from rempart.console.operators import (
    ConsoleSession,
    OpenedSession,
    OperatorCredentialsInvalid,
    Permission,
)
from rempart.console.web import (
    CONSOLE,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    CsrfRefused,
    checked_form,
    redirect,
    render,
    require,
)
from rempart.errors import RempartError
from rempart.store.engine import session_scope
from rempart.web.forms import form_token, token_accepted

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_COOKIE = {"path": "/", "secure": True, "httponly": True, "samesite": "strict"}


def _login_token(request: Request, nonce: str) -> str:
    return form_token(services_of(request).settings.keys.for_purpose("console-login-form"), nonce)


def _next(target: str) -> str:
    """Only a console page, on this site (not ``//elsewhere``), may follow the login."""
    if target.startswith(f"{CONSOLE}/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{CONSOLE}/"


def _login_page(
    request: Request, *, nonce: str, status: int = 200, error: str = "", login: str = ""
) -> Response:
    response = render(
        request,
        None,
        "console/login.html",
        {
            "title": "Erreur : connexion" if error else "Connexion à la console",
            "error": error,
            "login": login,
            "login_csrf": _login_token(request, nonce),
            "next": _next(request.query_params.get("suivant", "")),
        },
        status=status,
    )
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, **_COOKIE)  # type: ignore[arg-type]
    return response


@router.get(f"{CONSOLE}/connexion")
def login_page(request: Request) -> Response:
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    return _login_page(request, nonce=nonce[:64])


@router.post(f"{CONSOLE}/connexion")
async def login(request: Request) -> Response:
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    form = await request.form()
    if not nonce or not token_accepted(request, _login_token(request, nonce), form.get("csrf")):
        raise CsrfRefused()
    fields = {name: form.get(name) for name in ("login", "password", "code", "suivant")}
    login_, password, code, target = (v if isinstance(v, str) else "" for v in fields.values())
    services = services_of(request)
    origin = origin_of(request)

    def attempt() -> OpenedSession:
        with session_scope(services.sessions) as session:
            return services.operators.login(
                session, login=login_, password=password, code=code, origin=origin
            )

    try:
        opened = await run_in_threadpool(attempt)
    except OperatorCredentialsInvalid:
        return _login_page(
            request,
            nonce=nonce,
            status=401,
            error="Identifiant, mot de passe ou code à usage unique incorrect.",
            login=login_[:64],
        )
    except Throttled as exc:
        response = _login_page(
            request,
            nonce=nonce,
            status=429,
            error=f"Trop de tentatives. Réessayez dans {exc.retry_after} secondes.",
            login=login_[:64],
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except (RempartError, OperationalError) as exc:
        if isinstance(exc, RempartError) and exc.status < 500:
            raise
        return _login_page(
            request,
            nonce=nonce,
            status=503,
            error="La connexion est momentanément impossible. Réessayez dans quelques minutes.",
        )
    response = redirect(_next(target))
    response.set_cookie(SESSION_COOKIE, opened.token, **_COOKIE)  # type: ignore[arg-type]
    response.delete_cookie(LOGIN_COOKIE, path="/", secure=True, httponly=True)
    return response


@router.post(f"{CONSOLE}/deconnexion")
async def logout(
    request: Request, current: Annotated[ConsoleSession, Depends(require(Permission.OVERVIEW))]
) -> Response:
    await checked_form(request, current)
    services = services_of(request)
    origin = origin_of(request, login=f"operator:{current.login}")

    def end() -> None:
        with session_scope(services.sessions) as session:
            services.operators.logout(session, current, origin=origin)

    await run_in_threadpool(end)
    response = redirect(f"{CONSOLE}/connexion", message="deconnecte")
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True)
    return response
