"""What the incident pages show, read from the database (no web framework here).

Opening, growing, scoping and reporting go through :class:`IncidentService` exactly as
``rempart incident`` does; this module only reads, and writes the CNIL notification's
files where the console serves them from (:func:`produce_notification`, the same calls
as ``rempart incident report``)."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
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
from rempart.incident.severity import AVAILABILITY, INTEGRITY, RECIPIENTS
from rempart.incident.summary import ScopeSummary
from rempart.store.engine import as_utc
from rempart.store.models import Campaign, Incident, IncidentScope, IncidentTransition

__all__ = [
    "CIRCUMSTANCES",
    "ClosingForm",
    "DescriptionForm",
    "IncidentDetail",
    "IncidentRow",
    "describe_incident",
    "incident_detail",
    "incident_rows",
    "notification_dir",
    "notification_document",
    "parse_accounts",
    "parse_closing",
    "parse_description",
    "parse_ids",
    "planned_count",
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
    delay_reason: str = ""
    planned_measures: list[str] = field(default_factory=list)
    circumstances: dict[str, str] = field(default_factory=dict)
    """The circumstances the operator stated, as form values (``malicious``: oui/non)."""

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
        delay_reason=incident.delay_reason,
        planned_measures=[str(m) for m in json.loads(incident.planned_measures)],
        circumstances=_circumstance_values(json.loads(incident.circumstances)),
    )


# -- describing and closing ----------------------------------------------------------------

TEXT_LIMIT = 4000
"""Characters of the cause, the discovery or the delay's reason: a few paragraphs, what
the CNIL's form holds; more is a paste gone wrong, not a statement."""
MEASURE_LIMIT = 500
MEASURES_PER_FORM = 20
MEASURES_LIMIT = 50
NOTE_LIMIT = 2000
"""A closing note: the domain keeps 2,000 characters of a transition's note."""
ECHO_LIMIT = 20_000
"""What a refused form shows back: enough to shorten, never megabytes into a page."""

CIRCUMSTANCES: dict[str, tuple[str, ...]] = {
    "recipients": tuple(RECIPIENTS),
    "malicious": ("oui", "non"),
    "integrity": tuple(INTEGRITY),
    "availability": tuple(AVAILABILITY),
}
"""The ENISA circumstances an operator may state, with the values the form offers (the
severity method's own levels; ``malicious`` as oui/non)."""

_TEXTS = ("cause", "discovery", "delay_reason")
# Bidirectional overrides and isolates reorder what a reader sees (the "Trojan Source"
# trick): invisible in a page, misleading in the CNIL's copy.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_CONTROL_TEXT = "Ce texte contient un caractère de contrôle invisible : retirez-le."


def _circumstance_values(stored: dict[str, Any]) -> dict[str, str]:
    out = {k: str(v) for k, v in stored.items() if k in CIRCUMSTANCES and k != "malicious"}
    if isinstance(stored.get("malicious"), bool):
        out["malicious"] = "oui" if stored["malicious"] else "non"
    return out


def _normalized(raw: str) -> str:
    """Browsers post a textarea's line breaks as CRLF but count them as one character."""
    return raw.replace("\r\n", "\n").replace("\r", "\n")


def _has_control(text: str) -> bool:
    return any((unicodedata.category(c) == "Cc" and c not in "\n\t") or c in _BIDI for c in text)


def _count(n: int) -> str:
    return f"{n:,}".replace(",", "\u00a0")


def _text_problem(text: str, limit: int) -> str:
    if _has_control(text):
        return _CONTROL_TEXT
    if len(text) > limit:
        return (
            f"Texte trop long : {_count(len(text))} caractères pour {_count(limit)} au plus. "
            "Résumez-le ; les pièces détaillées restent dans votre dossier."
        )
    return ""


