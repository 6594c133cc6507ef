"""Scoping from the live audit trail (``audit_events``, SQLite or PostgreSQL).

The SQL narrows the trail to the definition's candidates through the indexes
the trail has — ``(account_id, ts_us)`` for accounts and alerts, ``ts_us`` for
networks' windows — and streams them; :class:`~rempart.incident.reading.Matcher`
then decides each entry exactly as every source does, so the live trail and an
export give the same reading. Cost: the candidate rows, never the whole trail
(except for a network without a time bound, which has to look at every lookup).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Engine, and_, or_, select, true

from rempart.audit.models import AuditEvent
from rempart.incident.definition import Definition
from rempart.incident.reading import Matcher, ReadingBuilder, TrailReading

__all__ = ["LiveSource"]

_BATCH = 50_000


def _bounded(
    column: ColumnElement[bool], since_us: int | None, until_us: int | None
) -> ColumnElement[bool]:
    conditions = [column]
    if since_us is not None:
        conditions.append(AuditEvent.ts_us >= since_us)
    if until_us is not None:
        conditions.append(AuditEvent.ts_us < until_us)
    return and_(*conditions)


def candidates(definition: Definition) -> ColumnElement[bool]:
    """A superset of the definition's entries that the trail's indexes can find."""
    parts: list[ColumnElement[bool]] = []
    for account_id, since, until in definition.account_filters():
        parts.append(_bounded(AuditEvent.account_id == account_id, since, until))
    sessions = sorted({s for s, _, _ in definition.session_filters()})
    if sessions:
        parts.append(AuditEvent.session_id.in_(sessions))
    for network in definition.networks:
        parts.append(_bounded(true(), network.since_us, network.until_us))
    return or_(*parts) if parts else AuditEvent.ts_us < 0


class LiveSource:
    name = "live"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def read(self, definition: Definition) -> TrailReading:
        matcher = Matcher(definition)
        builder = ReadingBuilder(self.name)
        query = select(
            AuditEvent.subject,
            AuditEvent.ts_us,
            AuditEvent.account_id,
            AuditEvent.session_id,
            AuditEvent.client_ip,
            AuditEvent.outcome,
            AuditEvent.found,
            AuditEvent.categories,
        ).where(AuditEvent.event == "lookup", candidates(definition))
        with self.engine.connect() as connection:
            result = connection.execution_options(stream_results=True, yield_per=_BATCH).execute(
                query
            )
            for rows in result.partitions():
                for subject, ts_us, account_id, session_id, ip, outcome, found, cats in rows:
                    if matcher(account_id, session_id, ip, ts_us):
                        builder.add(
                            subject=subject,
                            ts_us=ts_us,
                            account_id=account_id,
                            outcome=outcome,
                            found=found,
                            categories=cats,
                        )
        return builder.build()
