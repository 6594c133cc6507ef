"""The ``rempart`` command: a thin layer over the domain modules."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import structlog
import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from rempart.audit.chain import CheckpointVerifier
from rempart.config import ConfigError, Settings, load_settings
from rempart.errors import RempartError
from rempart.logs import configure_logging
from rempart.progress import progress_bar
from rempart.store.engine import as_utc
from rempart.world.io import WorldFormatError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from rempart.auth.clients import ClientRegistry, ClientSecret
    from rempart.services import Services

app = typer.Typer(
    name="rempart",
    help="Rempart: a guarded rights-lookup service for a health insurer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
world_app = typer.Typer(help="Synthetic worlds (insured persons, professionals, care links).")
db_app = typer.Typer(help="The database named by REMPART_DATABASE_URL.")
accounts_app = typer.Typer(help="Professional accounts.")
audit_app = typer.Typer(help="The audit trail: verification, checkpoints.")
app.add_typer(world_app, name="world")
app.add_typer(db_app, name="db")
app.add_typer(accounts_app, name="accounts")
app.add_typer(audit_app, name="audit")
outbox_app = typer.Typer(help="E-mails waiting in the outbox (REMPART_SMTP_URL, or .eml files).")
app.add_typer(outbox_app, name="outbox")
clients_app = typer.Typer(help="API clients (practice software): OAuth 2.0 client credentials.")
app.add_typer(clients_app, name="clients")

err = Console(stderr=True)
out = Console()


def fail(code: str, detail: str, exit_code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error[/] {escape(f'[{code}] {detail}')}", highlight=False)
    return typer.Exit(exit_code)


@app.callback()
def _startup() -> None:
    # Logs go to standard error so that standard output carries only results (an otpauth URI).
    configure_logging("warning")


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        err.print(str(exc), highlight=False, markup=False)
        raise typer.Exit(2) from None


@contextmanager
def open_services(
    settings: Settings | None = None, *, database_error: str = "database_unavailable"
) -> Iterator[Services]:
    """The services of one command, closed however it ends: a domain error exits with its
    stable code, a database error with ``database_error`` and what went wrong."""
    from rempart.services import Services

    services = Services(settings or settings_or_exit())
    try:
        yield services
    except RempartError as exc:
        raise fail(exc.code, exc.detail) from None
    except SQLAlchemyError as exc:
        raise fail(database_error, _database_problem(exc)) from None
    finally:
        services.close()


@world_app.command("generate")
def world_generate(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the world into.")],
    *,
    insured: Annotated[int, typer.Option(min=1, help="Insured persons.")] = 10_000,
    professionals: Annotated[int, typer.Option(min=1, help="Professional accounts.")] = 200,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Days of data.")] = 28,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same files.")] = 0,
    history_days: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Days of legitimate history before the evaluation window "
            "(default: three quarters of the days).",
        ),
    ] = None,
    attacks: Annotated[
        str,
        typer.Option(
            help="Attack scenarios in the window: 'all', 'none', or "
            "family[:knob=value...] separated by commas (families: scrape_2022, "
            "slow_scrape, campaign, enumeration, off_hours, stolen_session)."
        ),
    ] = "all",
    no_attacks: Annotated[
        bool, typer.Option("--no-attacks", help="Legitimate traffic only.")
    ] = False,
    volume: Annotated[
        float, typer.Option(min=0.0, help="Multiplies every account's daily lookups.")
    ] = 1.0,
    claims_per_lookup: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            max=5.0,
            help="Heavy billing: this many claims per legitimate lookup (every visit "
            "billed, several claims per visit, care billed without a lookup; default: one "
            "claim per billed visit, about 0.5).",
        ),
    ] = None,
    seasonal_surge: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Tourists in a resort area during the window, as a share of a pharmacy's "
            "daily lookups (0: none).",
        ),
    ] = 0.8,
    batch_check_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of practices whose software checks the day's appointments each "
            "working morning.",
        ),
    ] = 0.3,
) -> None:
    """Write a synthetic world (Parquet files and world.json), with traffic and attacks."""
    from rempart.world.attacks import parse_scenarios
    from rempart.world.generator import generate_world
    from rempart.world.traffic import TrafficParams

    if history_days is not None and history_days >= days:
        raise fail("world_bad_option", "--history-days must be less than --days", 2)
    try:
        scenarios = [] if no_attacks else parse_scenarios(attacks)
    except ValueError as exc:
        raise fail("world_bad_option", str(exc), 2) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    with progress_bar(err, "generate: ") as progress:
        summary = generate_world(
            out_dir,
            insured=insured,
            professionals=professionals,
            days=days,
            seed=seed,
            history_days=history_days,
            attacks=scenarios,
            traffic=TrafficParams(
                volume=volume,
                claims_per_lookup=claims_per_lookup,
                seasonal_surge=seasonal_surge,
                batch_check_share=batch_check_share,
            ),
            progress=progress,
        )
    counts = ", ".join(f"{name} {count:,}" for name, count in summary.counts.items())
    err.print(f"world written to {out_dir}: {counts}", highlight=False)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the latest version."""
    from rempart.store.migrate import upgrade
    from rempart.store.pseudonyms import backfill

    with open_services() as services:
        upgrade(services.engine, schema="data")
        upgrade(services.audit_engine, schema="audit")
        # Persons loaded before insured.pseudonym existed (migration 0008) get theirs.
        filled = backfill(services.engine, services.settings.keys.pseudonym_key)
    if filled:
        err.print(f"pseudonyms computed for {filled} insured persons")
    err.print("database schema is up to date")


