"""Account creation and the two-step login (password, then TOTP), framework-free."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NoReturn, Protocol

import structlog
from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rempart.audit.events import EventRecorder, Origin
from rempart.audit.trail import now_us
from rempart.auth.levels import (
    ACR_CPS,
    ACR_PASSWORD_TOTP,
    ACR_WEBAUTHN,
    PHISHING_RESISTANT,
    StepUpRequired,
    is_strong_login,
    passes_step_up,
)
from rempart.auth.mfa import (
    ChallengeRefusal,
    MfaChallengeStore,
    SecondFactorLocked,
    SecondFactorRequired,
)
from rempart.auth.origins import NewOrigin, OriginTracker
from rempart.auth.passwords import PasswordHasher, check_password_policy
from rempart.auth.secretbox import SecretBox
from rempart.auth.sessions import SessionExpired, SessionStore
from rempart.auth.throttle import LoginThrottle, Throttled
from rempart.auth.tokens import AccessClaims, InvalidToken, TokenSigner
from rempart.auth.totp import new_secret, provisioning_uri, verify_totp
from rempart.errors import RempartError
from rempart.guard.alerts import raise_alert
from rempart.notify.notices import Notice, NoticeBoard
from rempart.ops.metrics import count_step_up
from rempart.store.engine import as_utc
from rempart.store.models import Account, Professional, WebAuthnCredential
from rempart.world.schema import PROFESSIONS

__all__ = [
    "ACR_PASSWORD_TOTP",
    "MFA_GUESSING",
    "AccountCreated",
    "AuthService",
    "InvalidCredentials",
    "IssuedToken",
    "Notifier",
    "Principal",
]

log = structlog.get_logger("rempart.auth")

_LOGIN_SHAPE = re.compile(r"^[A-Za-z0-9._@+-]{3,128}$")
_ACCOUNT_ID_SHAPE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_EMAIL_SHAPE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,63}$")
# The guard alert's reason when an account's second factor is being guessed.
MFA_GUESSING = "mfa_guessing"
# How recent a phishing-resistant login must be to change the password without a code.
_FRESH_SECONDS = 600


class InvalidCredentials(RempartError):
    code = "invalid_credentials"
    status = 401

    def __init__(self) -> None:
        # One text for a wrong password, an unknown login and an account that may not log
        # in (suspended): a credential stuffer must not learn which accounts the guard
        # flagged.
        super().__init__(
            "the login or the password is wrong, or the account cannot be used; "
            "contact the insurer if it persists"
        )


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
    """The authenticated caller of a request: who, in which session, authenticated how and when."""

    account_id: str
    session_id: str
    acr: str
    auth_time: int
    channel: str = "portal"
    client_id: str | None = None
    # The session's factor was established when it opened (the CPS card, or a key past
    # probation not enrolled from a new network): what the guard's step-up asks for.
    factor_established: bool = False
    # The session's login came from a network the account had not used before.
    new_network: bool = False


class Notifier(Protocol):
    """Queues an e-mail in the caller's transaction (``rempart.notify.outbox.Outbox``)."""

    def enqueue(
        self,
        session: Session,
        *,
        kind: str,
        recipient: str,
        account_id: str | None,
        context: dict[str, object],
    ) -> int: ...


