"""The end-to-end story, on the embedded default (SQLite file, in-process state).

It runs the real HTTP service on a free local port and talks to it over HTTP, as a
professional's browser or practice software would, with a local SMTP server receiving
its e-mails: a world generated and loaded, logins, lookups, a working day of honest
traffic with a 2022-style robot on several accounts, the audit trail, the incident and
its CNIL notification, the campaign (e-mails and PDF letters), a notice checked on the
public page, a genuine notice and a fake one judged side by side by the message checker,
the guard's offline replay, and a summary of every output in the demo's folder
(``demo-output/`` by default). ``serve=True`` then keeps the service and its
console up on that data, with two console operators whose logins it prints.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pyarrow.compute as pc
import pyotp
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from sqlalchemy import func, select, update

from rempart.api import create_app
from rempart.api.server import free_port, running_server
from rempart.audit.chain import CheckpointSigner
from rempart.audit.export import export_trail, verify_export
from rempart.audit.history import access_history
from rempart.audit.models import AuditEvent
from rempart.audit.verify import verify_database
from rempart.config import load_settings
from rempart.demo.guard import chapter_claims, chapter_guard_replay
from rempart.demo.incident import chapter_incident
from rempart.demo.login import (
    RECEIVED_MAIL,
    chapter_practice_software,
    chapter_psc,
    chapter_stolen_mailbox,
    mail_folder,
    psc_provider_config,
)
from rempart.demo.messages import chapter_messages
from rempart.demo.notify import chapter_notify
from rempart.demo.operations import chapter_operations
from rempart.demo.portal import PortalLogin, chapter_portal
from rempart.demo.smtp import local_smtp_server
from rempart.demo.summary import chapter_summary, serve_console
from rempart.demo.traffic import TrafficReport, chapter_traffic
from rempart.devtools.oidc_provider import LocalProvider, ProviderUnavailable, running_provider
from rempart.logs import configure_logging
from rempart.nir import parse_nir
from rempart.progress import progress_bar
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.load_world import load_world
from rempart.store.migrate import upgrade
from rempart.store.models import Professional
from rempart.world.generator import generate_world
from rempart.world.io import read_table

__all__ = ["run_demo"]

DEMO_INSURED = 20_000
DEMO_PROFESSIONALS = 400
DEMO_SEED = 2022
DEMO_PASSWORD = "pharmacie du port, comptoir 2 !"  # noqa: S105 - the demo's own throwaway account
DEMO_DOCTOR_ACCOUNT = "dr-demo-psc"
DEMO_DOCTOR_RPPS = "10003456789"


def _masked(nir: str) -> str:
    """What the demo prints of a NIR: enough to recognise it, not to reuse it."""
    return f"{nir[0]} {nir[1:3]} {nir[3:5]} ** *** *** {nir[13:]}"


def _step(console: Console, number: int, title: str) -> None:
    console.print()
    console.rule(f"[bold cyan]{number}. {title}", align="left")


def run_demo(workdir: Path, *, console: Console | None = None, serve: bool = False) -> None:
    console = console or Console()
    # The story narrates every refusal itself; the service's own warning lines (a guard
    # denial, a suspension) would only cut through its progress bars.
    configure_logging("error")
    workdir = workdir.resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    world_dir = workdir / "world"
    world_dir.mkdir(parents=True)
    with ExitStack() as stack:
        _run(console, workdir, world_dir, stack, serve=serve)


def _start_provider(
    console: Console, stack: ExitStack, workdir: Path, port: int
) -> tuple[LocalProvider | None, dict[str, object]]:
    """The local Pro Santé Connect stand-in, when Node.js and its package are here."""
    redirect_uri = f"http://localhost:{port}/api/v1/auth/psc/callback"
    secret = secrets.token_urlsafe(24)
    config = psc_provider_config("rempart-demo", secret, redirect_uri, DEMO_DOCTOR_RPPS)
    try:
        provider = stack.enter_context(running_provider(config, workdir / "oidc-provider"))
    except ProviderUnavailable as exc:
        console.print(f"  [yellow]Pro Santé Connect chapter skipped:[/] {exc}")
        return None, {}
    return provider, {
        "psc_discovery_url": provider.discovery_url,
        "psc_client_id": "rempart-demo",
        "psc_client_secret": secret,
        "psc_redirect_uri": redirect_uri,
    }


def _run(
    console: Console, workdir: Path, world_dir: Path, stack: ExitStack, *, serve: bool
) -> None:
    port = free_port()
    provider, psc = _start_provider(console, stack, workdir, port)
    smtp_url = stack.enter_context(local_smtp_server(workdir / RECEIVED_MAIL))
    settings = load_settings(
        database_url=f"sqlite:///{workdir / 'rempart.db'}",
        data_dir=workdir / "rempart-data",
        # The demo's HTTP client plays the insurer's reverse proxy on this host, and says
        # where each actor comes from in X-Forwarded-For (the robot's remote network...).
        trusted_proxies="127.0.0.1",
        webauthn_rp_id="localhost",
        webauthn_origins=[f"http://localhost:{port}"],
        **({"smtp_url": smtp_url} if smtp_url else {}),
        **psc,
    )
    services = Services(settings)
    stack.callback(services.close)

    console.print(
        Panel.fit(
            "[bold]Rempart[/] — the rights-lookup service, guarded.\n"
            "In 2022 a robot read the rights of 510,000 insured persons through 19 professional "
            "accounts whose e-mail passwords had leaked. This story shows the service built right.",
            border_style="cyan",
        )
    )
    if smtp_url:
        console.print(
            f"  e-mail: a local SMTP server (aiosmtpd) at {smtp_url.removeprefix('smtp://')} "
            f"receives everything Rempart sends; kept in {RECEIVED_MAIL}/"
        )
    else:
        console.print(
            "  [yellow]e-mail: aiosmtpd is not installed (make demo installs it): no local SMTP "
            "server; e-mails are written as .eml files to rempart-data/outbox/[/]"
        )

    world = _world_and_database(console, services, world_dir)

    _step(console, 3, "A pharmacist's account: password + mandatory TOTP second factor")
    professionals = read_table(world_dir, "professionals")
    pharmacies = professionals.filter(
        pc.and_(
            pc.equal(professionals.column("profession"), "pharmacie"),
            pc.is_valid(professionals.column("organization_id")),
        )
    )
    account_id = str(pharmacies.column("account_id")[0])
    organization_id = str(pharmacies.column("organization_id")[0])
    with session_scope(services.sessions) as session:
        created = services.auth.create_account(
            session,
            login="pharmacie.du.port",
            password=DEMO_PASSWORD,
            profession="pharmacie",
            account_id=account_id,
            email="pharmacie.du.port@officine.example",
        )
    totp = pyotp.TOTP(pyotp.parse_uri(created.otpauth_uri).secret)
    console.print(f"  account [bold]{account_id}[/], login [bold]{created.login}[/]")
    console.print(
        "  TOTP enrolment URI (shown once, scanned into an authenticator app): "
        + created.otpauth_uri.split("secret=")[0]
        + "secret=<hidden>&issuer=Rempart"
    )

    # The pharmacist reads the pharmacy's own customers (care links of its organisation):
    # lookups the guard finds explained, as an honest professional's are.
    people = _customers(world_dir, professionals, organization_id)
    portal_pharmacy = (
        str(pharmacies.column("account_id")[1]),
        _customers(world_dir, professionals, str(pharmacies.column("organization_id")[1])),
    )
    # One HTTP service for the whole story (and for --serve after it), as `rempart serve`.
    base_url = stack.enter_context(running_server(create_app(services=services), port=port))
    http = stack.enter_context(httpx.Client(base_url=base_url))
    traffic, portal_login = _over_http(
        console,
        services,
        http,
        base_url=base_url,
        login=created.login,
        totp=totp,
        people=people,
        port=port,
        provider=provider,
        pharmacy=(account_id, organization_id),
        portal_pharmacy=portal_pharmacy,
        world_dir=world_dir,
    )
    audit_entries = _audit_chapter(console, services, workdir, people[0]["nir"])
    _step(console, 14, "The breach: scoped from the guard's alerts, the CNIL report, the register")
    incident = chapter_incident(console, services, workdir, traffic.alert_ids)
    notified = None
    if incident is not None:
        _step(
            console, 15, "Telling each person: e-mails and letters, once, that phishers cannot fake"
        )
        notified = chapter_notify(console, services, workdir, incident.incident_id, http)
    checked = None
    if notified is not None:
        _step(console, 16, "Is this message really from us? A genuine notice and a fake, judged")
        checked = chapter_messages(console, services, http)
    _step(console, 17, "Watching it run: readiness, metrics, and a burst shed at the door")
    operations = chapter_operations(console, http)
    _step(console, 18, "Claims from billing, then the guard offline: the world's 28 days replayed")
    chapter_claims(console, services.engine, world_dir)
    chapter_guard_replay(console, world_dir)
    _step(console, 19, "The end: what happened, and where every output lies")
    chapter_summary(
        console,
        workdir,
        world=world,
        traffic=traffic,
        audit_entries=audit_entries,
        incident=incident,
        notified=notified,
        checked=checked,
        operations=operations,
        mail=mail_folder(services),
    )
    if serve:
        serve_console(console, services, port, portal_login)


def _customers(
    world_dir: Path, professionals: Any, organization_id: str, count: int = 4
) -> list[dict[str, Any]]:
    """A few customers of a pharmacy (care links of its organisation): the persons its
    counter looks up, as an honest professional's lookups are explained."""
    colleagues = professionals.filter(
        pc.equal(professionals.column("organization_id"), organization_id)
    ).column("account_id")
    care = read_table(world_dir, "care", ["account_id", "nir"])
    customers = care.filter(
        pc.is_in(care.column("account_id"), value_set=colleagues.combine_chunks())
    ).column("nir")
    insured = read_table(
        world_dir, "insured", ["nir", "birth_date", "last_name", "treating_doctor"]
    )
    insured = insured.filter(
        pc.is_in(insured.column("nir"), value_set=pc.unique(customers.combine_chunks()))
    ).slice(0, count)
    rows: list[dict[str, Any]] = insured.to_pylist()
    return rows


