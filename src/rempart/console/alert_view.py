"""What the console's alert pages read: alerts filtered and paged, one alert with the
account's lookups around it (no web framework here).

Paging is by key (``alert_id`` descending, the newest first): a page starts below the
last id of the previous one, so a page costs the same whatever its depth, and new alerts
arriving meanwhile do not shift it.

The timeline reads the account's audit entries around the alert through the trail's
``(account_id, ts_us)`` index, bounded by :data:`TIMELINE_LIMIT`. A lookup is
*unexplained* when the guard said so (the reason ``unexplained``: a person found that no
care link, declared doctor or earlier claim explains, read for the first time);
otherwise a found person was explained or already read. The person is shown as the
start of the trail's keyed pseudonym, never as a NIR.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, Select, select
from sqlalchemy.orm import Session

from rempart.audit.models import AuditEvent
from rempart.console.alert_reasons import Reason, event_label, explain_all
from rempart.network import network_of
from rempart.store.engine import as_utc
from rempart.store.models import GuardAlert, Professional

__all__ = [
    "ALERT_PAGE",
    "TIMELINE_LIMIT",
    "AlertFilter",
    "AlertPage",
    "AlertRow",
    "TimelineEntry",
    "alert_detail",
    "list_alerts_page",
]

ALERT_PAGE = 50
TIMELINE_LIMIT = 500
HOUR_US = 3_600_000_000
STATUSES = ("open", "acknowledged")
ALERT_DECISIONS = ("deny", "step_up", "allow")


@dataclass(frozen=True, slots=True)
class AlertFilter:
    status: str | None = "open"
    decision: str | None = None
    account_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    """Exclusive end."""
    before_id: int | None = None


@dataclass(frozen=True, slots=True)
class AlertRow:
    alert_id: int
    created_at: datetime
    account_id: str
    client_id: str | None
    session_id: str
    decision: str
    score: float
    reasons: tuple[Reason, ...]
    status: str
    audit_ts_us: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None


@dataclass(frozen=True, slots=True)
class AlertPage:
    alerts: tuple[AlertRow, ...]
    next_before: int | None
    """The ``before_id`` of the next page, None on the last one."""


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    event: str
    decision: str
    outcome: str
    found: int
    kind: str
    """``unexplained``, ``not_found``, ``explained`` (explained or read before) or
    ``unexamined`` (refused before the person was weighed); empty for no lookup."""
    reasons: tuple[Reason, ...]
    network: str
    client_ip: str
    user_agent: str
    subject: str
    """The first characters of the person's keyed pseudonym."""
    is_alert: bool
    label: str = ""
    """The event in French (``alert_reasons.event_label``)."""


@dataclass(frozen=True, slots=True)
class Origins:
    value: str
    lookups: int
    first: datetime
    last: datetime


@dataclass(frozen=True, slots=True)
class AlertDetail:
    alert: AlertRow
    professional: Professional | None
    timeline: tuple[TimelineEntry, ...]
    truncated: bool
    since: datetime
    until: datetime
    networks: tuple[Origins, ...]
    devices: tuple[Origins, ...]
    counts: dict[str, int]


def _row(alert: GuardAlert) -> AlertRow:
    return AlertRow(
        alert_id=alert.alert_id,
        created_at=as_utc(alert.created_at),
        account_id=alert.account_id,
        client_id=alert.client_id,
        session_id=alert.session_id,
        decision=alert.decision,
        score=alert.score,
        reasons=explain_all(alert.reasons),
        status=alert.status,
        audit_ts_us=alert.audit_ts_us,
        acknowledged_at=as_utc(alert.acknowledged_at) if alert.acknowledged_at else None,
        acknowledged_by=alert.acknowledged_by,
    )


def _filtered(query: Select[GuardAlert], wanted: AlertFilter) -> Select[GuardAlert]:
    if wanted.status is not None:
        query = query.where(GuardAlert.status == wanted.status)
    if wanted.decision is not None:
        query = query.where(GuardAlert.decision == wanted.decision)
    if wanted.account_id:
        query = query.where(GuardAlert.account_id == wanted.account_id)
    if wanted.since is not None:
        query = query.where(GuardAlert.created_at >= wanted.since)
    if wanted.until is not None:
        query = query.where(GuardAlert.created_at < wanted.until)
    if wanted.before_id is not None:
        query = query.where(GuardAlert.alert_id < wanted.before_id)
    return query


