"""HTTP routes: login (password, then TOTP) and the rights lookup."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from rempart.api.deps import (
    ACTING_PROFESSIONAL_PARAMETER,
    ERROR_RESPONSES,
    authenticate_request,
    client_address,
    origin_of,
    services_of,
    token_response,
    user_agent_of,
)
from rempart.api.schemas import (
    LoginRequest,
    LoginResponse,
    LookupRequest,
    RightsResponse,
    TokenResponse,
    TotpRequest,
    TreatingDoctorOut,
)
from rempart.auth.levels import LOOKUP_REQUIREMENT
from rempart.auth.service import Principal
from rempart.rights.guarded import caller_of, guarded_lookup
from rempart.store.engine import lookup_scope, session_scope

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


@router.post("/auth/login", response_model=LoginResponse, responses=ERROR_RESPONSES, tags=["auth"])
def login(body: LoginRequest, request: Request) -> LoginResponse:
    """First step: login and password. Answers with a short-lived token for the second factor."""
    services = services_of(request)
    with session_scope(services.sessions) as session:
        challenge = services.auth.login_password(
            session,
            login=body.login,
            password=body.password,
            address=client_address(request),
            user_agent=user_agent_of(request),
        )
    return LoginResponse(mfa_token=challenge.mfa_token, methods=list(challenge.methods))


@router.post(
    "/auth/mfa/totp",
    response_model=TokenResponse,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
    tags=["auth"],
)
def login_totp(body: TotpRequest, request: Request) -> TokenResponse:
    """Second step: a TOTP code. Answers with the bearer access token."""
    services = services_of(request)
    with session_scope(services.sessions) as session:
        issued = services.auth.login_totp(
            session,
            mfa_token=body.mfa_token,
            code=body.code,
            address=client_address(request),
            user_agent=user_agent_of(request),
        )
    return token_response(issued)


@router.post(
    "/rights/lookup",
    response_model=RightsResponse,
    responses=ERROR_RESPONSES,
    tags=["rights"],
    openapi_extra={"parameters": [ACTING_PROFESSIONAL_PARAMETER]},
)
def rights_lookup(body: LookupRequest, request: Request) -> Response:
    """Identity and rights of one insured person. The NIR travels in the body, never in a URL.

    The lookup is recorded in the audit trail before the answer leaves; if the trail
    cannot be written, the answer is ``503 audit_unavailable`` and no data.
    """
    services = services_of(request)
    with lookup_scope(services.sessions) as session:
        principal: Principal = authenticate_request(request, session, LOOKUP_REQUIREMENT)
        # The same path as the portal's form: the guard, then the audited read.
        record = guarded_lookup(
            services,
            session,
            caller_of(principal, origin_of(request)),
            raw_nir=body.nir,
            raw_birth_date=body.birth_date,
        )
    doctor = record.treating_doctor
    # Our own values, of the declared types: built without validation and encoded once
    # (returning the model would have FastAPI validate it again against response_model).
    answer = RightsResponse.model_construct(
        nir=record.nir,
        last_name=record.last_name,
        first_name=record.first_name,
        birth_date=record.birth_date.isoformat(),
        sex=record.sex,
        treating_doctor=TreatingDoctorOut.model_construct(name=doctor.name, rpps=doctor.rpps)
        if doctor
        else None,
        c2s=record.c2s,
        ame=record.ame,
        ald=record.ald,
    )
    return Response(answer.model_dump_json(), media_type="application/json")