def _world_and_database(console: Console, services: Services, world_dir: Path) -> Mapping[str, int]:
    """Chapters 1-2: the world generated, then loaded; returns its files' row counts."""
    _step(console, 1, "A synthetic world: insured persons, professionals, care links, traffic")
    with progress_bar(console, "  ") as progress:
        summary = generate_world(
            world_dir,
            insured=DEMO_INSURED,
            professionals=DEMO_PROFESSIONALS,
            days=28,
            seed=DEMO_SEED,
            progress=progress,
        )
    console.print(
        "  written: "
        + ", ".join(f"{name} {count:,}" for name, count in summary.counts.items())
        + f"  (seed {DEMO_SEED}: the same seed gives the same files)"
    )

    _step(console, 2, "The embedded database (SQLite): migrate, then load in one transaction")
    upgrade(services.engine, schema="data")
    upgrade(services.audit_engine, schema="audit")
    with progress_bar(console, "  ") as progress:
        loaded = load_world(
            services.engine,
            world_dir,
            pseudonym_key=services.settings.keys.pseudonym_key,
            progress=progress,
        )
    again = load_world(
        services.engine, world_dir, pseudonym_key=services.settings.keys.pseudonym_key
    )
    console.print(
        "  loaded: "
        + ", ".join(f"{table} {rows:,}" for table, rows in loaded.rows.items())
        + f"\n  loaded again: {sum(again.changed.values())} rows changed (loading is idempotent)"
    )
    return summary.counts