@dataclass(frozen=True)
class LoginChallenge:
    mfa_token: str
    methods: tuple[str, ...]


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    # Security notices not shown yet, delivered at a strong login (then marked seen).
    notices: tuple[Notice, ...] = field(default=())


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
        sessions: SessionStore,
        origins: OriginTracker,
        mfa_challenges: MfaChallengeStore,
        mfa_lock_threshold: int = 5,
        notifier: Notifier | None = None,
        new_origin_requires_phishing_resistant: bool = False,
        notices: NoticeBoard | None = None,
        key_probation: timedelta = timedelta(hours=24),
    ) -> None:
        self.hasher = hasher
        self.throttle = throttle
        self.access_tokens = access_tokens
        self.mfa_tokens = mfa_tokens
        self.secret_box = secret_box
        self.password_min_length = password_min_length
        self.totp_issuer = totp_issuer
        self.events = events
        self.sessions = sessions
        self.origins = origins
        self.notifier = notifier
        self.mfa_challenges = mfa_challenges
        self.mfa_lock_threshold = mfa_lock_threshold
        self.new_origin_requires_phishing_resistant = new_origin_requires_phishing_resistant
        self.notices = notices
        self.key_probation = key_probation

    def create_account(
        self,
        session: Session,
        *,
        login: str,
        password: str,
        profession: str | None = None,
        account_id: str | None = None,
        email: str | None = None,
    ) -> AccountCreated:
        if not _LOGIN_SHAPE.match(login):
            raise InvalidAccountInput(
                "a login has 3-128 characters among letters, digits and . _ @ + -"
            )
        if account_id is not None and not _ACCOUNT_ID_SHAPE.match(account_id):
            raise InvalidAccountInput("an account id has 1-64 letters, digits or . _ : -")
        if profession is not None and profession not in PROFESSIONS:
            raise InvalidAccountInput(f"profession must be one of: {', '.join(PROFESSIONS)}")
        if email is not None and not _EMAIL_SHAPE.match(email):
            raise InvalidAccountInput("the e-mail address is not valid")
        check_password_policy(
            password, min_length=self.password_min_length, user_inputs=[login, account_id or ""]
        )
        account_id = account_id or f"acct-{secrets.token_hex(8)}"
        secret = new_secret()
        account = Account(
            account_id=account_id,
            login=login,
            profession=profession,
            email=email,
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

    def check_throttle(self, where: Origin) -> None:
        """Lets an attempt through the throttle, or records that it was throttled and raises."""
        try:
            self.throttle.check(where.login, where.client_ip)
        except Throttled:
            self.events.record_event("login_throttled", outcome="too_many_attempts", origin=where)
            raise

    def second_step(
        self,
        session: Session,
        mfa_token: str,
        origin: Origin,
        *,
        lock: bool = False,
        count_attempt: bool = True,
    ) -> tuple[Account, Origin]:
        """The account an MFA token was issued to, if the token still holds for it (same
        epoch, account active, its challenge open and presented by the client that passed
        the password step), and the origin with the login typed at the first step.

        Every second factor (TOTP, key, recovery code) starts here. ``count_attempt``
        passes the attempt through the throttle and spends one of the token's attempts,
        committed at once (not for fetching a key's options). The factor then ends in
        :meth:`second_factor_failed` or :meth:`second_factor_passed`.
        """
        account_id, login, epoch, challenge_id = self._mfa_claims(mfa_token)
        where = Origin(login=login, client_ip=origin.client_ip, user_agent=origin.user_agent)
        refusal = self.mfa_challenges.check(
            session, challenge_id, account_id=account_id, origin=where
        )
        if refusal is not None:
            self._refuse_mfa_token(session, account_id, where, refusal)
        if count_attempt:
            self.check_throttle(where)
            if not self.mfa_challenges.claim_attempt(session, challenge_id):
                self._refuse_mfa_token(session, account_id, where, ChallengeRefusal.EXHAUSTED)
            # Committed now: the attempt counts whatever the factor turns out to be.
            session.commit()
        account = session.get(Account, account_id, with_for_update=lock)
        if account is None or account.token_epoch != epoch:
            raise InvalidToken()
        if account.status != "active":
            # Answered as any stale token: a suspension is not told before both factors.
            session.rollback()
            self.events.record_event(
                "login_refused", outcome="account_suspended", account_id=account_id, origin=where
            )
            raise InvalidToken()
        return account, where

    def _mfa_claims(self, mfa_token: str) -> tuple[str, str, object, str]:
        payload = self.mfa_tokens.check(mfa_token)
        account_id, login = payload.get("sub"), payload.get("login")
        challenge_id = payload.get("cid")
        if not (
            isinstance(account_id, str) and isinstance(login, str) and isinstance(challenge_id, str)
        ):
            raise InvalidToken()
        return account_id, login, payload.get("epoch"), challenge_id

    def _refuse_mfa_token(
        self, session: Session, account_id: str, where: Origin, refusal: ChallengeRefusal
    ) -> NoReturn:
        session.rollback()
        log.info("mfa_token_refused", account_id=account_id, reason=refusal.value)
        self.events.record_event(
            "mfa_token_refused",
            outcome="invalid_token",
            reasons=refusal.value,
            account_id=account_id,
            origin=where,
        )
        raise InvalidToken("the login token is invalid, expired or already used: log in again")

    def refuse_if_codes_locked(
        self, session: Session, account: Account, where: Origin, *, method: str
    ) -> None:
        """After too many wrong second factors, codes (TOTP, recovery) open nothing: the
        refusal comes before the code is even checked, the right code included."""
        if account.mfa_locked_at is None:
            return
        account_id = account.account_id
        session.rollback()
        log.info("login_refused", reason="mfa_locked", account_id=account_id, method=method)
        self.events.record_event(
            "login_refused",
            outcome="mfa_locked",
            reasons=method,
            account_id=account_id,
            origin=where,
        )
        raise SecondFactorLocked()

    def second_factor_failed(
        self,
        session: Session,
        account_id: str,
        where: Origin,
        *,
        reason: str,
        outcome: str,
        counts: bool = True,
        event: str = "login_failed",
    ) -> None:
        """A wrong second factor after a right password: the request's work is undone,
        the throttle told, and (``counts``: a code that can be guessed) the account's
        non-decaying count raised, which past the threshold locks the codes out, tells
        the owner and raises a guard alert. Committed and recorded before the caller
        raises its refusal."""
        session.rollback()
        self.throttle.failure(where.login, where.client_ip)
        failures = self._count_mfa_failure(session, account_id, where) if counts else None
        session.commit()
        log.info(event, reason=reason, account_id=account_id, mfa_failures=failures)
        self.events.record_event(
            event,
            outcome=outcome,
            reasons=reason if failures is None else f"{reason},mfa_failures:{failures}",
            account_id=account_id,
            origin=where,
        )

    def _count_mfa_failure(self, session: Session, account_id: str, where: Origin) -> int:
        session.execute(
            update(Account)
            .where(Account.account_id == account_id)
            .values(mfa_failures=Account.mfa_failures + 1)
            .execution_options(synchronize_session=False)
        )
        failures = int(
            session.scalar(select(Account.mfa_failures).where(Account.account_id == account_id))
            or 0
        )
        if failures < self.mfa_lock_threshold:
            return failures
        # Conditional: of several workers crossing the threshold at once, one tells.
        locked = session.execute(
            update(Account)
            .where(Account.account_id == account_id, Account.mfa_locked_at.is_(None))
            .values(mfa_locked_at=datetime.now(UTC))
            .execution_options(synchronize_session=False)
        )
        if getattr(locked, "rowcount", 0) == 1:
            self._lock_codes_out(session, account_id, where, failures)
        return failures

    def _lock_codes_out(
        self, session: Session, account_id: str, where: Origin, failures: int
    ) -> None:
        log.warning("mfa_locked", account_id=account_id, mfa_failures=failures)
        raise_alert(
            session,
            account_id=account_id,
            session_id="",
            decision="step_up",
            score=float(failures),
            reasons=(MFA_GUESSING,),
            audit_ts_us=now_us(),
        )
        self.notify_professional(session, account_id, "mfa_locked", failures=failures)
        self.events.record_event(
            "mfa_locked",
            outcome="locked",
            reasons=f"{MFA_GUESSING},mfa_failures:{failures}",
            account_id=account_id,
            session=session,
            origin=where,
        )

    def second_factor_passed(self, session: Session, mfa_token: str, where: Origin) -> None:
        """Spends the token's challenge (in the caller's transaction: a login refused later,
        for a new network say, leaves it open for a key) and clears the source's back-off.
        Of two requests racing with one token, the second is refused here."""
        account_id, _, _, challenge_id = self._mfa_claims(mfa_token)
        if not self.mfa_challenges.spend(session, challenge_id):
            self._refuse_mfa_token(session, account_id, where, ChallengeRefusal.SPENT)
        self.throttle.success(where.login, where.client_ip)

    def clear_mfa_lock(self, session: Session, account_id: str, *, operator: str) -> bool:
        """An operator, having checked who calls, sets the count back and lifts the lock."""
        result = session.execute(
            update(Account)
            .where(Account.account_id == account_id)
            .values(mfa_failures=0, mfa_locked_at=None)
        )
        if not getattr(result, "rowcount", 0):
            return False
        log.info("mfa_lock_cleared", account_id=account_id, operator=operator)
        self.events.record_event(
            "mfa_lock_cleared",
            outcome="ok",
            reasons=f"operator:{operator}",
            account_id=account_id,
            session=session,
        )
        return True

    def _settle_mfa_failures(
        self,
        session: Session,
        account: Account,
        acr: str,
        *,
        established: bool,
        novelty: NewOrigin,
        origin: Origin,
    ) -> None:
        """A successful login sets the count back: always with the CPS card or an
        established key (which also lifts a lock; a young key, perhaps planted with a
        stolen enrolment letter, does not); for a code, only from a network and a device
        the account knows, so that a guesser's own successes elsewhere never wipe his
        failures."""
        if not account.mfa_failures and account.mfa_locked_at is None:
            return
        if passes_step_up(acr, established):
            if account.mfa_locked_at is not None:
                self.events.record_event(
                    "mfa_lock_cleared",
                    outcome="ok",
                    reasons=acr,
                    account_id=account.account_id,
                    session=session,
                    origin=origin,
                )
            account.mfa_failures, account.mfa_locked_at = 0, None
        elif account.mfa_locked_at is None and not (novelty.network or novelty.device):
            account.mfa_failures = 0

    @staticmethod
    def recent_strong_login(principal: Principal, *, now: float | None = None) -> bool:
        """Whether the session itself confirms a sensitive change (no code asked): a login
        with the CPS card or an established key, less than 10 minutes old."""
        return passes_step_up(principal.acr, principal.factor_established) and (
            (time.time() if now is None else now) - principal.auth_time <= _FRESH_SECONDS
        )

    def confirm_second_factor(
        self,
        session: Session,
        principal: Principal,
        account: Account,
        code: str | None,
        where: Origin,
        *,
        event: str,
    ) -> str:
        """A sensitive change by a logged-in professional: a recent login with the CPS card
        or an established key (a young key, perhaps planted with a stolen enrolment letter,
        is not enough), or a fresh TOTP code counted as a login's second factor. Returns how."""
        if self.recent_strong_login(principal):
            return principal.acr
        if code is None:
            raise SecondFactorRequired(_FRESH_SECONDS)
        self.refuse_if_codes_locked(session, account, where, method="totp")
        step = self._totp_step(account, code)
        if step is None or not self._claim_totp_step(session, account.account_id, step):
            self.second_factor_failed(
                session,
                account.account_id,
                where,
                reason="wrong_or_reused_totp",
                outcome="invalid_mfa_code",
                event=event,
            )
            raise InvalidSecondFactor()
        return "totp"

    def _totp_step(self, account: Account, code: str) -> int | None:
        secret = self.secret_box.open(account.totp_secret_encrypted, context=account.account_id)
        return verify_totp(secret, code, last_step=account.totp_last_step)

    @staticmethod
    def _claim_totp_step(session: Session, account_id: str, step: int) -> bool:
        # Conditional update: two requests racing with the same code cannot both win.
        claimed = session.execute(
            update(Account)
            .where(Account.account_id == account_id, Account.totp_last_step < step)
            .values(totp_last_step=step)
        )
        return getattr(claimed, "rowcount", 0) == 1

    def login_password(
        self, session: Session, *, login: str, password: str, address: str, user_agent: str = ""
    ) -> LoginChallenge:
        """First step: checks the throttle, then the password; hands a short MFA token bound
        to this client. A suspended account answers exactly as a wrong password."""
        where = Origin(login=login, client_ip=address, user_agent=user_agent)
        self.check_throttle(where)
        account = session.scalars(select(Account).where(Account.login == login)).one_or_none()
        if account is None:
            self.hasher.verify_dummy(password)
            self._password_refused(where, "login_failed", "invalid_credentials", "unknown_login")
        elif not self.hasher.verify(account.password_hash, password):
            self._password_refused(
                where, "login_failed", "invalid_credentials", "wrong_password", account
            )
        elif account.status != "active":
            # The same answer, work and count as a wrong password: no oracle on which
            # accounts the guard suspended. The truth is in the trail.
            self._password_refused(where, "login_refused", "account_suspended", "", account)
        if self.hasher.needs_rehash(account.password_hash):
            account.password_hash = self.hasher.hash(password)
            log.info("password_rehashed", account_id=account.account_id)
        challenge_id = self.mfa_challenges.open(
            session, account_id=account.account_id, origin=where
        )
        token = self.mfa_tokens.issue(
            account.account_id, login=login, epoch=account.token_epoch, cid=challenge_id
        )
        log.info("login_password_ok", account_id=account.account_id)
        self.events.record_event(
            "login_password_ok",
            outcome="ok",
            account_id=account.account_id,
            session=session,
            origin=where,
        )
        has_key = session.scalar(
            select(exists().where(WebAuthnCredential.account_id == account.account_id))
        )
        codes = () if account.mfa_locked_at is not None else ("totp", "recovery_code")
        methods = ("webauthn", *codes) if has_key else codes
        return LoginChallenge(mfa_token=token, methods=methods)

    def _password_refused(
        self,
        where: Origin,
        event: str,
        outcome: str,
        reason: str,
        account: Account | None = None,
    ) -> NoReturn:
        self.throttle.failure(where.login, where.client_ip)
        account_id = account.account_id if account is not None else ""
        log.info(event, reason=reason, account_id=account_id or None)
        self.events.record_event(
            event,
            outcome=outcome,
            reasons=reason,
            account_id=account_id,
            origin=where,
        )
        raise InvalidCredentials()

    def login_totp(
        self, session: Session, *, mfa_token: str, code: str, address: str, user_agent: str = ""
    ) -> IssuedToken:
        """Second step: a TOTP code, never the same one twice; returns the access token."""
        account, where = self.second_step(
            session, mfa_token, Origin(client_ip=address, user_agent=user_agent), lock=True
        )
        account_id = account.account_id
        self.refuse_if_codes_locked(session, account, where, method="totp")
        step = self._totp_step(account, code)
        if step is None:
            self.second_factor_failed(
                session,
                account_id,
                where,
                reason="wrong_or_reused_totp",
                outcome="invalid_mfa_code",
            )
            raise InvalidSecondFactor()
        if not self._claim_totp_step(session, account_id, step):
            # The right code, taken by a racing request first: no guess, not counted.
            self.second_factor_failed(
                session,
                account_id,
                where,
                reason="totp_race",
                outcome="invalid_mfa_code",
                counts=False,
            )
            raise InvalidSecondFactor()
        self.second_factor_passed(session, mfa_token, where)
        return self.complete_login(
            session, account_id=account_id, acr=ACR_PASSWORD_TOTP, origin=where, method="totp"
        )

    def complete_login(
        self,
        session: Session,
        *,
        account_id: str,
        acr: str,
        origin: Origin,
        method: str,
        replaces_session_id: str | None = None,
        credential_id: str | None = None,
    ) -> IssuedToken:
        """Where every successful authentication ends (TOTP, WebAuthn, Pro Santé Connect,
        recovery code, step-up): the account must be active, a never-seen network or
        device is reported (and may demand a phishing-resistant factor), a server-side
        session is opened and the event recorded with it. A step-up
        (``replaces_session_id``) ends the session it replaces.

        A WebAuthn login names its key (``credential_id``): the session records whether
        that key was established at this moment. A young key does not satisfy the
        new-origin rule either: a key planted through a relayed session must not let its
        planter in from his own networks without the notice-and-wait it is meant to give.
        A strong login (card, Pro Santé Connect, established key) receives the pending
        security notices.
        """
        account = session.get(Account, account_id)
        if account is None:
            raise InvalidToken()
        if account.status != "active":
            session.rollback()  # a refusal is recorded in a transaction of its own
            self.events.record_event(
                "login_refused", outcome="account_suspended", account_id=account_id, origin=origin
            )
            raise AccountSuspended()
        established = acr == ACR_CPS or (
            acr == ACR_WEBAUTHN
            and credential_id is not None
            and self.key_established(session, account_id, credential_id)
        )
        novelty = self.origins.check(session, account_id, origin)
        if (
            novelty.any
            and self.new_origin_requires_phishing_resistant
            and not passes_step_up(acr, established)
        ):
            session.rollback()  # a refusal is recorded in a transaction of its own
            self.events.record_event(
                "login_refused",
                outcome="phishing_resistant_required",
                reasons=f"new_{novelty.reasons}",
                account_id=account_id,
                acr=acr,
                origin=origin,
            )
            count_step_up("new_origin")
            raise StepUpRequired(
                tuple(sorted(PHISHING_RESISTANT)),
                detail="first login from this network or device: use a security key "
                "or the CPS card",
            )
        self._settle_mfa_failures(
            session, account, acr, established=established, novelty=novelty, origin=origin
        )
        opened_at = datetime.now(UTC)
        self.origins.remember(session, account_id, origin, now=opened_at)
        opened = self.sessions.open(
            session,
            account_id=account_id,
            acr=acr,
            origin=origin,
            now=opened_at,
            credential_id=credential_id,
            factor_established=established,
            new_network=novelty.network and not novelty.first_login,
        )
        if replaces_session_id is not None:
            self.sessions.revoke(session, replaces_session_id, reason="step_up")
        token = self.access_tokens.issue_access(
            account_id,
            session_id=opened.session_id,
            acr=acr,
            epoch=account.token_epoch,
            auth_time=int(opened.auth_time.timestamp()),
            expires_at=int(opened.expires_at.timestamp()),
        )
        if novelty.any:
            log.info("login_new_origin", account_id=account_id, new=novelty.reasons)
            self.events.record_event(
                "login_new_origin",
                outcome="notified",
                reasons=novelty.reasons,
                account_id=account_id,
                session_id=opened.session_id,
                acr=acr,
                session=session,
                origin=origin,
            )
            self.notify_professional(
                session,
                account_id,
                "login_new_origin",
                when=opened.auth_time,
                network=f"adresse IP {origin.client_ip}",
                device=origin.user_agent[:120] or "navigateur inconnu",
                method=method,
            )
        notices: tuple[Notice, ...] = ()
        if self.notices is not None and is_strong_login(acr, established):
            notices = tuple(self.notices.deliver(session, account_id))
        event = "step_up_succeeded" if replaces_session_id is not None else "login_succeeded"
        log.info(event, account_id=account_id, acr=acr, method=method)
        # No audit record, no token: this raises AuditUnavailable when the trail is down.
        self.events.record_event(
            event,
            outcome="ok",
            reasons=method,
            account_id=account_id,
            session_id=opened.session_id,
            acr=acr,
            session=session,
            origin=origin,
        )
        expires_in = int((opened.expires_at - opened.auth_time).total_seconds())
        return IssuedToken(access_token=token, expires_in=expires_in, notices=notices)

    def key_established(
        self, session: Session, account_id: str, credential_id: str, *, now: datetime | None = None
    ) -> bool:
        """Whether a key of the account is past its probation and was not enrolled from a
        network new to the account: only such a key answers the guard's step-up."""
        row = session.get(WebAuthnCredential, credential_id)
        if row is None or row.account_id != account_id or row.new_network:
            return False
        return as_utc(row.created_at) + self.key_probation <= (now or datetime.now(UTC))

    def notify_professional(
        self, session: Session, account_id: str, kind: str, **context: object
    ) -> bool:
        """Queue a French e-mail to the professional, in the caller's transaction.

        The address is the account's own, else the insurer's directory entry. Returns
        False (and logs) when there is none or no notifier is configured. Whatever the
        mailbox, the notice is also kept for the account (:mod:`rempart.notify.notices`)
        and shown once at its next strong login: the mailbox may be the attacker's.
        """
        context.setdefault("when", datetime.now(UTC))
        if self.notices is not None:
            self.notices.add(session, account_id, kind, dict(context))
        if self.notifier is None:
            return False
        recipient = session.scalar(select(Account.email).where(Account.account_id == account_id))
        if not recipient:
            recipient = session.scalar(
                select(Professional.email).where(Professional.account_id == account_id)
            )
        if not recipient:
            log.warning("notification_skipped", kind=kind, account_id=account_id, reason="no_email")
            return False
        try:
            self.notifier.enqueue(
                session, kind=kind, recipient=recipient, account_id=account_id, context=context
            )
        except RempartError as exc:
            if exc.code != "invalid_recipient":
                raise
            # A bad address in the directory must not block a login; it is logged instead.
            log.warning("notification_skipped", kind=kind, account_id=account_id, reason=exc.code)
            return False
        return True

    def authenticate(self, session: Session, token: str) -> Principal:
        """Checks a bearer token, its session (open, not idle, not revoked) and its account."""
        claims: AccessClaims = self.access_tokens.check_access(token)
        state = self.sessions.resolve(session, claims.session_id, claims.account_id)
        if state.account_status != "active":
            raise AccountSuspended()  # said plainly: the professional must call the insurer
        if not state.live:
            raise SessionExpired()
        if state.token_epoch != claims.epoch:
            raise InvalidToken()
        return Principal(
            account_id=claims.account_id,
            session_id=claims.session_id,
            acr=state.acr,
            auth_time=int(state.auth_time.timestamp()),
            channel=state.channel,
            client_id=state.client_id,
            factor_established=state.factor_established,
            new_network=state.new_network,
        )

    def record_for(
        self,
        event: str,
        principal: Principal,
        origin: Origin,
        *,
        session: Session,
        reasons: str = "",
    ) -> None:
        """Records what an authenticated caller did, committed with the change it made."""
        self.events.record_event(
            event,
            outcome="ok",
            reasons=reasons,
            account_id=principal.account_id,
            session_id=principal.session_id,
            acr=principal.acr,
            session=session,
            origin=origin,
        )

    def log_out(self, session: Session, principal: Principal, origin: Origin) -> None:
        self.sessions.revoke(session, principal.session_id, reason="logout")
        self.record_for("logout", principal, origin, session=session)

    def revoke_sessions(self, session: Session, account_id: str, *, reason: str) -> int:
        """Ends every session and token of an account at once."""
        session.execute(
            update(Account)
            .where(Account.account_id == account_id)
            .values(token_epoch=Account.token_epoch + 1)
        )
        return self.sessions.revoke_all(session, account_id, reason=reason)

    def suspend(self, session: Session, account_id: str, *, by: str = "") -> bool:
        """Suspends an account and revokes every session and token it holds.

        ``by`` says who decided (``operator:NAME``, later the guard), for the trail."""
        result = session.execute(
            update(Account).where(Account.account_id == account_id).values(status="suspended")
        )
        if not getattr(result, "rowcount", 0):
            return False
        self.revoke_sessions(session, account_id, reason="suspended")
        log.info("account_suspended", account_id=account_id)
        self.events.record_event(
            "account_suspended", outcome="ok", reasons=by, account_id=account_id, session=session
        )
        self.notify_professional(session, account_id, "account_suspended")
        return True

    def restore(self, session: Session, account_id: str, *, operator: str) -> bool:
        """Lifts a suspension, nothing more (sessions ended by it stay ended). After a
        compromise, ``rempart accounts restore`` uses ``RecoveryService.restore_account``,
        which also takes back the factors the attacker added and replaces the credentials."""
        result = session.execute(
            update(Account)
            .where(Account.account_id == account_id, Account.status != "active")
            .values(status="active")
        )
        if not getattr(result, "rowcount", 0):
            return False
        log.info("account_restored", account_id=account_id, operator=operator)
        self.events.record_event(
            "account_restored",
            outcome="ok",
            reasons=f"operator:{operator}",
            account_id=account_id,
            session=session,
        )
        return True
