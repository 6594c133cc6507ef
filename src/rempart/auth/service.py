"""Account creation and the two-step login (password, then TOTP), framework-free."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import structlog
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rempart.audit.events import EventRecorder, Origin
from rempart.auth.passwords import PasswordHasher, check_password_policy
from rempart.auth.secretbox import SecretBox
from rempart.auth.throttle import LoginThrottle, Throttled
from rempart.auth.tokens import AccessClaims, InvalidToken, TokenSigner
from rempart.auth.totp import new_secret, provisioning_uri, verify_totp
from rempart.errors import RempartError
from rempart.store.models import Account
from rempart.world.schema import PROFESSIONS

__all__ = [
    "ACR_PASSWORD_TOTP",
    "AccountCreated",
    "AuthService",
    "InvalidCredentials",
    "Principal",
]

log = structlog.get_logger("rempart.auth")

ACR_PASSWORD_TOTP = "password+totp"  # noqa: S105 - an assurance level name
_ACCOUNT_STATE = select(Account.status, Account.token_epoch).where(
    Account.account_id == bindparam("account_id")
)
_LOGIN_SHAPE = re.compile(r"^[A-Za-z0-9._@+-]{3,128}$")
_ACCOUNT_ID_SHAPE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class InvalidCredentials(RempartError):
    code = "invalid_credentials"
    status = 401

    def __init__(self) -> None:
        super().__init__("the login or the password is wrong")


class InvalidSecondFactor(RempartError):
    code = "invalid_mfa_code"
    status = 401

    def __init__(self) -> None:
        super().__init__("the code is wrong, expired or already used")


class AccountSuspended(RempartError):
    code = "account_suspended"
    status = 403

    def __init__(self) -> None:
        super().__init__("this account is suspended; contact the insurer's security team")


class AccountConflict(RempartError):
    code = "account_exists"
    status = 409


class InvalidAccountInput(RempartError):
    code = "invalid_account"
    status = 422


@dataclass(frozen=True)
class AccountCreated:
    account_id: str
    login: str
    otpauth_uri: str


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of a request."""

    account_id: str
    session_id: str
    acr: str


@dataclass(frozen=True)
class LoginChallenge:
    mfa_token: str
    methods: tuple[str, ...]


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


