"""The demo's end: what happened in figures, where every output lies, and (``--serve``)
the operators' console kept running on the demo's data."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from pathlib import Path

import pyotp
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from rempart.console.operators import Role
from rempart.demo.incident import IncidentReport
from rempart.demo.messages import MessagesReport
from rempart.demo.notify import NotifyReport
from rempart.demo.operations import OperationsReport
from rempart.demo.portal import PortalLogin
from rempart.demo.traffic import TrafficReport
from rempart.services import Services
from rempart.store.engine import session_scope

__all__ = ["DEMO_OPERATORS", "chapter_summary", "serve_console"]

DEMO_OPERATORS = (("analyste.demo", Role.ANALYST), ("dpo.demo", Role.DPO))


def chapter_summary(
    console: Console,
    workdir: Path,
    *,
    world: Mapping[str, int],
    traffic: TrafficReport,
    audit_entries: int,
    incident: IncidentReport | None,
    notified: NotifyReport | None,
    mail: Path,
    checked: MessagesReport | None = None,
    operations: OperationsReport | None = None,
) -> None:
    figures = Table("what happened", "figures", title="The story in figures")
    figures.add_row(
        "synthetic world",
        f"{world.get('insured', 0):,} insured, {world.get('professionals', 0):,} "
        f"professionals, {world.get('lookups', 0):,} lookups over 28 days",
    )
    honest = traffic.honest
    figures.add_row(
        "honest traffic over HTTP",
        f"{traffic.honest_accounts} accounts, {sum(honest.values())} lookups: "
        f"{honest['answered']} answered, {honest['step_up']} step-up(s), "
        f"{honest['suspended']} deny(ies)",
    )
    read = sum(len(r.read) for r in traffic.robots)
    unguarded = sum(len({p["nir"] for p in r.people}) for r in traffic.robots)
    suspended = sum(r.suspended_at is not None for r in traffic.robots)
    figures.add_row(
        "the robot",
        f"{len(traffic.robots)} accounts, {sum(r.asked for r in traffic.robots)} requests: "
        f"{read} person(s) read, against {unguarded} unguarded; "
        f"{suspended} account(s) suspended, {len(traffic.alert_ids)} alert(s)",
    )
    figures.add_row("audit trail", f"{audit_entries} entries, hash-chained, verified intact")
    if incident is not None:
        figures.add_row(
            "the breach",
            f"incident {incident.incident_id}: {incident.persons} person(s), "
            f"{incident.records} record(s); CNIL notification written",
        )
    if notified is not None:
        checks = (
            "the code checked on /verifier: authentic; a made-up code refused"
            if notified.genuine and notified.fake_refused
            else "code check on /verifier: NOT as expected"
        )
        figures.add_row(
            "the persons told",
            f"campaign {notified.campaign_id}: {notified.persons} person(s), "
            f"{notified.emailed} by e-mail, {notified.printed} by letter; {checks}",
        )
    if checked is not None:
        figures.add_row(
            "the message checker",
            f"the genuine notice: {checked.genuine_verdict} (score {checked.genuine_score}); "
            f"a fake in the insurer's name: {checked.fake_verdict} (score {checked.fake_score})",
        )
    if operations is not None:
        shed = sum(n for outcome, n in operations.burst.items() if "overloaded" in outcome)
        figures.add_row(
            "operations",
            f"ready: {'yes' if operations.ready else 'NO'}; "
            f"{sum(operations.lookups.values()):g} lookup(s) counted in /metrics; a burst of "
            f"{sum(operations.burst.values())} public checks: {shed} shed at the door",
        )
    console.print(figures)

    outputs = Table("output", f"under {workdir}", title="Where every output lies")
    candidates: list[tuple[str, Path]] = [
        ("the synthetic world (Parquet, world.json)", workdir / "world"),
        ("the database (SQLite: rights, accounts, audit trail)", workdir / "rempart.db"),
        ("the audit trail exported (Parquet, verified)", workdir / "audit-export"),
    ]
    if incident is not None:
        report = incident.report_dir
        candidates += [
            ("the CNIL notification (HTML, PDF, JSON)", report),
            (
                "the trail export the scope was checked on",
                workdir / f"audit-export-incident-{incident.incident_id}",
            ),
            ("the breach register (CSV)", incident.register),
        ]
    candidates.append((f"the e-mails ({len(list(mail.glob('*.eml')))} .eml)", mail))
    if notified is not None:
        candidates += [
            ("the letters: PDF print batches + CSV manifests", notified.letters_dir),
            ("the campaign preview (fictitious persons)", notified.preview_dir),
            ("the bounce (DSN) that turned an e-mail into a letter", workdir / "retour-dsn.eml"),
        ]
    candidates += [
        ("the service's development keys (audit, DKIM)", workdir / "rempart-data"),
        ("the local Pro Santé Connect provider's files", workdir / "oidc-provider"),
    ]
    for what, path in candidates:
        if path.exists():
            shown = path.relative_to(workdir).as_posix() + ("/" if path.is_dir() else "")
            if path == (incident.report_dir if incident else None):
                shown += " report.html, report.pdf, report.json"
            outputs.add_row(what, shown)
    console.print(outputs)
    console.print(
        Panel.fit(
            "Every lookup above went through the guard before the rights were read; the "
            "few it let a robot read are scoped, reported, registered, and each person "
            "is told once, by e-mail or letter, with a code they can check.",
            border_style="green",
        )
    )


def serve_console(console: Console, services: Services, port: int, portal: PortalLogin) -> None:
    """Two console operators on the demo's data, the portal pharmacy's login, then the
    service kept up until Ctrl-C."""
    table = Table(
        "login", "role", "password", "TOTP secret", title="Console operators (local demo)"
    )
    uris: list[str] = []
    for login, role in DEMO_OPERATORS:
        password = f"demo-{secrets.token_urlsafe(15)}"
        with session_scope(services.sessions) as session:
            created = services.operators.create(
                session, login=login, role=role, password=password, created_by="demo"
            )
        table.add_row(
            created.login, created.role, password, pyotp.parse_uri(created.otpauth_uri).secret
        )
        uris.append(created.otpauth_uri)
    console.print()
    console.rule("[bold cyan]The console stays up on the demo's data", align="left")
    console.print(f"  The operators' console: [bold]http://localhost:{port}/console/[/]")
    console.print(table)
    for uri in uris:
        console.print(f"  {uri}", highlight=False, soft_wrap=True)
    console.print(
        f"  The professionals' portal: [bold]http://localhost:{port}/portail/[/] — login "
        f"{portal.login}, password « {portal.password} », TOTP secret {portal.totp_secret}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        "  Log in with the password and the code of an authenticator app holding the "
        "secret (or: python -c \"import pyotp; print(pyotp.TOTP('SECRET').now())\"). "
        "Ctrl-C stops."
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("  stopped.")
