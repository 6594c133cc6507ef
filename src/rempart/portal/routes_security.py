"""The security page ("Sécurité du compte"): keys and passkeys, open sessions, recovery
codes, password.

Every action is the domain call the API makes (:mod:`rempart.auth.enrolment`,
:mod:`rempart.auth.own_sessions`, ``RecoveryService``), so the proofs asked, the trail
and the e-mails are the same whichever door the professional came through. A form that
is refused shows the page again with the reason in French in its section; a form that
succeeds answers 303 to the page with a confirmation code.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from rempart.api.deps import services_of
from rempart.auth.clients import CHANNEL_SOFTWARE
from rempart.auth.levels import (
    ACR_PASSWORD_RECOVERY,
    ACR_WEBAUTHN,
    StepUpRequired,
    passes_step_up,
)
from rempart.auth.mfa import SecondFactorLocked, SecondFactorRequired
from rempart.auth.own_sessions import end_all_sessions, end_session
from rempart.auth.service import InvalidCredentials, IssuedToken, Principal
from rempart.auth.step_up import key_step_up
from rempart.auth.webauthn import (
    PURPOSE_STEP_UP,
    RegistrationCredentialJSON,
)
from rempart.errors import RempartError
from rempart.notify.render import method_label
from rempart.portal.device_names import device_name
from rempart.portal.messages import french
from rempart.portal.shown_once import TTL_SECONDS, keep_codes, take_codes
from rempart.portal.web import (
    COOKIE,
    PORTAL,
    PortalSession,
    checked_form,
    checked_json,
    clear_session_cookie,
    csrf_token,
    current_professional,
    json_error,
    key_answer,
    portal_origin,
    redirect,
    render,
    set_session_cookie,
)
from rempart.services import Services
from rempart.store.engine import as_utc, session_scope

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

SECURITY = f"{PORTAL}/securite"
# The handle of recovery codes waiting to be shown (see rempart.portal.shown_once).
CODES_COOKIE = "__Host-rempart-portail-codes"

Professional = Annotated[PortalSession, Depends(current_professional)]

# The confirmations the page shows, by the code in its query string.
_DONE = {
    "cle-ajoutee": "La clé est ajoutée : elle sert dès maintenant à vous connecter. Elle pourra "
    "confirmer les consultations sensibles à la fin de sa période probatoire.",
    "cle-renommee": "La clé est renommée.",
    "cle-retiree": "La clé est retirée : elle ne permet plus de se connecter à votre compte.",
    "session-fermee": "La session est fermée.",
    "confirmee": "Session confirmée avec votre clé : vous pouvez gérer vos clés.",
    "confirmee-cle-recente": "Session confirmée avec votre clé, mais cette clé est encore en "
    "période probatoire : pour gérer vos clés, utilisez une clé plus ancienne ou votre carte CPS.",
}

# What the sections of the page are called in ``errors``.
KEYS, SESSIONS, CODES, PASSWORD = "cles", "sessions", "codes", "mot-de-passe"


@dataclass(frozen=True)
class KeyView:
    credential_id: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    # "" (established), "probation" (young), "new_network" (never answers a step-up)
    standing: str
    established_at: datetime


@dataclass(frozen=True)
class SessionView:
    ref: str
    current: bool
    opened: datetime
    last_seen: datetime
    network: str
    device: str
    method: str


def _text(form: Any, name: str, limit: int = 256) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _session_ref(request: Request, session_id: str) -> str:
    """What a form names another session by: the page never shows a session's id (the
    half of a bearer token's claims that identifies it)."""
    key = services_of(request).settings.keys.for_purpose("portal-session-ref")
    return hmac.new(key, session_id.encode(), "sha256").hexdigest()[:24]


# -- the page ------------------------------------------------------------------------------