def _over_http(
    console: Console,
    services: Services,
    http: httpx.Client,
    *,
    base_url: str,
    login: str,
    totp: pyotp.TOTP,
    people: list[dict[str, Any]],
    port: int,
    provider: LocalProvider | None,
    pharmacy: tuple[str, str],
    portal_pharmacy: tuple[str, list[dict[str, Any]]],
    world_dir: Path,
) -> tuple[TrafficReport, PortalLogin]:
    """Chapters 4-12: the professional's side, over real HTTP (and the portal's login)."""
    settings = services.settings
    _step(console, 4, f"Log in over HTTP ({base_url})")
    first = http.post("/api/v1/auth/login", json={"login": login, "password": DEMO_PASSWORD})
    console.print(f"  POST /api/v1/auth/login → {first.status_code} {list(first.json())}")
    second = http.post(
        "/api/v1/auth/mfa/totp",
        json={"mfa_token": first.json()["mfa_token"], "code": totp.now()},
    )
    token = second.json()
    console.print(
        f"  POST /api/v1/auth/mfa/totp → {second.status_code} "
        f"Bearer token valid {token['expires_in']} s"
    )
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    replay = http.post(
        "/api/v1/auth/mfa/totp",
        json={"mfa_token": first.json()["mfa_token"], "code": totp.now()},
    )
    console.print(f"  the same TOTP code again → {replay.status_code} {replay.json()['error']}")

    _step(console, 5, "Rights lookups (NIR + birth date, in the body, never in a URL)")
    table = Table("NIR", "name", "born", "treating doctor", "C2S", "AME", "ALD")
    for row in people[:3]:
        response = http.post(
            "/api/v1/rights/lookup",
            json={"nir": row["nir"], "birth_date": row["birth_date"].isoformat()},
            headers=auth,
        )
        body = response.json()
        doctor = body["treating_doctor"]
        table.add_row(
            _masked(body["nir"]),
            f"{body['first_name']} {body['last_name']}",
            body["birth_date"],
            f"{doctor['name']} (RPPS {doctor['rpps']})" if doctor else "—",
            *("oui" if body[k] else "non" for k in ("c2s", "ame", "ald")),
        )
    console.print(table)

    _step(console, 6, "What the service refuses")
    person = people[3]
    wrong_date = http.post(
        "/api/v1/rights/lookup",
        json={"nir": person["nir"], "birth_date": "1900-01-01"},
        headers=auth,
    )
    console.print(
        f"  right NIR, wrong birth date → {wrong_date.status_code} "
        f"{wrong_date.json()['error']} (the same answer as an unknown NIR)"
    )
    typo = person["nir"][:6] + ("1" if person["nir"][6] != "1" else "2") + person["nir"][7:]
    malformed = http.post(
        "/api/v1/rights/lookup", json={"nir": typo, "birth_date": "1980-01-01"}, headers=auth
    )
    console.print(
        f"  a NIR with a typo → {malformed.status_code} {malformed.json()['error']} "
        f"({malformed.json()['reason']}: {malformed.json()['detail']})"
    )
    no_token = http.post(
        "/api/v1/rights/lookup", json={"nir": person["nir"], "birth_date": "1980-01-01"}
    )
    console.print(f"  no bearer token → {no_token.status_code} {no_token.json()['error']}")

    _step(console, 7, "In the browser: the professionals' portal")
    portal_login = chapter_portal(
        console, services, http, account_id=portal_pharmacy[0], people=portal_pharmacy[1]
    )

    _step(console, 8, "A robot with a leaked password guesses (from its own network)")
    robot = {"X-Forwarded-For": "203.0.113.66", "User-Agent": "python-requests/2.32.3"}
    answers: list[str] = []
    for attempt in range(1, settings.throttle_account_failures + 4):
        response = http.post(
            "/api/v1/auth/login",
            json={"login": login, "password": f"leaked-password-{attempt}"},
            headers=robot,
        )
        retry = response.headers.get("retry-after")
        answers.append(
            f"{response.status_code} {response.json()['error']}"
            + (f", Retry-After: {retry} s" if retry else "")
        )
        if response.status_code == 429:
            break
    console.print(
        f"  attempts 1-{len(answers) - 1}: {answers[0]}; attempt {len(answers)}: {answers[-1]}"
    )
    console.print(
        "  Throttling is checked before the password and backs off exponentially (never a "
        "permanent lock); the pharmacist's own network is not slowed by the robot's "
        "failures, and an unknown login gets exactly the same answers as a real one."
    )
    _login_chapters(
        console,
        services,
        http,
        login=login,
        totp=totp,
        counter_session=token["access_token"],
        port=port,
        provider=provider,
        pharmacy=pharmacy,
        people=people,
    )
    _step(
        console,
        12,
        "A working day over HTTP: honest professionals, and a 2022-style robot on three pharmacies",
    )
    traffic = chapter_traffic(
        console,
        services,
        http,
        world_dir=world_dir,
        exclude={pharmacy[0], portal_pharmacy[0], DEMO_DOCTOR_ACCOUNT},
    )
    return traffic, portal_login


