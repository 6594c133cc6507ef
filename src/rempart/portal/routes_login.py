"""Logging in to the portal and out of it: the password then a second factor (a TOTP
code, a security key, a recovery code), a passkey alone, or Pro Santé Connect.

Every path ends in the same domain calls as the API's logins (``AuthService``), so the
throttle, the second-factor lock, the new-network rule, the notices and the trail are
the same. Before there is a session, the forms are protected by tokens derived from a
value the browser holds in a ``__Host-`` cookie (the login nonce, then the short-lived
token of the first step): a page of another site can neither read those cookies nor
compute the tokens; and by the same-site check.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from rempart.api.deps import services_of
from rempart.api.psc_routes import begin_login
from rempart.auth.key_login import login_with_key, login_with_passkey
from rempart.auth.levels import StepUpRequired
from rempart.auth.mfa import SecondFactorLocked
from rempart.auth.service import (
    AccountSuspended,
    InvalidCredentials,
    InvalidSecondFactor,
    IssuedToken,
)
from rempart.auth.throttle import Throttled
from rempart.auth.tokens import InvalidToken
from rempart.auth.webauthn import (
    PURPOSE_LOGIN,
    WebAuthnNotRegistered,
)
from rempart.errors import RempartError
from rempart.portal.messages import french
from rempart.portal.psc_login import after_login
from rempart.portal.routes_lookup import PENDING_COOKIE
from rempart.portal.web import (
    COOKIE,
    LOGIN_COOKIE,
    MFA_COOKIE,
    PORTAL,
    SESSION_COOKIE,
    CsrfRefused,
    PortalSession,
    checked_form,
    checked_json,
    clear_session_cookie,
    current_professional,
    json_error,
    key_answer,
    portal_origin,
    redirect,
    render,
    set_session_cookie,
)
from rempart.store.engine import session_scope
from rempart.web.forms import form_token, same_site, token_accepted

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

# The confirmations the login page shows, by the code in its query string.
_MESSAGES = {
    "deconnecte": "Vous êtes déconnecté.",
    "expiree": "La connexion a expiré : recommencez.",
    "sessions-fermees": "Toutes vos sessions sont fermées. Reconnectez-vous.",
    "mot-de-passe-change": "Votre mot de passe est changé et vos sessions sont fermées. "
    "Reconnectez-vous avec le nouveau.",
}


def _form_token(request: Request, purpose: str, value: str) -> str:
    return form_token(services_of(request).settings.keys.for_purpose(purpose), value)


def _login_token(request: Request, nonce: str) -> str:
    return _form_token(request, "portal-login-form", nonce)


def _factor_token(request: Request, mfa_token: str) -> str:
    return _form_token(request, "portal-factor-form", mfa_token)


def _text(form: Any, name: str, limit: int = 256) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


# -- the first step: login and password ---------------------------------------------------


def _login_page(
    request: Request,
    *,
    nonce: str,
    status: int = 200,
    error: str = "",
    login: str = "",
    headers: dict[str, str] | None = None,
) -> Response:
    services = services_of(request)
    response = render(
        request,
        None,
        "portail/connexion.html",
        {
            "title": "Erreur : connexion" if error else "Connexion au portail",
            "error": error,
            "message": _MESSAGES.get(request.query_params.get("message", ""), ""),
            "login": login,
            "login_csrf": _login_token(request, nonce),
            "psc": services.psc is not None,
        },
        status=status,
        headers=headers,
    )
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, **COOKIE)
    return response


def _nonce(request: Request) -> str:
    return (request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24))[:64]


@router.get(f"{PORTAL}/connexion")
def login_page(request: Request) -> Response:
    return _login_page(request, nonce=_nonce(request))


def _refusal_page(request: Request, nonce: str, exc: Exception, login: str) -> Response:
    """The login page again, saying why in French; unexpected failures answer 503."""
    if isinstance(exc, Throttled):
        return _login_page(
            request,
            nonce=nonce,
            status=429,
            error=french(exc),
            login=login,
            headers={"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, RempartError) and exc.status < 500:
        return _login_page(request, nonce=nonce, status=exc.status, error=french(exc), login=login)
    return _login_page(request, nonce=nonce, status=503, error=french("unavailable"))


@router.post(f"{PORTAL}/connexion")
async def login(request: Request) -> Response:
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    form = await request.form()
    if not nonce or not token_accepted(request, _login_token(request, nonce), form.get("csrf")):
        raise CsrfRefused()
    login_, password = _text(form, "login", 128), _text(form, "password")
    services = services_of(request)
    origin = portal_origin(request)

    def attempt() -> tuple[str, tuple[str, ...]]:
        with session_scope(services.sessions) as session:
            challenge = services.auth.login_password(
                session,
                login=login_,
                password=password,
                address=origin.client_ip,
                user_agent=origin.user_agent,
            )
        return challenge.mfa_token, challenge.methods

    try:
        mfa_token, methods = await run_in_threadpool(attempt)
    except (RempartError, OperationalError) as exc:
        return _refusal_page(request, nonce, exc, login_[:64])
    response = redirect(f"{PORTAL}/connexion/facteur")
    # The methods ride with the token (both the server's own words, in an HttpOnly cookie):
    # the next page offers only what the account has.
    response.set_cookie(
        MFA_COOKIE,
        ".".join(methods) + "~" + mfa_token,
        max_age=services.settings.mfa_token_ttl_seconds,
        **COOKIE,
    )
    return response


# -- the second step: a code, a key, a recovery code --------------------------------------


def _first_step(request: Request) -> tuple[str, tuple[str, ...]] | None:
    """The first step's token and the methods it offered, or None (no login under way)."""
    methods, _, token = request.cookies.get(MFA_COOKIE, "").partition("~")
    if not token:
        return None
    return token, tuple(m for m in methods.split(".") if m)