def _keys(services: Services, session: Any, account_id: str) -> list[KeyView]:
    probation = services.auth.key_probation
    views = []
    for row in services.webauthn.credentials(session, account_id):
        created = as_utc(row.created_at)
        if row.new_network:
            standing = "new_network"
        elif not services.auth.key_established(session, account_id, row.credential_id):
            standing = "probation"
        else:
            standing = ""
        views.append(
            KeyView(
                credential_id=row.credential_id,
                label=row.label,
                created_at=created,
                last_used_at=as_utc(row.last_used_at) if row.last_used_at else None,
                standing=standing,
                established_at=created + probation,
            )
        )
    return views


def _sessions(
    request: Request, services: Services, session: Any, principal: Principal
) -> list[SessionView]:
    rows = services.auth.sessions.list_open(session, principal.account_id)
    return [
        SessionView(
            ref=_session_ref(request, row.session_id),
            current=row.session_id == principal.session_id,
            opened=as_utc(row.auth_time),
            last_seen=as_utc(row.last_seen_at),
            network=f"adresse IP {row.client_ip}" if row.client_ip else "inconnu",
            device="Logiciel métier"
            if row.channel == CHANNEL_SOFTWARE
            else device_name(row.user_agent),
            method=method_label(row.acr),
        )
        for row in sorted(rows, key=lambda r: as_utc(r.last_seen_at), reverse=True)
    ]


def _needs_enrolment_code(services: Services, principal: Principal) -> bool:
    try:
        services.recovery.enrolment_proof(principal, enrolment_code=None)
    except StepUpRequired:
        return True
    return False


def _page(
    request: Request,
    current: PortalSession,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    message: str = "",
) -> Response:
    services = services_of(request)
    principal = current.principal
    with session_scope(services.sessions) as session:
        keys = _keys(services, session, current.account_id)
        sessions = _sessions(request, services, session, principal)
    needs_code = _needs_enrolment_code(services, principal)
    return render(
        request,
        current,
        "portail/securite.html",
        {
            "title": ("Erreur : " if errors else "") + "Sécurité du compte",
            "message": message,
            "errors": errors or {},
            "keys": keys,
            # A first key needs the same proof as recovery codes (the letter's code, unless
            # the session is a recent card or Pro Santé Connect login).
            "key_needs_enrolment_code": not keys and needs_code,
            "sessions": sessions,
            "recovery_session": principal.acr == ACR_PASSWORD_RECOVERY,
            "codes_need_enrolment_code": needs_code,
            "password_needs_code": not services.auth.recent_strong_login(principal),
            "may_manage_keys": passes_step_up(principal.acr, principal.factor_established),
            "security": SECURITY,
        },
        status=status,
    )


@router.get(SECURITY)
def security_page(request: Request, current: Professional) -> Response:
    return _page(request, current, message=_DONE.get(request.query_params.get("fait", ""), ""))


# -- refusals, in French -------------------------------------------------------------------


def _step_up_code(principal: Principal, action: str) -> str:
    """What the professional must do when the session is not strong enough for ``action``."""
    if action in ("codes", "first_key") and principal.acr == ACR_PASSWORD_RECOVERY:
        return "recovery_session"
    if action in ("key", "remove") and principal.acr == ACR_WEBAUTHN:
        return "young_key"  # a key session, but its key is still on probation
    if action == "first_key":
        return "first_key_proof_required"
    if action == "codes":
        return "recovery_codes_proof_required"
    return "established_key_required"


def _refusal(exc: Exception, principal: Principal, action: str) -> tuple[int, str, str]:
    """(status, code, sentence) for a refused action: ``first_key``, ``key`` (a further
    key), ``remove``, ``rename``, ``codes``, ``password``, ``session``."""
    if isinstance(exc, SecondFactorRequired):
        code = "password_code_required"
    elif isinstance(exc, StepUpRequired) and not isinstance(exc, SecondFactorLocked):
        code = _step_up_code(principal, action)
    elif isinstance(exc, InvalidCredentials) and action == "password":
        code = "wrong_current_password"
    elif isinstance(exc, RempartError) and exc.status < 500:
        return exc.status, exc.code, french(exc)
    else:
        return 503, "unavailable", french("unavailable")
    return 401, code, french(code)


