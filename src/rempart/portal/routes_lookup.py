"""The portal's home: the lookup form, the answer card, and the step-up the guard may ask
for in between (a security key here; the CPS card through the login routes).

The NIR is posted, never in a URL: the answer is kept on the server and shown once
behind a redirect (post/redirect/get), so that neither the address bar, the history nor
a reload keeps it. What is kept and how: :mod:`rempart.portal.lookup_flow`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import JSONResponse, Response

from rempart.api.deps import services_of
from rempart.audit.events import Origin
from rempart.auth.levels import LOOKUP_REQUIREMENT, StepUpRequired
from rempart.auth.service import AccountSuspended, IssuedToken
from rempart.auth.step_up import key_step_up
from rempart.auth.webauthn import PURPOSE_STEP_UP, AuthenticationCredentialJSON
from rempart.errors import RempartError
from rempart.nir import InvalidNIR
from rempart.portal.lookup_flow import (
    PENDING_TTL_SECONDS,
    RESULT_TTL_SECONDS,
    NothingToResume,
    keep_pending,
    keep_result,
    lookup_error_message,
    resume_pending,
    step_up_message,
    take_result,
)
from rempart.portal.messages import french
from rempart.portal.web import (
    COOKIE,
    PORTAL,
    PortalSession,
    PortalSuspended,
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
from rempart.rights.guarded import caller_of, check_input, guarded_lookup
from rempart.rights.service import InvalidBirthDate
from rempart.services import Services
from rempart.store.engine import session_scope

__all__ = [
    "PENDING_COOKIE",
    "RESULT_COOKIE",
    "RESULT_PATH",
    "clear_pending_cookie",
    "router",
    "set_result_cookie",
]

router = APIRouter(include_in_schema=False)

RESULT_PATH = f"{PORTAL}/consultation/resultat"
# The handle of the card kept on the server, for the one GET that shows it.
RESULT_COOKIE = "__Host-rempart-portail-resultat"
# The handle of the lookup waiting for a step-up (read by the key's step-up below and by
# the Pro Santé Connect step-up, ``/portail/psc?reprendre=1``).
PENDING_COOKIE = "__Host-rempart-portail-attente"

# The confirmations the form shows, by the code in its query string.
_MESSAGES = {
    "attente-expiree": french("lookup_not_pending"),
    "carte-requise": french("step_up_card_required"),
    "consultation-impossible": french("unavailable"),
}


def set_result_cookie(response: Response, handle: str) -> None:
    response.set_cookie(RESULT_COOKIE, handle, max_age=RESULT_TTL_SECONDS, **COOKIE)


def _clear(response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="strict")


def clear_pending_cookie(response: Response) -> None:
    _clear(response, PENDING_COOKIE)


# -- the form ------------------------------------------------------------------------------------


def _form_page(
    request: Request,
    current: PortalSession,
    *,
    status: int = 200,
    error: str = "",
    field: str = "",
    nir: str = "",
    birth_date: str = "",
    message: str = "",
) -> Response:
    """The lookup form; after a refusal, the sentence, the field it is about (``nir``,
    ``birth_date`` or empty: both) and what was typed, to correct it."""
    return render(
        request,
        current,
        "portail/consultation.html",
        {
            "title": "Erreur : consulter les droits" if error else "Consulter les droits",
            "error": error,
            "error_field": field,
            "nir": nir,
            "birth_date": birth_date,
            "message": message,
        },
        status=status,
    )


@router.get(f"{PORTAL}/")
def lookup_form(
    request: Request, current: Annotated[PortalSession, Depends(current_professional)]
) -> Response:
    return _form_page(
        request, current, message=_MESSAGES.get(request.query_params.get("message", ""), "")
    )


def _text(form: FormData, name: str, limit: int) -> str:
    # One more than the limit: an overlong value is refused as such, not cut to fit.
    value = form.get(name)
    return value.strip()[: limit + 1] if isinstance(value, str) else ""


def _refused_field(exc: Exception) -> str:
    if isinstance(exc, InvalidNIR):
        return "nir"
    if isinstance(exc, InvalidBirthDate):
        return "birth_date"
    return ""


@router.post(f"{PORTAL}/consultation")
async def lookup(
    request: Request, current: Annotated[PortalSession, Depends(current_professional)]
) -> Response:
    form = await checked_form(request, current)
    raw_nir, raw_birth_date = _text(form, "nir", 64), _text(form, "birth_date", 32)
    services = services_of(request)
    origin = portal_origin(request)

    def attempt() -> str:
        LOOKUP_REQUIREMENT.check(current.principal)
        check_input(raw_nir, raw_birth_date)
        with session_scope(services.sessions) as session:
            record = guarded_lookup(
                services,
                session,
                caller_of(current.principal, origin, channel="portal"),
                raw_nir=raw_nir,
                raw_birth_date=raw_birth_date,
            )
            return keep_result(services, session, current.principal, record)

    def wait_for_step_up() -> str:
        with session_scope(services.sessions) as session:
            return keep_pending(
                services,
                session,
                current.principal,
                raw_nir=raw_nir,
                raw_birth_date=raw_birth_date,
            )

    try:
        handle = await run_in_threadpool(attempt)
    except AccountSuspended as exc:
        raise PortalSuspended() from exc
    except StepUpRequired as exc:
        pending = await run_in_threadpool(wait_for_step_up)
        response = await run_in_threadpool(_verification_page, request, current, exc)
        response.set_cookie(PENDING_COOKIE, pending, max_age=PENDING_TTL_SECONDS, **COOKIE)
        return response
    except (RempartError, InvalidNIR, OperationalError) as exc:
        status = exc.status if isinstance(exc, RempartError) else 503
        if isinstance(exc, InvalidNIR):
            status = 422
        return _form_page(
            request,
            current,
            status=status,
            error=lookup_error_message(exc),
            field=_refused_field(exc),
            nir=raw_nir[:64],
            birth_date=raw_birth_date[:32],
        )
    response = redirect(RESULT_PATH)
    set_result_cookie(response, handle)
    return response


# -- the card ------------------------------------------------------------------------------------


@router.get(RESULT_PATH)
def lookup_result(
    request: Request, current: Annotated[PortalSession, Depends(current_professional)]
) -> Response:
    """The card, once. A reload, the back button or another session: gone, say so."""
    services = services_of(request)
    handle = request.cookies.get(RESULT_COOKIE, "")
    with session_scope(services.sessions) as session:
        card = take_result(services, session, current.principal, handle)
    if card is None:
        response = _form_page(request, current, status=410, error=french("lookup_result_gone"))
    else:
        response = render(
            request,
            current,
            "portail/resultat.html",
            # No name in the title: a browser keeps titles in its history.
            {"title": "Droits de l'assuré", "card": card},
        )
    _clear(response, RESULT_COOKIE)
    return response


# -- the step-up ---------------------------------------------------------------------------------


def _verification_page(request: Request, current: PortalSession, exc: StepUpRequired) -> Response:
    services = services_of(request)
    with session_scope(services.sessions) as session:
        has_key = services.webauthn.has_credentials(session, current.account_id)
    return render(
        request,
        current,
        "portail/verification.html",
        {
            "title": "Vérification supplémentaire",
            "reason": step_up_message(exc),
            "has_key": has_key,
            "psc": services.psc is not None,
        },
        status=401,
    )


def _refused(exc: Exception) -> JSONResponse:
    if isinstance(exc, StepUpRequired):
        return json_error(exc.code, step_up_message(exc), 401)
    if isinstance(exc, RempartError | InvalidNIR):
        status = exc.status if isinstance(exc, RempartError) else 422
        code = exc.code if isinstance(exc, RempartError) else exc.code.value
        return json_error(code, lookup_error_message(exc), min(status, 503))
    return json_error("unavailable", french("unavailable"), 503)


@router.post(f"{PORTAL}/verification/cle/options")
async def step_up_options(
    request: Request, current: Annotated[PortalSession, Depends(current_professional)]
) -> Response:
    await checked_json(request, csrf_token(request, current))
    services = services_of(request)

    def options() -> dict[str, Any]:
        with session_scope(services.sessions) as session:
            ceremony = services.webauthn.authentication_options(
                session,
                account_id=current.account_id,
                purpose=PURPOSE_STEP_UP,
                session_id=current.principal.session_id,
            )
        return {"handle": ceremony.handle, "options": ceremony.options}

    try:
        return JSONResponse(await run_in_threadpool(options))
    except (RempartError, OperationalError) as exc:
        return _refused(exc)


def _step_up(
    services: Services,
    current: PortalSession,
    origin: Origin,
    handle: str,
    credential: AuthenticationCredentialJSON,
) -> IssuedToken:
    """As the API's ``/auth/step-up/webauthn``: the key's answer opens a new session that
    replaces the current one; a refusal is recorded."""
    with session_scope(services.sessions) as session:
        return key_step_up(
            services.auth,
            services.webauthn,
            session,
            current.principal,
            handle=handle,
            credential=credential,
            origin=origin,
        )


def _resume(
    services: Services, current: PortalSession, origin: Origin, issued: IssuedToken, pending: str
) -> str:
    with session_scope(services.sessions) as session:
        stepped_up = services.auth.authenticate(session, issued.access_token)
        return resume_pending(
            services,
            session,
            stepped_up,
            pending,
            origin,
            replaced_session_id=current.principal.session_id,
        )


@router.post(f"{PORTAL}/verification/cle")
async def step_up_with_key(
    request: Request, current: Annotated[PortalSession, Depends(current_professional)]
) -> Response:
    """The key's answer; then, in the same request, the lookup that was waiting, done as
    the new session. The browser goes on to the card."""
    answer = key_answer(await checked_json(request, csrf_token(request, current)))
    if answer is None:
        return json_error("webauthn_invalid", french("webauthn_invalid"))
    handle, credential = answer
    services = services_of(request)
    origin = portal_origin(request)
    try:
        issued = await run_in_threadpool(_step_up, services, current, origin, handle, credential)
    except AccountSuspended:
        suspended = json_error("account_suspended", _suspended(services), 403)
        clear_session_cookie(suspended)
        return suspended
    except (RempartError, OperationalError) as exc:
        return _refused(exc)
    # The old session has ended: whatever the lookup now answers, the new one is kept.
    pending = request.cookies.get(PENDING_COOKIE, "")
    response: Response
    try:
        result = await run_in_threadpool(_resume, services, current, origin, issued, pending)
    except NothingToResume:
        response = JSONResponse({"next": f"{PORTAL}/?message=attente-expiree"})
        clear_pending_cookie(response)
    except AccountSuspended:
        response = json_error("account_suspended", _suspended(services), 403)
        clear_pending_cookie(response)
        clear_session_cookie(response)
        return response
    except StepUpRequired as exc:
        response = _refused(exc)  # the lookup waits again, under the same handle
    except (RempartError, InvalidNIR, OperationalError) as exc:
        response = _refused(exc)
        clear_pending_cookie(response)
    else:
        response = JSONResponse({"next": RESULT_PATH})
        set_result_cookie(response, result)
        clear_pending_cookie(response)
    set_session_cookie(response, issued)
    return response


def _suspended(services: Services) -> str:
    return f"{french('account_suspended')} Appelez {services.settings.security_contact}."
