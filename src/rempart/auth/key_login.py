"""Logging in with a key: as the second factor after the password, or a passkey alone.

Both end in :meth:`~rempart.auth.service.AuthService.complete_login`, as every login does;
the API's routes and the portal's pages call these, not their own copies.

**A passkey alone**: no password, no code.

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
from rempart.auth.step_up import KEY_REFUSALS
from rempart.auth.webauthn import PURPOSE_LOGIN, AuthenticationCredentialJSON, WebAuthnService
from rempart.store.models import Account

__all__ = ["login_with_key", "login_with_passkey"]


def login_with_key(
    auth: AuthService,
    webauthn: WebAuthnService,
    session: Session,
    *,
    mfa_token: str,
    handle: str,
    credential: AuthenticationCredentialJSON,
    origin: Origin,
) -> IssuedToken:
    """The second step with a security key or passkey, after the password's ``mfa_token``."""
    account, where = auth.second_step(session, mfa_token, origin)
    account_id = account.account_id
    try:
        verified = webauthn.authenticate(
            session,
            account_id=account_id,
            handle=handle,
            credential=credential,
            purpose=PURPOSE_LOGIN,
            origin=where,
        )
    except KEY_REFUSALS as exc:
        # A key cannot be guessed: a refusal spends the token's attempt and feeds the
        # throttle, not the count that locks the codes out.
        auth.second_factor_failed(
            session, account_id, where, reason="webauthn", outcome=exc.code, counts=False
        )
        raise
    auth.second_factor_passed(session, mfa_token, where)
    return auth.complete_login(
        session,
        account_id=account_id,
        acr=ACR_WEBAUTHN,
        origin=where,
        method="webauthn",
        credential_id=verified.credential_id,
    )


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
    # No login is typed: the throttle counts under a name of this address's own. One name
    # shared by every address would let refusals sent from a few networks back off every
    # professional's passkey login at once.
    source = Origin(
        login=f"passkey:{origin.client_ip}",
        client_ip=origin.client_ip,
        user_agent=origin.user_agent,
    )
    auth.check_throttle(source)
    try:
        verified = webauthn.authenticate_passwordless(
            session, handle=handle, credential=credential, origin=origin
        )
    except KEY_REFUSALS as exc:
        session.rollback()
        auth.throttle.failure(source.login, source.client_ip)
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
