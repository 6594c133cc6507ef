"""What the incident pages show, read from the database (no web framework here).

Opening, growing, scoping and reporting go through :class:`IncidentService` exactly as
``rempart incident`` does; this module only reads, and writes the CNIL notification's
files where the console serves them from (:func:`produce_notification`, the same calls
as ``rempart incident report``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rempart.console.dpo_texts import INCIDENT_STATUS, french_moment
from rempart.incident.definition import Definition
from rempart.incident.report import write_report
from rempart.incident.service import IncidentError, IncidentService
from rempart.incident.summary import ScopeSummary
from rempart.store.engine import as_utc
from rempart.store.models import Campaign, Incident, IncidentScope, IncidentTransition

__all__ = [
    "IncidentDetail",
    "IncidentRow",
    "incident_detail",
    "incident_rows",
    "notification_dir",
    "notification_document",
    "parse_accounts",
    "parse_ids",
    "produce_notification",
]

_SEPARATORS = re.compile(r"[\s,;]+")


def parse_accounts(raw: str) -> list[str]:
    """Account ids typed in one field, separated by commas, semicolons or spaces."""
    return [a[:64] for a in _SEPARATORS.split(raw) if a]


def parse_ids(values: list[str]) -> list[int] | None:
    """Alert ids from a form's repeated field; ``None`` when one is not a number."""
    ids = []
    for raw in values:
        value = raw.strip()
        if not value.isdigit() or len(value) > 12:
            return None
        ids.append(int(value))
    return ids


@dataclass(frozen=True)
class IncidentRow:
    incident_id: int
    name: str
    status: str
    status_text: str
    persons: int | None
    records: int | None
    opened_at: str
    aware_at: str
    scoped_at: str
    reported: bool


def _summary(raw: str | None) -> dict[str, Any]:
    return {} if raw is None else dict(json.loads(raw))


def incident_rows(session: Session, *, limit: int = 500) -> list[IncidentRow]:
    """The register as the list page shows it, newest first (one query)."""
    rows = session.execute(
        select(Incident, IncidentScope.summary, IncidentScope.scoped_at)
        .outerjoin(
            IncidentScope,
            (IncidentScope.incident_id == Incident.incident_id)
            & (IncidentScope.version == Incident.scope_version),
        )
        .order_by(Incident.incident_id.desc())
        .limit(limit)
    ).all()
    out = []
    for incident, summary_raw, scoped_at in rows:
        summary = _summary(summary_raw)
        out.append(
            IncidentRow(
                incident_id=incident.incident_id,
                name=incident.name,
                status=incident.status,
                status_text=INCIDENT_STATUS.get(incident.status, incident.status),
                persons=summary.get("persons"),
                records=summary.get("records"),
                opened_at=french_moment(as_utc(incident.opened_at)),
                aware_at=french_moment(as_utc(incident.aware_at)),
                scoped_at=french_moment(as_utc(scoped_at)) if scoped_at else "",
                reported=incident.reported_version > 0,
            )
        )
    return out


def _from_us(value: int | None) -> str:
    if value is None:
        return ""
    return french_moment(datetime.fromtimestamp(value / 1_000_000, UTC))


def _period(since_us: int | None, until_us: int | None) -> str:
    if since_us is None and until_us is None:
        return "toute la période"
    if since_us is None:
        return f"jusqu'au {_from_us(until_us)}"
    if until_us is None:
        return f"depuis le {_from_us(since_us)}"
    return f"du {_from_us(since_us)} au {_from_us(until_us)}"


@dataclass(frozen=True)
class DefinitionLine:
    kind: str
    subject: str
    period: str


@dataclass(frozen=True)
class TransitionLine:
    at: str
    status_text: str
    operator: str
    note: str


@dataclass(frozen=True)
class CampaignLine:
    campaign_id: int
    kind: str
    status: str
    persons: int
    scope_version: int


