"""The CNIL notification of a breach (GDPR Art. 33): one document, three files.

``report_document`` lays the incident's facts out in the order of the CNIL's
online notification form, so that the DPO can copy it field by field:

1. type of notification (initial / complementary), and whether one is required;
2. the organisation and its contact (the DPO);
3. dates: start, end or still ongoing, awareness, how it was discovered, and
   the reason for any delay past 72 hours after awareness;
4. nature (confidentiality / integrity / availability), origin and cause;
5. the data: categories, sensitive data, numbers of persons and records,
   minors and vulnerable persons, departments;
6. the security measures in place before;
7. likely consequences and the severity (ENISA, every factor and why);
8. measures taken (read from the trail) and planned;
9. the information of the persons, with the Art. 34 decision.

Each section holds ``fields`` (``key``, French ``label``, JSON ``value`` and the
French ``text`` shown), ``items`` (French sentences) and ``tables``; ``report.json``
is this document, and the HTML and the PDF only show it: the three files cannot
disagree. Dates are shown in French, in Paris time.

A report never holds a raw NIR: the facts carry none, and, as a last line of
defence, every output text is searched for a NIR-shaped string before anything
is written (``ReportContainsNIR``). Files are written atomically: each is
rendered in memory, written to a temporary file beside its final name, synced
and renamed, so that a crash leaves the previous file or none, never half a file.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib as mpl
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from rempart.errors import RempartError
from rempart.incident.charts import PARIS, REVEAL_LABELS, Chart, render_charts
from rempart.incident.severity import (
    CLASS_LABEL,
    Decision,
    Severity,
    assess,
    cnil_decision,
    people_decision,
)
from rempart.incident.summary import IncidentFacts
from rempart.notify.render import french_datetime

__all__ = [
    "DOCUMENT_FORMAT",
    "SECTIONS",
    "ReportContainsNIR",
    "ReportFiles",
    "check_no_nir",
    "render_html",
    "render_pdf",
    "report_document",
    "write_report",
]

DOCUMENT_FORMAT = "rempart-cnil-notification/1"
TEMPLATES = Path(__file__).parent / "templates"
FONTS = Path(mpl.get_data_path()) / "fonts" / "ttf"
DEADLINE_HOURS = 72

# fpdf2 subsets the font with fontTools, which logs every glyph list at info level: noise
# in the service's logs (and the process-wide level is the service's to choose, not ours,
# except for this one chatty logger).
logging.getLogger("fontTools.subset").setLevel(logging.WARNING)

SECTIONS: tuple[tuple[str, str], ...] = (
    ("notification", "Type de notification"),
    ("organization", "Organisme et contact"),
    ("dates", "Dates de la violation"),
    ("nature", "Nature, origine et cause de la violation"),
    ("data", "Données et personnes concernées"),
    ("security_before", "Mesures de sécurité en place avant la violation"),
    ("consequences", "Conséquences probables et gravité"),
    ("measures", "Mesures prises et prévues"),
    ("communication", "Information des personnes concernées"),
)
"""Section key and French title, in the order of the CNIL's notification form."""

CHART_SECTIONS = {"timeline": "dates", "reveals": "data", "departments": "data"}

MEASURE_LABELS = {
    "account_suspended": "Suspension du compte",
    "client_suspended": "Suspension du logiciel client",
    "password_reset": "Réinitialisation du mot de passe",
    "mfa_reset": "Réinitialisation du second facteur",
    "webauthn_removed": "Retrait d'une clé de sécurité",
    "account_restored": "Rétablissement du compte (après sécurisation)",
    "sessions_revoked": "Révocation des sessions ouvertes",
}

# A NIR as written, run together or spaced as on a Carte Vitale: sex (1, 2, or 7, 8
# for a temporary number), year, month, department (2A/2B for Corsica), commune,
# order number, and the key or not (13 or 15 characters). Nothing alphanumeric may
# touch it, so that a SIRET (14 digits) or a microsecond timestamp (16) do not match.
_NIR_SHAPE = re.compile(
    r"(?<![0-9A-Za-z])[1278] ?\d{2} ?\d{2} ?(?:\d{2}|2[ABab]) ?\d{3} ?\d{3}(?: ?\d{2})?"
    r"(?![0-9A-Za-z])"
)


