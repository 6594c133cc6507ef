"""The demo's breach chapter: from the guard's alert to the CNIL report and the register.

The robot of the traffic chapter was contained within a handful of records per
account; those few persons are the breach. The incident is opened from every alert
the robot raised (one per attacked account), scoped from
the live trail and from a verified Parquet export (the same set), and its CNIL
notification written in French (HTML, PDF, JSON) with the severity reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from rempart.audit.chain import CheckpointSigner
from rempart.audit.export import export_trail
from rempart.audit.trail import SqlAuditTrail
from rempart.incident.export_source import ExportSource
from rempart.incident.live_source import LiveSource
from rempart.incident.register import register_csv, register_rows
from rempart.incident.report import write_report
from rempart.incident.service import build_definition
from rempart.incident.severity import assess, cnil_decision, people_decision
from rempart.services import Services
from rempart.store.engine import session_scope

__all__ = ["IncidentReport", "chapter_incident"]


@dataclass(frozen=True)
class IncidentReport:
    incident_id: int
    persons: int
    records: int
    report_dir: Path
    register: Path


def chapter_incident(
    console: Console, services: Services, workdir: Path, alert_ids: list[int]
) -> IncidentReport | None:
    """Opens the incident from every alert the robot raised (None when there is none)."""
    incidents = services.incidents
    if not alert_ids:
        console.print("  [yellow]no guard alert to open an incident from[/]")
        return None
    with session_scope(services.sessions) as session:
        definition = build_definition(session, alert_ids=alert_ids)
        incident_id = incidents.open(
            session,
            name="Robot sur des comptes d'officine (identifiants dérobés)",
            definition=definition,
            operator="demo-dpo",
            cause="Mots de passe de comptes d'officine dérobés et codes TOTP relayés par "
            "hameçonnage ; consultations automatisées depuis un réseau inconnu.",
        )
        incidents.describe(
            session,
            incident_id,
            operator="demo-dpo",
            planned=[
                "Rappel aux officines des consignes contre l'hameçonnage.",
                "Généralisation des clés de sécurité (FIDO2) pour les comptes d'officine.",
            ],
        )
    listed = ",".join(str(a) for a in alert_ids)
    console.print(
        f"  rempart incident open --from-alerts {listed} → incident {incident_id} "
        f"(the lookups behind the guard's {len(alert_ids)} alerts: the robot's sessions)"
    )
    live = incidents.scope(incident_id, LiveSource(services.audit_engine), operator="demo-dpo")
    console.print(
        f"  rempart incident scope {incident_id} → {live.persons} person(s) exposed, "
        f"{live.records} record(s); {sum(live.refused.values())} refused lookup(s) counted "
        f"apart as intent ({', '.join(f'{k} {v}' for k, v in live.refused.items())})"
    )
    console.print(
        "    what the exposure reveals: "
        + (", ".join(f"{k} {v}" for k, v in live.by_reveal.items()) or "identity only")
        + "; departments: "
        + ", ".join(f"{k} {v}" for k, v in live.by_department.items())
    )
    export_dir = workdir / f"audit-export-incident-{incident_id}"
    if not export_dir.exists():
        if isinstance(services.audit, SqlAuditTrail):
            services.audit.checkpoint_heads()  # the export's chains end on signed heads
        verifier = CheckpointSigner(services.settings.keys.audit_signing_key).verifier()
        export_trail(services.audit_engine, export_dir, verifier)
    verifier = CheckpointSigner(services.settings.keys.audit_signing_key).verifier()
    from_export = ExportSource(export_dir, verifier).read(definition)
    with session_scope(services.sessions) as session:
        same = set(from_export.exposures) == set(incidents.exposed_pseudonyms(session, incident_id))
    console.print(
        f"  the same scope from a verified Parquet export read with DuckDB: "
        f"{len(from_export.exposures)} person(s) — "
        + ("[green]identical set[/]" if same else "[bold red]DIFFERENT[/]")
    )
    with session_scope(services.sessions) as session:
        facts = incidents.facts(session, incident_id)
        severity = assess(facts)
        cnil = cnil_decision(severity)
        people = people_decision(severity, facts)
        files = write_report(facts, workdir / f"incident-{incident_id}")
        kind = incidents.mark_reported(session, incident_id, operator="demo-dpo")
    console.print(
        f"  severity (ENISA 2013): SE = {severity.score:g} → {severity.band_label}"
        f"; CNIL notification: {'yes' if cnil.required else 'no'}; "
        f"tell the persons (Art. 34): {'yes' if people.required else 'no'}"
    )
    console.print(
        f"  rempart incident report {incident_id} --out {files.html.parent.name} → "
        f"{files.html.name}, {files.pdf.name}, {files.json.name} ({kind} notification, in French)"
    )
    with session_scope(services.sessions) as session:
        rows = register_rows(incidents.register(session))
    register = workdir / "registre-violations.csv"
    register.write_text(register_csv(rows), encoding="utf-8")
    console.print(
        f"  the breach register (Art. 33(5)), every incident notified or not → {register.name}"
    )
    return IncidentReport(
        incident_id=incident_id,
        persons=live.persons,
        records=live.records,
        report_dir=files.html.parent,
        register=register,
    )
