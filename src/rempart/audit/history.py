"""Access history of one person: who read their record, when, and what.

For the DPO and for the person's right of access (GDPR art. 15). The NIR is
turned into its keyed pseudonym and looked up in the trail; the query itself
is recorded in the trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from rempart.audit.chain import AuditEntry
from rempart.audit.models import AuditEvent
from rempart.audit.trail import AuditTrail, now_us
from rempart.nir import NIR, pseudonymize
from rempart.store.models import Professional

__all__ = ["Access", "access_history"]


@dataclass(frozen=True)
class Access:
    at: datetime
    account_id: str
    professional: str
    profession: str
    found: bool
    categories: tuple[str, ...]
    outcome: str


def access_history(
    *,
    nir: NIR,
    audit_engine: Engine,
    data_engine: Engine,
    audit: AuditTrail,
    pseudonym_key: bytes,
    operator: str,
) -> list[Access]:
    subject = pseudonymize(nir, pseudonym_key)
    audit.append(
        [
            AuditEntry(
                seq=0,
                ts_us=now_us(),
                event="access_history",
                account_id=f"operator:{operator}",
                subject=subject,
                outcome="ok",
            )
        ]
    )
    with audit_engine.connect() as connection:
        rows = connection.execute(
            select(
                AuditEvent.ts_us,
                AuditEvent.account_id,
                AuditEvent.found,
                AuditEvent.categories,
                AuditEvent.outcome,
            )
            .where(AuditEvent.subject == subject, AuditEvent.event == "lookup")
            .order_by(AuditEvent.ts_us)
        ).all()
    accounts = {row.account_id for row in rows}
    with data_engine.connect() as connection:
        names = {
            p.account_id: (f"{p.first_name} {p.last_name}", p.profession)
            for p in connection.execute(
                select(
                    Professional.account_id,
                    Professional.first_name,
                    Professional.last_name,
                    Professional.profession,
                ).where(Professional.account_id.in_(accounts))
            )
        }
    return [
        Access(
            at=datetime.fromtimestamp(row.ts_us / 1_000_000, tz=UTC),
            account_id=row.account_id,
            professional=names.get(row.account_id, ("", ""))[0],
            profession=names.get(row.account_id, ("", ""))[1],
            found=row.found == 1,
            categories=tuple(c for c in row.categories.split(",") if c),
            outcome=row.outcome,
        )
        for row in rows
    ]