class ReportContainsNIR(RempartError):
    """A report's text holds a NIR-shaped string: nothing is written."""

    code = "report_contains_nir"
    status = 500


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    pdf: Path
    json: Path


def check_no_nir(text: str, where: str) -> None:
    """Refuse an output that holds a NIR-shaped string (never quoted in the error).

    >>> check_no_nir("SIRET 18003502400016, 510 000 personnes", "test")
    >>> check_no_nir("assuré 2 55 08 2A 073 004 58", "test")
    Traceback (most recent call last):
        ...
    rempart.incident.report.ReportContainsNIR: report_contains_nir: ...
    """
    match = _NIR_SHAPE.search(text)
    if match is not None:
        raise ReportContainsNIR(
            f"{where}: a NIR-shaped string at offset {match.start()}; the report is not written"
        )


# -- French formatting ---------------------------------------------------------------


def _int(n: int) -> str:
    """``510 000`` (narrow no-break space, as French typography wants)."""
    return f"{int(n):,}".replace(",", "\u202f")


def _yes(flag: bool) -> str:
    return "Oui" if flag else "Non"


def _parse(iso: str | None) -> datetime | None:
    if not iso:
        return None
    moment = datetime.fromisoformat(iso)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _from_us(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1_000_000, tz=UTC)


def _date(moment: datetime | None, missing: str = "Non renseignée") -> str:
    return missing if moment is None else french_datetime(moment)


def _short(moment: datetime | None) -> str:
    """``11/03/2022 01:00``, Paris time: for table cells, where the long form is too wide."""
    return "—" if moment is None else moment.astimezone(PARIS).strftime("%d/%m/%Y %H:%M")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _field(key: str, label: str, value: Any, text: str) -> dict[str, Any]:
    return {"key": key, "label": label, "value": value, "text": text}


def _table(key: str, title: str, columns: list[str], rows: list[list[str]]) -> dict[str, Any]:
    return {"key": key, "title": title, "columns": columns, "rows": rows}


