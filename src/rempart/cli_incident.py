"""``rempart incident …``: the breach register and its incidents (thin over
``rempart.incident.service``)."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from rempart.cli import err, fail, open_services, out
from rempart.incident.definition import Definition
from rempart.incident.summary import ScopeSummary
from rempart.store.engine import as_utc

incident_app = typer.Typer(
    help="Personal data breaches: scoping from the audit trail, the CNIL report, the register."
)

OperatorOption = Annotated[
    str,
    typer.Option(
        help="Who does this (recorded in the audit trail); defaults to the system user.",
    ),
]
AccountsOption = Annotated[
    str, typer.Option("--accounts", help="Compromised accounts, comma-separated.")
]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="Start of the accounts' and networks' range (ISO).")
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="End of that range, excluded (ISO).")
]
NetworkOption = Annotated[
    list[str] | None, typer.Option("--network", help="A client network (CIDR); repeatable.")
]
SessionOption = Annotated[
    list[str] | None,
    typer.Option("--session", help="A session id of the trail (or client:<id>); repeatable."),
]
AlertsOption = Annotated[
    str, typer.Option("--from-alerts", help="Guard alert ids, comma-separated: their lookups.")
]


def _operator(value: str) -> str:
    return value.strip() or getpass.getuser()


def _moment(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise fail("invalid_date", f"{option} must be ISO 8601") from None
    if moment.tzinfo is None:
        raise fail("invalid_date", f"{option} needs a time zone (e.g. +01:00 or Z)")
    return moment.astimezone(UTC)


def _ids(value: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise fail("unknown_alert", "--from-alerts takes alert numbers, e.g. 3,4") from None


def _definition(
    session: object,
    *,
    accounts: str,
    since: str | None,
    until: str | None,
    networks: list[str] | None,
    sessions: list[str] | None,
    alerts: str,
) -> Definition:
    from sqlalchemy.orm import Session

    from rempart.incident.service import build_definition

    assert isinstance(session, Session)
    return build_definition(
        session,
        accounts=[a for a in accounts.split(",") if a.strip()],
        since=_moment(since, "--since"),
        until=_moment(until, "--until"),
        networks=networks or [],
        sessions=sessions or [],
        alert_ids=_ids(alerts),
    )


@incident_app.command("open")
def incident_open(
    name: Annotated[str, typer.Option("--name", help="A short name for the register.")],
    *,
    accounts: AccountsOption = "",
    since: SinceOption = None,
    until: UntilOption = None,
    network: NetworkOption = None,
    session_id: SessionOption = None,
    from_alerts: AlertsOption = "",
    aware_at: Annotated[
        str | None,
        typer.Option("--aware-at", help="When the insurer became aware (ISO); default now."),
    ] = None,
    cause: Annotated[str, typer.Option(help="Origin and cause, as known (French).")] = "",
    operator: OperatorOption = "",
) -> None:
    """Open an incident; prints its id alone on standard output."""
    aware = _moment(aware_at, "--aware-at")
    with open_services() as services, services.sessions() as session, session.begin():
        definition = _definition(
            session,
            accounts=accounts,
            since=since,
            until=until,
            networks=network,
            sessions=session_id,
            alerts=from_alerts,
        )
        incident_id = services.incidents.open(
            session,
            name=name,
            definition=definition,
            operator=_operator(operator),
            aware_at=aware,
            cause=cause,
        )
    err.print(f"incident {incident_id} opened; scope it with: rempart incident scope {incident_id}")
    out.print(str(incident_id), highlight=False)


@incident_app.command("add")
def incident_add(
    incident_id: Annotated[int, typer.Argument(help="The incident.")],
    *,
    accounts: AccountsOption = "",
    since: SinceOption = None,
    until: UntilOption = None,
    network: NetworkOption = None,
    session_id: SessionOption = None,
    from_alerts: AlertsOption = "",
    operator: OperatorOption = "",
) -> None:
    """Grow an incident's definition (a new compromised account found later); scoping
    again gives the union, and the next report is a complementary notification."""
    with open_services() as services, services.sessions() as session, session.begin():
        more = _definition(
            session,
            accounts=accounts,
            since=since,
            until=until,
            networks=network,
            sessions=session_id,
            alerts=from_alerts,
        )
        services.incidents.add(session, incident_id, more, operator=_operator(operator))
    err.print(f"incident {incident_id}: definition grown; scope it again")


@incident_app.command("describe")
def incident_describe(
    incident_id: Annotated[int, typer.Argument(help="The incident.")],
    *,
    cause: Annotated[str | None, typer.Option(help="Origin and cause (French).")] = None,
    discovery: Annotated[str | None, typer.Option(help="How it was discovered (French).")] = None,
    delay_reason: Annotated[
        str | None, typer.Option(help="Why the notification comes after 72 hours (French).")
    ] = None,
    planned: Annotated[
        list[str] | None, typer.Option(help="A measure planned (French); repeatable.")
    ] = None,
    recipients: Annotated[
        str | None,
        typer.Option(
            help="Who received the data, when the definition's default (unknown) does not "
            "hold: none, known or unknown (ENISA)."
        ),
    ] = None,
    malicious: Annotated[
        bool | None,
        typer.Option("--malicious/--not-malicious", help="Whether there was malicious intent."),
    ] = None,
    operator: OperatorOption = "",
) -> None:
    """State what the trail cannot tell: cause, discovery, delay reason, planned measures."""
    with open_services() as services, services.sessions() as session, session.begin():
        services.incidents.describe(
            session,
            incident_id,
            operator=_operator(operator),
            cause=cause,
            discovery=discovery,
            delay_reason=delay_reason,
            planned=planned or [],
            circumstances={
                k: v
                for k, v in (("recipients", recipients), ("malicious", malicious))
                if v is not None
            },
        )
    err.print(f"incident {incident_id} updated")


def _scope_json(summary: ScopeSummary) -> dict[str, object]:
    return {
        "persons": summary.persons,
        "records": summary.records,
        "by_category": summary.by_category,
        "incident": summary.incident_id,
        "version": summary.version,
        "new_persons": summary.new_persons,
        "by_reveal": summary.by_reveal,
        "by_combination": summary.by_combination,
        "by_department": summary.by_department,
        "refused": summary.refused,
        "intent_subjects": summary.intent_subjects,
        "unresolved": summary.unresolved,
        "source": summary.source,
        "verified": summary.verified,
        "first": summary.first_us,
        "last": summary.last_us,
    }


@incident_app.command("scope")
def incident_scope(
    incident_id: Annotated[int, typer.Argument(help="The incident.")],
    *,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scope as JSON.")] = False,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            help="Scope from an audit export (rempart audit export) instead of the live "
            "trail; it is verified first.",
        ),
    ] = None,
    accept_unverified_export: Annotated[
        bool,
        typer.Option(
            "--accept-unverified-export",
            help="Scope from an export that fails its verification; the scope and the "
            "report then say so.",
        ),
    ] = False,
    operator: OperatorOption = "",
) -> None:
    """Scope an incident: the exact persons exposed and what each exposure reveals,
    stored for the notification campaign. Scoping again gives the union."""
    from rempart.audit.chain import CheckpointSigner
    from rempart.incident.export_source import ExportSource
    from rempart.incident.live_source import LiveSource
    from rempart.incident.reading import TrailSource

    with open_services(database_error="audit_unavailable") as services:
        source: TrailSource
        if export is not None:
            verifier = CheckpointSigner(services.settings.keys.audit_signing_key).verifier()
            source = ExportSource(export, verifier, accept_unverified=accept_unverified_export)
        else:
            source = LiveSource(services.audit_engine)
        summary = services.incidents.scope(incident_id, source, operator=_operator(operator))
    if not summary.verified:
        err.print(
            "[bold yellow]warning[/] the export failed its verification; this scope (and "
            "any report made from it) says so"
        )
    _print_scope(summary, as_json)


@incident_app.command("report")
def incident_report(
    incident_id: Annotated[int, typer.Argument(help="The incident.")],
    *,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the three files.")],
    operator: OperatorOption = "",
) -> None:
    """Write the CNIL notification (report.html, report.pdf, report.json, in French) of
    the incident's latest scope; a re-scope that found new persons makes it complementary."""
    from rempart.incident.report import write_report

    with open_services() as services, services.sessions() as session, session.begin():
        incident = services.incidents.get(session, incident_id)
        if incident.definition_changed:
            raise fail(
                "definition_changed",
                f"the definition grew since the last scoping: rempart incident scope {incident_id}",
            )
        facts = services.incidents.facts(session, incident_id)
        files = write_report(facts, out_dir)
        kind = services.incidents.mark_reported(session, incident_id, operator=_operator(operator))
    if not facts.scope.verified:
        err.print("[bold yellow]warning[/] scoped from an export that failed verification")
    err.print(f"{kind} notification of incident {incident_id} written:")
    for path in (files.html, files.pdf, files.json):
        out.print(str(path), highlight=False)


