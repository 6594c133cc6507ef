"""Console operators: their accounts, roles, login and sessions (no web framework here).

Operators are the insurer's security staff, apart from the professionals: their own
table, their own sessions, their own throttle pseudonyms. A login takes the password
and a TOTP code together; both are checked before anything is said, and an unknown
login, a wrong password and a wrong code all give ``invalid_credentials``. The cookie
carries a random token whose SHA-256 only is stored; the CSRF token of a session is
derived from that token (:meth:`OperatorService.csrf_token`), so a copy of the table
can forge neither.

Every action an operator takes goes through the same domain calls as the CLI's
``--operator``, with the operator's login; this module records logins and logouts.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NoReturn

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rempart.audit.events import EventRecorder, Origin
from rempart.auth.passwords import PasswordHasher, check_password_policy
from rempart.auth.secretbox import SecretBox
from rempart.auth.throttle import LoginThrottle
from rempart.auth.totp import new_secret, provisioning_uri, verify_totp
from rempart.errors import RempartError
from rempart.store.engine import as_utc
from rempart.store.models import Operator, OperatorSession

__all__ = [
    "ROLES",
    "ROLE_NAMES",
    "ConsoleSession",
    "CreatedOperator",
    "InvalidOperator",
    "OperatorCredentialsInvalid",
    "OperatorService",
    "OperatorSessionEnded",
    "Permission",
    "Role",
    "allowed",
]


class Role(StrEnum):
    ANALYST = "analyst"
    DPO = "dpo"
    ADMIN = "admin"


ROLES = tuple(role.value for role in Role)
ROLE_NAMES = {
    Role.ANALYST: "analyste sécurité",
    Role.DPO: "délégué à la protection des données",
    Role.ADMIN: "administrateur",
}


class Permission(StrEnum):
    """What a page or an action needs. Least privilege: each role sees what its job needs
    and nothing else (an administrator manages operators, not people's data)."""

    OVERVIEW = "overview"
    ALERTS = "alerts"
    ACCOUNTS = "accounts"
    INCIDENTS = "incidents"
    REPORTS = "reports"  # the CNIL notification, the register
    CAMPAIGNS = "campaigns"
    ACCESS_HISTORY = "access_history"
    OPERATORS = "operators"
    CONFIGURATION = "configuration"


_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ANALYST: frozenset(
        {Permission.OVERVIEW, Permission.ALERTS, Permission.ACCOUNTS, Permission.INCIDENTS}
    ),
    Role.DPO: frozenset(
        {
            Permission.OVERVIEW,
            Permission.INCIDENTS,
            Permission.REPORTS,
            Permission.CAMPAIGNS,
            Permission.ACCESS_HISTORY,
        }
    ),
    Role.ADMIN: frozenset({Permission.OVERVIEW, Permission.OPERATORS, Permission.CONFIGURATION}),
}


def allowed(role: str, permission: Permission) -> bool:
    """Whether ``role`` holds ``permission`` (an unknown role holds nothing)."""
    try:
        return permission in _GRANTS[Role(role)]
    except ValueError:
        return False


_LOGIN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


class InvalidOperator(RempartError):
    """A login or role that cannot be created (``invalid_login``, ``invalid_role``,
    ``operator_exists``)."""

    status = 422

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        super().__init__(detail)


class OperatorCredentialsInvalid(RempartError):
    code = "invalid_credentials"
    status = 401

    def __init__(self) -> None:
        super().__init__("wrong login, password or code")


class OperatorSessionEnded(RempartError):
    code = "session_expired"
    status = 401

    def __init__(self) -> None:
        super().__init__("the console session has ended; log in again")


@dataclass(frozen=True, slots=True)
class CreatedOperator:
    login: str
    role: str
    otpauth_uri: str


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """What a console request knows of its operator."""

    login: str
    role: str
    token_hash: str
    expires_at: datetime

    def can(self, permission: Permission) -> bool:
        return allowed(self.role, permission)