def _section(
    key: str,
    *,
    fields: list[dict[str, Any]] | None = None,
    items: list[str] | None = None,
    tables: list[dict[str, Any]] | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    number = next(i for i, (k, _) in enumerate(SECTIONS, 1) if k == key)
    return {
        "number": number,
        "title": SECTIONS[number - 1][1],
        "fields": fields or [],
        "items": items or [],
        "tables": tables or [],
        "data": data or {},
    }


def _decision(d: Decision) -> dict[str, Any]:
    return d.to_dict()


# -- the sections ----------------------------------------------------------------------


def _notification(facts: IncidentFacts, cnil: Decision) -> dict[str, Any]:
    complementary = facts.notification == "complementary"
    fields = [
        _field(
            "kind",
            "Type de notification",
            facts.notification,
            "Notification complémentaire" if complementary else "Notification initiale",
        ),
        _field("incident", "Incident", facts.incident_id, f"n° {facts.incident_id} : {facts.name}"),
        _field(
            "scope_version",
            "Version du périmètre",
            facts.scope.version,
            f"{facts.scope.version}, établi le {_date(_parse(facts.scope.scoped_at))}",
        ),
    ]
    if complementary:
        fields.append(
            _field(
                "new_persons",
                "Personnes ajoutées depuis la notification précédente",
                facts.scope.new_persons,
                _int(facts.scope.new_persons),
            )
        )
    fields.append(
        _field(
            "cnil_required",
            "Notification à la CNIL requise",
            cnil.required,
            f"{_yes(cnil.required)}. {cnil.reasoning}",
        )
    )
    return _section("notification", fields=fields, data={"cnil_decision": _decision(cnil)})


def _organization(facts: IncidentFacts) -> dict[str, Any]:
    org = facts.organization
    return _section(
        "organization",
        fields=[
            _field("name", "Organisme", org.name, org.name),
            _field("siren", "SIREN", org.siren, org.siren),
            _field("address", "Adresse", org.address, org.address),
            _field("dpo_name", "Délégué à la protection des données", org.dpo_name, org.dpo_name),
            _field("dpo_email", "Courriel du DPO", org.dpo_email, org.dpo_email),
            _field("dpo_phone", "Téléphone du DPO", org.dpo_phone, org.dpo_phone),
        ],
    )


def _dates(facts: IncidentFacts, now: datetime) -> dict[str, Any]:
    start = _from_us(facts.scope.first_us)
    end = _from_us(facts.scope.last_us)
    aware = _parse(facts.aware_at)
    hours = None if aware is None else (now - aware).total_seconds() / 3600
    late = hours is not None and hours > DEADLINE_HOURS
    if not late:
        reason_text = "Sans objet : rapport établi dans les 72 heures."
    elif facts.delay_reason.strip():
        reason_text = facts.delay_reason.strip()
    else:
        reason_text = (
            "À COMPLÉTER : le rapport est établi plus de 72 heures après la prise de "
            "connaissance ; l'article 33.1 du RGPD exige d'en donner les motifs."
        )
    elapsed = "Non renseignée" if hours is None else f"{hours:.0f} heures".replace(".", ",")
    return _section(
        "dates",
        fields=[
            _field("start", "Début de la violation", _iso(start), _date(start, "Inconnu")),
            _field(
                "end",
                "Fin de la violation",
                None if facts.ongoing else _iso(end),
                "En cours" if facts.ongoing else _date(end, "Inconnue"),
            ),
            _field("ongoing", "Violation toujours en cours", facts.ongoing, _yes(facts.ongoing)),
            _field("aware_at", "Prise de connaissance", _iso(aware), _date(aware)),
            _field("discovery", "Mode de découverte", facts.discovery, facts.discovery),
            _field("report_at", "Date du présent rapport", _iso(now), _date(now)),
            _field(
                "hours_since_awareness",
                "Délai depuis la prise de connaissance",
                None if hours is None else round(hours, 1),
                elapsed,
            ),
            _field("late", "Au-delà de 72 heures", late, _yes(late)),
            _field("delay_reason", "Motif du retard", facts.delay_reason or None, reason_text),
        ],
    )


def _origin(facts: IncidentFacts) -> str:
    d = facts.definition
    parts: list[str] = []
    accounts = sorted(
        {a["account_id"] for a in d.get("accounts", [])}
        | {a["account_id"] for a in d.get("alerts", [])}
    )
    if accounts:
        parts.append(
            f"utilisation sans autorisation de {len(accounts)} compte(s) professionnel(s) "
            f"({', '.join(accounts)})"
        )
    if d.get("networks"):
        nets = ", ".join(n["cidr"] for n in d["networks"])
        parts.append(f"consultations depuis le(s) réseau(x) {nets}")
    if d.get("sessions"):
        parts.append(f"{len(d['sessions'])} session(s) dérobée(s)")
    if d.get("alerts"):
        parts.append(f"{len(d['alerts'])} alerte(s) du dispositif de détection")
    if not parts:
        return "Non déterminée"
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + " du service de consultation des droits."


def _nature(facts: IncidentFacts, severity: Severity) -> dict[str, Any]:
    conf, integ, avail, malicious = severity.cb
    rows = [
        [
            account,
            _int(v.get("persons", 0)),
            _int(v.get("records", 0)),
            _short(_from_us(v.get("first_us"))),
            _short(_from_us(v.get("last_us"))),
        ]
        for account, v in sorted(facts.scope.by_account.items())
    ]
    return _section(
        "nature",
        fields=[
            _field(
                "confidentiality", "Perte de confidentialité", conf.value > 0, _yes(conf.value > 0)
            ),
            _field("integrity", "Perte d'intégrité", integ.value > 0, _yes(integ.value > 0)),
            _field(
                "availability", "Perte de disponibilité", avail.value > 0, _yes(avail.value > 0)
            ),
            _field("malicious", "Acte malveillant", malicious.value > 0, _yes(malicious.value > 0)),
            _field("origin", "Origine de l'incident", _origin(facts), _origin(facts)),
            _field("cause", "Cause", facts.cause, facts.cause or "Non renseignée"),
        ],
        tables=[
            _table(
                "accounts",
                "Accès en cause",
                ["Compte", "Personnes", "Consultations", "Première (Paris)", "Dernière (Paris)"],
                rows,
            )
        ],
    )


_DATA_ROWS = (
    ("identity", "category", "identity", "Identité (nom, prénom, date de naissance, sexe)"),
    ("nir", "category", "nir", "Numéro de sécurité sociale (NIR)"),
    ("treating_doctor", "category", "treating_doctor", "Médecin traitant déclaré"),
    ("health", "reveal", "health", "Données révélant la santé (ALD, prise en charge à 100 %)"),
    (
        "low_income",
        "reveal",
        "low_income",
        "Données révélant la situation financière (bénéfice de la C2S)",
    ),
    (
        "irregular_residence",
        "reveal",
        "irregular_residence",
        "Données révélant un séjour irrégulier (bénéfice de l'AME)",
    ),
)


def _combination_label(key: str) -> str:
    parts = [p for p in key.split("+") if p]
    if not parts:
        return "Identité seule"
    return " + ".join(REVEAL_LABELS.get(p, p) for p in parts)


def _data(facts: IncidentFacts) -> dict[str, Any]:
    scope = facts.scope
    counts = {
        key: int((scope.by_category if src == "category" else scope.by_reveal).get(k, 0))
        for key, src, k, _ in _DATA_ROWS
    }
    categories = [[label, _int(counts[key])] for key, _, _, label in _DATA_ROWS if counts[key]]
    sensitive = {
        "health": counts["health"],
        "irregular_residence": counts["irregular_residence"],
    }
    sensitive_text = (
        "Oui : "
        + " ; ".join(
            f"{label} pour {_int(counts[key])} personnes"
            for key, _, _, label in _DATA_ROWS
            if key in sensitive and counts[key]
        )
        if any(sensitive.values())
        else "Non"
    )
    minors = int(scope.by_reveal.get("minor", 0))
    over_75 = int(scope.by_reveal.get("over_75", 0))
    refused = sum(scope.refused.values())
    fields = [
        _field(
            "persons",
            "Nombre de personnes concernées",
            scope.persons,
            f"{_int(scope.persons)} (nombre exact, établi à partir du journal d'audit)",
        ),
        _field(
            "records",
            "Nombre d'enregistrements concernés",
            scope.records,
            f"{_int(scope.records)} consultations ayant communiqué des données",
        ),
        _field("sensitive", "Données sensibles", sensitive, sensitive_text),
        _field("minors", "Mineurs", minors, _int(minors)),
        _field("over_75", "Personnes de plus de 75 ans", over_75, _int(over_75)),
        _field(
            "intent",
            "Tentatives sans communication de données",
            dict(scope.refused),
            f"{_int(refused)} consultations refusées ou sans résultat, portant sur "
            f"{_int(scope.intent_subjects)} personnes non exposées (non comptées "
            "ci-dessus)",
        ),
    ]
    if scope.unresolved:
        fields.append(
            _field(
                "unresolved",
                "Personnes non rattachées",
                scope.unresolved,
                f"{_int(scope.unresolved)} personnes exposées ne correspondent plus à un "
                "assuré (comptées ci-dessus)",
            )
        )
    source = "Journal d'audit en base" if scope.source == "live" else f"Export ({scope.source})"
    if not scope.verified:
        source += (
            " — ATTENTION : la vérification de l'intégrité de l'export a échoué ; "
            "périmètre établi sur décision de l'opérateur ("
            + "; ".join(scope.verification_problems)
            + ")"
        )
    fields.append(_field("source", "Source du périmètre", scope.source, source))
    departments = sorted(scope.by_department.items(), key=lambda kv: (-kv[1], kv[0]))
    combinations = sorted(scope.by_combination.items(), key=lambda kv: (-kv[1], kv[0]))
    return _section(
        "data",
        fields=fields,
        tables=[
            _table("categories", "Catégories de données", ["Catégorie", "Personnes"], categories),
            _table(
                "combinations",
                "Ce que l'exposition révèle, par combinaison",
                ["Combinaison", "Personnes"],
                [[_combination_label(k), _int(v)] for k, v in combinations],
            ),
            _table(
                "departments",
                "Personnes par département de résidence",
                ["Département", "Personnes"],
                [[d, _int(n)] for d, n in departments],
            ),
        ],
        data={
            "by_category": dict(scope.by_category),
            "by_reveal": dict(scope.by_reveal),
            "by_department": dict(scope.by_department),
        },
    )


def _consequences_items(facts: IncidentFacts) -> list[str]:
    scope = facts.scope
    if scope.persons == 0:
        return ["Aucune donnée n'a été communiquée : pas de conséquence pour les personnes."]
    items = [
        "Hameçonnage ciblé et crédible : courriels, SMS ou appels se réclamant de "
        "l'Assurance Maladie et citant l'identité, la date de naissance et le NIR de la "
        "personne pour obtenir ses coordonnées bancaires ou ses identifiants.",
        "Usurpation d'identité et fraude aux prestations, le NIR et l'identité suffisant "
        "à certaines démarches.",
    ]
    if scope.by_category.get("treating_doctor", 0):
        items.append("Escroqueries se réclamant du médecin traitant de la personne.")
    if scope.by_reveal.get("health", 0):
        items.append(
            "Atteinte à la vie privée et discrimination (emploi, assurance, crédit) du fait "
            "de la révélation d'une affection de longue durée."
        )
    if scope.by_reveal.get("low_income", 0):
        items.append(
            "Stigmatisation et escroqueries visant les personnes à faibles revenus (fausses "
            "aides, faux renouvellement de la complémentaire santé solidaire)."
        )
    if scope.by_reveal.get("irregular_residence", 0):
        items.append(
            "Exploitation, chantage ou dénonciation des personnes dont le séjour irrégulier "
            "est révélé."
        )
    if scope.by_reveal.get("minor", 0) or scope.by_reveal.get("over_75", 0):
        items.append(
            "Vulnérabilité particulière des mineurs et des personnes âgées face à ces escroqueries."
        )
    return items


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".").replace(".", ",")