class AuthService:
    def __init__(
        self,
        *,
        hasher: PasswordHasher,
        throttle: LoginThrottle,
        access_tokens: TokenSigner,
        mfa_tokens: TokenSigner,
        secret_box: SecretBox,
        password_min_length: int,
        totp_issuer: str,
        events: EventRecorder,
    ) -> None:
        self.hasher = hasher
        self.throttle = throttle
        self.access_tokens = access_tokens
        self.mfa_tokens = mfa_tokens
        self.secret_box = secret_box
        self.password_min_length = password_min_length
        self.totp_issuer = totp_issuer
        self.events = events

    def create_account(
        self,
        session: Session,
        *,
        login: str,
        password: str,
        profession: str | None = None,
        account_id: str | None = None,
    ) -> AccountCreated:
        if not _LOGIN_SHAPE.match(login):
            raise InvalidAccountInput(
                "a login has 3-128 characters among letters, digits and . _ @ + -"
            )
        if account_id is not None and not _ACCOUNT_ID_SHAPE.match(account_id):
            raise InvalidAccountInput("an account id has 1-64 letters, digits or . _ : -")
        if profession is not None and profession not in PROFESSIONS:
            raise InvalidAccountInput(f"profession must be one of: {', '.join(PROFESSIONS)}")
        check_password_policy(
            password, min_length=self.password_min_length, user_inputs=[login, account_id or ""]
        )
        account_id = account_id or f"acct-{secrets.token_hex(8)}"
        secret = new_secret()
        account = Account(
            account_id=account_id,
            login=login,
            profession=profession,
            password_hash=self.hasher.hash(password),
            totp_secret_encrypted=self.secret_box.seal(secret, context=account_id),
            totp_last_step=0,
            status="active",
            token_epoch=0,
        )
        session.add(account)
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            raise AccountConflict("an account with this login or account id exists") from None
        log.info("account_created", account_id=account_id)
        self.events.record_event(
            "account_created", outcome="ok", account_id=account_id, login=login, session=session
        )
        return AccountCreated(
            account_id=account_id,
            login=login,
            otpauth_uri=provisioning_uri(secret, login=login, issuer=self.totp_issuer),
        )

    def login_password(
        self, session: Session, *, login: str, password: str, address: str, user_agent: str = ""
    ) -> LoginChallenge:
        """First step: checks the throttle, then the password; hands a short MFA token."""
        where = Origin(login=login, client_ip=address, user_agent=user_agent)
        try:
            self.throttle.check(login, address)
        except Throttled:
            self.events.record_event("login_throttled", outcome="too_many_attempts", origin=where)
            raise
        account = session.scalars(select(Account).where(Account.login == login)).one_or_none()
        if account is None:
            self.hasher.verify_dummy(password)
            self.throttle.failure(login, address)
            log.info("login_failed", reason="unknown_login")
            self.events.record_event(
                "login_failed", outcome="invalid_credentials", reasons="unknown_login", origin=where
            )
            raise InvalidCredentials()
        if not self.hasher.verify(account.password_hash, password):
            self.throttle.failure(login, address)
            log.info("login_failed", reason="wrong_password", account_id=account.account_id)
            self.events.record_event(
                "login_failed",
                outcome="invalid_credentials",
                reasons="wrong_password",
                account_id=account.account_id,
                origin=where,
            )
            raise InvalidCredentials()
        if self.hasher.needs_rehash(account.password_hash):
            account.password_hash = self.hasher.hash(password)
            log.info("password_rehashed", account_id=account.account_id)
        if account.status != "active":
            log.info("login_refused", reason="suspended", account_id=account.account_id)
            self.events.record_event(
                "login_refused",
                outcome="account_suspended",
                account_id=account.account_id,
                origin=where,
            )
            raise AccountSuspended()
        token = self.mfa_tokens.issue(account.account_id, login=login, epoch=account.token_epoch)
        log.info("login_password_ok", account_id=account.account_id)
        self.events.record_event(
            "login_password_ok",
            outcome="ok",
            account_id=account.account_id,
            session=session,
            origin=where,
        )
        return LoginChallenge(mfa_token=token, methods=("totp",))

    def login_totp(
        self, session: Session, *, mfa_token: str, code: str, address: str, user_agent: str = ""
    ) -> IssuedToken:
        """Second step: a TOTP code, never the same one twice; returns the access token."""
        payload = self.mfa_tokens.check(mfa_token)
        account_id, login, epoch = payload.get("sub"), payload.get("login"), payload.get("epoch")
        if not isinstance(account_id, str) or not isinstance(login, str):
            raise InvalidToken()
        where = Origin(login=login, client_ip=address, user_agent=user_agent)
        try:
            self.throttle.check(login, address)
        except Throttled:
            self.events.record_event("login_throttled", outcome="too_many_attempts", origin=where)
            raise
        account = session.get(Account, account_id, with_for_update=True)
        if account is None or account.token_epoch != epoch:
            raise InvalidToken()
        if account.status != "active":
            raise AccountSuspended()
        secret = self.secret_box.open(account.totp_secret_encrypted, context=account.account_id)
        step = verify_totp(secret, code, last_step=account.totp_last_step)
        if step is None:
            self.throttle.failure(login, address)
            log.info("login_failed", reason="wrong_totp", account_id=account_id)
            self.events.record_event(
                "login_failed",
                outcome="invalid_mfa_code",
                reasons="wrong_or_reused_totp",
                account_id=account_id,
                origin=where,
            )
            raise InvalidSecondFactor()
        # Conditional update: two requests racing with the same code cannot both win.
        claimed = session.execute(
            update(Account)
            .where(Account.account_id == account_id, Account.totp_last_step < step)
            .values(totp_last_step=step)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            self.throttle.failure(login, address)
            session.rollback()  # the refusal is recorded in a transaction of its own
            self.events.record_event(
                "login_failed",
                outcome="invalid_mfa_code",
                reasons="totp_race",
                account_id=account_id,
                origin=where,
            )
            raise InvalidSecondFactor()
        self.throttle.success(login)
        token, session_id = self.access_tokens.issue_access(
            account_id, acr=ACR_PASSWORD_TOTP, epoch=account.token_epoch
        )
        log.info("login_succeeded", account_id=account_id, acr=ACR_PASSWORD_TOTP)
        # No audit record, no token: this raises AuditUnavailable when the trail is down.
        self.events.record_event(
            "login_succeeded",
            outcome="ok",
            account_id=account_id,
            session_id=session_id,
            acr=ACR_PASSWORD_TOTP,
            session=session,
            origin=where,
        )
        return IssuedToken(access_token=token, expires_in=self.access_tokens.ttl_seconds)

    def authenticate(self, session: Session, token: str) -> Principal:
        """Checks a bearer token and that its account is still active and not revoked."""
        claims: AccessClaims = self.access_tokens.check_access(token)
        # Core execution (no ORM bookkeeping): this runs on every request.
        row = (
            session.connection()
            .execute(_ACCOUNT_STATE, {"account_id": claims.account_id})
            .one_or_none()
        )
        if row is None or row.token_epoch != claims.epoch:
            raise InvalidToken()
        if row.status != "active":
            raise AccountSuspended()
        return Principal(account_id=claims.account_id, session_id=claims.session_id, acr=claims.acr)

    def suspend(self, session: Session, account_id: str) -> bool:
        """Suspends an account and revokes every token it holds."""
        result = session.execute(
            update(Account)
            .where(Account.account_id == account_id)
            .values(status="suspended", token_epoch=Account.token_epoch + 1)
        )
        log.info("account_suspended", account_id=account_id)
        self.events.record_event(
            "account_suspended", outcome="ok", account_id=account_id, session=session
        )
        return bool(getattr(result, "rowcount", 0))
