"""HTTP routes for WebAuthn: registering keys, the login second factor, the step-up.

The rules for adding and removing keys (a first key needs a proof a mailbox thief
cannot have, a further key or a removal an established one) live in
:mod:`rempart.auth.enrolment`, shared with the portal.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from rempart.api.deps import (
    ERROR_RESPONSES,
    bearer_token,
    origin_of,
    services_of,
    token_response,
)
from rempart.api.schemas import (
    MfaWebAuthnOptionsRequest,
    MfaWebAuthnRequest,
    StepUpWebAuthnRequest,
    Text,
    TokenResponse,
    WebAuthnCredentialList,
    WebAuthnCredentialOut,
    WebAuthnOptionsResponse,
    WebAuthnRegistered,
    WebAuthnRegisterRequest,
)
from rempart.auth.key_login import login_with_key
from rempart.auth.step_up import key_step_up
from rempart.auth.webauthn import PURPOSE_LOGIN, PURPOSE_STEP_UP
from rempart.store.engine import session_scope

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/auth", tags=["webauthn"])


# -- managing the keys of an account -------------------------------------------------------


@router.post(
    "/webauthn/register/options", response_model=WebAuthnOptionsResponse, responses=ERROR_RESPONSES
)
def register_options(request: Request) -> WebAuthnOptionsResponse:
    """Options for ``navigator.credentials.create()``, to add a security key or passkey.

    Answers ``401 insufficient_user_authentication`` (RFC 9470) when the session is
    not strong or recent enough: step up, then retry.
    """
    services = services_of(request)
    token = bearer_token(request)
    with session_scope(services.sessions) as session:
        principal = services.auth.authenticate(session, token)
        ceremony = services.keys.options(session, principal)
    return WebAuthnOptionsResponse(handle=ceremony.handle, options=ceremony.options)


@router.post(
    "/webauthn/register",
    status_code=201,
    response_model=WebAuthnRegistered,
    responses=ERROR_RESPONSES,
)
def register(body: WebAuthnRegisterRequest, request: Request) -> WebAuthnRegistered:
    """The answer of ``navigator.credentials.create()``; the professional is told by e-mail
    and by a notice at the next strong login.

    A first key needs ``enrolment_code`` (the code the insurer posted) unless the session
    is a recent Pro Santé Connect login: else ``401 insufficient_user_authentication``.
    """
    services = services_of(request)
    token = bearer_token(request)
    where = origin_of(request)
    with session_scope(services.sessions) as session:
        principal = services.auth.authenticate(session, token)
        row = services.keys.register(
            session,
            principal,
            handle=body.handle,
            credential=body.credential,
            label=body.label,
            origin=where,
            enrolment_code=body.enrolment_code,
        )
    return WebAuthnRegistered(credential_id=row.credential_id)


@router.get(
    "/webauthn/credentials", response_model=WebAuthnCredentialList, responses=ERROR_RESPONSES
)
def list_credentials(request: Request) -> WebAuthnCredentialList:
    """The security keys and passkeys of the caller's account."""
    services = services_of(request)
    token = bearer_token(request)
    with session_scope(services.sessions) as session:
        principal = services.auth.authenticate(session, token)
        rows = services.webauthn.credentials(session, principal.account_id)
        return WebAuthnCredentialList(
            credentials=[
                WebAuthnCredentialOut(
                    credential_id=row.credential_id,
                    label=row.label,
                    created_at=row.created_at,
                    last_used_at=row.last_used_at,
                )
                for row in rows
            ]
        )


@router.delete("/webauthn/credentials/{credential_id}", status_code=204, responses=ERROR_RESPONSES)
def remove_credential(
    credential_id: Annotated[Text, Path(max_length=1400)], request: Request
) -> Response:
    """Removes a key; needs a phishing-resistant session. The professional is told by e-mail."""
    services = services_of(request)
    token = bearer_token(request)
    with session_scope(services.sessions) as session:
        principal = services.auth.authenticate(session, token)
        services.keys.remove(session, principal, credential_id, origin_of(request))
    return Response(status_code=204)


# -- login second factor -------------------------------------------------------------------


@router.post(
    "/mfa/webauthn/options", response_model=WebAuthnOptionsResponse, responses=ERROR_RESPONSES
)
def mfa_webauthn_options(
    body: MfaWebAuthnOptionsRequest, request: Request
) -> WebAuthnOptionsResponse:
    """After the password: options for ``navigator.credentials.get()`` with the account's keys."""
    services = services_of(request)
    with session_scope(services.sessions) as session:
        account, _ = services.auth.second_step(
            session, body.mfa_token, origin_of(request), count_attempt=False
        )
        account_id = account.account_id
        ceremony = services.webauthn.authentication_options(
            session, account_id=account_id, purpose=PURPOSE_LOGIN
        )
    return WebAuthnOptionsResponse(handle=ceremony.handle, options=ceremony.options)


@router.post(
    "/mfa/webauthn",
    response_model=TokenResponse,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
)
def mfa_webauthn(body: MfaWebAuthnRequest, request: Request) -> TokenResponse:
    """Second step with a security key or passkey. Answers with the bearer access token."""
    services = services_of(request)
    with session_scope(services.sessions) as session:
        issued = login_with_key(
            services.auth,
            services.webauthn,
            session,
            mfa_token=body.mfa_token,
            handle=body.handle,
            credential=body.credential,
            origin=origin_of(request),
        )
    return token_response(issued)


# -- step-up (RFC 9470) ----------------------------------------------------------------------


@router.post(
    "/step-up/webauthn/options", response_model=WebAuthnOptionsResponse, responses=ERROR_RESPONSES
)
def step_up_options(request: Request) -> WebAuthnOptionsResponse:
    """Options to re-authenticate the current session with a key (after a 401 step-up)."""
    services = services_of(request)
    token = bearer_token(request)
    with session_scope(services.sessions) as session:
        principal = services.auth.authenticate(session, token)
        ceremony = services.webauthn.authentication_options(
            session,
            account_id=principal.account_id,
            purpose=PURPOSE_STEP_UP,
            session_id=principal.session_id,
        )
    return WebAuthnOptionsResponse(handle=ceremony.handle, options=ceremony.options)


@router.post(
    "/step-up/webauthn",
    response_model=TokenResponse,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
)
def step_up(body: StepUpWebAuthnRequest, request: Request) -> TokenResponse:
    """The key's answer: a new token (acr ``webauthn``) replaces the session's; retry with it."""
    services = services_of(request)
    token = bearer_token(request)
    where = origin_of(request)
    with session_scope(services.sessions) as session:
        principal = services.auth.authenticate(session, token)
        issued = key_step_up(
            services.auth,
            services.webauthn,
            session,
            principal,
            handle=body.handle,
            credential=body.credential,
            origin=where,
        )
    return token_response(issued)
