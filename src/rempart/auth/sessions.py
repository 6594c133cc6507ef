"""Server-side login sessions: idle and absolute timeouts, revocation.

The access token names its session (``sid``); :meth:`SessionStore.resolve` reads
the session and its account in one statement on every request, so a revoked or
idle session stops working at once, whatever the token's own expiry says.
``last_seen_at`` is written at most once per ``touch_seconds`` (a write per
request would cost a row lock on the hot path); idleness is therefore measured
to within that interval.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import BindParameter, DateTime, bindparam, select, update
from sqlalchemy.orm import Session

from rempart.audit.events import Origin
from rempart.errors import RempartError
from rempart.store.direct import DirectStatement
from rempart.store.engine import as_utc
from rempart.store.models import Account, AuthSession

__all__ = ["OpenSession", "SessionExpired", "SessionPolicy", "SessionState", "SessionStore"]


class SessionExpired(RempartError):
    code = "session_expired"
    status = 401

    def __init__(self) -> None:
        super().__init__(
            "the session has ended; log in again",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle_seconds: int = 3600
    absolute_seconds: int = 4 * 3600
    touch_seconds: int = 60


@dataclass(frozen=True, slots=True)
class OpenSession:
    session_id: str
    auth_time: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SessionState:
    """What a request learns about its session and account."""

    session_id: str
    account_id: str
    acr: str
    channel: str
    client_id: str | None
    auth_time: datetime
    account_status: str
    token_epoch: int
    live: bool  # open: not revoked, not idle, not past its absolute end
    factor_established: bool = False
    new_network: bool = False


_RESOLVE = (
    select(
        AuthSession.account_id,
        AuthSession.acr,
        AuthSession.channel,
        AuthSession.client_id,
        AuthSession.auth_time,
        AuthSession.last_seen_at,
        AuthSession.expires_at,
        AuthSession.revoked_at,
        AuthSession.factor_established,
        AuthSession.new_network,
        Account.status,
        Account.token_epoch,
    )
    .join(Account, Account.account_id == AuthSession.account_id)
    .where(AuthSession.session_id == bindparam("sid"))
)
_TOUCH = (
    update(AuthSession)
    .where(AuthSession.session_id == bindparam("sid"))
    .values(last_seen_at=bindparam("now"))
)


# PostgreSQL: the touch rides in the statement that reads the session (a data-modifying
# CTE), so that a request's session check is one round trip even when it is due. The
# SELECT sees the row as it was before the touch, as the two-statement form does. (No
# parameter is named after a column: SQLAlchemy would add it to the UPDATE's SET.)
def _moment(name: str) -> BindParameter[datetime]:
    return bindparam(name, type_=DateTime(timezone=True))


_TOUCHING_RESOLVE = DirectStatement(
    _RESOLVE.add_cte(
        update(AuthSession)
        .where(
            AuthSession.session_id == bindparam("sid"),
            AuthSession.account_id == bindparam("aid"),
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > _moment("now"),
            AuthSession.last_seen_at > _moment("idle_since"),
            AuthSession.last_seen_at <= _moment("touch_before"),
        )
        .values(last_seen_at=_moment("now"))
        .cte("touched")
    )
)


class SessionStore:
    def __init__(self, policy: SessionPolicy) -> None:
        self.policy = policy

    def open(
        self,
        session: Session,
        *,
        account_id: str,
        acr: str,
        origin: Origin,
        channel: str = "portal",
        client_id: str | None = None,
        now: datetime | None = None,
        credential_id: str | None = None,
        factor_established: bool = False,
        new_network: bool = False,
    ) -> OpenSession:
        """``credential_id``, ``factor_established`` and ``new_network`` are fixed for the
        session's life: a key that leaves probation later does not upgrade a session
        opened while it was young (sessions last hours; the probation a day)."""
        now = now or datetime.now(UTC)
        opened = OpenSession(
            session_id=secrets.token_urlsafe(24),
            auth_time=now,
            expires_at=now + timedelta(seconds=self.policy.absolute_seconds),
        )
        session.add(
            AuthSession(
                session_id=opened.session_id,
                account_id=account_id,
                acr=acr,
                channel=channel,
                client_id=client_id,
                auth_time=now,
                last_seen_at=now,
                expires_at=opened.expires_at,
                client_ip=origin.client_ip[:64],
                user_agent=origin.user_agent[:256],
                credential_id=credential_id,
                factor_established=factor_established,
                new_network=new_network,
            )
        )
        session.flush()
        return opened

    def resolve(
        self, session: Session, session_id: str, account_id: str, *, now: datetime | None = None
    ) -> SessionState:
        """The session behind a token (:class:`SessionExpired` if there is none); the
        caller decides, from ``live`` and the account's state, what to answer."""
        now = now or datetime.now(UTC)
        connection = session.connection()
        touching = connection.dialect.name == "postgresql"
        row: Sequence[Any] | None
        if touching:
            row = _TOUCHING_RESOLVE.first_on(
                connection,
                {
                    "sid": session_id,
                    "aid": account_id,
                    "now": now,
                    "idle_since": now - timedelta(seconds=self.policy.idle_seconds),
                    "touch_before": now - timedelta(seconds=self.policy.touch_seconds),
                },
            )
        else:
            row = cast(
                "Sequence[Any] | None",
                connection.execute(_RESOLVE, {"sid": session_id}).one_or_none(),
            )
        if row is None or row[0] != account_id:
            raise SessionExpired()
        (_, acr, channel, client_id, auth_time, last_seen_at, expires_at, revoked_at) = row[:8]
        factor_established, new_network, status, token_epoch = row[8:12]
        last_seen = as_utc(last_seen_at)
        live = revoked_at is None and self._open_at(expires_at, last_seen, now)
        due = (now - last_seen).total_seconds() >= self.policy.touch_seconds
        if live and due and not touching:
            connection.execute(_TOUCH, {"sid": session_id, "now": now})
        return SessionState(
            session_id=session_id,
            account_id=account_id,
            acr=acr,
            channel=channel,
            client_id=client_id,
            auth_time=as_utc(auth_time),
            account_status=status,
            token_epoch=token_epoch,
            live=live,
            factor_established=bool(factor_established),
            new_network=bool(new_network),
        )

    def revoke(self, session: Session, session_id: str, *, reason: str) -> bool:
        result = session.execute(
            update(AuthSession)
            .where(AuthSession.session_id == session_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC), revoked_reason=reason[:32])
        )
        return bool(getattr(result, "rowcount", 0))

    def revoke_all(self, session: Session, account_id: str, *, reason: str) -> int:
        """Ends every open session of an account at once (suspension, password change)."""
        result = session.execute(
            update(AuthSession)
            .where(AuthSession.account_id == account_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC), revoked_reason=reason[:32])
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def list_open(
        self, session: Session, account_id: str, *, now: datetime | None = None
    ) -> list[AuthSession]:
        now = now or datetime.now(UTC)
        rows = session.scalars(
            select(AuthSession)
            .where(AuthSession.account_id == account_id, AuthSession.revoked_at.is_(None))
            .order_by(AuthSession.auth_time)
        ).all()
        return [row for row in rows if self._open_at(row.expires_at, row.last_seen_at, now)]

    def _open_at(self, expires_at: datetime, last_seen: datetime, now: datetime) -> bool:
        """Neither past its absolute end nor idle for too long at ``now``."""
        return (
            now < as_utc(expires_at)
            and (now - as_utc(last_seen)).total_seconds() < self.policy.idle_seconds
        )
