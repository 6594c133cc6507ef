"""Benchmark: a notification campaign at the 2022 breach's scale (issue: under 20 min).

``python -m bench.bench_campaign [--persons 500000] [--email-share 0.6]``

On PostgreSQL (the production path), in a database of its own:

1. setup (timed apart, not part of the goal): the insured persons (``COPY``, with
   their pseudonyms), a robot's lookups of every one of them in the real audit trail
   (``AuditTrail.append``: hash chains and checkpoints), the incident opened and scoped
   by the real service from the live trail;
2. the campaign, timed stage by stage: ``notify plan``, then ``notify run`` workers
   started side by side as separate processes — e-mail workers (``--channel email``)
   to a local SMTP server (aiosmtpd, in a process of its own, counting what it
   receives) and letter workers (``--channel letter``) writing the print batches;
3. checks: the server received one message per e-mail person (distinct Message-IDs),
   the manifests hold one row per letter, and ``notify status`` adds up.

The workers run with ``REMPART_NOTICE_MAIL_RATE`` raised so that the pace bound does not
hide the capacity (stated in the report). Everything shares the machine's 2 cores:
PostgreSQL, the SMTP server, the workers.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from aiosmtpd.controller import Controller
from psycopg import sql
from rich.console import Console
from rich.progress import Progress

from bench.bench_lookup import busy_before, code_version
from bench.report import publish
from rempart.audit.chain import AuditEntry
from rempart.config import load_settings
from rempart.incident.live_source import LiveSource
from rempart.incident.service import build_definition
from rempart.nir import pseudonymize
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.migrate import upgrade
from rempart.store.models import Account

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DB_NAME = "rempart_bench_campaign"
ROBOT = "ph-bench-robot"
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)

console = Console(stderr=True)


class BenchError(RuntimeError):
    pass


# --- the SMTP server: aiosmtpd in its own process --------------------------------------


def sink(port: int, out: Path) -> None:
    """Accept every message, count it and its Message-ID; write the counts on SIGTERM."""
    received: dict[str, int] = {}
    stats = {"messages": 0, "bytes": 0}

    class Handler:
        async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
            content: bytes = envelope.content
            match = _MESSAGE_ID.search(content)
            key = match.group(1).decode() if match else f"none-{stats['messages']}"
            received[key] = received.get(key, 0) + 1
            stats["messages"] += 1
            stats["bytes"] += len(content)
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()
    duplicates = sum(n - 1 for n in received.values())
    out.write_text(
        json.dumps({**stats, "distinct": len(received), "duplicates": duplicates}),
        encoding="utf-8",
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- setup -------------------------------------------------------------------------------


def _admin(statement: sql.Composed) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(statement)


def database_url() -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"


def fresh_database() -> None:
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))


_STREETS = (
    "rue des Lilas",
    "avenue de la République",
    "boulevard du Maréchal Jean-Marie de Lattre de Tassigny",
    "chemin des Vignes",
    "place de l'Église",
    "impasse Victor Hugo",
)
_CITIES = (
    ("75011", "Paris"),
    ("69003", "Lyon"),
    ("13008", "Marseille"),
    ("07430", "Saint-Tristan"),
)


@dataclass
class Setup:
    persons: int
    emails: int
    load_seconds: float
    trail_seconds: float
    scope_seconds: float
    incident_id: int


def load_insured(services: Services, persons: int, email_share: float) -> tuple[list[str], int]:
    key = services.settings.keys.pseudonym_key
    pseudonyms = []
    emails = 0
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for i in range(persons):
        nir = f"{1 + i % 2}{i:014d}"
        pseudonym = pseudonymize(nir, key)
        pseudonyms.append(pseudonym)
        has_email = (i * 7919) % 1000 < email_share * 1000
        emails += has_email
        postcode, city = _CITIES[i % len(_CITIES)]
        writer.writerow(
            [
                nir,
                f"{1940 + i % 80}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                1 + i % 2,
                f"Nom{i}",
                "Camille",
                postcode[:2],
                "",
                i % 9 == 0,
                i % 31 == 0,
                i % 6 == 0,
                f"personne{i}@gmail.example" if has_email else "",
                f"{1 + i % 120} {_STREETS[i % len(_STREETS)]}",
                postcode,
                city,
                pseudonym,
            ]
        )
    columns = (
        "nir, birth_date, sex, last_name, first_name, department, treating_doctor, c2s, ame, "
        "ald, email, street, postcode, city, pseudonym"
    )
    url = services.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        with cursor.copy(f"COPY insured ({columns}) FROM STDIN WITH (FORMAT csv, NULL '')") as copy:
            copy.write(buffer.getvalue())
        cursor.execute("ANALYZE insured")
    return pseudonyms, emails


def write_trail(services: Services, pseudonyms: list[str]) -> None:
    start = int(time.time() * 1e6) - len(pseudonyms) * 100
    batch = 5_000
    with Progress(console=console) as bar:
        task = bar.add_task("audit trail", total=len(pseudonyms))
        for first in range(0, len(pseudonyms), batch):
            services.audit.append(
                [
                    AuditEntry(
                        seq=0,
                        ts_us=start + (first + j) * 100,
                        event="lookup",
                        account_id=ROBOT,
                        session_id="robot",
                        client_ip="203.0.113.66",
                        channel="portal",
                        subject=pseudonym,
                        found=1,
                        categories="nir,identity,treating_doctor,c2s,ame,ald",
                        decision="allow",
                        outcome="ok",
                    )
                    for j, pseudonym in enumerate(pseudonyms[first : first + batch])
                ]
            )
            bar.update(task, advance=min(batch, len(pseudonyms) - first))


def setup(persons: int, email_share: float, data_dir: Path) -> Setup:
    fresh_database()
    settings = load_settings(database_url=database_url(), data_dir=data_dir)
    services = Services(settings)
    try:
        upgrade(services.engine, schema="data")
        upgrade(services.audit_engine, schema="audit")
        began = time.perf_counter()
        pseudonyms, emails = load_insured(services, persons, email_share)
        loaded = time.perf_counter()
        console.print(f"  {persons:,} insured loaded in {loaded - began:.1f} s")
        with session_scope(services.sessions) as session:
            services.auth.create_account(
                session,
                login="pharmacie.bench",
                password="correct horse battery staple 42",  # noqa: S106 - a bench account
                profession="pharmacie",
                account_id=ROBOT,
                email="pharmacie.bench@officine.example",
            )
        write_trail(services, pseudonyms)
        trailed = time.perf_counter()
        console.print(f"  trail written in {trailed - loaded:.1f} s")
        with session_scope(services.sessions) as session:
            assert session.get(Account, ROBOT) is not None
            definition = build_definition(session, accounts=[ROBOT])
            incident = services.incidents.open(
                session, name="Robot (benchmark)", definition=definition, operator="bench"
            )
        scope = services.incidents.scope(
            incident, LiveSource(services.audit_engine), operator="bench"
        )
        scoped = time.perf_counter()
        if scope.persons != persons:
            raise BenchError(f"scoped {scope.persons} persons, expected {persons}")
        console.print(f"  scoped in {scoped - trailed:.1f} s")
        return Setup(
            persons=persons,
            emails=emails,
            load_seconds=loaded - began,
            trail_seconds=trailed - loaded,
            scope_seconds=scoped - trailed,
            incident_id=incident,
        )
    finally:
        services.close()


# --- the campaign ---------------------------------------------------------------------


def rempart(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "rempart", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run_campaign(args: argparse.Namespace, built: Setup, data_dir: Path) -> dict[str, Any]:
    port = free_port()
    counts_file = data_dir / "smtp-counts.json"
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_campaign", "--sink", str(port), str(counts_file)]
    )
    time.sleep(1.5)
    letters_dir = data_dir / "letters"
    env = {
        **os.environ,
        "REMPART_DATABASE_URL": database_url(),
        "REMPART_DATA_DIR": str(data_dir),
        "REMPART_SMTP_URL": f"smtp://127.0.0.1:{port}",
        "REMPART_NOTICE_MAIL_RATE": str(args.rate),
        "REMPART_LOG_LEVEL": "warning",
    }
    results: dict[str, Any] = {}
    try:
        began = time.perf_counter()
        plan_process = rempart("notify", "plan", str(built.incident_id), "--json", env=env)
        out, err = plan_process.communicate()
        if plan_process.returncode != 0:
            raise BenchError(f"plan failed: {err.decode()[-2000:]}")
        plan = json.loads(out)
        planned = time.perf_counter()
        results["plan"] = {"seconds": planned - began, "plan": plan}
        console.print(f"  plan: {planned - began:.1f} s → {plan}")
        campaign = str(plan["campaign"])
        workers: dict[str, list[subprocess.Popen[bytes]]] = {"email": [], "letter": []}
        started: dict[str, float] = {}
        ended: dict[str, float] = {}
        for channel, count in (("letter", args.letter_workers), ("email", args.email_workers)):
            started[channel] = time.perf_counter()
            for _ in range(count):
                workers[channel].append(
                    rempart(
                        "notify",
                        "run",
                        campaign,
                        "--channel",
                        channel,
                        "--letters-dir",
                        str(letters_dir),
                        "--batch-size",
                        str(args.batch_size),
                        "--json",
                        env=env,
                    )
                )
        reports: dict[str, list[Any]] = {"email": [], "letter": []}
        pending = {(c, i): p for c in workers for i, p in enumerate(workers[c])}
        while pending:
            for (channel, index), process in list(pending.items()):
                if process.poll() is None:
                    continue
                out, err = process.communicate()
                if process.returncode != 0:
                    raise BenchError(f"{channel} worker failed: {err.decode()[-2000:]}")
                reports[channel].append(json.loads(out)["run"])
                del pending[(channel, index)]
                if not any(c == channel for c, _ in pending):
                    ended[channel] = time.perf_counter()
            time.sleep(0.2)
        finished = time.perf_counter()
        results["run_seconds"] = finished - planned
        results["total_seconds"] = finished - began
        for channel in ("email", "letter"):
            seconds = ended[channel] - started[channel]
            done = sum(r["emailed" if channel == "email" else "printed"] for r in reports[channel])
            results[channel] = {
                "seconds": seconds,
                "count": done,
                "rate": done / seconds if seconds else 0.0,
                "workers": len(workers[channel]),
            }
            console.print(f"  {channel}: {results[channel]}")
        status_process = rempart("notify", "status", campaign, "--json", env=env)
        out, _ = status_process.communicate()
        results["status"] = json.loads(out)
        pdfs = list(letters_dir.glob("*.pdf"))
        results["letters_mb"] = sum(p.stat().st_size for p in pdfs) / 1e6
        results["batches"] = len(pdfs)
        rows = 0
        references: set[str] = set()
        for manifest in letters_dir.glob("*.csv"):
            with manifest.open(encoding="utf-8-sig", newline="") as handle:
                for row in csv.DictReader(handle, delimiter=";"):
                    rows += 1
                    references.add(row["reference"])
        results["manifest_rows"] = rows
        results["manifest_distinct"] = len(references)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    results["smtp"] = json.loads(counts_file.read_text(encoding="utf-8"))
    return results


def render(args: argparse.Namespace, built: Setup, results: dict[str, Any], busy: float) -> str:
    status = results["status"]
    total = results["total_seconds"]
    goal = 20 * 60
    email, letter = results["email"], results["letter"]
    smtp = results["smtp"]
    checks_ok = (
        smtp["distinct"] == email["count"] == status["reached"]["email"]
        and results["manifest_rows"] == results["manifest_distinct"] == status["reached"]["letter"]
        and status["pending"] == 0
    )
    lines = [
        "## Notification campaign (`python -m bench.bench_campaign`)",
        "",
        f"A campaign of **{built.persons:,} persons** ({built.emails / built.persons:.0%} with an "
        "e-mail address) on PostgreSQL: `notify plan`, then `notify run` workers side by side "
        f"({email['workers']} for e-mails to a local aiosmtpd server in its own process, "
        f"{letter['workers']} for letters; print batches of {args.batch_size} letters), "
        f"`REMPART_NOTICE_MAIL_RATE={args.rate:g}` per worker. Every e-mail DKIM-signed "
        "(RSA-2048), every notice with its own verification code. The machine's 2 cores are "
        f"shared by PostgreSQL, the SMTP server and the workers (before the run: {busy:.0f} % "
        f"of a core busy). Measured at {results['code']}.",
        "",
        "| stage | time | rate |",
        "| --- | --- | --- |",
        f"| plan (channels decided, outbox written) | {results['plan']['seconds']:.1f} s | "
        f"{built.persons / results['plan']['seconds']:,.0f} persons/s |",
        f"| e-mails ({email['count']:,}) | {email['seconds']:.1f} s | {email['rate']:,.0f} /s |",
        f"| letters ({letter['count']:,}, {results['batches']} PDF batches, "
        f"{results['letters_mb']:,.0f} MB) | {letter['seconds']:.1f} s | "
        f"{letter['rate']:,.0f} /s |",
        f"| **total, plan to last notice** | **{total / 60:.1f} min** | "
        f"{built.persons / total:,.0f} persons/s |",
        "",
        f"Goal: under 20 minutes — **{'met' if total < goal else 'NOT met'}** "
        f"({total / 60:.1f} min).",
        "",
        f"Checks: the SMTP server received {smtp['messages']:,} messages, {smtp['distinct']:,} "
        f"distinct Message-IDs ({smtp['duplicates']} duplicates, {smtp['bytes'] / 1e9:.2f} GB); "
        f"the manifests hold {results['manifest_rows']:,} letters "
        f"({results['manifest_distinct']:,} distinct references); `notify status`: "
        f"{status['reached']['email']:,} by e-mail + {status['reached']['letter']:,} by letter "
        f"+ {status['unreachable']:,} unreachable + {status['pending']:,} pending = "
        f"{status['persons']:,} — {'all consistent' if checks_ok else '**INCONSISTENT**'}.",
        "",
        f"Setup, not part of the goal: {built.persons:,} insured loaded with `COPY` in "
        f"{built.load_seconds:.1f} s; their {built.persons:,} lookups appended to the audit "
        f"trail (hash chains, signed checkpoints) in {built.trail_seconds:.1f} s; the incident "
        f"scoped from the live trail in {built.scope_seconds:.1f} s.",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--persons", type=int, default=500_000)
    parser.add_argument("--email-share", type=float, default=0.6)
    parser.add_argument("--email-workers", type=int, default=2)
    parser.add_argument("--letter-workers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=5_000.0)
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    if argv and argv[0] == "--sink":
        sink(int(argv[1]), Path(argv[2]))
        return
    args = parse_args(argv)
    busy = busy_before(3.0)
    with tempfile.TemporaryDirectory(prefix="bench-campaign-") as folder:
        data_dir = Path(folder)
        try:
            console.print(f"setup: {args.persons:,} persons ...")
            built = setup(args.persons, args.email_share, data_dir)
            console.print("campaign ...")
            results = run_campaign(args, built, data_dir)
            results["code"] = code_version()
        finally:
            if not args.keep_database:
                _admin(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(DB_NAME)
                    )
                )
    publish("campaign", render(args, built, results, busy), dry_run=args.no_write)


if __name__ == "__main__":
    main(sys.argv[1:])
