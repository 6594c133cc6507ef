"""HTTP routes: login (password, then TOTP) and the rights lookup."""

from __future__ import annotations

from fastapi import APIRouter, Request

from rempart.api.schemas import (
    ErrorBody,
    LoginRequest,
    LoginResponse,
    LookupRequest,
    RightsResponse,
    TokenResponse,
    TotpRequest,
    TreatingDoctorOut,
)
from rempart.auth.service import Principal
from rempart.auth.tokens import InvalidToken
from rempart.rights.service import Caller, audited_lookup
from rempart.services import Services
from rempart.store.engine import session_scope

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")

_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 415, 422, 429, 503)
}


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _client_address(request: Request) -> str:
    services = _services(request)
    if services.settings.trust_proxy_headers:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.client.host if request.client else "unknown"


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("a bearer access token is required")
    return token.strip()


@router.post("/auth/login", response_model=LoginResponse, responses=_ERRORS, tags=["auth"])
def login(body: LoginRequest, request: Request) -> LoginResponse:
    """First step: login and password. Answers with a short-lived token for the second factor."""
    services = _services(request)
    with session_scope(services.sessions) as session:
        challenge = services.auth.login_password(
            session,
            login=body.login,
            password=body.password,
            address=_client_address(request),
            user_agent=request.headers.get("user-agent", ""),
        )
    return LoginResponse(mfa_token=challenge.mfa_token, methods=list(challenge.methods))


@router.post("/auth/mfa/totp", response_model=TokenResponse, responses=_ERRORS, tags=["auth"])
def login_totp(body: TotpRequest, request: Request) -> TokenResponse:
    """Second step: a TOTP code. Answers with the bearer access token."""
    services = _services(request)
    with session_scope(services.sessions) as session:
        issued = services.auth.login_totp(
            session,
            mfa_token=body.mfa_token,
            code=body.code,
            address=_client_address(request),
            user_agent=request.headers.get("user-agent", ""),
        )
    return TokenResponse(access_token=issued.access_token, expires_in=issued.expires_in)


@router.post("/rights/lookup", response_model=RightsResponse, responses=_ERRORS, tags=["rights"])
def rights_lookup(body: LookupRequest, request: Request) -> RightsResponse:
    """Identity and rights of one insured person. The NIR travels in the body, never in a URL.

    The lookup is recorded in the audit trail before the answer leaves; if the trail
    cannot be written, the answer is ``503 audit_unavailable`` and no data.
    """
    services = _services(request)
    token = _bearer(request)
    with session_scope(services.sessions) as session:
        principal: Principal = services.auth.authenticate(session, token)
        caller = Caller(
            account_id=principal.account_id,
            session_id=principal.session_id,
            acr=principal.acr,
            client_ip=_client_address(request),
            user_agent=request.headers.get("user-agent", ""),
            channel="portal",
        )
        record = audited_lookup(
            session,
            services.audit,
            caller,
            raw_nir=body.nir,
            raw_birth_date=body.birth_date,
            pseudonym_key=services.settings.keys.pseudonym_key,
        )
    doctor = record.treating_doctor
    return RightsResponse(
        nir=record.nir,
        last_name=record.last_name,
        first_name=record.first_name,
        birth_date=record.birth_date.isoformat(),
        sex=record.sex,
        treating_doctor=TreatingDoctorOut(name=doctor.name, rpps=doctor.rpps) if doctor else None,
        c2s=record.c2s,
        ame=record.ame,
        ald=record.ald,
    )
