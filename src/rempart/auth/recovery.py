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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import structlog
from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from rempart.audit.events import Origin
from rempart.auth.levels import (
    ACR_CPS,
    ACR_PASSWORD_RECOVERY,
    ACR_PSC,
    ACR_WEBAUTHN,
    STRONG_PROOF_MAX_AGE,
    AuthRequirement,
    StepUpRequired,
    passes_step_up,
)
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
from rempart.store.engine import as_utc
from rempart.store.models import Account, AccountCode, KnownOrigin, WebAuthnCredential

__all__ = [
    "ENROLMENT_PROOF_DETAIL",
    "RESET_METHODS",
    "AccountNotSuspended",
    "InvalidEnrolmentCode",
    "RecoveryService",
    "ResetMethod",
    "ResetMethodUnavailable",
    "RestoreReport",
    "normalize_code",
]

log = structlog.get_logger("rempart.auth")

ResetMethod = Literal["recovery_code", "operator_code"]
RESET_METHODS: Final = ("recovery_code", "operator_code")
_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"  # no 0/O, 1/I/L, U: read aloud or from paper
# Presenting a posted enrolment code needs a complete login of the last 10 minutes.
_FRESH = AuthRequirement(
    ("password+totp", "password+recovery", "webauthn", "psc", "cps"), max_age=STRONG_PROOF_MAX_AGE
)
# Pro Santé Connect with e-CPS (a phone app) can be relayed: only a recent one counts.
_RECENT_PSC = AuthRequirement((ACR_PSC,), max_age=STRONG_PROOF_MAX_AGE)
_STRONG_PROOF_ACRS = (ACR_CPS, ACR_PSC, ACR_WEBAUTHN)
ENROLMENT_PROOF_DETAIL = (
    "this needs a proof a mailbox thief cannot have: log in with Pro Sante Connect "
    "(CPS card or e-CPS) within 10 minutes, use an established security key, or give "
    "the enrolment code the insurer sends by post (enrolment_code)"
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


class InvalidEnrolmentCode(RempartError):
    code = "invalid_enrolment_code"
    status = 401

    def __init__(self) -> None:
        super().__init__("the enrolment code is wrong, expired or already used")


class AccountNotSuspended(RempartError):
    code = "not_suspended"
    status = 409

    def __init__(self) -> None:
        super().__init__("no suspended account has this id")


@dataclass(frozen=True)
class RemovedKey:
    label: str
    created_at: datetime


@dataclass(frozen=True)
class RestoreReport:
    """What restoring a compromised account removed and the credentials to post."""

    account_id: str
    since: datetime
    keys_removed: tuple[RemovedKey, ...]
    recovery_codes_removed: int
    sessions_ended: int
    networks_forgotten: int
    reset_code: str
    otpauth_uri: str


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

    def enrolment_proof(self, principal: Principal, *, enrolment_code: str | None) -> str:
        """Which proof lets this session enrol a first key or mint recovery codes (a proof
        a mailbox thief relaying one TOTP code cannot have), named for the trail:

        - ``psc``: a Pro Santé Connect login (e-CPS) of the last 10 minutes;
        - ``cps``: a CPS card login (issued by the state, never enrolled here: as for the
          guard's step-up, its age does not matter);
        - ``established_key``: a session opened with a key past probation;
        - ``enrolment_code``: the single-use code the insurer posted, with a complete login
          of the last 10 minutes (spend it with :meth:`spend_enrolment_code`).

        Anything else is RFC 9470's 401 naming the ways out. Nothing is consumed here.
        """
        if _RECENT_PSC.is_met_by(principal):
            return principal.acr
        if passes_step_up(principal.acr, principal.factor_established):
            return principal.acr if principal.acr == ACR_CPS else "established_key"
        if enrolment_code and _FRESH.is_met_by(principal):
            return "enrolment_code"
        raise StepUpRequired(
            _STRONG_PROOF_ACRS, max_age=STRONG_PROOF_MAX_AGE, detail=ENROLMENT_PROOF_DETAIL
        )

    def spend_enrolment_code(
        self, session: Session, principal: Principal, origin: Origin, code: str, *, event: str
    ) -> None:
        """Consumes a posted enrolment code in the caller's transaction; a wrong one is
        recorded (``event``) and the caller's transaction rolled back."""
        if not self._consume(session, principal.account_id, "enrolment", code):
            where = Origin(client_ip=origin.client_ip, user_agent=origin.user_agent)
            self._refuse(session, where, principal.account_id, event, "wrong_enrolment_code")
            raise InvalidEnrolmentCode()

    def create_recovery_codes(
        self,
        session: Session,
        principal: Principal,
        origin: Origin,
        *,
        enrolment_code: str | None = None,
    ) -> list[str]:
        """New recovery codes, shown once; the previous ones stop working.

        A recovery code resets the password: minting them needs the same proof as a first
        key (:meth:`enrolment_proof`), and a session opened with a recovery code
        never mints more (it would turn one leaked code into a permanent foothold)."""
        if principal.acr == ACR_PASSWORD_RECOVERY:
            raise StepUpRequired(
                _STRONG_PROOF_ACRS, max_age=STRONG_PROOF_MAX_AGE, detail=ENROLMENT_PROOF_DETAIL
            )
        proof = self.enrolment_proof(principal, enrolment_code=enrolment_code)
        if proof == "enrolment_code" and enrolment_code:
            self.spend_enrolment_code(
                session, principal, origin, enrolment_code, event="recovery_codes_refused"
            )
        session.execute(
            delete(AccountCode).where(
                AccountCode.account_id == principal.account_id, AccountCode.kind == "recovery"
            )
        )
        codes = [_new_code(12) for _ in range(self.recovery_code_count)]
        # Dated here, not by the database: a restore compares it to the compromise's
        # start to the microsecond (SQLite's own clock keeps whole seconds).
        minted_at = datetime.now(UTC)
        session.add_all(
            AccountCode(
                account_id=principal.account_id,
                code_hash=self._hash(principal.account_id, code),
                kind="recovery",
                created_at=minted_at,
            )
            for code in codes
        )
        session.flush()
        self.auth.record_for(
            "recovery_codes_created", principal, origin, session=session, reasons=proof
        )
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
        return self._issue_posted_code(
            session, account_id, kind="operator_reset", event="reset_code_issued", operator=operator
        )

    def issue_enrolment_code(self, session: Session, account_id: str, *, operator: str) -> str:
        """A one-time enrolment code for the insurer to send by post: with it, a recent
        password + TOTP login may enrol a first key or mint recovery codes (the post
        reaches the practice, not the mailbox an attacker may hold)."""
        return self._issue_posted_code(
            session,
            account_id,
            kind="enrolment",
            event="enrolment_code_issued",
            operator=operator,
        )

    def _issue_posted_code(
        self, session: Session, account_id: str, *, kind: str, event: str, operator: str
    ) -> str:
        """A single-use, expiring code kept as a keyed hash only; audited and notified
        (the notice says a letter is coming, never the code)."""
        if session.get(Account, account_id) is None:
            raise UnknownAccount()
        code = _new_code(16)
        session.add(
            AccountCode(
                account_id=account_id,
                code_hash=self._hash(account_id, code),
                kind=kind,
                created_at=datetime.now(UTC),
                expires_at=datetime.now(UTC) + self.reset_code_ttl,
            )
        )
        session.flush()
        self.auth.events.record_event(
            event,
            outcome="ok",
            reasons=f"operator:{operator}",
            account_id=account_id,
            session=session,
        )
        self.auth.notify_professional(session, account_id, event)
        return code

    def reset_second_factor(self, session: Session, account_id: str, *, operator: str) -> str:
        """Operator action for a lost second factor: a new TOTP secret (its URI is returned
        for the professional to enrol), security keys and recovery codes removed, every
        session ended. Audited and notified."""
        account = session.get(Account, account_id, with_for_update=True)
        if account is None:
            raise UnknownAccount()
        uri = self._replace_totp(account)
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
        return uri

    def _replace_totp(self, account: Account) -> str:
        """A new TOTP seed for the account; its URI, for the insurer to post."""
        secret = new_secret()
        account.totp_secret_encrypted = self.auth.secret_box.seal(
            secret, context=account.account_id
        )
        account.totp_last_step = 0
        # A new factor, handed over by an operator: the guessing of the old one is over.
        account.mfa_failures, account.mfa_locked_at = 0, None
        return provisioning_uri(secret, login=account.login, issuer=self.auth.totp_issuer)

    def restore_account(
        self, session: Session, account_id: str, *, operator: str, since: datetime
    ) -> RestoreReport:
        """Lifts the suspension of a compromised account and takes back what the attacker
        may have added since ``since`` (the start of the compromise).

        Removed: the keys created since then, the recovery codes minted since then, the
        networks first seen since then (a login from there is new again), every session.
        Forced new: the password (replaced by an unknown one: the professional resets it
        with the code printed here, which the insurer posts) and the TOTP seed (its URI
        printed here, posted too). Keys and codes older than ``since`` are the owner's
        and stay. Audited; the professional is told (e-mail and pending notice).
        """
        account = session.get(Account, account_id, with_for_update=True)
        if account is None:
            raise UnknownAccount()
        if account.status == "active":
            raise AccountNotSuspended()
        keys = list(
            session.scalars(
                select(WebAuthnCredential).where(
                    WebAuthnCredential.account_id == account_id,
                    WebAuthnCredential.created_at >= since,
                )
            )
        )
        removed = tuple(RemovedKey(row.label, as_utc(row.created_at)) for row in keys)
        for row in keys:
            session.delete(row)
        codes = session.execute(
            delete(AccountCode).where(
                AccountCode.account_id == account_id,
                AccountCode.kind == "recovery",
                AccountCode.created_at >= since,
            )
        )
        networks = session.execute(
            delete(KnownOrigin).where(
                KnownOrigin.account_id == account_id, KnownOrigin.first_seen >= since
            )
        )
        ended = self.auth.revoke_sessions(session, account_id, reason="restored")
        account.password_hash = self.auth.hasher.hash(secrets.token_urlsafe(32))
        account.password_changed_at = datetime.now(UTC)
        uri = self._replace_totp(account)
        account.status = "active"
        session.flush()
        report = RestoreReport(
            account_id=account_id,
            since=since,
            keys_removed=removed,
            recovery_codes_removed=int(getattr(codes, "rowcount", 0) or 0),
            sessions_ended=ended,
            networks_forgotten=int(getattr(networks, "rowcount", 0) or 0),
            reset_code=self.issue_reset_code(session, account_id, operator=operator),
            otpauth_uri=uri,
        )
        log.info("account_restored", account_id=account_id, operator=operator)
        self.auth.events.record_event(
            "account_restored",
            outcome="ok",
            reasons=(
                f"operator:{operator},since:{since.isoformat(timespec='seconds')},"
                f"keys_removed:{len(removed)},recovery_codes_removed:"
                f"{report.recovery_codes_removed},sessions_ended:{ended},"
                f"networks_forgotten:{report.networks_forgotten},credentials_reset"
            )[:256],
            account_id=account_id,
            session=session,
        )
        self.auth.notify_professional(
            session,
            account_id,
            "account_restored",
            since=since,
            keys=len(removed),
            codes=report.recovery_codes_removed,
            sessions=ended,
        )
        return report

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