async def _refused(
    request: Request, current: PortalSession, section: str, action: str, exc: Exception
) -> Response:
    status, _, sentence = _refusal(exc, current.principal, action)
    return await run_in_threadpool(
        _page, request, current, status=status, errors={section: sentence}
    )


def _json_refused(exc: Exception, principal: Principal, action: str) -> JSONResponse:
    status, code, sentence = _refusal(exc, principal, action)
    return json_error(code, sentence, status)


# -- keys and passkeys ---------------------------------------------------------------------


def _body_text(body: dict[str, Any], name: str, limit: int) -> str:
    value = body.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


@router.post(f"{SECURITY}/cles/options")
async def key_options(request: Request, current: Professional) -> Response:
    """Options for ``navigator.credentials.create()``. A first key's proof is checked
    here already (the form sends the enrolment code with both calls): the professional
    is not asked to touch the key for a registration that would be refused."""
    body = await checked_json(request, csrf_token(request, current))
    code = _body_text(body, "enrolment_code", 64)
    services = services_of(request)
    principal = current.principal

    def options() -> Response:
        with session_scope(services.sessions) as session:
            first = services.keys.is_first_key(session, principal.account_id)
            try:
                ceremony = services.keys.options(
                    session, principal, enrolment_code=code or None, check_proof=True
                )
            except StepUpRequired as exc:
                return _json_refused(exc, principal, "first_key" if first else "key")
        return JSONResponse({"handle": ceremony.handle, "options": ceremony.options})

    try:
        return await run_in_threadpool(options)
    except (RempartError, OperationalError) as exc:
        return _json_refused(exc, principal, "key")


@router.post(f"{SECURITY}/cles")
async def key_register(request: Request, current: Professional) -> Response:
    body = await checked_json(request, csrf_token(request, current))
    handle = body.get("handle")
    try:
        credential = RegistrationCredentialJSON.model_validate(body.get("credential"))
    except ValidationError:
        return json_error("webauthn_invalid", french("webauthn_invalid"))
    if not isinstance(handle, str):
        return json_error("webauthn_challenge_invalid", french("webauthn_challenge_invalid"))
    label = _body_text(body, "label", 64)
    code = _body_text(body, "enrolment_code", 64)
    services = services_of(request)
    principal = current.principal
    origin = portal_origin(request)

    def attempt() -> Response | None:
        with session_scope(services.sessions) as session:
            first = services.keys.is_first_key(session, principal.account_id)
            try:
                services.keys.register(
                    session,
                    principal,
                    handle=handle,
                    credential=credential,
                    label=label,
                    origin=origin,
                    enrolment_code=code or None,
                )
            except StepUpRequired as exc:
                return _json_refused(exc, principal, "first_key" if first else "key")
        return None

    try:
        refused = await run_in_threadpool(attempt)
    except (RempartError, OperationalError) as exc:
        return _json_refused(exc, principal, "key")
    return refused or JSONResponse({"next": f"{SECURITY}?fait=cle-ajoutee"})


@router.post(f"{SECURITY}/confirmation/options")
async def confirm_options(request: Request, current: Professional) -> Response:
    """A step-up challenge for this session: confirming it with a key, without logging in
    again, before managing keys."""
    await checked_json(request, csrf_token(request, current))
    services = services_of(request)
    principal = current.principal

    def options() -> dict[str, Any]:
        with session_scope(services.sessions) as session:
            ceremony = services.webauthn.authentication_options(
                session,
                account_id=principal.account_id,
                purpose=PURPOSE_STEP_UP,
                session_id=principal.session_id,
            )
        return {"handle": ceremony.handle, "options": ceremony.options}

    try:
        return JSONResponse(await run_in_threadpool(options))
    except (RempartError, OperationalError) as exc:
        return _json_refused(exc, principal, "confirm")


