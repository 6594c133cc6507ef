"""``rempart claims …``: the billing system's claims (thin over ``rempart.claims``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rempart.cli import err, fail, open_services, out

claims_app = typer.Typer(
    help="Claims (care billed) from the billing system: files, and the RabbitMQ stream."
)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
SHOWN_PROBLEMS = 50


@claims_app.command("ingest")
def claims_ingest(
    file: Annotated[Path, typer.Argument(help="Claims as Parquet (.parquet) or CSV (.csv).")],
    as_json: JsonOption = False,
    show: Annotated[
        int, typer.Option("--show", min=1, help="Problems listed before only counting them.")
    ] = SHOWN_PROBLEMS,
) -> None:
    """Load claims (ts, account_id, nir, optional claim_id); idempotent.

    Every row is checked first: when any is wrong, every problem is listed (row,
    column, code) and nothing is written. A running server feeds the new claims to its
    guard within seconds (REMPART_CLAIMS_POLL_SECONDS)."""
    from rempart.claims.ingest import ClaimsRejected, ingest_file
    from rempart.progress import progress_bar

    with open_services() as services:
        try:
            with progress_bar(err, "claims: ") as progress:
                report = ingest_file(services.engine, file, progress=progress)
        except ClaimsRejected as exc:
            if as_json:
                body = {
                    "error": exc.code,
                    "detail": exc.detail,
                    "total": exc.total,
                    "problems": [p.to_json() for p in exc.problems],
                }
                out.print_json(json.dumps(body))
                raise typer.Exit(1) from None
            for problem in exc.problems[:show]:
                where = "file" if problem.row is None else f"row {problem.row:,}"
                column = f", {problem.column}" if problem.column else ""
                err.print(
                    escape(f"{where}{column}: [{problem.code.value}] {problem.detail}"),
                    highlight=False,
                )
            if exc.total > show:
                err.print(f"… and {exc.total - show:,} more problem(s)", highlight=False)
            raise fail(exc.code, exc.detail) from None
    if as_json:
        out.print_json(json.dumps(report.to_json()))
        return
    out.print(
        f"{file.name}: {report.read:,} read, {report.new:,} new, {report.known:,} already known"
        + (f", {report.repeated:,} repeated in the file" if report.repeated else ""),
        highlight=False,
    )


@claims_app.command("consume")
def claims_consume() -> None:
    """Consume the claims stream (REMPART_CLAIMS_AMQP_URL) in the foreground, until
    interrupted: for a deployment whose guard state is in Redis (REMPART_REDIS_URL),
    where the servers read what this process writes. The servers consume it themselves
    when the URL is set in their environment."""
    from rempart.claims.consumer import ClaimsConsumer

    with open_services() as services:
        if services.settings.claims_amqp_url is None:
            raise fail("claims_stream_not_configured", "set REMPART_CLAIMS_AMQP_URL")
        if services.settings.redis_url is None:
            err.print(
                "[yellow]warning[/] the guard state is in this process (no REMPART_REDIS_URL): "
                "claims reach the table, which the servers follow, not their memory",
                highlight=False,
            )
        consumer = ClaimsConsumer.from_services(services)
        try:
            consumer.run()
        except KeyboardInterrupt:
            consumer.stop()
        err.print(f"claims consumed: {consumer.counts}", highlight=False)
