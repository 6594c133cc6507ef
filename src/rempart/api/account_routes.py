"""The professional's own account: recovery, password, sessions.

There is deliberately no route that sends anything to a mailbox to recover an
account: see :mod:`rempart.auth.recovery`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from rempart.api.deps import (
    ERROR_RESPONSES,
    bearer_token,
    origin_of,
    services_of,
    token_response,
)
from rempart.api.schemas import (
    NoticeList,
    NoticeOut,
    PasswordChangeRequest,
    PasswordResetRequest,
    RecoveryCodesRequest,
    RecoveryCodesResponse,
    RecoveryLoginRequest,
    SessionOut,
    TokenResponse,
)
from rempart.auth.own_sessions import end_all_sessions
from rempart.store.engine import session_scope

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/auth", tags=["account"], responses=ERROR_RESPONSES)


@router.post("/mfa/recovery", response_model=TokenResponse, response_model_exclude_none=True)
def login_recovery_code(body: RecoveryLoginRequest, request: Request) -> TokenResponse:
    """Second login step with a single-use recovery code instead of the TOTP code."""
    services = services_of(request)
    with session_scope(services.sessions) as session:
        issued = services.recovery.login_with_recovery_code(
            session, mfa_token=body.mfa_token, code=body.code, origin=origin_of(request)
        )
    return token_response(issued)


@router.post("/password/reset", status_code=204)
def reset_password(body: PasswordResetRequest, request: Request) -> Response:
    """A forgotten password: reset with a recovery code or the code an operator sent by
    post (a TOTP code alone is refused). Every session of the account ends."""
    services = services_of(request)
    with session_scope(services.sessions) as session:
        services.recovery.reset_password(
            session,
            login=body.login,
            new_password=body.new_password,
            method=body.method,
            code=body.code,
            origin=origin_of(request, body.login),
        )
    return Response(status_code=204)


@router.post("/password/change", status_code=204)
def change_password(body: PasswordChangeRequest, request: Request) -> Response:
    """The current password and a second factor (a TOTP ``code``, or a login with a key or
    the CPS card less than 10 minutes old); throttled as a login. Every session ends."""
    services = services_of(request)
    with session_scope(services.sessions) as session:
        principal = services.auth.authenticate(session, bearer_token(request))
        services.recovery.change_password(
            session,
            principal,
            current_password=body.current_password,
            new_password=body.new_password,
            origin=origin_of(request),
            code=body.code,
        )
    return Response(status_code=204)


@router.post("/recovery-codes", response_model=RecoveryCodesResponse, status_code=201)
def create_recovery_codes(
    request: Request, body: RecoveryCodesRequest | None = None
) -> RecoveryCodesResponse:
    """New single-use recovery codes, shown this once; earlier ones stop working.

    A recovery code resets the password, so minting them needs a proof a mailbox thief
    cannot have: a recent Pro Santé Connect login, an established security key, or the
    enrolment code the insurer posted (``enrolment_code``); never a session opened with a
    recovery code. Else ``401 insufficient_user_authentication``."""
    services = services_of(request)
    with session_scope(services.sessions) as session:
        principal = services.auth.authenticate(session, bearer_token(request))
        codes = services.recovery.create_recovery_codes(
            session,
            principal,
            origin_of(request),
            enrolment_code=body.enrolment_code if body is not None else None,
        )
    return RecoveryCodesResponse(codes=codes)


@router.get("/notices", response_model=NoticeList)
def list_notices(request: Request) -> NoticeList:
    """The account's latest security notices (also e-mailed), newest first. Listing them
    does not mark them seen: only a strong login shows (and marks) them."""
    services = services_of(request)
    notices = services.auth.notices
    with session_scope(services.sessions) as session:
        principal = services.auth.authenticate(session, bearer_token(request))
        rows = notices.recent(session, principal.account_id) if notices is not None else []
    return NoticeList(
        notices=[NoticeOut(kind=n.kind, at=n.at, subject=n.subject, text=n.text) for n in rows]
    )


@router.post("/logout", status_code=204)
def log_out(request: Request) -> Response:
    services = services_of(request)
    with session_scope(services.sessions) as session:
        principal = services.auth.authenticate(session, bearer_token(request))
        services.auth.log_out(session, principal, origin_of(request))
    return Response(status_code=204)


@router.get("/sessions", response_model=list[SessionOut])
def list_sessions(request: Request) -> list[SessionOut]:
    """The account's open sessions, to spot one that is not the professional's."""
    services = services_of(request)
    with session_scope(services.sessions) as session:
        principal = services.auth.authenticate(session, bearer_token(request))
        rows = services.auth.sessions.list_open(session, principal.account_id)
        return [
            SessionOut(
                session_id_hint=row.session_id[:6],
                acr=row.acr,
                channel=row.channel,
                auth_time=row.auth_time.isoformat(),
                last_seen_at=row.last_seen_at.isoformat(),
                expires_at=row.expires_at.isoformat(),
                client_ip=row.client_ip,
                user_agent=row.user_agent,
                current=row.session_id == principal.session_id,
            )
            for row in rows
        ]


@router.post("/sessions/revoke-all", status_code=204)
def revoke_all_sessions(request: Request) -> Response:
    """Ends every session of the account, this one included; the professional is told."""
    services = services_of(request)
    with session_scope(services.sessions) as session:
        principal = services.auth.authenticate(session, bearer_token(request))
        end_all_sessions(services.auth, session, principal, origin_of(request))
    return Response(status_code=204)
