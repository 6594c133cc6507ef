"""HTTP routes: login (password, then TOTP) and the rights lookup."""

from __future__ import annotations

import re
from datetime import date

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
from rempart.errors import RempartError
from rempart.nir import parse_nir
from rempart.rights.lookup import lookup_rights
from rempart.services import Services
from rempart.store.engine import session_scope

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")

_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 415, 422, 429, 503)
}
_DATE_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EARLIEST_BIRTH = date(1890, 1, 1)


class InvalidBirthDate(RempartError):
    code = "invalid_birth_date"
    status = 422


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


def parse_birth_date(raw: str) -> date:
    if not _DATE_SHAPE.match(raw):
        raise InvalidBirthDate("birth_date must be a date written YYYY-MM-DD")
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise InvalidBirthDate("birth_date is not a calendar date") from None
    if not _EARLIEST_BIRTH <= value <= date.today():  # noqa: DTZ011 - a birth date is a civil date
        raise InvalidBirthDate("birth_date is out of range")
    return value


@router.post("/auth/login", response_model=LoginResponse, responses=_ERRORS, tags=["auth"])
def login(body: LoginRequest, request: Request) -> LoginResponse:
    """First step: login and password. Answers with a short-lived token for the second factor."""
    services = _services(request)
    with session_scope(services.sessions) as session:
        challenge = services.auth.login_password(
            session, login=body.login, password=body.password, address=_client_address(request)
        )
    return LoginResponse(mfa_token=challenge.mfa_token, methods=list(challenge.methods))


@router.post("/auth/mfa/totp", response_model=TokenResponse, responses=_ERRORS, tags=["auth"])
def login_totp(body: TotpRequest, request: Request) -> TokenResponse:
    """Second step: a TOTP code. Answers with the bearer access token."""
    services = _services(request)
    with session_scope(services.sessions) as session:
        issued = services.auth.login_totp(
            session, mfa_token=body.mfa_token, code=body.code, address=_client_address(request)
        )
    return TokenResponse(access_token=issued.access_token, expires_in=issued.expires_in)


@router.post("/rights/lookup", response_model=RightsResponse, responses=_ERRORS, tags=["rights"])
def rights_lookup(body: LookupRequest, request: Request) -> RightsResponse:
    """Identity and rights of one insured person. The NIR travels in the body, never in a URL."""
    services = _services(request)
    token = _bearer(request)
    nir = parse_nir(body.nir)
    birth_date = parse_birth_date(body.birth_date)
    with session_scope(services.sessions) as session:
        principal: Principal = services.auth.authenticate(session, token)
        request.state.account_id = principal.account_id
        record = lookup_rights(session, nir, birth_date)
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
