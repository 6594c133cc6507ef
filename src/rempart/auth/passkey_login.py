"""Logging in with a passkey alone: no password, no code.

A discoverable credential that verified its user (PIN or biometrics on the
authenticator) is two factors in one — something held and something known or been —
and phishing-resistant: the browser answers only on Rempart's own origin. So it opens a
session as the password + key login does, through the same end
(:meth:`~rempart.auth.service.AuthService.complete_login`): an inactive account is
refused, a key still in probation or enrolled from a new network is not *established*,
and a never-seen network or device gets the same rule and notice as any login.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from rempart.audit.events import Origin
from rempart.auth.levels import ACR_WEBAUTHN
from rempart.auth.service import AuthService, IssuedToken
from rempart.auth.webauthn import (
    AuthenticationCredentialJSON,
    WebAuthnChallengeInvalid,
    WebAuthnCloneSuspected,
    WebAuthnInvalid,
    WebAuthnService,
)
from rempart.store.models import Account

__all__ = ["login_with_passkey"]

_REFUSALS = (WebAuthnInvalid, WebAuthnChallengeInvalid, WebAuthnCloneSuspected)


def login_with_passkey(
    auth: AuthService,
    webauthn: WebAuthnService,
    session: Session,
    *,
    handle: str,
    credential: AuthenticationCredentialJSON,
    origin: Origin,
) -> IssuedToken:
    """Checks the throttle (per address: no login is typed), verifies the answer, opens the
    session. A refusal counts against the address and is recorded as a failed login."""
    auth.check_throttle(origin)
    try:
        verified = webauthn.authenticate_passwordless(
            session, handle=handle, credential=credential, origin=origin
        )
    except _REFUSALS as exc:
        session.rollback()
        auth.throttle.failure(origin.login, origin.client_ip)
        auth.events.record_event("login_failed", outcome=exc.code, reasons="passkey", origin=origin)
        raise
    account = session.get(Account, verified.account_id)
    login = account.login if account is not None else ""
    where = Origin(login=login, client_ip=origin.client_ip, user_agent=origin.user_agent)
    return auth.complete_login(
        session,
        account_id=verified.account_id,
        acr=ACR_WEBAUTHN,
        origin=where,
        method="passkey",
        credential_id=verified.credential_id,
    )