@db_app.command("load-world")
def db_load_world(
    world_dir: Annotated[Path, typer.Argument(help="A world directory (Parquet files).")],
) -> None:
    """Load the insured persons, professionals and care links of a world, in one transaction."""
    from rempart.store.load_world import load_world

    with open_services() as services:
        try:
            with progress_bar(err, "load: ") as progress:
                summary = load_world(
                    services.engine,
                    world_dir,
                    pseudonym_key=services.settings.keys.pseudonym_key,
                    progress=progress,
                )
        except WorldFormatError as exc:
            raise fail(exc.code, f"{exc.detail}; nothing was loaded") from None
        except SQLAlchemyError as exc:
            raise fail("database_error", f"{_database_problem(exc)}; nothing was loaded") from None
    for table, rows in summary.rows.items():
        err.print(f"{table}: {rows:,} rows in the world, {summary.changed[table]:,} changed")


PasswordStdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def read_password(from_stdin: bool) -> str:
    """The password on standard input's first line (never an argument: the process list
    and the shell's history keep those)."""
    if not from_stdin:
        raise fail("password_required", "pass the password on standard input with --password-stdin")
    return sys.stdin.readline().rstrip("\r\n")


@accounts_app.command("create")
def accounts_create(
    login: Annotated[str, typer.Option(help="The login the professional types.")],
    password_stdin: PasswordStdinOption = False,
    profession: Annotated[str | None, typer.Option(help="generaliste, pharmacie, ...")] = None,
    account_id: Annotated[
        str | None, typer.Option(help="The professional's account id in the world.")
    ] = None,
    email: Annotated[
        str | None,
        typer.Option(help="Where security notices go (else the world's directory entry)."),
    ] = None,
) -> None:
    """Create a professional account; prints its TOTP provisioning URI (otpauth://)."""
    from rempart.store.engine import session_scope

    password = read_password(password_stdin)
    with open_services() as services, session_scope(services.sessions) as session:
        created = services.auth.create_account(
            session,
            login=login,
            password=password,
            profession=profession,
            account_id=account_id,
            email=email,
        )
    err.print(f"account {created.account_id} created for login {created.login}")
    out.print(created.otpauth_uri, highlight=False, soft_wrap=True)


OperatorOption = Annotated[
    str,
    typer.Option(help="Who does this (recorded in the audit trail).", min=1),
]