def _factor_page(
    request: Request, token: str, methods: tuple[str, ...], *, status: int = 200, error: str = ""
) -> Response:
    return render(
        request,
        None,
        "portail/facteur.html",
        {
            "title": "Erreur : second facteur" if error else "Second facteur",
            "error": error,
            "factor_csrf": _factor_token(request, token),
            "methods": methods,
        },
        status=status,
    )


def _restart(message: str = "expiree") -> Response:
    response = redirect(f"{PORTAL}/connexion", message=message)
    response.delete_cookie(MFA_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


@router.get(f"{PORTAL}/connexion/facteur")
def factor_page(request: Request) -> Response:
    step = _first_step(request)
    if step is None:
        return _restart()
    return _factor_page(request, *step)


def _logged_in(response: Response, issued: IssuedToken) -> Response:
    set_session_cookie(response, issued)
    response.delete_cookie(MFA_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    response.delete_cookie(LOGIN_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


def _second_factor_error(exc: Exception) -> str:
    if isinstance(exc, SecondFactorLocked):
        return french("mfa_locked")
    if isinstance(exc, StepUpRequired):
        return french("phishing_resistant_required")
    if isinstance(exc, RempartError) and exc.status < 500:
        return french(exc)
    return french("unavailable")


async def _checked_factor_form(request: Request) -> tuple[str, Any]:
    step = _first_step(request)
    if step is None or not same_site(request):
        raise CsrfRefused()
    form = await request.form()
    if not token_accepted(request, _factor_token(request, step[0]), form.get("csrf")):
        raise CsrfRefused()
    return step[0], form


async def _code_login(request: Request, method: str) -> Response:
    token, form = await _checked_factor_form(request)
    code = _text(form, "code", 64)
    services = services_of(request)
    origin = portal_origin(request)

    def attempt() -> IssuedToken:
        with session_scope(services.sessions) as session:
            if method == "totp":
                return services.auth.login_totp(
                    session,
                    mfa_token=token,
                    code=code,
                    address=origin.client_ip,
                    user_agent=origin.user_agent,
                )
            return services.recovery.login_with_recovery_code(
                session, mfa_token=token, code=code, origin=origin
            )

    try:
        issued = await run_in_threadpool(attempt)
    except InvalidToken:
        return _restart()
    except (RempartError, OperationalError) as exc:
        step = _first_step(request)
        assert step is not None
        status = exc.status if isinstance(exc, RempartError) and exc.status < 500 else 503
        if isinstance(exc, InvalidCredentials):
            exc = InvalidSecondFactor()  # a wrong recovery code: said as a wrong code
        return _factor_page(request, *step, status=status, error=_second_factor_error(exc))
    return _logged_in(redirect(after_login(issued)), issued)


@router.post(f"{PORTAL}/connexion/code")
async def login_code(request: Request) -> Response:
    return await _code_login(request, "totp")


@router.post(f"{PORTAL}/connexion/secours")
async def login_recovery_code(request: Request) -> Response:
    return await _code_login(request, "recovery_code")


def _key_refused(exc: Exception) -> JSONResponse:
    if isinstance(exc, StepUpRequired):
        return json_error("phishing_resistant_required", _second_factor_error(exc), 401)
    if isinstance(exc, Throttled):
        return json_error(exc.code, french(exc), 429)
    if isinstance(exc, RempartError) and exc.status < 500:
        return json_error(exc.code, french(exc), exc.status)
    return json_error("unavailable", french("unavailable"), 503)


@router.post(f"{PORTAL}/connexion/cle/options")
async def key_login_options(request: Request) -> Response:
    step = _first_step(request)
    if step is None:
        raise CsrfRefused()
    await checked_json(request, _factor_token(request, step[0]))
    services = services_of(request)
    origin = portal_origin(request)

    def options() -> dict[str, Any]:
        with session_scope(services.sessions) as session:
            account, _ = services.auth.second_step(session, step[0], origin, count_attempt=False)
            ceremony = services.webauthn.authentication_options(
                session, account_id=account.account_id, purpose=PURPOSE_LOGIN
            )
        return {"handle": ceremony.handle, "options": ceremony.options}

    try:
        return JSONResponse(await run_in_threadpool(options))
    except InvalidToken:
        return json_error("expired", french("session_expired"), 401)
    except (RempartError, OperationalError) as exc:
        return _key_refused(exc)


@router.post(f"{PORTAL}/connexion/cle")
async def key_login(request: Request) -> Response:
    step = _first_step(request)
    if step is None:
        raise CsrfRefused()
    answer = key_answer(await checked_json(request, _factor_token(request, step[0])))
    if answer is None:
        return json_error("webauthn_invalid", french("webauthn_invalid"))
    handle, credential = answer
    services = services_of(request)
    origin = portal_origin(request)
    token = step[0]

    def attempt() -> IssuedToken:
        with session_scope(services.sessions) as session:
            return login_with_key(
                services.auth,
                services.webauthn,
                session,
                mfa_token=token,
                handle=handle,
                credential=credential,
                origin=origin,
            )

    try:
        issued = await run_in_threadpool(attempt)
    except InvalidToken:
        return json_error("expired", french("session_expired"), 401)
    except (RempartError, OperationalError) as exc:
        return _key_refused(exc)
    return _logged_in(JSONResponse({"next": after_login(issued)}), issued)


# -- a passkey alone -------------------------------------------------------------------------


def _login_form_token(request: Request) -> str:
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    return _login_token(request, nonce) if nonce else ""


@router.post(f"{PORTAL}/connexion/passkey/options")
async def passkey_options(request: Request) -> Response:
    await checked_json(request, _login_form_token(request))
    services = services_of(request)
    origin = portal_origin(request)

    def options() -> dict[str, Any]:
        # Each start stores a challenge: counted per address like a login attempt.
        services.auth.throttle.check("passkey:start", origin.client_ip)
        with session_scope(services.sessions) as session:
            ceremony = services.webauthn.passwordless_options(session)
        return {"handle": ceremony.handle, "options": ceremony.options}

    try:
        return JSONResponse(await run_in_threadpool(options))
    except (RempartError, OperationalError) as exc:
        return _key_refused(exc)


@router.post(f"{PORTAL}/connexion/passkey")
async def passkey_login(request: Request) -> Response:
    answer = key_answer(await checked_json(request, _login_form_token(request)))
    if answer is None:
        return json_error("webauthn_invalid", french("webauthn_invalid"))
    handle, credential = answer
    services = services_of(request)
    origin = portal_origin(request)

    def attempt() -> IssuedToken:
        with session_scope(services.sessions) as session:
            return login_with_passkey(
                services.auth,
                services.webauthn,
                session,
                handle=handle,
                credential=credential,
                origin=origin,
            )

    try:
        issued = await run_in_threadpool(attempt)
    except AccountSuspended:
        contact = services.settings.security_contact
        return json_error(
            "account_suspended", f"Votre compte est suspendu : appelez {contact}.", 403
        )
    except WebAuthnNotRegistered:
        return json_error("webauthn_invalid", french("webauthn_invalid"), 401)
    except (RempartError, OperationalError) as exc:
        return _key_refused(exc)
    return _logged_in(JSONResponse({"next": after_login(issued)}), issued)


# -- Pro Santé Connect ------------------------------------------------------------------------


@router.get(f"{PORTAL}/psc")
def psc_login(request: Request) -> Response:
    """Sends the browser to Pro Santé Connect (CPS card or e-CPS). From a live portal
    session (the guard asked for the card), the new session replaces it; the lookup
    that was waiting is resumed by :mod:`rempart.portal.psc_login`."""
    then = {"to": "portal"}
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        services = services_of(request)
        try:
            with session_scope(services.sessions) as session:
                then["replaces"] = services.auth.authenticate(session, token).session_id
        except RempartError:
            pass  # an ended session: a plain login
        # The callback comes from the provider's site, without the Strict cookies: the
        # waiting lookup's handle goes with the state instead (only for this session).
        pending = request.cookies.get(PENDING_COOKIE, "")
        if "replaces" in then and pending and request.query_params.get("reprendre"):
            then["pending"] = pending[:128]
    try:
        return begin_login(request, then)
    except RempartError as exc:
        return _login_page(
            request, nonce=_nonce(request), status=min(exc.status, 503), error=french(exc)
        )


# -- the session's end, and what the account was told ---------------------------------------


@router.post(f"{PORTAL}/deconnexion")
async def logout(
    request: Request, current: Annotated[PortalSession, Depends(current_professional)]
) -> Response:
    await checked_form(request, current)
    services = services_of(request)
    origin = portal_origin(request)

    def end() -> None:
        with session_scope(services.sessions) as session:
            services.auth.log_out(session, current.principal, origin)

    await run_in_threadpool(end)
    response = redirect(f"{PORTAL}/connexion", message="deconnecte")
    clear_session_cookie(response)
    return response


@router.get(f"{PORTAL}/avis")
def notices_page(
    request: Request, current: Annotated[PortalSession, Depends(current_professional)]
) -> Response:
    """The account's latest security notices (also e-mailed): a new key, a login from a
    new network, a password changed… A strong login lands here when there are new ones."""
    services = services_of(request)
    notices = services.auth.notices
    with session_scope(services.sessions) as session:
        rows = notices.recent(session, current.account_id) if notices is not None else []
    return render(
        request, current, "portail/avis.html", {"title": "Avis de sécurité", "notices": rows}
    )