def _login_chapters(
    console: Console,
    services: Services,
    http: httpx.Client,
    *,
    login: str,
    totp: pyotp.TOTP,
    counter_session: str,
    port: int,
    provider: LocalProvider | None,
    pharmacy: tuple[str, str],
    people: list[dict[str, Any]],
) -> None:
    """Chapters 8-10: strong login, Pro Santé Connect, practice software."""
    mail_seen: set[str] = set()
    _step(console, 9, "A stolen password and mailbox are not enough; nor is a phished code")
    chapter_stolen_mailbox(
        console,
        services,
        http,
        login=login,
        password=DEMO_PASSWORD,
        totp=totp,
        counter_session=counter_session,
        origin=f"http://localhost:{port}",
        mail_seen=mail_seen,
    )
    _step(console, 10, "Pro Santé Connect: a doctor logs in with the CPS card")
    if provider is not None:
        _enrol_doctor(services)
    chapter_psc(
        console,
        services,
        http,
        provider=provider,
        account="docteur-carte",
        nir=people[0]["nir"],
        birth_date=people[0]["birth_date"].isoformat(),
    )
    _step(
        console,
        11,
        "Practice software: OAuth 2.0 client credentials, an acting professional",
    )
    chapter_practice_software(
        console,
        services,
        http,
        organization_id=pharmacy[1],
        acting_account=pharmacy[0],
        outsider_account=DEMO_DOCTOR_ACCOUNT,
        nir=people[1]["nir"],
        birth_date=people[1]["birth_date"].isoformat(),
    )