def _operator_action(account_id: str, operator: str, action: str) -> str | bool:
    """Runs one operator action on an account in a transaction; exits with a code on error."""
    from rempart.store.engine import session_scope

    if not operator.strip():
        raise fail("operator_required", "name the operator with --operator")
    with open_services() as services, session_scope(services.sessions) as session:
        if action == "reset-code":
            return services.recovery.issue_reset_code(session, account_id, operator=operator)
        if action == "enrolment-code":
            return services.recovery.issue_enrolment_code(session, account_id, operator=operator)
        if action == "reset-mfa":
            return services.recovery.reset_second_factor(session, account_id, operator=operator)
        if action == "clear-mfa-lock":
            return services.auth.clear_mfa_lock(session, account_id, operator=operator)
        return services.auth.suspend(session, account_id, by=f"operator:{operator}")


@accounts_app.command("issue-reset-code")
def accounts_issue_reset_code(
    account_id: Annotated[str, typer.Option(help="The account.")], operator: OperatorOption
) -> None:
    """Issue a one-time password-reset code, to send to the professional by post.

    The code is printed once on standard output; only its keyed hash is kept.
    """
    code = _operator_action(account_id, operator, "reset-code")
    err.print(f"reset code issued for {account_id}; valid for the configured number of days")
    out.print(str(code), highlight=False)


@accounts_app.command("reset-mfa")
def accounts_reset_mfa(
    account_id: Annotated[str, typer.Option(help="The account.")], operator: OperatorOption
) -> None:
    """Reset a lost second factor: new TOTP secret (URI printed), security keys and recovery
    codes removed, every session ended; the professional is told by e-mail."""
    uri = _operator_action(account_id, operator, "reset-mfa")
    err.print(f"second factor reset for {account_id}")
    out.print(str(uri), highlight=False, soft_wrap=True)


@accounts_app.command("clear-mfa-lock")
def accounts_clear_mfa_lock(
    account_id: Annotated[str, typer.Option(help="The account.")], operator: OperatorOption
) -> None:
    """After checking who calls: set the count of wrong second factors back to zero and let
    TOTP and recovery codes log in again (they stop after too many wrong ones). Audited."""
    if not _operator_action(account_id, operator, "clear-mfa-lock"):
        raise fail("unknown_account", "no account has this id")
    err.print(f"second-factor lock cleared for {account_id}")


@accounts_app.command("suspend")
def accounts_suspend(
    account_id: Annotated[str, typer.Option(help="The account.")], operator: OperatorOption
) -> None:
    """Suspend an account and end all its sessions."""
    if not _operator_action(account_id, operator, "suspend"):
        raise fail("unknown_account", "no account has this id")
    err.print(f"account {account_id} suspended")


@accounts_app.command("issue-enrolment-code")
def accounts_issue_enrolment_code(
    account_id: Annotated[str, typer.Option(help="The account.")], operator: OperatorOption
) -> None:
    """Issue a one-time enrolment code, to send to the professional by post: with it, a
    password + TOTP login may enrol a first security key or mint recovery codes.

    The code is printed once on standard output; only its keyed hash is kept.
    """
    code = _operator_action(account_id, operator, "enrolment-code")
    err.print(f"enrolment code issued for {account_id}; valid for the configured number of days")
    out.print(str(code), highlight=False)


def _parse_moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise fail("invalid_date", "--compromised-since must be ISO 8601") from None
    if moment.tzinfo is None:
        raise fail("invalid_date", "--compromised-since needs a time zone (e.g. +01:00 or Z)")
    return moment.astimezone(UTC)


