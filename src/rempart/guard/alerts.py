"""The guard's alerts: stored in ``guard_alerts``, listed for the console and the CLI.

The inline driver raises one alert per ``deny`` (the account is suspended in the
same transaction as the alert and the lookup's audit entry). A ``deny`` through
practice software suspends the client instead: its alert names the client
(``client_id``) beside the professional the lookup named (``account_id``, who
stays active). Operators
acknowledge them; ``rempart guard alerts [--status open] [--json]`` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rempart.store.models import GuardAlert

__all__ = ["ALERT_STATUSES", "Alert", "AlertStatus", "acknowledge", "list_alerts", "raise_alert"]

AlertStatus = Literal["open", "acknowledged"]
ALERT_STATUSES: tuple[AlertStatus, ...] = ("open", "acknowledged")


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: int
    created_at: datetime
    account_id: str
    session_id: str
    decision: str
    score: float
    reasons: tuple[str, ...]
    status: str
    audit_ts_us: int
    acknowledged_by: str | None
    client_id: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "alert_id": self.alert_id,
            "created_at": self.created_at.isoformat(),
            "account_id": self.account_id,
            "client_id": self.client_id,
            "session_id": self.session_id,
            "decision": self.decision,
            "score": self.score,
            "reasons": list(self.reasons),
            "status": self.status,
            "audit_ts_us": self.audit_ts_us,
            "acknowledged_by": self.acknowledged_by,
        }


def raise_alert(
    session: Session,
    *,
    account_id: str,
    session_id: str,
    decision: str,
    score: float,
    reasons: tuple[str, ...],
    audit_ts_us: int,
    client_id: str | None = None,
) -> int:
    """Add an open alert in the caller's transaction; returns its id. ``client_id``: the
    practice software suspended by this deny (the lookup came through it)."""
    row = GuardAlert(
        created_at=datetime.fromtimestamp(audit_ts_us / 1_000_000, tz=UTC),
        account_id=account_id,
        client_id=client_id,
        session_id=session_id,
        decision=decision,
        score=float(score),
        reasons=",".join(reasons)[:512],
        status="open",
        audit_ts_us=audit_ts_us,
    )
    session.add(row)
    session.flush()
    return row.alert_id


def list_alerts(
    session: Session,
    *,
    status: AlertStatus | None = None,
    account_id: str | None = None,
    client_id: str | None = None,
    limit: int = 1000,
) -> list[Alert]:
    """Alerts, newest first."""
    query = select(GuardAlert).order_by(GuardAlert.alert_id.desc()).limit(limit)
    if status is not None:
        query = query.where(GuardAlert.status == status)
    if account_id is not None:
        query = query.where(GuardAlert.account_id == account_id)
    if client_id is not None:
        query = query.where(GuardAlert.client_id == client_id)
    return [
        Alert(
            alert_id=row.alert_id,
            created_at=_aware(row.created_at),
            account_id=row.account_id,
            session_id=row.session_id,
            decision=row.decision,
            score=row.score,
            reasons=tuple(r for r in row.reasons.split(",") if r),
            status=row.status,
            audit_ts_us=row.audit_ts_us,
            acknowledged_by=row.acknowledged_by,
            client_id=row.client_id,
        )
        for row in session.scalars(query)
    ]


def acknowledge(session: Session, alert_id: int, *, operator: str) -> bool:
    """Mark an open alert acknowledged by ``operator``; False if there is no such open alert."""
    result = session.execute(
        update(GuardAlert)
        .where(GuardAlert.alert_id == alert_id, GuardAlert.status == "open")
        .values(status="acknowledged", acknowledged_at=datetime.now(UTC), acknowledged_by=operator)
    )
    return bool(getattr(result, "rowcount", 0))


def _aware(moment: datetime) -> datetime:
    # SQLite hands timestamps back naive; they were written in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