def _consequences(facts: IncidentFacts, severity: Severity) -> dict[str, Any]:
    factors = [severity.dpc, severity.ei, *severity.cb]
    categories = [
        [
            c.label,
            _int(c.persons),
            f"{CLASS_LABEL[c.enisa_class]} ({c.base})",
            " ; ".join(f"{a.label} +{_number(a.value)}" for a in c.adjustments) or "aucun",
            str(c.score),
            c.why,
        ]
        for c in severity.categories
    ]
    return _section(
        "consequences",
        fields=[
            _field(
                "severity_score",
                "Score de gravité (méthode ENISA)",
                severity.score,
                severity.summary,
            ),
            _field(
                "severity_band",
                "Niveau de gravité",
                severity.band.value,
                severity.band_label.capitalize(),
            ),
        ],
        items=_consequences_items(facts),
        tables=[
            _table(
                "factors",
                "Facteurs de gravité (ENISA, 2013) : SE = DPC × EI + CB",  # noqa: RUF001
                ["Critère", "Valeur", "Justification"],
                [[f.label, _number(f.value), f.why] for f in factors],
            ),
            _table(
                "dpc_categories",
                "Contexte du traitement : score de chaque catégorie présente",
                ["Catégorie", "Personnes", "Classe (base)", "Ajustements", "Score", "Motif"],
                categories,
            ),
        ],
        data={"severity": severity.to_dict()},
    )