@accounts_app.command("restore")
def accounts_restore(
    account_id: Annotated[str, typer.Option(help="The account.")],
    operator: OperatorOption,
    compromised_since: Annotated[
        str | None,
        typer.Option(
            help="When the compromise began (ISO 8601 with a time zone); default: the "
            "earliest guard alert, challenged lookup or new-network login found since the "
            "account was last known clean."
        ),
    ] = None,
) -> None:
    """Lift a suspension after a compromise: removes the keys, recovery codes and networks
    added since it began, ends every session, and replaces the password and the TOTP seed.

    Prints what was removed (standard error), then on standard output the password-reset
    code and the new TOTP provisioning URI, one a line, for the insurer to post.
    """
    from sqlalchemy.orm import Session

    from rempart.auth.compromise import compromise_start
    from rempart.store.engine import session_scope

    if not operator.strip():
        raise fail("operator_required", "name the operator with --operator")
    since = _parse_moment(compromised_since) if compromised_since else None
    with open_services() as services, session_scope(services.sessions) as session:
        evidence = "given by the operator"
        if since is None:
            with Session(services.audit_engine) as audit:
                start = compromise_start(session, audit, account_id)
            since, evidence = start.at, start.evidence
        report = services.recovery.restore_account(
            session, account_id, operator=operator, since=since
        )
    err.print(
        f"account {account_id} restored; compromise taken to begin at "
        f"{report.since.isoformat(timespec='seconds')} ({evidence})",
        highlight=False,
        soft_wrap=True,
    )
    for key in report.keys_removed:
        err.print(
            f"  removed security key {escape(key.label)!r} enrolled "
            f"{key.created_at.isoformat(timespec='seconds')}",
            highlight=False,
            soft_wrap=True,
        )
    err.print(
        f"  removed {len(report.keys_removed)} key(s), {report.recovery_codes_removed} "
        f"recovery code(s), {report.networks_forgotten} network(s) or device(s) first seen "
        "since then; "
        f"ended {report.sessions_ended} session(s)",
        highlight=False,
        soft_wrap=True,
    )
    err.print(
        "  password and TOTP replaced: post the reset code and the provisioning URI below "
        "to the professional's practice",
        highlight=False,
        soft_wrap=True,
    )
    out.print(report.reset_code, highlight=False)
    out.print(report.otpauth_uri, highlight=False, soft_wrap=True)


@audit_app.command("verify")
def audit_verify(
    incremental: Annotated[
        bool,
        typer.Option(help="Start each chain at the last checkpoint a verification found intact."),
    ] = False,
    jobs: Annotated[int, typer.Option(min=1, max=16, help="Parallel processes.")] = 2,
    export: Annotated[
        Path | None, typer.Option(help="Verify an export directory instead, on its own.")
    ] = None,
) -> None:
    """Check every chain of the audit trail and every checkpoint signature.

    Exit 0 when intact; 1 with the first bad entry of each broken chain named.
    """
    from rempart.audit.chain import CheckpointSigner
    from rempart.audit.verify import verify_database

    settings = settings_or_exit()
    if export is not None:
        _verify_export(export, CheckpointSigner(settings.keys.audit_signing_key).verifier())
        return
    verifier = CheckpointSigner(settings.keys.audit_signing_key).verifier()
    with open_services(settings, database_error="audit_unavailable") as services:
        report = verify_database(
            services.audit_engine,
            verifier,
            incremental=incremental,
            jobs=jobs,
            url=settings.audit_database_url or settings.database_url,
        )
    for problem in report.problems:
        err.print(f"BROKEN {problem}", highlight=False, markup=False)
    summary = (
        f"{report.entries:,} entries in {len(report.shards)} chain(s) checked, "
        f"{report.checkpoints:,} signed checkpoint(s) valid (key {verifier.key_id})"
    )
    if not report.ok:
        raise fail("audit_broken", f"the audit trail is NOT intact; {summary}")
    err.print(f"audit trail intact: {summary}", highlight=False)