@dataclass
class IncidentDetail:
    incident_id: int
    name: str
    status: str
    status_text: str
    opened_at: str
    opened_by: str
    aware_at: str
    discovery: str
    cause: str
    definition_changed: bool
    scope_version: int
    reported_version: int
    definition: list[DefinitionLine]
    transitions: list[TransitionLine]
    scope: ScopeSummary | None
    campaigns: list[CampaignLine] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        return self.status == "closed"

    @property
    def report_current(self) -> bool:
        """A CNIL notification covers the latest scope."""
        return self.reported_version > 0 and self.reported_version == self.scope_version

    @property
    def campaign_due(self) -> bool:
        """A campaign is yet to be planned for the latest scope (the first, or a
        complementary one for the persons a re-scope added)."""
        if self.scope is None or self.closed or self.definition_changed:
            return False
        return all(c.scope_version < self.scope_version for c in self.campaigns)

    @property
    def scope_period(self) -> str:
        if self.scope is None:
            return ""
        return _period(self.scope.first_us, self.scope.last_us)


def _definition_lines(definition: Definition) -> list[DefinitionLine]:
    lines = [
        DefinitionLine("Compte", a.account_id, _period(a.since_us, a.until_us))
        for a in definition.accounts
    ]
    lines += [
        DefinitionLine("Réseau", n.cidr, _period(n.since_us, n.until_us))
        for n in definition.networks
    ]
    lines += [DefinitionLine("Session", s, "toute la session") for s in definition.sessions]
    lines += [
        DefinitionLine(
            "Alerte",
            f"n° {a.alert_id} (compte {a.account_id})",
            "toute la session" if a.session_id else _period(a.since_us, a.until_us),
        )
        for a in definition.alerts
    ]
    return lines


def incident_detail(
    session: Session, incidents: IncidentService, incident_id: int
) -> IncidentDetail:
    """One incident (``IncidentError`` ``unknown_incident`` when there is none)."""
    incident = incidents.get(session, incident_id)
    transitions = [
        TransitionLine(
            at=french_moment(as_utc(t.at)),
            status_text=INCIDENT_STATUS.get(t.status_to, t.status_to),
            operator=t.operator,
            note=t.note,
        )
        for t in session.scalars(
            select(IncidentTransition)
            .where(IncidentTransition.incident_id == incident_id)
            .order_by(IncidentTransition.transition_id)
        )
    ]
    campaigns = [
        CampaignLine(c.campaign_id, c.kind, c.status, c.persons, c.scope_version)
        for c in session.scalars(
            select(Campaign)
            .where(Campaign.incident_id == incident_id)
            .order_by(Campaign.campaign_id)
        )
    ]
    return IncidentDetail(
        incident_id=incident.incident_id,
        name=incident.name,
        status=incident.status,
        status_text=INCIDENT_STATUS.get(incident.status, incident.status),
        opened_at=french_moment(as_utc(incident.opened_at)),
        opened_by=incident.opened_by,
        aware_at=french_moment(as_utc(incident.aware_at)),
        discovery=incident.discovery,
        cause=incident.cause,
        definition_changed=incident.definition_changed,
        scope_version=incident.scope_version,
        reported_version=incident.reported_version,
        definition=_definition_lines(Definition.from_json(incident.definition)),
        transitions=transitions,
        scope=incidents.latest_scope(session, incident_id),
        campaigns=campaigns,
    )


# -- the CNIL notification ---------------------------------------------------------------


def notification_dir(data_dir: Path, incident_id: int) -> Path:
    """Where the console keeps the latest notification of an incident (the three files
    of ``rempart incident report``)."""
    return data_dir / "notifications" / f"incident-{incident_id}"


def produce_notification(
    session: Session, incidents: IncidentService, incident_id: int, data_dir: Path, operator: str
) -> str:
    """Write the notification of the incident's latest scope and record it in the
    register, as ``rempart incident report`` does; returns its kind (``initial`` or
    ``complementary``). The caller commits ``session``."""
    incident = incidents.get(session, incident_id)
    if incident.definition_changed:
        raise IncidentError("definition_changed", "the definition grew since the last scoping")
    facts = incidents.facts(session, incident_id)
    write_report(facts, notification_dir(data_dir, incident_id))
    return incidents.mark_reported(session, incident_id, operator=operator)


def notification_document(data_dir: Path, incident_id: int) -> dict[str, Any] | None:
    """The stored notification (``report.json``), or ``None`` when none was made."""
    path = notification_dir(data_dir, incident_id) / "report.json"
    if not path.is_file():
        return None
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document