def list_alerts_page(
    session: Session, wanted: AlertFilter, *, limit: int = ALERT_PAGE
) -> AlertPage:
    """One page of alerts matching ``wanted``, newest first."""
    query = _filtered(select(GuardAlert), wanted).order_by(GuardAlert.alert_id.desc())
    rows = list(session.scalars(query.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return AlertPage(
        alerts=tuple(_row(row) for row in rows),
        next_before=rows[-1].alert_id if more and rows else None,
    )


def _summary(values: dict[str, list[datetime]]) -> tuple[Origins, ...]:
    return tuple(
        sorted(
            (Origins(value, len(times), min(times), max(times)) for value, times in values.items()),
            key=lambda o: (-o.lookups, o.value),
        )
    )


def alert_detail(
    data_engine: Engine,
    audit_engine: Engine,
    alert_id: int,
    *,
    window_hours: int = 24,
    limit: int = TIMELINE_LIMIT,
) -> AlertDetail | None:
    """The alert, its account's professional, and the account's audit entries from
    ``window_hours`` before to ``window_hours`` after it (lookups and logins), with
    networks and devices summarised; None when there is no such alert."""
    with Session(data_engine) as data:
        alert = data.get(GuardAlert, alert_id)
        if alert is None:
            return None
        row = _row(alert)
        professional = data.get(Professional, alert.account_id)
        if professional is not None:
            data.expunge(professional)
    middle = alert.audit_ts_us or int(row.created_at.timestamp() * 1_000_000)
    start, end = middle - window_hours * HOUR_US, middle + window_hours * HOUR_US
    with Session(audit_engine) as audit:
        entries = list(
            audit.scalars(
                select(AuditEvent)
                .where(
                    AuditEvent.account_id == alert.account_id,
                    AuditEvent.ts_us >= start,
                    AuditEvent.ts_us <= end,
                )
                .order_by(AuditEvent.ts_us, AuditEvent.shard, AuditEvent.seq)
                .limit(limit + 1)
            )
        )
    truncated = len(entries) > limit
    timeline: list[TimelineEntry] = []
    networks: dict[str, list[datetime]] = {}
    devices: dict[str, list[datetime]] = {}
    counts: Counter[str] = Counter()
    for entry in entries[:limit]:
        at = datetime.fromtimestamp(entry.ts_us / 1_000_000, UTC)
        codes = tuple(c for c in entry.reasons.split(",") if c)
        kind = ""
        if entry.event == "lookup":
            if codes[:1] in {("account_suspended",), ("guard_unavailable",)}:
                kind = "unexamined"  # refused before the guard weighed the person
            elif "unexplained" in codes:
                kind = "unexplained"
            elif "not_found" in codes or "malformed_nir" in codes or entry.found == 0:
                kind = "not_found"
            else:
                kind = "explained"
        network = network_of(entry.client_ip) if entry.client_ip else ""
        if entry.event == "lookup":
            counts[entry.decision or "?"] += 1
            counts[kind] += 1
            if network:
                networks.setdefault(network, []).append(at)
            if entry.user_agent:
                devices.setdefault(entry.user_agent, []).append(at)
        timeline.append(
            TimelineEntry(
                at=at,
                event=entry.event,
                decision=entry.decision,
                outcome=entry.outcome,
                found=entry.found,
                kind=kind,
                # Logins carry other notes in ``reasons`` (an operator's name...).
                reasons=explain_all(codes) if entry.event == "lookup" else (),
                network=network,
                client_ip=entry.client_ip,
                user_agent=entry.user_agent,
                subject=entry.subject[:8] if entry.event == "lookup" else "",
                is_alert=entry.ts_us == alert.audit_ts_us and entry.event == "lookup",
                label=event_label(entry.event, entry.outcome),
            )
        )
    return AlertDetail(
        alert=row,
        professional=professional,
        timeline=tuple(timeline),
        truncated=truncated,
        since=datetime.fromtimestamp(start / 1_000_000, UTC),
        until=datetime.fromtimestamp(end / 1_000_000, UTC),
        networks=_summary(networks),
        devices=_summary(devices),
        counts=dict(counts),
    )
