"""What the console's account pages read: a search over accounts, one account with its
sessions, keys, known networks and recent alerts (no web framework here).

The search matches the account id or the login exactly or by their start, and the
professional's last or first name by their start, case aside; it is paged by offset,
capped at :data:`MAX_OFFSET` (a search that needs more pages is too broad).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from rempart.console.alert_view import AlertFilter, AlertRow, list_alerts_page
from rempart.store.engine import as_utc
from rempart.store.models import (
    Account,
    AuthSession,
    KnownOrigin,
    Professional,
    WebAuthnCredential,
)

__all__ = [
    "ACCOUNT_PAGE",
    "MAX_OFFSET",
    "AccountDetail",
    "AccountRow",
    "account_detail",
    "search_accounts",
]

ACCOUNT_PAGE = 50
MAX_OFFSET = 1000


@dataclass(frozen=True, slots=True)
class AccountRow:
    account_id: str
    login: str
    status: str
    profession: str
    name: str
    organization_id: str


@dataclass(frozen=True, slots=True)
class SessionRow:
    session_id: str
    acr: str
    channel: str
    client_ip: str
    user_agent: str
    since: datetime
    last_seen: datetime
    new_network: bool


@dataclass(frozen=True, slots=True)
class KeyRow:
    label: str
    created_at: datetime
    last_used_at: datetime | None
    new_network: bool


@dataclass(frozen=True, slots=True)
class OriginRow:
    kind: str
    value: str
    """The start of the keyed hash (the trail keeps no address here)."""
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class AccountDetail:
    row: AccountRow
    email: str
    department: str
    rpps: str
    created_at: datetime
    mfa_failures: int
    mfa_locked_at: datetime | None
    sessions: tuple[SessionRow, ...]
    keys: tuple[KeyRow, ...]
    origins: tuple[OriginRow, ...]
    alerts: tuple[AlertRow, ...]


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.casefold() + "%"


def search_accounts(
    session: Session, query: str, *, offset: int = 0, limit: int = ACCOUNT_PAGE
) -> tuple[list[AccountRow], bool]:
    """Accounts matching ``query`` (all of them when empty), by account id; and whether
    there are more."""
    stmt = (
        select(Account, Professional)
        .join(Professional, Professional.account_id == Account.account_id, isouter=True)
        .order_by(Account.account_id)
    )
    query = query.strip()
    if query:
        pattern = _like(query)
        stmt = stmt.where(
            or_(
                Account.account_id == query,
                func.lower(Account.account_id).like(pattern, escape="\\"),
                func.lower(Account.login).like(pattern, escape="\\"),
                func.lower(Professional.last_name).like(pattern, escape="\\"),
                func.lower(Professional.first_name).like(pattern, escape="\\"),
            )
        )
    rows = session.execute(stmt.offset(min(max(offset, 0), MAX_OFFSET)).limit(limit + 1)).all()
    found = [_account_row(account, professional) for account, professional in rows[:limit]]
    return found, len(rows) > limit


def _account_row(account: Account, professional: Professional | None) -> AccountRow:
    return AccountRow(
        account_id=account.account_id,
        login=account.login,
        status=account.status,
        profession=(professional.profession if professional else account.profession) or "",
        name=f"{professional.first_name} {professional.last_name}" if professional else "",
        organization_id=(professional.organization_id or "") if professional else "",
    )


def account_detail(session: Session, account_id: str) -> AccountDetail | None:
    account = session.get(Account, account_id)
    if account is None:
        return None
    professional = session.get(Professional, account_id)
    now = datetime.now(UTC)
    sessions = tuple(
        SessionRow(
            session_id=row.session_id,
            acr=row.acr,
            channel=row.channel,
            client_ip=row.client_ip,
            user_agent=row.user_agent,
            since=as_utc(row.auth_time),
            last_seen=as_utc(row.last_seen_at),
            new_network=row.new_network,
        )
        for row in session.scalars(
            select(AuthSession)
            .where(
                AuthSession.account_id == account_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
            )
            .order_by(AuthSession.auth_time.desc())
            .limit(100)
        )
    )
    keys = tuple(
        KeyRow(
            label=row.label,
            created_at=as_utc(row.created_at),
            last_used_at=as_utc(row.last_used_at) if row.last_used_at else None,
            new_network=row.new_network,
        )
        for row in session.scalars(
            select(WebAuthnCredential)
            .where(WebAuthnCredential.account_id == account_id)
            .order_by(WebAuthnCredential.created_at)
        )
    )
    origins = tuple(
        OriginRow(
            kind=row.kind,
            value=row.value_hash[:12],
            first_seen=as_utc(row.first_seen),
            last_seen=as_utc(row.last_seen),
        )
        for row in session.scalars(
            select(KnownOrigin)
            .where(KnownOrigin.account_id == account_id)
            .order_by(KnownOrigin.kind, KnownOrigin.last_seen.desc())
            .limit(200)
        )
    )
    alerts = list_alerts_page(session, AlertFilter(status=None, account_id=account_id), limit=20)
    return AccountDetail(
        row=_account_row(account, professional),
        email=account.email or (professional.email if professional else ""),
        department=professional.department if professional else "",
        rpps=(professional.rpps or "") if professional else "",
        created_at=as_utc(account.created_at),
        mfa_failures=account.mfa_failures,
        mfa_locked_at=as_utc(account.mfa_locked_at) if account.mfa_locked_at else None,
        sessions=sessions,
        keys=keys,
        origins=origins,
        alerts=alerts.alerts,
    )