@incident_app.command("list")
def incident_list(
    *,
    output_format: Annotated[
        str,
        typer.Option("--format", help="table, csv or json (the register, Art. 33(5))."),
    ] = "table",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """The breach register: every incident, notified or not, with its decisions."""
    from rempart.incident.register import register_csv, register_json, register_rows

    if output_format not in ("table", "csv", "json"):
        raise fail("invalid_format", "--format is table, csv or json")
    with open_services() as services, services.sessions() as session:
        rows = register_rows(services.incidents.register(session))
    if output_format == "table":
        for row in rows:
            out.print(
                f"#{row.incident_id} {row.status:<9} {row.persons:>9,} persons  "
                f"{row.severity_band:<9} {row.name}",
                highlight=False,
                soft_wrap=True,
            )
        if not rows:
            err.print("no incident in the register")
        return
    text = register_csv(rows) if output_format == "csv" else register_json(rows)
    if out_file is None:
        out.print(text, highlight=False, markup=False, end="", soft_wrap=True)
    else:
        out_file.write_text(text, encoding="utf-8")
        err.print(f"register written to {out_file}")


def _print_scope(summary: ScopeSummary, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(_scope_json(summary), ensure_ascii=False))
        return
    out.print(
        f"incident {summary.incident_id}, scope version {summary.version}: "
        f"{summary.persons:,} persons exposed ({summary.new_persons:,} new), "
        f"{summary.records:,} records; refused lookups {sum(summary.refused.values()):,}",
        highlight=False,
    )
    for category, persons in summary.by_category.items():
        out.print(f"  {category:<16} {persons:>10,}", highlight=False)
    for reveal, persons in summary.by_reveal.items():
        out.print(f"  reveals {reveal:<20} {persons:>10,}", highlight=False)


@incident_app.command("show")
def incident_show(
    incident_id: Annotated[int, typer.Argument(help="The incident.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """One incident: status, definition, transitions, latest scope."""
    from sqlalchemy import select

    from rempart.store.models import IncidentTransition

    with open_services() as services, services.sessions() as session:
        incident = services.incidents.get(session, incident_id)
        scope = services.incidents.latest_scope(session, incident_id)
        transitions = [
            {
                "status": t.status_to,
                "at": as_utc(t.at).isoformat(),
                "operator": t.operator,
                "note": t.note,
            }
            for t in session.scalars(
                select(IncidentTransition)
                .where(IncidentTransition.incident_id == incident_id)
                .order_by(IncidentTransition.transition_id)
            )
        ]
        data = {
            "incident": incident.incident_id,
            "name": incident.name,
            "status": incident.status,
            "aware_at": as_utc(incident.aware_at).isoformat(),
            "opened_by": incident.opened_by,
            "definition": json.loads(incident.definition),
            "definition_changed": incident.definition_changed,
            "scope_version": incident.scope_version,
            "reported_version": incident.reported_version,
            "transitions": transitions,
            "scope": None if scope is None else _scope_json(scope),
        }
    if as_json:
        out.print_json(json.dumps(data, ensure_ascii=False))
        return
    out.print(f"incident {data['incident']} — {data['name']} [{data['status']}]", highlight=False)
    out.print(f"  aware at {data['aware_at']}; opened by {data['opened_by']}", highlight=False)
    out.print(f"  definition {incident.definition}", highlight=False, soft_wrap=True)
    for t in transitions:
        out.print(f"  {t['at']} {t['status']:<9} {t['operator']}: {t['note']}", highlight=False)
    if scope is not None:
        _print_scope(scope, False)


@incident_app.command("close")
def incident_close(
    incident_id: Annotated[int, typer.Argument(help="The incident.")],
    note: Annotated[str, typer.Option(help="Why it is closed.")] = "",
    operator: OperatorOption = "",
) -> None:
    """Close an incident (it stays in the register)."""
    with open_services() as services, services.sessions() as session, session.begin():
        services.incidents.close(session, incident_id, operator=_operator(operator), note=note)
    err.print(f"incident {incident_id} closed")
