"""The breach register of GDPR Art. 33(5): every incident, notified or not.

One row per incident with its facts, its severity and both decisions with their
reasoning, as the CNIL asks to see them on inspection. Two exports:

- **JSON** (``register_json``): typed values (ISO 8601 UTC dates, numbers,
  booleans, lists), for tools; ``rows_from_json`` reads it back.
- **CSV** (``register_csv``), for the DPO's spreadsheet, shaped for French Excel:
  ``;`` as separator (French Excel's list separator, since the comma is the
  decimal mark), decimal commas, ``oui``/``non``, dates as ``JJ/MM/AAAA HH:MM``
  in Paris time, French headers, and UTF-8 **with a BOM**: without it Excel reads
  a CSV in the ANSI code page and garbles every accented letter; LibreOffice and
  Python (``utf-8-sig``) take the BOM in their stride. Rows end in CRLF (RFC 4180).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from rempart.incident.charts import PARIS, REVEAL_LABELS
from rempart.incident.report import MEASURE_LABELS
from rempart.incident.severity import assess, cnil_decision, people_decision
from rempart.incident.summary import IncidentFacts

__all__ = [
    "CSV_HEADERS",
    "RegisterRow",
    "csv_record",
    "register_csv",
    "register_json",
    "register_rows",
    "rows_from_json",
]

BOM = "\ufeff"

# What the register lists as categories: what the lookups returned, then what the
# exposure revealed (the same keys and labels as the report's chart).
_CATEGORY_SOURCES = (
    ("identity", "category"),
    ("nir", "category"),
    ("treating_doctor", "category"),
    ("health", "reveal"),
    ("low_income", "reveal"),
    ("irregular_residence", "reveal"),
)


@dataclass(frozen=True)
class RegisterRow:
    incident_id: int
    name: str
    status: str
    opened_at: str
    aware_at: str
    first_exposure: str | None
    last_exposure: str | None
    ongoing: bool
    persons: int
    records: int
    categories: tuple[str, ...]
    """Keys of ``REVEAL_LABELS`` present (at least one person)."""
    sensitive: bool
    minors: int
    over_75: int
    severity_score: float
    severity_band: str
    cnil_required: bool
    cnil_reasoning: str
    people_required: bool
    people_reasoning: str
    notification_kind: str
    notified_at: tuple[str, ...]
    """Every CNIL report made (the incident entered ``reported``): the initial and the
    complementary notifications."""
    people_informed: str
    """``done``, ``planned`` or ``none``."""
    people_informed_at: str | None
    measures: str
    """French summary of the measures taken, e.g. ``Suspension du compte (19)``."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["categories"] = list(self.categories)
        data["notified_at"] = list(self.notified_at)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegisterRow:
        data = dict(data)
        data["categories"] = tuple(data["categories"])
        data["notified_at"] = tuple(data["notified_at"])
        return cls(**data)


CSV_HEADERS: dict[str, str] = {
    "incident_id": "N° incident",
    "name": "Intitulé",
    "status": "Statut",
    "opened_at": "Ouvert le",
    "aware_at": "Prise de connaissance",
    "first_exposure": "Début de la violation",
    "last_exposure": "Fin de la violation",
    "ongoing": "En cours",
    "persons": "Personnes concernées",
    "records": "Enregistrements concernés",
    "categories": "Catégories de données",
    "sensitive": "Données sensibles",
    "minors": "Mineurs",
    "over_75": "Plus de 75 ans",
    "severity_score": "Score de gravité (ENISA)",
    "severity_band": "Gravité",
    "cnil_required": "Notification CNIL requise",
    "cnil_reasoning": "Motif (article 33)",
    "people_required": "Information des personnes requise",
    "people_reasoning": "Motif (article 34)",
    "notification_kind": "Type de notification",
    "notified_at": "Notifiée à la CNIL le",
    "people_informed": "Information des personnes",
    "people_informed_at": "Date de l'information",
    "measures": "Mesures prises",
}
"""CSV column headers (French), in the row's field order."""

_BANDS = {
    "pending": "à évaluer",
    "low": "faible",
    "medium": "moyenne",
    "high": "élevée",
    "very_high": "très élevée",
}
_KINDS = {"initial": "initiale", "complementary": "complémentaire"}
_INFORMED = {"done": "effectuée", "planned": "prévue", "none": "non"}


def _iso_from_us(us: int | None) -> str | None:
    return None if us is None else datetime.fromtimestamp(us / 1_000_000, tz=UTC).isoformat()