def _verify_export(directory: Path, verifier: CheckpointVerifier) -> None:
    import pyarrow as pa

    from rempart.audit.export import verify_export

    try:
        report = verify_export(directory, verifier)
    except (OSError, pa.ArrowException) as exc:
        raise fail("audit_export_unreadable", str(exc)) from None
    for problem in report.problems:
        err.print(f"BROKEN {problem}", highlight=False, markup=False)
    for shard in report.unanchored:
        err.print(
            f"note: shard {shard} starts after an entry the export does not sign (no anchor)",
            highlight=False,
        )
    summary = f"{report.entries:,} entries in {len(report.shards)} chain(s) of {directory}"
    if not report.ok:
        raise fail("audit_broken", f"the export is NOT intact; {summary}")
    err.print(f"export intact: {summary}", highlight=False)


@audit_app.command("export")
def audit_export(
    out_dir: Annotated[Path, typer.Option("--out", help="A new directory for the Parquet files.")],
    since: Annotated[
        datetime | None, typer.Option(help="From this time (ISO 8601, UTC if no offset).")
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="Up to this time, excluded.")] = None,
) -> None:
    """Write the audit trail as Parquet, partitioned by day, verifiable on its own."""
    from rempart.audit.chain import CheckpointSigner
    from rempart.audit.export import export_trail

    settings = settings_or_exit()
    signer = CheckpointSigner(settings.keys.audit_signing_key)
    with open_services(settings, database_error="audit_unavailable") as services:
        try:
            summary = export_trail(
                services.audit_engine,
                out_dir,
                signer.verifier(),
                since=as_utc(since),
                until=as_utc(until),
            )
        except FileExistsError as exc:
            raise fail("export_exists", str(exc)) from None
    err.print(
        f"{summary.entries:,} entries of {len(summary.shards)} chain(s) and "
        f"{summary.checkpoints:,} checkpoint(s) written to {out_dir}",
        highlight=False,
    )


