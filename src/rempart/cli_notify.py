"""``rempart notify …``: telling the persons an incident exposed (thin over
``rempart.notify.breach``)."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rempart.cli import err, fail, open_services, out

notify_app = typer.Typer(
    help="Breach notification campaigns: one e-mail or letter per exposed person, exactly once."
)

OperatorOption = Annotated[
    str,
    typer.Option(help="Who does this (recorded in the audit trail); defaults to the system user."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _operator(value: str) -> str:
    return value.strip() or getpass.getuser()


@notify_app.command("plan")
def notify_plan(
    incident: Annotated[int, typer.Argument(help="The scoped incident.")],
    as_json: JsonOption = False,
    operator: OperatorOption = "",
) -> None:
    """Create the campaign of a scoped incident: each person's channel, decided once.

    A second plan for the same incident (after a re-scope found more persons) is a
    complementary campaign holding only the persons not planned before."""
    from rempart.progress import progress_bar

    with open_services() as services, progress_bar(err, "plan: ") as progress:
        plan = services.campaigns.plan(incident, operator=_operator(operator), progress=progress)
    if as_json:
        out.print_json(json.dumps(plan.to_json()))
        return
    out.print(
        f"campaign {plan.campaign_id} ({plan.kind}) for incident {plan.incident_id}: "
        f"{plan.email:,} e-mails, {plan.letter:,} letters, "
        f"{sum(plan.unreachable.values()):,} unreachable"
        + (f" {dict(sorted(plan.unreachable.items()))}" if plan.unreachable else "")
        + (
            f"; {plan.flagged_addresses:,} addresses abbreviated to fit the postal standard"
            if plan.flagged_addresses
            else ""
        ),
        highlight=False,
    )


@notify_app.command("preview")
def notify_preview(
    campaign: Annotated[int, typer.Argument(help="The campaign.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the samples.")],
) -> None:
    """Render one sample of each message variant (fictitious persons) for review before
    anything is sent: e-mails as .eml, .txt and .html, letters as PDF."""
    from rempart.notify.breach.preview import write_preview

    with open_services() as services:
        written = write_preview(
            services.campaigns, services.campaign_runner(out_dir), campaign, out_dir
        )
    for path in written:
        out.print(str(path), highlight=False)


@notify_app.command("run")
def notify_run(  # noqa: PLR0917 - Typer maps each parameter to an option
    campaign: Annotated[int, typer.Argument(help="The campaign.")],
    letters_dir: Annotated[
        Path, typer.Option("--letters-dir", help="Where print batches (PDF + CSV) go.")
    ],
    channel: Annotated[
        str, typer.Option(help="email, letter or all (several workers can share one).")
    ] = "all",
    batch_size: Annotated[
        int, typer.Option(min=1, max=5_000, help="Letters per print batch (one PDF + CSV).")
    ] = 500,
    as_json: JsonOption = False,
    operator: OperatorOption = "",
) -> None:
    """Send the e-mails and write the letters still to do; resumable, exactly once.

    Run it again after a crash or an interruption: nobody is skipped and nobody gets a
    second notice (at most the single e-mail in flight at a crash is handed to the
    server again, with the same Message-ID)."""
    from rempart.progress import progress_bar

    if channel not in ("email", "letter", "all"):
        raise fail("invalid_channel", "--channel is email, letter or all")
    channels = ("email", "letter") if channel == "all" else (channel,)
    with open_services() as services, progress_bar(err, "", rates=True) as progress:
        runner = services.campaign_runner(letters_dir, progress=progress, batch_letters=batch_size)
        report = runner.run(campaign, operator=_operator(operator), channels=channels)
        status = services.campaigns.status(campaign)
    if as_json:
        out.print_json(json.dumps({"run": report.to_json(), "status": status.to_json()}))
        return
    out.print(
        f"campaign {campaign}: {report.emailed:,} e-mails sent, {report.printed:,} letters in "
        f"{report.batches:,} batches, {report.failed_emails:,} e-mails failed "
        f"({report.letters_planned:,} turned into letters); status {status.status}, "
        f"{status.pending:,} persons still to reach",
        highlight=False,
    )


@notify_app.command("status")
def notify_status(
    campaign: Annotated[int, typer.Argument(help="The campaign.")],
    as_json: JsonOption = False,
) -> None:
    """Where the campaign stands; the persons' counts always add up to the plan."""
    with open_services() as services:
        status = services.campaigns.status(campaign)
    if as_json:
        out.print_json(json.dumps(status.to_json()))
        return
    table = Table(title=f"campaign {campaign} ({status.kind}, {status.status})")
    table.add_column("persons")
    table.add_column("count", justify="right")
    table.add_row("reached by e-mail", f"{status.reached_email:,}")
    table.add_row("reached by letter", f"{status.reached_letter:,}")
    table.add_row("still to reach", f"{status.pending:,}")
    for reason, count in sorted(status.unreachable.items()):
        table.add_row(f"unreachable: {reason}", f"{count:,}")
    table.add_row("[bold]total (the plan)", f"[bold]{status.persons:,}")
    out.print(table)
    for name, states in status.messages.items():
        if states:
            detail = ", ".join(f"{s} {n:,}" for s, n in sorted(states.items()))
            out.print(f"{name}: {detail}", highlight=False)


@notify_app.command("bounces")
def notify_bounces(
    source: Annotated[
        Path, typer.Argument(help="A bounce (.eml), a folder of them, or an mbox file.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Read returned delivery reports (RFC 3464): each permanent failure turns the
    person's e-mail into a letter (then `notify run` prints it). Reading one twice
    changes nothing."""
    from rempart.notify.breach.bounces import ingest_bounces
    from rempart.notify.breach.dsn import read_bounces

    if not source.exists():
        raise fail("file_not_found", f"{source} does not exist")
    with open_services() as services:
        report = ingest_bounces(services.campaigns, read_bounces(source))
    if as_json:
        out.print_json(json.dumps(report.to_json()))
        return
    out.print(
        f"{report.read:,} messages read: {report.letters_planned:,} letters planned, "
        f"{report.unreachable:,} persons unreachable, {report.delayed:,} delays, "
        f"{report.already:,} already handled, {report.unmatched:,} not ours, "
        f"{report.not_bounces:,} not delivery reports",
        highlight=False,
    )


@notify_app.command("dkim-record")
def notify_dkim_record() -> None:
    """The DNS TXT record to publish for the notices' DKIM signature."""
    from rempart.notify.breach.dkim import signer_from_settings

    with open_services() as services:
        signer = signer_from_settings(services.settings)
    out.print(f"{signer.selector}._domainkey.{signer.domain}. IN TXT", highlight=False)
    out.print(f'"{signer.dns_record()}"', highlight=False)