def _enrol_doctor(services: Services) -> None:
    """A doctor in the insurer's directory (RPPS known) with a Rempart account."""
    with session_scope(services.sessions) as session:
        session.add(
            Professional(
                account_id=DEMO_DOCTOR_ACCOUNT,
                rpps=DEMO_DOCTOR_RPPS,
                profession="generaliste",
                department="75",
                organization_id=None,
                last_name="Lemaire",
                first_name="Hélène",
                email="helene.lemaire@cabinet.example",
            )
        )
        session.flush()
        services.auth.create_account(
            session,
            login="dr.lemaire",
            password=secrets.token_urlsafe(24),
            profession="generaliste",
            account_id=DEMO_DOCTOR_ACCOUNT,
        )


def _audit_chapter(console: Console, services: Services, workdir: Path, nir: str) -> int:
    """Chapter 12: what the audit trail kept, and what tampering with it looks like;
    returns the number of entries exported."""
    _step(console, 13, "The audit trail: every lookup recorded before the data left")
    verifier = CheckpointSigner(services.settings.keys.audit_signing_key).verifier()
    engine = services.audit_engine
    with engine.connect() as connection:
        events = connection.execute(
            select(AuditEvent.event, func.count())
            .group_by(AuditEvent.event)
            .order_by(AuditEvent.event)
        ).all()
    console.print("  recorded: " + ", ".join(f"{event} {count}" for event, count in events))
    report = verify_database(engine, verifier)
    console.print(
        f"  rempart audit verify → intact: {report.entries} entries, hash-chained, "
        f"checkpoints signed with Ed25519 key {verifier.key_id}"
    )
    accesses = access_history(
        nir=parse_nir(nir),
        audit_engine=engine,
        data_engine=services.engine,
        audit=services.audit,
        pseudonym_key=services.settings.keys.pseudonym_key,
        operator="demo-dpo",
    )
    console.print(
        f"  access history of {_masked(nir)} (for the DPO, right of access): "
        + "; ".join(
            f"{a.account_id} at {a.at:%H:%M:%S} read {len(a.categories)} categories"
            for a in accesses
        )
        + " — the NIR itself is nowhere in the trail, only a keyed pseudonym"
    )
    with engine.begin() as connection:
        target = connection.execute(
            select(AuditEvent.shard, AuditEvent.seq, AuditEvent.account_id)
            .where(AuditEvent.event == "lookup")
            .order_by(AuditEvent.seq)
            .limit(1)
        ).one()
        connection.execute(
            update(AuditEvent)
            .where(AuditEvent.shard == target.shard, AuditEvent.seq == target.seq)
            .values(account_id="PS-innocent")
        )
    broken = verify_database(engine, verifier)
    console.print(
        "  an insider rewrites who did a lookup, straight in the database → "
        f"[bold red]{'; '.join(str(p) for p in broken.problems)}[/]"
    )
    with engine.begin() as connection:
        connection.execute(
            update(AuditEvent)
            .where(AuditEvent.shard == target.shard, AuditEvent.seq == target.seq)
            .values(account_id=target.account_id)
        )
    export_dir = workdir / "audit-export"
    summary = export_trail(engine, export_dir, verifier)
    exported = verify_export(export_dir, verifier)
    console.print(
        f"  restored; rempart audit export → {summary.entries} entries as Parquet in "
        f"{export_dir.name}/, verified on their own: {'intact' if exported.ok else 'BROKEN'}"
    )
    return summary.entries