def _measures(facts: IncidentFacts) -> dict[str, Any]:
    rows = [
        [
            _short(_parse(m.at)),
            MEASURE_LABELS.get(m.event, m.event),
            m.subject,
            m.by,
            _int(m.count),
        ]
        for m in sorted(facts.measures, key=lambda m: (m.at, m.event, m.subject))
    ]
    planned = list(facts.planned_measures) or ["Aucune mesure prévue n'est renseignée."]
    return _section(
        "measures",
        fields=[
            _field(
                "taken",
                "Mesures prises (relevées dans le journal)",
                len(facts.measures),
                f"{_int(len(facts.measures))} mesure(s)" if facts.measures else "Aucune",
            ),
        ],
        items=[f"Prévue : {p}" for p in planned],
        tables=[
            _table(
                "taken",
                "Mesures prises après la violation",
                ["Date (Paris)", "Mesure", "Compte ou client", "Par", "Nombre"],
                rows,
            )
        ],
        data={"planned": list(facts.planned_measures)},
    )


_COMMUNICATION = {"done": "Oui", "planned": "Prévue", "none": "Non"}
_CHANNELS = {"email": "courriel", "letter": "courrier postal"}


def _communication(facts: IncidentFacts, people: Decision) -> dict[str, Any]:
    c = facts.communication
    status = str(c.get("status", "none"))
    when = _parse(c.get("date"))
    channels = {str(k): int(v) for k, v in (c.get("channels") or {}).items()}
    channel_text = (
        " ; ".join(f"{_CHANNELS.get(k, k)} : {_int(v)} personnes" for k, v in channels.items())
        or "Aucun"
    )
    return _section(
        "communication",
        fields=[
            _field(
                "status", "Information des personnes", status, _COMMUNICATION.get(status, status)
            ),
            _field("date", "Date", _iso(when), _date(when, "Non fixée")),
            _field("channels", "Moyens", channels, channel_text),
            _field(
                "required",
                "Information requise (article 34)",
                people.required,
                f"{_yes(people.required)}. {people.reasoning}",
            ),
        ],
        tables=[
            _table(
                "exceptions",
                "Exceptions de l'article 34.3 examinées",
                ["Exception", "Applicable", "Motif"],
                [[e.label, _yes(e.value > 0), e.why] for e in people.exceptions],
            )
        ]
        if people.exceptions
        else [],
        data={"people_decision": _decision(people)},
    )