@dataclass(frozen=True, slots=True)
class OpenedSession:
    token: str
    """The cookie's value: shown once, never stored."""
    session: ConsoleSession


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


class OperatorService:
    def __init__(
        self,
        *,
        hasher: PasswordHasher,
        secret_box: SecretBox,
        throttle: LoginThrottle,
        events: EventRecorder,
        csrf_key: bytes,
        idle_seconds: int,
        absolute_seconds: int,
        password_min_length: int,
        totp_issuer: str,
        touch_seconds: int = 30,
    ) -> None:
        self._hasher = hasher
        self._box = secret_box
        self._throttle = throttle
        self._events = events
        self._csrf_key = csrf_key
        self.idle = timedelta(seconds=idle_seconds)
        self.absolute = timedelta(seconds=absolute_seconds)
        self._password_min_length = password_min_length
        self._issuer = f"{totp_issuer} console"
        self._touch = timedelta(seconds=touch_seconds)

    # -- accounts ------------------------------------------------------------------------

    def create(
        self, session: Session, *, login: str, role: str, password: str, created_by: str
    ) -> CreatedOperator:
        """Creates an active operator; returns the TOTP provisioning URI (shown once)."""
        login = login.strip().casefold()
        if not _LOGIN.match(login):
            raise InvalidOperator(
                "invalid_login",
                "a login is 2 to 64 characters: lower-case letters, digits, '.', '_', '-'",
            )
        if role not in ROLES:
            raise InvalidOperator("invalid_role", f"the role is one of {', '.join(ROLES)}")
        if session.get(Operator, login) is not None:
            raise InvalidOperator("operator_exists", f"an operator named {login} exists")
        check_password_policy(
            password, min_length=self._password_min_length, user_inputs=[login, "rempart"]
        )
        secret = new_secret()
        session.add(
            Operator(
                login=login,
                role=role,
                password_hash=self._hasher.hash(password),
                totp_secret_encrypted=self._box.seal(secret, context=_context(login)),
                totp_last_step=0,
                status="active",
                created_at=datetime.now(UTC),
                created_by=created_by[:128],
            )
        )
        session.flush()
        self._events.record_event(
            "operator_created",
            outcome="ok",
            account_id=f"operator:{login}",
            reasons=f"role:{role},by:{created_by}"[:256],
            session=session,
        )
        return CreatedOperator(
            login=login,
            role=role,
            otpauth_uri=provisioning_uri(secret, login=login, issuer=self._issuer),
        )

    def list(self, session: Session) -> list[Operator]:
        return list(session.scalars(select(Operator).order_by(Operator.login)))

    # -- login ---------------------------------------------------------------------------

    def login(
        self, session: Session, *, login: str, password: str, code: str, origin: Origin
    ) -> OpenedSession:
        """Checks the throttle, then the password and the code; opens a session.

        Raises :class:`OperatorCredentialsInvalid` (the same for every wrong part) or
        ``Throttled``. The caller commits ``session``."""
        login = login.strip().casefold()[:64]
        # The trail keys the attempt by the login typed (as a pseudonym), known or not.
        origin = replace(origin, login=f"operator:{login}")
        self._throttle.check(f"operator:{login}", origin.client_ip)
        operator = session.get(Operator, login) if login else None
        if operator is None:
            self._hasher.verify_dummy(password)
            self._refuse(login, origin, "unknown_or_wrong_password")
        if not self._hasher.verify(operator.password_hash, password):
            self._refuse(login, origin, "unknown_or_wrong_password")
        if operator.status != "active":
            self._refuse(login, origin, "operator_disabled")
        secret = self._box.open(operator.totp_secret_encrypted, context=_context(login))
        step = verify_totp(secret, code.strip(), last_step=operator.totp_last_step)
        claimed = step is not None and bool(
            getattr(
                session.execute(
                    update(Operator)
                    .where(Operator.login == login, Operator.totp_last_step < step)
                    .values(totp_last_step=step)
                ),
                "rowcount",
                0,
            )
        )
        if not claimed:
            self._refuse(login, origin, "wrong_or_reused_totp")
        if self._hasher.needs_rehash(operator.password_hash):
            operator.password_hash = self._hasher.hash(password)
        self._throttle.success(f"operator:{login}", origin.client_ip)
        now = datetime.now(UTC)
        token = secrets.token_urlsafe(32)
        row = OperatorSession(
            token_hash=token_hash(token),
            login=login,
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.absolute,
            client_ip=origin.client_ip[:64],
            user_agent=origin.user_agent[:256],
        )
        session.add(row)
        session.flush()
        self._events.record_event(
            "operator_login",
            outcome="ok",
            origin=origin,
            account_id=f"operator:{login}",
            acr="totp",
            session=session,
        )
        return OpenedSession(
            token=token,
            session=ConsoleSession(
                login=login,
                role=operator.role,
                token_hash=row.token_hash,
                expires_at=row.expires_at,
            ),
        )

    def _refuse(self, login: str, origin: Origin, reason: str) -> NoReturn:
        self._throttle.failure(f"operator:{login}", origin.client_ip)
        self._events.record_event(
            "operator_login", outcome="refused", origin=origin, reasons=reason
        )
        raise OperatorCredentialsInvalid()

    # -- sessions ------------------------------------------------------------------------

    def resolve(
        self, session: Session, token: str, *, now: datetime | None = None
    ) -> ConsoleSession:
        """The session behind a cookie; :class:`OperatorSessionEnded` when there is none,
        it was ended, it sat idle too long, passed its absolute end, or its operator was
        disabled. Refreshes ``last_seen_at`` at most every ``touch_seconds``."""
        now = now or datetime.now(UTC)
        if not token or len(token) > 128:
            raise OperatorSessionEnded()
        hashed = token_hash(token)
        row = session.execute(
            select(OperatorSession, Operator.role, Operator.status)
            .join(Operator, Operator.login == OperatorSession.login)
            .where(OperatorSession.token_hash == hashed)
        ).one_or_none()
        if row is None:
            raise OperatorSessionEnded()
        stored, role, status = row
        last_seen = as_utc(stored.last_seen_at)
        expires = as_utc(stored.expires_at)
        if (
            stored.revoked_at is not None
            or status != "active"
            or now >= expires
            or now - last_seen >= self.idle
        ):
            raise OperatorSessionEnded()
        if now - last_seen >= self._touch:
            stored.last_seen_at = now
        return ConsoleSession(login=stored.login, role=role, token_hash=hashed, expires_at=expires)

    def logout(self, session: Session, current: ConsoleSession, *, origin: Origin) -> None:
        session.execute(
            update(OperatorSession)
            .where(
                OperatorSession.token_hash == current.token_hash,
                OperatorSession.revoked_at.is_(None),
            )
            .values(revoked_at=datetime.now(UTC))
        )
        self._events.record_event(
            "operator_logout",
            outcome="ok",
            origin=origin,
            account_id=f"operator:{current.login}",
            session=session,
        )

    def csrf_token(self, current: ConsoleSession) -> str:
        """The token every form of this session carries (bound to the session)."""
        mac = hmac.new(self._csrf_key, b"console:" + current.token_hash.encode(), "sha256")
        return mac.hexdigest()

    def csrf_valid(self, current: ConsoleSession, submitted: str) -> bool:
        return hmac.compare_digest(self.csrf_token(current), submitted or "")

    def record_action(
        self,
        session: Session,
        current: ConsoleSession,
        action: str,
        *,
        target: str = "",
        outcome: str = "ok",
        origin: Origin | None = None,
    ) -> None:
        """An operator's action that no domain call records itself (a page that shows
        personal data, an alert acknowledged...), in the audit trail with the operator
        named: ``account_id`` is ``operator:LOGIN``, ``reasons`` the action and target."""
        self._events.record_event(
            f"console_{action}"[:40],
            outcome=outcome,
            origin=origin,
            account_id=f"operator:{current.login}",
            reasons=target[:256],
            session=session,
        )


def _context(login: str) -> str:
    return f"operator:{login}"
