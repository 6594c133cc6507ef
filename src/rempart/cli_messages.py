"""``rempart messages …``: is this SMS or e-mail really from the insurer? (thin over
:mod:`rempart.messages`). The verdict's reasons are in French: they are what the call
centre's agent reads out to the caller."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from rempart.cli import open_services, out

__all__ = ["messages_app"]

messages_app = typer.Typer(
    help="The message checker: an explained verdict on an SMS or e-mail in the insurer's name."
)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

_STYLES = {"phishing": "bold red", "suspicious": "bold yellow", "genuine-looking": "bold green"}


@messages_app.command("check")
def messages_check(
    channel: Annotated[
        str, typer.Option(help="sms or email (a whole .eml on standard input is an e-mail).")
    ] = "sms",
    sender: Annotated[
        str, typer.Option(help="Who the message claims to come from (number, name, address).")
    ] = "",
    subject: Annotated[str | None, typer.Option(help="The e-mail's subject.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Judge the message on standard input (its text, or a whole .eml): phishing,
    suspicious or genuine-looking, with a score and the reasons in French."""
    with open_services() as services:
        checks = services.message_checks
        # One byte more than allowed: enough to refuse an oversized message as such.
        body = sys.stdin.buffer.read(checks.max_bytes + 1)
        verdict = checks.check(body, channel=channel, sender=sender, subject=subject, door="cli")
    if as_json:
        typer.echo(json.dumps(verdict.to_json(), ensure_ascii=False))
        return
    heading = Text("verdict: ")
    heading.append(verdict.verdict, style=_STYLES.get(verdict.verdict, "bold"))
    heading.append(f"  (score {verdict.score}/100, higher is more likely fraud)")
    out.print(heading)
    reasons = Table(box=None, show_header=True, padding=(0, 1, 0, 2))
    reasons.add_column("reason (French: what the caller is told)", overflow="fold")
    reasons.add_column("code", style="dim", no_wrap=True)
    for reason in verdict.reasons:
        reasons.add_row(Text(reason.text), reason.code)
    out.print(reasons)


@messages_app.command("stats")
def messages_stats(
    days: Annotated[int, typer.Option(min=1, max=3660, help="The last this many days.")] = 30,
    as_json: JsonOption = False,
) -> None:
    """How many messages were checked, per day, door, channel and verdict (the only
    thing the checker keeps)."""
    from rempart.messages.counts import read_counts

    since = datetime.now(UTC).date() - timedelta(days=days - 1)
    with open_services() as services:
        counts = read_counts(services.engine, since=since)
    if as_json:
        typer.echo(json.dumps([count.to_json() for count in counts]))
        return
    if not counts:
        out.print(f"no message checked since {since.isoformat()}", highlight=False)
        return
    table = Table(title=f"messages checked since {since.isoformat()} (UTC days)")
    for column in ("day", "door", "channel", "verdict"):
        table.add_column(column)
    table.add_column("checks", justify="right")
    for count in counts:
        table.add_row(
            count.day.isoformat(), count.door, count.channel, count.verdict, f"{count.checks:,}"
        )
    table.add_row("[bold]total", "", "", "", f"[bold]{sum(c.checks for c in counts):,}")
    out.print(table)
