"""Recovery that a mailbox alone cannot complete.

There is no "reset link by e-mail": in 2022 a professional's mailbox was exactly
what the attackers held. A forgotten password is reset with a recovery code printed
at enrolment, or a one-time code an operator issues and the insurer sends by post;
never with a TOTP code alone (a code relayed by a phishing page, or guessed, must not
become the account). A lost second factor is reset by an operator only. Every step
is recorded, revokes the account's sessions where it changes a credential,
and tells the professional by e-mail — telling, not asking: the e-mail carries no
link and no code.

Codes are 60-bit random values (recovery) or 80-bit (operator), stored as keyed
hashes (HMAC-SHA256): they cannot be guessed online under throttling, and a
copy of the table alone cannot even test a guess offline.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import structlog
from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from rempart.audit.events import Origin
from rempart.auth.levels import ACR_PASSWORD_RECOVERY, PHISHING_RESISTANT, AuthRequirement
from rempart.auth.passwords import check_password_policy
from rempart.auth.service import (
    AuthService,
    InvalidCredentials,
    IssuedToken,
    Principal,
)
from rempart.auth.tokens import InvalidToken
from rempart.auth.totp import new_secret, provisioning_uri
from rempart.errors import RempartError
from rempart.store.models import Account, AccountCode, WebAuthnCredential

__all__ = [
    "RESET_METHODS",
    "RecoveryService",
    "ResetMethod",
    "ResetMethodUnavailable",
    "normalize_code",
]

log = structlog.get_logger("rempart.auth")

ResetMethod = Literal["recovery_code", "operator_code"]
RESET_METHODS: Final = ("recovery_code", "operator_code")
_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"  # no 0/O, 1/I/L, U: read aloud or from paper
# Creating codes needs a recent authentication (10 minutes), or a key where the account has one.
_FRESH = AuthRequirement(
    ("password+totp", "password+recovery", "webauthn", "psc", "cps"), max_age=600
)


class InvalidReset(RempartError):
    code = "invalid_reset"
    status = 401

    def __init__(self) -> None:
        super().__init__("the login, the code or the method is not accepted")


class ResetMethodUnavailable(RempartError):
    code = "reset_method_unavailable"
    status = 422

    def __init__(self) -> None:
        super().__init__(
            "a password is reset with a recovery code (method recovery_code) or the code the "
            "insurer sends by post (method operator_code); a code from the authenticator "
            "app alone is not enough"
        )


class UnknownAccount(RempartError):
    code = "unknown_account"
    status = 404

    def __init__(self) -> None:
        super().__init__("no account has this id")


def normalize_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _new_code(length: int) -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(length))
    return "-".join(raw[i : i + 4] for i in range(0, length, 4))


class RecoveryService:
    def __init__(
        self,
        auth: AuthService,
        *,
        code_key: bytes,
        recovery_code_count: int,
        reset_code_ttl_days: int,
    ) -> None:
        self.auth = auth
        self._key = code_key
        self.recovery_code_count = recovery_code_count
        self.reset_code_ttl = timedelta(days=reset_code_ttl_days)

    def _hash(self, account_id: str, code: str) -> str:
        message = f"{account_id}:{normalize_code(code)}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _has_key(self, session: Session, account_id: str) -> bool:
        return bool(
            session.scalar(select(exists().where(WebAuthnCredential.account_id == account_id)))
        )

    def _consume(self, session: Session, account_id: str, kind: str, code: str) -> bool:
        """Marks a valid, unused, unexpired code of that kind as used; atomic."""
        if not normalize_code(code) or len(code) > 64:
            return False
        now = datetime.now(UTC)
        result = session.execute(
            update(AccountCode)
            .where(
                AccountCode.account_id == account_id,
                AccountCode.code_hash == self._hash(account_id, code),
                AccountCode.kind == kind,
                AccountCode.used_at.is_(None),
                (AccountCode.expires_at.is_(None)) | (AccountCode.expires_at > now),
            )
            .values(used_at=now)
        )
        return getattr(result, "rowcount", 0) == 1

    # -- the professional --------------------------------------------------------------

    def create_recovery_codes(
        self, session: Session, principal: Principal, origin: Origin
    ) -> list[str]:
        """New recovery codes, shown once; the previous ones stop working."""
        if self._has_key(session, principal.account_id):
            AuthRequirement(tuple(sorted(PHISHING_RESISTANT))).check(principal)
        else:
            _FRESH.check(principal)
        session.execute(
            delete(AccountCode).where(
                AccountCode.account_id == principal.account_id, AccountCode.kind == "recovery"
            )
        )
        codes = [_new_code(12) for _ in range(self.recovery_code_count)]
        session.add_all(
            AccountCode(
                account_id=principal.account_id,
                code_hash=self._hash(principal.account_id, code),
                kind="recovery",
            )
            for code in codes
        )
        session.flush()
        self.auth.record_for("recovery_codes_created", principal, origin, session=session)
        self.auth.notify_professional(
            session, principal.account_id, "recovery_codes_created", count=len(codes)
        )
        return codes

    def login_with_recovery_code(
        self, session: Session, *, mfa_token: str, code: str, origin: Origin
    ) -> IssuedToken:
        """Second login step with a recovery code instead of the TOTP (a lost phone)."""
        account, where = self.auth.second_step(session, mfa_token, origin)
        account_id = account.account_id
        self.auth.refuse_if_codes_locked(session, account, where, method="recovery_code")
        if not self._consume(session, account_id, "recovery", code):
            self.auth.second_factor_failed(
                session, account_id, where, reason="wrong_recovery_code", outcome="refused"
            )
            raise InvalidCredentials()
        self.auth.second_factor_passed(session, mfa_token, where)
        self.auth.notify_professional(session, account_id, "recovery_code_used")
        return self.auth.complete_login(
            session,
            account_id=account_id,
            acr=ACR_PASSWORD_RECOVERY,
            origin=where,
            method="recovery_code",
        )

    def reset_password(
        self,
        session: Session,
        *,
        login: str,
        new_password: str,
        method: str,
        code: str,
        origin: Origin,
    ) -> None:
        """Sets a new password without the old one, given a recovery code or the code the
        insurer posted.

        Unknown login, wrong code and an account whose codes are locked out (second factor
        guessed) all get the same answer. Every session of the account ends.
        """
        if method not in RESET_METHODS:
            # Said before anything is looked up: the answer tells nothing about the login.
            raise ResetMethodUnavailable()
        where = Origin(login=login, client_ip=origin.client_ip, user_agent=origin.user_agent)
        self.auth.check_throttle(where)
        account = session.scalars(select(Account).where(Account.login == login)).one_or_none()
        if account is None:
            self._refuse(session, where, "", "password_reset_failed", "unknown_login")
            raise InvalidReset()
        account_id = account.account_id
        if method == "recovery_code":
            if account.mfa_locked_at is not None:
                # Someone guessed at the codes after the right password: a recovery code
                # does not take the account from its owner now; the posted code does.
                self._refuse(session, where, account_id, "password_reset_failed", "mfa_locked")
                raise InvalidReset()
            proven = self._consume(session, account_id, "recovery", code)
        else:
            proven = self._consume(session, account_id, "operator_reset", code)
        if not proven:
            self._refuse(session, where, account_id, "password_reset_failed", f"wrong_{method}")
            raise InvalidReset()
        check_password_policy(
            new_password,
            min_length=self.auth.password_min_length,
            user_inputs=[login, account_id],
        )
        account.password_hash = self.auth.hasher.hash(new_password)
        account.password_changed_at = datetime.now(UTC)
        revoked = self.auth.revoke_sessions(session, account_id, reason="password_reset")
        self.auth.throttle.success(login, where.client_ip)
        log.info("password_reset", account_id=account_id, method=method, sessions_ended=revoked)
        self.auth.events.record_event(
            "password_reset",
            outcome="ok",
            reasons=method,
            account_id=account_id,
            session=session,
            origin=where,
        )
        self.auth.notify_professional(session, account_id, "password_reset", method=method)

    def change_password(
        self,
        session: Session,
        principal: Principal,
        *,
        current_password: str,
        new_password: str,
        origin: Origin,
        code: str | None = None,
    ) -> None:
        """A logged-in professional changes the password; every session ends, this one too.

        A stolen session alone must not turn into the account: the change goes through
        the login's throttle (a wrong current password counts as a failed login) and needs
        the second factor, a fresh TOTP ``code`` (counted as a login's) or a recent
        phishing-resistant login.
        """
        account = session.get(Account, principal.account_id, with_for_update=True)
        if account is None:
            raise InvalidToken()
        where = Origin(
            login=account.login, client_ip=origin.client_ip, user_agent=origin.user_agent
        )
        self.auth.check_throttle(where)
        if not self.auth.hasher.verify(account.password_hash, current_password):
            self._refuse(
                session, where, principal.account_id, "password_change_failed", "wrong_password"
            )
            raise InvalidCredentials()
        how = self.auth.confirm_second_factor(
            session, principal, account, code, where, event="password_change_failed"
        )
        check_password_policy(
            new_password,
            min_length=self.auth.password_min_length,
            user_inputs=[account.login, account.account_id],
        )
        account.password_hash = self.auth.hasher.hash(new_password)
        account.password_changed_at = datetime.now(UTC)
        self.auth.revoke_sessions(session, principal.account_id, reason="password_changed")
        self.auth.throttle.success(where.login, where.client_ip)
        self.auth.record_for("password_changed", principal, origin, session=session, reasons=how)
        self.auth.notify_professional(session, principal.account_id, "password_changed")

    # -- operators ---------------------------------------------------------------------

    def issue_reset_code(self, session: Session, account_id: str, *, operator: str) -> str:
        """A one-time password-reset code for the insurer to send by post."""
        if session.get(Account, account_id) is None:
            raise UnknownAccount()
        code = _new_code(16)
        session.add(
            AccountCode(
                account_id=account_id,
                code_hash=self._hash(account_id, code),
                kind="operator_reset",
                expires_at=datetime.now(UTC) + self.reset_code_ttl,
            )
        )
        session.flush()
        self.auth.events.record_event(
            "reset_code_issued",
            outcome="ok",
            reasons=f"operator:{operator}",
            account_id=account_id,
            session=session,
        )
        self.auth.notify_professional(session, account_id, "reset_code_issued")
        return code

    def reset_second_factor(self, session: Session, account_id: str, *, operator: str) -> str:
        """Operator action for a lost second factor: a new TOTP secret (its URI is returned
        for the professional to enrol), security keys and recovery codes removed, every
        session ended. Audited and notified."""
        account = session.get(Account, account_id, with_for_update=True)
        if account is None:
            raise UnknownAccount()
        secret = new_secret()
        account.totp_secret_encrypted = self.auth.secret_box.seal(secret, context=account_id)
        account.totp_last_step = 0
        # A new factor, handed over by an operator: the guessing of the old one is over.
        account.mfa_failures, account.mfa_locked_at = 0, None
        keys = session.execute(
            delete(WebAuthnCredential).where(WebAuthnCredential.account_id == account_id)
        )
        session.execute(delete(AccountCode).where(AccountCode.account_id == account_id))
        self.auth.revoke_sessions(session, account_id, reason="mfa_reset")
        log.info("mfa_reset", account_id=account_id, operator=operator)
        self.auth.events.record_event(
            "mfa_reset",
            outcome="ok",
            reasons=f"operator:{operator},keys_removed:{getattr(keys, 'rowcount', 0)}",
            account_id=account_id,
            session=session,
        )
        self.auth.notify_professional(session, account_id, "mfa_reset")
        return provisioning_uri(secret, login=account.login, issuer=self.auth.totp_issuer)

    # -- helpers -----------------------------------------------------------------------

    def _refuse(
        self, session: Session, where: Origin, account_id: str, event: str, reason: str
    ) -> None:
        session.rollback()  # the refusal is recorded in a transaction of its own
        if where.login:
            self.auth.throttle.failure(where.login, where.client_ip)
        log.info(event, reason=reason, account_id=account_id or None)
        self.auth.events.record_event(
            event, outcome="refused", reasons=reason, account_id=account_id, origin=where
        )