@audit_app.command("history")
def audit_history(
    nir_stdin: Annotated[
        bool,
        typer.Option("--nir-stdin", help="Read the NIR from standard input (never an argument)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Who read one person's record, when, and what (for the DPO, right of access).

    The NIR is read from standard input so that it never lands in a shell history or a
    process list. The query itself is recorded in the audit trail.
    """
    import getpass

    from rich.table import Table

    from rempart.audit.history import access_history
    from rempart.nir import InvalidNIR, parse_nir

    if not nir_stdin:
        raise fail("nir_required", "pass the NIR on standard input with --nir-stdin")
    try:
        nir = parse_nir(sys.stdin.readline().strip())
    except InvalidNIR as exc:
        raise fail("invalid_nir", f"{exc.code.value}: {exc.detail}") from None
    settings = settings_or_exit()
    with open_services(settings) as services:
        accesses = access_history(
            nir=nir,
            audit_engine=services.audit_engine,
            data_engine=services.engine,
            audit=services.audit,
            pseudonym_key=settings.keys.pseudonym_key,
            operator=getpass.getuser(),
        )
    if as_json:
        out.print_json(
            data=[
                {
                    "at": a.at.isoformat(),
                    "account_id": a.account_id,
                    "professional": a.professional,
                    "profession": a.profession,
                    "found": a.found,
                    "categories": list(a.categories),
                    "outcome": a.outcome,
                }
                for a in accesses
            ]
        )
        return
    table = Table("when (UTC)", "account", "professional", "profession", "data read", "answer")
    for a in accesses:
        table.add_row(
            f"{a.at:%Y-%m-%d %H:%M:%S}",
            a.account_id,
            a.professional or "-",
            a.profession or "-",
            ", ".join(a.categories) or "-",
            a.outcome,
        )
    out.print(table)
    err.print(f"{len(accesses)} access(es); this query was recorded in the audit trail")


@audit_app.command("archive")
def audit_archive(
    out_dir: Annotated[Path, typer.Option("--out", help="A new directory for the archive.")],
    before: Annotated[
        datetime | None,
        typer.Option(help="Archive entries older than this (default: the retention period)."),
    ] = None,
) -> None:
    """Move entries older than the retention period to a Parquet archive that keeps the chain."""
    from datetime import timedelta

    from rempart.audit.chain import CheckpointSigner
    from rempart.audit.retention import archive_before

    settings = settings_or_exit()
    cutoff = as_utc(before) or datetime.now(UTC) - timedelta(days=settings.audit_retention_days)
    with open_services(settings, database_error="audit_unavailable") as services:
        try:
            summary = archive_before(
                services.audit_engine,
                cutoff,
                out_dir,
                CheckpointSigner(settings.keys.audit_signing_key),
            )
        except FileExistsError as exc:
            raise fail("export_exists", str(exc)) from None
    err.print(
        f"{summary.entries:,} entries before {cutoff:%Y-%m-%d %H:%M} UTC archived to {out_dir} "
        f"(sha256 {summary.sha256[:16]}...) and removed from the live trail",
        highlight=False,
    )


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the current head of every chain now (cron it, and run it before an export)."""
    from rempart.audit.trail import SqlAuditTrail

    with open_services(database_error="audit_unavailable") as services:
        audit = services.audit
        if not isinstance(audit, SqlAuditTrail):
            raise fail("audit_disabled", "the audit writer is disabled in this configuration")
        written = audit.checkpoint_heads()
    err.print(f"{written} checkpoint(s) signed")


@outbox_app.command("deliver")
def outbox_deliver(
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="E-mails to send at most.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Send the e-mails that are due; exit 1 if any could not be sent (they stay pending)."""

    with open_services() as services:
        report = services.outbox.deliver_pending(
            services.sessions, services.mail_sender, limit=limit
        )
    counts = {
        "sent": report.sent,
        "failed": report.failed,
        "remaining": report.remaining,
        "abandoned": report.abandoned,
    }
    if as_json:
        out.print_json(data=counts)
    else:
        out.print(", ".join(f"{name} {count}" for name, count in counts.items()), highlight=False)
    if report.failed:
        raise typer.Exit(1)


@contextmanager
def _client_registry() -> Iterator[tuple[ClientRegistry, Session]]:
    """The API-client registry and a transaction; exits with the error's code on failure."""
    from rempart.store.engine import session_scope

    with open_services() as services, session_scope(services.sessions) as session:
        yield services.clients, session


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _print_secret(issued: ClientSecret, as_json: bool) -> None:
    if as_json:
        out.print_json(
            data={
                "client_id": issued.client_id,
                "client_secret": issued.client_secret,
                "organization_id": issued.organization_id,
                "label": issued.label,
                "previous_valid_until": _iso(issued.previous_valid_until),
            }
        )
        return
    out.print(f"client_id={issued.client_id}", highlight=False, markup=False)
    out.print(f"client_secret={issued.client_secret}", highlight=False, markup=False)
    err.print("the secret is shown once: store it in the practice software now", highlight=False)


@clients_app.command("create")
def clients_create(
    organization: Annotated[str, typer.Option(help="The organization_id it acts for.")],
    label: Annotated[str, typer.Option(help="A name to recognise it (software, site).")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Create an API client bound to an organization; prints its id and secret, once."""
    with _client_registry() as (registry, session):
        issued = registry.create(session, organization_id=organization, label=label)
    _print_secret(issued, as_json)


@clients_app.command("rotate")
def clients_rotate(
    client_id: Annotated[str, typer.Argument(help="The client.")],
    grace_hours: Annotated[
        float | None,
        typer.Option(
            min=0, max=720, help="How long the former secret keeps working (default: settings)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Give a client a new secret (printed once); the former one works until the grace ends."""
    with _client_registry() as (registry, session):
        issued = registry.rotate(session, client_id, grace_hours=grace_hours)
    if issued.previous_valid_until is not None:
        err.print(f"the former secret works until {_iso(issued.previous_valid_until)}")
    _print_secret(issued, as_json)


@clients_app.command("revoke")
def clients_revoke(client_id: Annotated[str, typer.Argument(help="The client.")]) -> None:
    """Revoke a client: its secrets and every token it holds stop working at once."""
    with _client_registry() as (registry, session):
        changed = registry.revoke(session, client_id)
    err.print(f"client {client_id} {'revoked' if changed else 'was already revoked'}")


@clients_app.command("restore")
def clients_restore(
    client_id: Annotated[str, typer.Option(help="The client.")], operator: OperatorOption
) -> None:
    """Lift a client's suspension (the guard's); tokens issued before it stay refused."""
    if not operator.strip():
        raise fail("operator_required", "name the operator with --operator")
    with _client_registry() as (registry, session):
        changed = registry.restore(session, client_id, operator=operator)
    if not changed:
        raise fail("not_suspended", "this client is not suspended")
    err.print(f"client {client_id} restored")


@clients_app.command("list")
def clients_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the API clients (never their secrets)."""
    with _client_registry() as (registry, session):
        clients = registry.list(session)
    rows = [
        {
            "client_id": info.client_id,
            "organization_id": info.organization_id,
            "label": info.label,
            "status": info.status,
            "created_at": _iso(info.created_at),
            "rotated_at": _iso(info.rotated_at),
            "previous_valid_until": _iso(info.previous_valid_until),
            "suspended_at": _iso(info.suspended_at),
            "suspended_by": info.suspended_by,
        }
        for info in clients
    ]
    if as_json:
        out.print_json(data=rows)
        return
    for row in rows:
        out.print(
            f"{row['client_id']}  {row['organization_id']}  {row['status']}  {row['label']}"
            + (f"  (suspended by {row['suspended_by']})" if row["status"] == "suspended" else ""),
            highlight=False,
            markup=False,
        )


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
) -> None:
    """Run the HTTP service (uvicorn)."""
    import uvicorn

    from rempart.api.server import uvicorn_options
    from rempart.store.migrate import schema_problem

    settings = settings_or_exit()
    configure_logging(settings.log_level, json=True)
    if workers > 1 and not settings.redis_url:
        # Each worker would keep its own guard memory and login throttle: a robot meets
        # one budget per worker, and its failures spread over them.
        shared = "set REMPART_REDIS_URL to share them"
        if settings.env == "production":
            raise fail(
                "redis_required",
                f"{workers} workers without REMPART_REDIS_URL: the guard's state and the "
                f"login throttle would be kept per worker; {shared} or run one worker",
                exit_code=2,
            )
        structlog.get_logger("rempart.cli").warning(
            "workers_without_redis",
            workers=workers,
            detail="the guard's state and the login throttle are kept per worker; " + shared,
        )
    _ = settings.keys  # generate or check keys now, before any worker starts
    with open_services(settings) as services:
        problem = schema_problem(services.engine, "data") or schema_problem(
            services.audit_engine, "audit"
        )
    if problem:
        raise fail("database_not_ready", problem, exit_code=2)
    metrics_dir = None
    if workers > 1:
        # Each worker keeps its metrics in files there, and whichever answers /metrics
        # sums them all. Set before the workers import prometheus-client (it reads it
        # then); fresh, so that no value of an earlier run is summed in.
        data_dir = settings.resolved_data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        metrics_dir = Path(tempfile.mkdtemp(prefix="metrics-", dir=data_dir))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    try:
        uvicorn.run(
            "rempart.api.factory:app",
            factory=True,
            workers=workers,
            # uvicorn's own lines go through the service's JSON formatter too.
            log_config=None,
            **uvicorn_options(host=host, port=port, log_level=settings.log_level),
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


@app.command("demo")
def demo(
    workdir: Annotated[
        Path, typer.Option(help="Where the demo keeps its database and world (recreated).")
    ] = Path("demo-output"),
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Then keep the service and its console running on the demo data (two "
            "console operators are created and their logins printed); Ctrl-C stops.",
        ),
    ] = False,
) -> None:
    """The end-to-end story on the embedded default (SQLite, in-process state)."""
    from rempart.demo import run_demo

    run_demo(workdir, console=out, serve=serve)


guard_app = typer.Typer(help="The guard: decisions on lookups, offline replay of a world.")
app.add_typer(guard_app, name="guard")


@guard_app.command("replay")
def guard_replay(
    world_dir: Annotated[Path, typer.Argument(help="A world directory (Parquet files).")],
    out_file: Annotated[Path, typer.Option("--out", help="Decisions file to write (Parquet).")],
    config: Annotated[
        Path | None, typer.Option(help="Guard configuration (TOML); default: the shipped one.")
    ] = None,
) -> None:
    """Run the guard over a world's lookups and claims in time order; write its decisions."""
    from rempart.guard.config import GuardConfigError, load_config
    from rempart.guard.replay import replay_world

    try:
        guard_config = load_config(config)
    except GuardConfigError as exc:
        raise fail("guard_bad_config", str(exc), exit_code=2) from None
    try:
        with progress_bar(err, "guard: ") as progress:
            summary = replay_world(world_dir, out_file, config=guard_config, progress=progress)
    except WorldFormatError as exc:
        raise fail(exc.code, f"{exc.detail}; nothing was written") from None
    rate = summary.lookups / summary.seconds if summary.seconds > 0 else 0.0
    window = ", ".join(f"{k} {v:,}" for k, v in summary.window_counts.items())
    err.print(
        f"{summary.lookups:,} lookups and {summary.claims:,} claims replayed "
        f"({rate:,.0f} lookups/s, {summary.engine} engine); window: {window}; "
        f"decisions in {out_file}",
        highlight=False,
    )


@guard_app.command("alerts")
def guard_alerts(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    status: Annotated[
        str | None, typer.Option(help="Only alerts in this state: open or acknowledged.")
    ] = None,
    account_id: Annotated[str | None, typer.Option(help="Only this account's alerts.")] = None,
    client_id: Annotated[
        str | None, typer.Option(help="Only the alerts of this API client (practice software).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many.")] = 1000,
) -> None:
    """List the guard's alerts, newest first (one per denied lookup and suspension)."""
    import json

    from rempart.guard.alerts import ALERT_STATUSES, list_alerts
    from rempart.store.engine import session_scope

    if status is not None and status not in ALERT_STATUSES:
        raise fail("bad_status", f"--status must be one of: {', '.join(ALERT_STATUSES)}")
    with open_services() as services, session_scope(services.sessions) as session:
        alerts = list_alerts(
            session,
            status=status,
            account_id=account_id,
            client_id=client_id,
            limit=limit,
        )
    if as_json:
        typer.echo(json.dumps([alert.as_json() for alert in alerts]))
        return
    if not alerts:
        err.print("no alerts")
        return
    for alert in alerts:
        out.print(
            f"#{alert.alert_id} {alert.created_at:%Y-%m-%d %H:%M:%S} {alert.status:<12} "
            f"{alert.account_id}{f' client {alert.client_id}' if alert.client_id else ''} "
            f"{alert.decision} score {alert.score:g} "
            f"{','.join(alert.reasons)}",
            highlight=False,
            soft_wrap=True,
        )


def _database_problem(exc: Exception) -> str:
    # The exception class and the server's first line, never parameters.
    first_line = str(getattr(exc, "orig", exc)).strip().splitlines()[:1]
    return f"{type(exc).__name__}: {first_line[0] if first_line else 'database error'}"


# Last: the incident and notify commands import this module's helpers.
from rempart.cli_claims import claims_app  # noqa: E402
from rempart.cli_incident import incident_app  # noqa: E402
from rempart.cli_messages import messages_app  # noqa: E402
from rempart.cli_notify import notify_app  # noqa: E402
from rempart.cli_operators import operators_app  # noqa: E402

app.add_typer(incident_app, name="incident")
app.add_typer(notify_app, name="notify")
app.add_typer(claims_app, name="claims")
app.add_typer(operators_app, name="operators")
app.add_typer(messages_app, name="messages")


def main() -> None:  # pragma: no cover - the console script entry point
    app()