@router.post(f"{SECURITY}/confirmation")
async def confirm(request: Request, current: Professional) -> Response:
    """The key's answer: a new session replaces this one (as the API's step-up)."""
    answer = key_answer(await checked_json(request, csrf_token(request, current)))
    if answer is None:
        return json_error("webauthn_invalid", french("webauthn_invalid"))
    handle, credential = answer
    services = services_of(request)
    origin = portal_origin(request)
    principal = current.principal

    def step_up() -> tuple[IssuedToken, bool]:
        with session_scope(services.sessions) as session:
            issued = key_step_up(
                services.auth,
                services.webauthn,
                session,
                principal,
                handle=handle,
                credential=credential,
                origin=origin,
            )
            established = services.auth.authenticate(session, issued.access_token)
        return issued, established.factor_established

    try:
        issued, established = await run_in_threadpool(step_up)
    except (RempartError, OperationalError) as exc:
        return _json_refused(exc, principal, "confirm")
    done = "confirmee" if established else "confirmee-cle-recente"
    response = JSONResponse({"next": f"{SECURITY}?fait={done}"})
    set_session_cookie(response, issued)
    return response


@router.post(f"{SECURITY}/cles/sans-script")
async def key_without_script(request: Request, current: Professional) -> Response:
    """Where the key forms land when the page's script did not run (the form posts, so
    that an enrolment code never ends up in a URL): says what is missing."""
    await checked_form(request, current)
    return await run_in_threadpool(
        _page,
        request,
        current,
        status=400,
        errors={
            KEYS: "Votre navigateur n'a pas pu utiliser votre clé : le script de la page est "
            "bloqué ou désactivé. Autorisez-le, ou utilisez un navigateur récent."
        },
    )


@router.post(f"{SECURITY}/cles/renommer")
async def key_rename(request: Request, current: Professional) -> Response:
    form = await checked_form(request, current)
    credential_id, label = _text(form, "cle", 1400), _text(form, "label", 64)
    services = services_of(request)
    origin = portal_origin(request)

    def rename() -> None:
        with session_scope(services.sessions) as session:
            services.keys.rename(session, current.principal, credential_id, label, origin)

    try:
        await run_in_threadpool(rename)
    except (RempartError, OperationalError) as exc:
        return await _refused(request, current, KEYS, "rename", exc)
    return redirect(SECURITY, fait="cle-renommee")


@router.post(f"{SECURITY}/cles/retirer")
async def key_remove(request: Request, current: Professional) -> Response:
    form = await checked_form(request, current)
    credential_id = _text(form, "cle", 1400)
    services = services_of(request)
    origin = portal_origin(request)

    def remove() -> None:
        with session_scope(services.sessions) as session:
            services.keys.remove(session, current.principal, credential_id, origin)

    try:
        await run_in_threadpool(remove)
    except (RempartError, OperationalError) as exc:
        return await _refused(request, current, KEYS, "remove", exc)
    return redirect(SECURITY, fait="cle-retiree")


# -- sessions ------------------------------------------------------------------------------


@router.post(f"{SECURITY}/sessions/fermer")
async def session_end(request: Request, current: Professional) -> Response:
    form = await checked_form(request, current)
    ref = _text(form, "session", 64)
    services = services_of(request)
    origin = portal_origin(request)
    principal = current.principal

    def end() -> str | None:
        """The ended session's id, or None when there was no such open session."""
        with session_scope(services.sessions) as session:
            rows = services.auth.sessions.list_open(session, principal.account_id)
            target = next(
                (
                    r.session_id
                    for r in rows
                    if hmac.compare_digest(_session_ref(request, r.session_id), ref)
                ),
                None,
            )
            if target is None:
                return None
            ended = end_session(services.auth, session, principal, target, origin)
            return target if ended is not None else None

    try:
        ended = await run_in_threadpool(end)
    except (RempartError, OperationalError) as exc:
        return await _refused(request, current, SESSIONS, "session", exc)
    if ended is None:
        return await run_in_threadpool(
            _page, request, current, status=409, errors={SESSIONS: french("session_not_found")}
        )
    if ended == principal.session_id:
        response = redirect(f"{PORTAL}/connexion", message="deconnecte")
        clear_session_cookie(response)
        return response
    return redirect(SECURITY, fait="session-fermee")


