"""HTTP routes for WebAuthn: registering keys, the login second factor, the step-up.

Registration is guarded so that a phished password + TOTP session cannot plant the
attacker's own key: the first key needs a proof a mailbox thief cannot have (a recent
Pro Santé Connect login, or the enrolment code the insurer posts, see
:meth:`~rempart.auth.recovery.RecoveryService.enrolment_proof`); a further key, and
removing one, need the CPS card or an *established* key (past probation, not enrolled
from a new network). A key enrolled from a network the account had not used before the
enrolling session is marked so, and never answers the guard's step-up.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy.orm import Session

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
from rempart.auth.levels import (
    ACR_CPS,
    ACR_PASSWORD_TOTP,
    ACR_PSC,
    ACR_WEBAUTHN,
    AuthRequirement,
    require_established_factor,
)
from rempart.auth.service import Principal
from rempart.auth.webauthn import (
    PURPOSE_LOGIN,
    PURPOSE_STEP_UP,
    WebAuthnChallengeInvalid,
    WebAuthnCloneSuspected,
    WebAuthnInvalid,
)
from rempart.services import Services
from rempart.store.engine import session_scope

__all__ = ["FIRST_KEY_REQUIREMENT", "router"]

router = APIRouter(prefix="/api/v1/auth", tags=["webauthn"])

# What a refused key answer raises (recorded as a failed login or step-up).
_REFUSALS = (WebAuthnInvalid, WebAuthnChallengeInvalid, WebAuthnCloneSuspected)

# Asking for a first key's options needs a recent complete login; registering it needs
# more (``enrolment_proof``), checked with the answer, where the enrolment code comes.
FIRST_KEY_REQUIREMENT = AuthRequirement(
    (ACR_PASSWORD_TOTP, ACR_PSC, ACR_CPS, ACR_WEBAUTHN), max_age=600
)


def _registration_allowed(
    services: Services, session: Session, principal: Principal, enrolment_code: str | None
) -> str | None:
    """Raises unless the session may register a key. For a first key, returns the proof
    (``enrolment_code``: to spend once the key is verified); None for a further key."""
    if services.webauthn.has_credentials(session, principal.account_id):
        require_established_factor(principal.acr, principal.factor_established)
        return None
    return services.recovery.enrolment_proof(principal, enrolment_code=enrolment_code)


def _enrolled_from_new_network(
    services: Services, session: Session, principal: Principal, request: Request
) -> bool:
    """The enrolling session logged in from a network new to the account, or this request
    comes from a network the account has not used (the login remembered its own)."""
    if principal.new_network:
        return True
    novelty = services.auth.origins.check(session, principal.account_id, origin_of(request))
    return novelty.network


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
        if services.webauthn.has_credentials(session, principal.account_id):
            require_established_factor(principal.acr, principal.factor_established)
        else:
            FIRST_KEY_REQUIREMENT.check(principal)
        ceremony = services.webauthn.registration_options(
            session, account_id=principal.account_id, session_id=principal.session_id
        )
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
        proof = _registration_allowed(services, session, principal, body.enrolment_code)
        row = services.webauthn.register(
            session,
            account_id=principal.account_id,
            handle=body.handle,
            credential=body.credential,
            label=body.label,
            session_id=principal.session_id,
            origin=where,
            new_network=_enrolled_from_new_network(services, session, principal, request),
        )
        if proof == "enrolment_code" and body.enrolment_code:
            # Spent only once the key is verified: a failed ceremony keeps the letter's code.
            services.recovery.spend_enrolment_code(
                session, principal, where, body.enrolment_code, event="webauthn_register_failed"
            )
        services.auth.notify_professional(
            session,
            principal.account_id,
            "webauthn_registered",
            label=row.label,
            when=row.created_at,
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
        require_established_factor(principal.acr, principal.factor_established)
        row = services.webauthn.remove(
            session,
            account_id=principal.account_id,
            credential_id=credential_id,
            session_id=principal.session_id,
            origin=origin_of(request),
        )
        services.auth.notify_professional(
            session, principal.account_id, "webauthn_removed", label=row.label
        )
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
        account, where = services.auth.second_step(session, body.mfa_token, origin_of(request))
        account_id = account.account_id
        try:
            verified = services.webauthn.authenticate(
                session,
                account_id=account_id,
                handle=body.handle,
                credential=body.credential,
                purpose=PURPOSE_LOGIN,
                origin=where,
            )
        except _REFUSALS as exc:
            # A key cannot be guessed: a refusal spends the token's attempt and feeds the
            # throttle, not the count that locks the codes out.
            services.auth.second_factor_failed(
                session, account_id, where, reason="webauthn", outcome=exc.code, counts=False
            )
            raise
        services.auth.second_factor_passed(session, body.mfa_token, where)
        issued = services.auth.complete_login(
            session,
            account_id=account_id,
            acr=ACR_WEBAUTHN,
            origin=where,
            method="webauthn",
            credential_id=verified.credential_id,
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
        try:
            verified = services.webauthn.authenticate(
                session,
                account_id=principal.account_id,
                handle=body.handle,
                credential=body.credential,
                purpose=PURPOSE_STEP_UP,
                session_id=principal.session_id,
                origin=where,
            )
        except _REFUSALS as exc:
            session.rollback()  # the refusal is recorded in a transaction of its own
            services.auth.events.record_event(
                "step_up_failed",
                outcome=exc.code,
                reasons="webauthn",
                account_id=principal.account_id,
                session_id=principal.session_id,
                acr=principal.acr,
                origin=where,
            )
            raise
        issued = services.auth.complete_login(
            session,
            account_id=principal.account_id,
            acr=ACR_WEBAUTHN,
            origin=where,
            method="webauthn_step_up",
            replaces_session_id=principal.session_id,
            credential_id=verified.credential_id,
        )
    return token_response(issued)