def _measures_summary(facts: IncidentFacts) -> str:
    counts: Counter[str] = Counter()
    for m in facts.measures:
        counts[MEASURE_LABELS.get(m.event, m.event)] += m.count
    return " ; ".join(f"{label} ({n})" for label, n in sorted(counts.items())) or "aucune"


def _row(facts: IncidentFacts) -> RegisterRow:
    scope = facts.scope
    categories = tuple(
        key
        for key, source in _CATEGORY_SOURCES
        if (scope.by_category if source == "category" else scope.by_reveal).get(key, 0) > 0
    )
    if scope.version == 0:
        # Not scoped yet: registered all the same, its decisions pending (a severity
        # computed on no data would read as "low" and mislead).
        score, band = 0.0, "pending"
        cnil_required, cnil_reasoning = False, _PENDING
        people_required, people_reasoning = False, _PENDING
    else:
        severity = assess(facts)
        cnil = cnil_decision(severity)
        people = people_decision(severity, facts)
        score, band = severity.score, severity.band.value
        cnil_required, cnil_reasoning = cnil.required, cnil.reasoning
        people_required, people_reasoning = people.required, people.reasoning
    return RegisterRow(
        incident_id=facts.incident_id,
        name=facts.name,
        status=facts.status,
        opened_at=facts.opened_at,
        aware_at=facts.aware_at,
        first_exposure=_iso_from_us(scope.first_us),
        last_exposure=None if facts.ongoing else _iso_from_us(scope.last_us),
        ongoing=facts.ongoing,
        persons=scope.persons,
        records=scope.records,
        categories=categories,
        sensitive=any(k in categories for k in ("health", "irregular_residence")),
        minors=int(scope.by_reveal.get("minor", 0)),
        over_75=int(scope.by_reveal.get("over_75", 0)),
        severity_score=score,
        severity_band=band,
        cnil_required=cnil_required,
        cnil_reasoning=cnil_reasoning,
        people_required=people_required,
        people_reasoning=people_reasoning,
        notification_kind=facts.notification,
        notified_at=tuple(t.at for t in facts.transitions if t.status == "reported"),
        people_informed=str(facts.communication.get("status", "none")),
        people_informed_at=facts.communication.get("date"),
        measures=_measures_summary(facts),
    )


def register_rows(facts_list: Iterable[IncidentFacts]) -> list[RegisterRow]:
    """One row per incident, by incident number."""
    return [_row(f) for f in sorted(facts_list, key=lambda f: f.incident_id)]


def register_json(rows: list[RegisterRow]) -> str:
    return json.dumps([r.to_dict() for r in rows], ensure_ascii=False, indent=2) + "\n"


def rows_from_json(text: str) -> list[RegisterRow]:
    return [RegisterRow.from_dict(item) for item in json.loads(text)]


def _csv_date(iso: str | None) -> str:
    if not iso:
        return ""
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(PARIS).strftime("%d/%m/%Y %H:%M")


def _csv_number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".").replace(".", ",")


def _label(table: dict[str, str]) -> Callable[[Any], str]:
    return lambda value: table.get(str(value), str(value))


_DATES = ("opened_at", "aware_at", "first_exposure", "last_exposure", "people_informed_at")
_CSV_FORMATS: dict[str, Callable[[Any], str]] = {
    **dict.fromkeys(_DATES, _csv_date),
    "notified_at": lambda v: ", ".join(_csv_date(x) for x in v),
    "categories": lambda v: ", ".join(REVEAL_LABELS.get(x, x) for x in v),
    "severity_band": _label(_BANDS),
    "notification_kind": _label(_KINDS),
    "people_informed": _label(_INFORMED),
    "severity_score": _csv_number,
}


def _csv_value(key: str, value: Any) -> str:
    formatter = _CSV_FORMATS.get(key)
    if formatter is not None:
        return formatter(value)
    if isinstance(value, bool):
        return "oui" if value else "non"
    return "" if value is None else str(value)


def csv_record(row: RegisterRow) -> dict[str, str]:
    """One row as the CSV shows it, keyed by French header."""
    return {CSV_HEADERS[f.name]: _csv_value(f.name, getattr(row, f.name)) for f in fields(row)}


def register_csv(rows: list[RegisterRow]) -> str:
    """The register for French Excel: ``;``-separated UTF-8 with a BOM (see the module)."""
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=list(CSV_HEADERS.values()), delimiter=";", lineterminator="\r\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow(csv_record(row))
    return BOM + out.getvalue()


_PENDING = "Périmètre non encore établi : l'évaluation est en cours."