@router.post(f"{SECURITY}/sessions/fermer-toutes")
async def sessions_end_all(request: Request, current: Professional) -> Response:
    await checked_form(request, current)
    services = services_of(request)
    origin = portal_origin(request)

    def end_all() -> None:
        with session_scope(services.sessions) as session:
            end_all_sessions(services.auth, session, current.principal, origin)

    try:
        await run_in_threadpool(end_all)
    except (RempartError, OperationalError) as exc:
        return await _refused(request, current, SESSIONS, "session", exc)
    response = redirect(f"{PORTAL}/connexion", message="sessions-fermees")
    clear_session_cookie(response)
    return response


# -- recovery codes ------------------------------------------------------------------------


@router.post(f"{SECURITY}/codes")
async def codes_create(request: Request, current: Professional) -> Response:
    form = await checked_form(request, current)
    code = _text(form, "enrolment_code", 64).strip()
    services = services_of(request)
    origin = portal_origin(request)
    principal = current.principal

    def create() -> str:
        with session_scope(services.sessions) as session:
            codes = services.recovery.create_recovery_codes(
                session, principal, origin, enrolment_code=code or None
            )
            return keep_codes(services.auth.secret_box, session, principal, codes)

    try:
        handle = await run_in_threadpool(create)
    except (RempartError, OperationalError) as exc:
        return await _refused(request, current, CODES, "codes", exc)
    response = redirect(f"{SECURITY}/codes")
    response.set_cookie(CODES_COOKIE, handle, max_age=TTL_SECONDS, **COOKIE)
    return response


@router.get(f"{SECURITY}/codes")
def codes_page(request: Request, current: Professional) -> Response:
    """The new codes, once: the handle is taken, a reload finds nothing."""
    services = services_of(request)
    with session_scope(services.sessions) as session:
        codes = take_codes(
            services.auth.secret_box,
            session,
            current.principal,
            request.cookies.get(CODES_COOKIE, ""),
        )
    if codes is None:
        response = _page(
            request, current, status=410, errors={CODES: french("codes_already_shown")}
        )
    else:
        response = render(
            request,
            current,
            "portail/codes.html",
            {"title": "Vos codes de secours", "codes": codes},
        )
    response.delete_cookie(CODES_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


# -- password ------------------------------------------------------------------------------


@router.post(f"{SECURITY}/mot-de-passe")
async def password_change(request: Request, current: Professional) -> Response:
    form = await checked_form(request, current)
    current_password = _text(form, "current_password", 1024)
    new_password = _text(form, "new_password", 1024)
    code = _text(form, "code", 16).strip()
    if new_password != _text(form, "new_password_confirm", 1024):
        return await run_in_threadpool(
            _page, request, current, status=422, errors={PASSWORD: french("password_mismatch")}
        )
    services = services_of(request)
    origin = portal_origin(request)

    def change() -> None:
        with session_scope(services.sessions) as session:
            services.recovery.change_password(
                session,
                current.principal,
                current_password=current_password,
                new_password=new_password,
                origin=origin,
                code=code or None,
            )

    try:
        await run_in_threadpool(change)
    except (RempartError, OperationalError) as exc:
        return await _refused(request, current, PASSWORD, "password", exc)
    # Every session ended with the old password, this one too.
    response = redirect(f"{PORTAL}/connexion", message="mot-de-passe-change")
    clear_session_cookie(response)
    return response