@dataclass(frozen=True)
class DescriptionForm:
    """The « Décrire l'incident » form as posted. A text field absent from the post keeps
    what is stored (``None``); present and empty, it erases it. ``planned`` holds measures
    to add, one per line (the domain appends them: a stored measure is never rewritten)."""

    cause: str | None
    discovery: str | None
    delay_reason: str | None
    planned: str
    circumstances: dict[str, str]
    problems: dict[str, str]

    def typed(self, name: str, stored: str = "") -> str:
        """What the refused form shows back: the typed text, or ``stored`` for a field
        absent from the post (it would have been kept)."""
        value = getattr(self, name)
        return stored if value is None else str(value)[:ECHO_LIMIT]

    @property
    def planned_lines(self) -> list[str]:
        return [line.strip() for line in self.planned.split("\n") if line.strip()]

    @property
    def stated_circumstances(self) -> dict[str, Any]:
        """What the domain takes: only the circumstances chosen (an empty choice keeps the
        stored value or the definition's default)."""
        return {
            k: (v == "oui") if k == "malicious" else v for k, v in self.circumstances.items() if v
        }


def parse_description(
    values: Mapping[str, str | None], *, stored_measures: int = 0
) -> DescriptionForm:
    """Parse and check the posted description; ``problems`` names each wrong field with a
    French sentence (all of them at once, so one round trip fixes everything)."""
    problems: dict[str, str] = {}
    texts: dict[str, str | None] = {}
    for name in _TEXTS:
        raw = values.get(name)
        if raw is None:
            texts[name] = None
            continue
        text = _normalized(raw)
        texts[name] = text
        if problem := _text_problem(text, TEXT_LIMIT):
            problems[name] = problem
    planned = _normalized(values.get("planned") or "")
    form = DescriptionForm(
        cause=texts["cause"],
        discovery=texts["discovery"],
        delay_reason=texts["delay_reason"],
        planned=planned,
        circumstances={k: (values.get(k) or "").strip()[:32] for k in CIRCUMSTANCES},
        problems=problems,
    )
    lines = form.planned_lines
    if _has_control(planned):
        problems["planned"] = _CONTROL_TEXT
    elif any(len(line) > MEASURE_LIMIT for line in lines):
        problems["planned"] = (
            f"Une mesure dépasse {_count(MEASURE_LIMIT)} caractères : une mesure par ligne, "
            "en une ou deux phrases."
        )
    elif len(lines) > MEASURES_PER_FORM:
        problems["planned"] = (
            f"{len(lines)} mesures d'un coup : {MEASURES_PER_FORM} au plus par envoi."
        )
    elif stored_measures + len(lines) > MEASURES_LIMIT:
        problems["planned"] = (
            f"L'incident compterait {stored_measures + len(lines)} mesures prévues : "
            f"{MEASURES_LIMIT} au plus."
        )
    for key, allowed in CIRCUMSTANCES.items():
        if form.circumstances[key] not in ("", *allowed):
            problems[key] = "Choisissez une valeur de la liste."
    return form


def planned_count(session: Session, incidents: IncidentService, incident_id: int) -> int:
    """The measures already planned (``unknown_incident`` when there is no such incident)."""
    return len(json.loads(incidents.get(session, incident_id).planned_measures))


def describe_incident(
    session: Session,
    incidents: IncidentService,
    incident_id: int,
    form: DescriptionForm,
    operator: str,
) -> None:
    """``rempart incident describe`` with the form's values (the caller commits)."""
    incidents.describe(
        session,
        incident_id,
        operator=operator,
        cause=form.cause,
        discovery=form.discovery,
        delay_reason=form.delay_reason,
        planned=form.planned_lines,
        circumstances=form.stated_circumstances,
    )


@dataclass(frozen=True)
class ClosingForm:
    note: str
    confirmed: bool
    problems: dict[str, str]


def parse_closing(note: str | None, confirmed: str | None) -> ClosingForm:
    """Closing is final: the operator ticks a confirmation; the note is optional."""
    text = _normalized(note or "")
    problems: dict[str, str] = {}
    if problem := _text_problem(text, NOTE_LIMIT):
        problems["note"] = problem
    if confirmed != "oui":
        problems["confirm"] = (
            "Cochez la case pour confirmer : un incident clos ne peut plus changer."
        )
    return ClosingForm(text[:ECHO_LIMIT], confirmed == "oui", problems)


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
