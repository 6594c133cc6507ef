"""Re-authenticating a live session with a security key (RFC 9470's step-up), shared by
the API, the portal's verification page and its security page.

The key's answer opens a new session (acr ``webauthn``, established or not as the key
is) that replaces the current one; a refused answer is recorded in a transaction of its
own, since the caller's is rolled back.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from rempart.audit.events import Origin
from rempart.auth.levels import ACR_WEBAUTHN
from rempart.auth.service import AuthService, IssuedToken, Principal
from rempart.auth.webauthn import (
    PURPOSE_STEP_UP,
    AuthenticationCredentialJSON,
    WebAuthnChallengeInvalid,
    WebAuthnCloneSuspected,
    WebAuthnInvalid,
    WebAuthnService,
)

__all__ = ["KEY_REFUSALS", "key_step_up"]

# What a refused key answer raises.
KEY_REFUSALS = (WebAuthnInvalid, WebAuthnChallengeInvalid, WebAuthnCloneSuspected)


def key_step_up(
    auth: AuthService,
    webauthn: WebAuthnService,
    session: Session,
    principal: Principal,
    *,
    handle: str,
    credential: AuthenticationCredentialJSON,
    origin: Origin,
) -> IssuedToken:
    """Verifies the key's answer to a step-up challenge of ``principal``'s session and
    opens the session that replaces it."""
    try:
        verified = webauthn.authenticate(
            session,
            account_id=principal.account_id,
            handle=handle,
            credential=credential,
            purpose=PURPOSE_STEP_UP,
            session_id=principal.session_id,
            origin=origin,
        )
    except KEY_REFUSALS as exc:
        session.rollback()  # the refusal is recorded in a transaction of its own
        auth.events.record_event(
            "step_up_failed",
            outcome=exc.code,
            reasons="webauthn",
            account_id=principal.account_id,
            session_id=principal.session_id,
            acr=principal.acr,
            origin=origin,
        )
        raise
    return auth.complete_login(
        session,
        account_id=principal.account_id,
        acr=ACR_WEBAUTHN,
        origin=origin,
        method="webauthn_step_up",
        replaces_session_id=principal.session_id,
        credential_id=verified.credential_id,
    )