def report_document(facts: IncidentFacts, *, now: datetime | None = None) -> dict[str, Any]:
    """The report as a JSON-able dict, sections in the CNIL form's order."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    severity = assess(facts)
    cnil = cnil_decision(severity)
    people = people_decision(severity, facts)
    sections = {
        "notification": _notification(facts, cnil),
        "organization": _organization(facts),
        "dates": _dates(facts, now),
        "nature": _nature(facts, severity),
        "data": _data(facts),
        "security_before": _section(
            "security_before",
            items=list(facts.security_before) or ["Non renseignées."],
        ),
        "consequences": _consequences(facts, severity),
        "measures": _measures(facts),
        "communication": _communication(facts, people),
    }
    return {
        "format": DOCUMENT_FORMAT,
        "title": "Notification d'une violation de données personnelles à la CNIL",
        "generated_at": now.isoformat(),
        "generated_at_text": french_datetime(now),
        "incident": {"id": facts.incident_id, "name": facts.name, "status": facts.status},
        "organization": facts.organization.name,
        "sections": sections,
    }


# -- HTML ------------------------------------------------------------------------------


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _charts_by_section(charts: list[Chart]) -> dict[str, list[Chart]]:
    out: dict[str, list[Chart]] = {key: [] for key, _ in SECTIONS}
    for chart in charts:
        out[CHART_SECTIONS.get(chart.key, "data")].append(chart)
    return out


def render_html(document: dict[str, Any], charts: list[Chart]) -> str:
    """A self-contained page (inline CSS and SVG, no external resource), printable."""
    placed = {
        key: [{"title": c.title, "svg": Markup(c.svg)} for c in found]  # noqa: S704 - matplotlib's own SVG, its text escaped  # nosec B704
        for key, found in _charts_by_section(charts).items()
    }
    html = _environment().get_template("report.html.j2").render(doc=document, charts=placed)
    check_no_nir(html, "report.html")
    return html


# -- PDF -------------------------------------------------------------------------------


class _ReportPDF(FPDF):
    footer_text = ""

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("DejaVu", size=7)
        self.set_text_color(110, 110, 110)
        self.cell(0, 6, f"{self.footer_text} — page {self.page_no()}/{{nb}}", align="C")
        self.set_text_color(0, 0, 0)


def render_pdf(document: dict[str, Any], charts: list[Chart]) -> bytes:
    """The same document as a PDF (DejaVu Sans, for French text; charts as PNG)."""
    check_no_nir(json.dumps(document, ensure_ascii=False), "report.pdf")
    pdf = _ReportPDF(format="A4")
    pdf.footer_text = f"{document['organization']} — incident n° {document['incident']['id']}"
    pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_title(document["title"])
    pdf.set_author(document["organization"])
    pdf.set_lang("fr")
    # A fixed creation date: two renders of one document give the same file.
    pdf.set_creation_date(datetime.fromisoformat(document["generated_at"]))
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 15)
    pdf.multi_cell(0, 8, document["title"], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("DejaVu", size=9)
    pdf.multi_cell(
        0,
        5,
        f"{document['organization']} — incident n° {document['incident']['id']} : "
        f"{document['incident']['name']}\nRapport établi le {document['generated_at_text']}",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    placed = _charts_by_section(charts)
    for key, section in document["sections"].items():
        _pdf_section(pdf, section, placed.get(key, []))
    return bytes(pdf.output())


def _pdf_section(pdf: FPDF, section: dict[str, Any], charts: list[Chart]) -> None:
    pdf.ln(4)
    pdf.set_font("DejaVu", "B", 12)
    pdf.set_fill_color(230, 236, 243)
    pdf.multi_cell(
        0,
        7,
        f"{section['number']}. {section['title']}",
        fill=True,
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.ln(1)
    pdf.set_font("DejaVu", size=9)
    if section["fields"]:
        with pdf.table(col_widths=(35, 65), first_row_as_headings=False, line_height=5) as table:
            for field in section["fields"]:
                row = table.row()
                row.cell(field["label"])
                row.cell(field["text"])
    for item in section["items"]:
        pdf.multi_cell(0, 5, f"• {item}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    for t in section["tables"]:
        if not t["rows"]:
            continue
        pdf.ln(2)
        pdf.set_font("DejaVu", "B", 9)
        pdf.multi_cell(0, 5, t["title"], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("DejaVu", size=8)
        pdf.set_font("DejaVu", size=7 if len(t["columns"]) > 3 else 8)
        with pdf.table(line_height=4, repeat_headings=1) as table:
            heading = table.row()
            for column in t["columns"]:
                heading.cell(column)
            for values in t["rows"]:
                row = table.row()
                for value in values:
                    row.cell(str(value))
        pdf.set_font("DejaVu", size=9)
    for chart in charts:
        pdf.ln(2)
        pdf.set_font("DejaVu", "B", 9)
        pdf.multi_cell(0, 5, chart.title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.image(io.BytesIO(chart.png), w=pdf.epw)
        pdf.set_font("DejaVu", size=9)


# -- files -----------------------------------------------------------------------------


def _write_atomically(path: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_report(
    facts: IncidentFacts, out_dir: Path, *, now: datetime | None = None
) -> ReportFiles:
    """Write ``report.html``, ``report.pdf`` and ``report.json`` into ``out_dir``.

    All three are rendered and checked in memory first: a failure while rendering
    writes nothing; each file is then replaced atomically.
    """
    document = report_document(facts, now=now)
    charts = render_charts(facts)
    payload = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    check_no_nir(payload, "report.json")
    html = render_html(document, charts)
    pdf = render_pdf(document, charts)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out_dir / "report.html", out_dir / "report.pdf", out_dir / "report.json")
    _write_atomically(files.json, payload.encode())
    _write_atomically(files.html, html.encode())
    _write_atomically(files.pdf, pdf)
    # The renames are durable once the directory itself is synced.
    dir_fd = os.open(out_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return files
