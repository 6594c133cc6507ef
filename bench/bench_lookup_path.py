"""Benchmark: the lookup path's own CPU, in process, on SQLite and on PostgreSQL.

What a lookup costs without HTTP: the session check, the guard's decision (its state in
process; every lookup decided, in the learning window, so that one account's loop is not
refused), the person's read and the audit entry committed, exactly as the API route runs
them (``lookup_scope``, ``authenticate``, ``guarded_lookup``), one lookup after another on
one thread. Per lookup: the process's CPU time, the wall time, and on PostgreSQL the
backend's CPU (read from ``/proc`` for the connection's server process) and the round
trips. The embedded default (SQLite, a file with ``synchronous=FULL``) gets its own figure.

    .venv/bin/python -m bench.bench_lookup_path [--lookups N] [--insured N] [--no-write]

PostgreSQL on 127.0.0.1:5432 (user postgres, trust): the database ``rempart_bench_path`` is
created fresh and dropped at the end. The world is generated once into ``bench/out/``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import psycopg
import pyotp
from psycopg import sql

from bench.bench_lookup import base_env, code_version, sample_pairs, world_dir
from bench.report import publish
from rempart.audit.events import Origin
from rempart.auth.levels import LOOKUP_REQUIREMENT
from rempart.config import load_settings
from rempart.logs import configure_logging
from rempart.rights.guarded import caller_of, guarded_lookup
from rempart.services import Services
from rempart.store.engine import lookup_scope, session_scope
from rempart.store.load_world import load_world
from rempart.store.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DB_NAME = "rempart_bench_path"
T = TypeVar("T")
ORIGIN = Origin(client_ip="192.0.2.10", user_agent="bench-lookup-path/1")
PASSWORD = "banc d'essai du chemin de consultation"  # noqa: S105 - a throwaway bench account


@dataclass(frozen=True)
class Measured:
    backend: str
    lookups: int
    cpu_ms: float  # this process, per lookup
    wall_ms: float
    backend_cpu_ms: float | None  # PostgreSQL's server process, per lookup
    rounds_cpu: list[float]


def admin_sql(statement: sql.Composed) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(statement)


def _backend_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (after the state field)


def _backends(services: Services) -> list[int]:
    """The server processes of the benchmark database's connections (the pool's)."""
    with services.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        )
        return [int(pid) for (pid,) in rows]


def drop_database(name: str) -> None:
    admin_sql(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def on_both_databases(name: str, measure: Callable[[str, str], T]) -> list[T]:
    """``measure(backend, url)`` on a fresh SQLite file, then on a fresh PostgreSQL
    database ``name`` (dropped at the end, whatever happens)."""
    with tempfile.TemporaryDirectory() as directory:
        results = [measure("sqlite", f"sqlite:///{directory}/rempart.db")]
    drop_database(name)
    admin_sql(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        results.append(
            measure("postgresql", f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
        )
    finally:
        drop_database(name)
    return results


def bench_services(url: str, data_dir: Path) -> Services:
    settings = load_settings(
        database_url=url,
        data_dir=data_dir,
        guard_enabled=True,
        guard_learn_until=datetime(2099, 1, 1, tzinfo=UTC),
        log_level="warning",
    )
    services = Services(settings)
    upgrade(services.engine, schema="data")
    upgrade(services.audit_engine, schema="audit")
    return services


def bench_token(services: Services) -> str:
    with session_scope(services.sessions) as session:
        created = services.auth.create_account(
            session, login="bench.path", password=PASSWORD, profession="pharmacie"
        )
    totp = pyotp.TOTP(pyotp.parse_uri(created.otpauth_uri).secret)
    with session_scope(services.sessions) as session:
        challenge = services.auth.login_password(
            session, login="bench.path", password=PASSWORD, address=ORIGIN.client_ip
        )
    with session_scope(services.sessions) as session:
        issued = services.auth.login_totp(
            session, mfa_token=challenge.mfa_token, code=totp.now(), address=ORIGIN.client_ip
        )
    return issued.access_token


def _one(services: Services, token: str, pair: tuple[str, str]) -> None:
    """One lookup as ``POST /api/v1/rights/lookup`` runs it, HTTP aside."""
    with lookup_scope(services.sessions) as session:
        principal = services.auth.authenticate(session, token)
        LOOKUP_REQUIREMENT.check(principal)
        guarded_lookup(
            services,
            session,
            caller_of(principal, ORIGIN),
            raw_nir=pair[0],
            raw_birth_date=pair[1],
        )


def measure(backend: str, url: str, world: Path, pairs: list[tuple[str, str]], n: int) -> Measured:
    with tempfile.TemporaryDirectory() as data_dir:
        services = bench_services(url, Path(data_dir))
        try:
            load_world(services.engine, world, pseudonym_key=services.settings.keys.pseudonym_key)
            token = bench_token(services)
            for pair in pairs[:200]:  # warm: caches, the pool, prepared statements
                _one(services, token, pair)
            backends = _backends(services) if backend == "postgresql" else []
            rounds = []
            wall = cpu = 0.0
            ticks = 0
            per_round = n // 5
            for round_no in range(5):
                ticks_before = sum(_backend_ticks(pid) for pid in backends)
                cpu_before, wall_before = time.process_time(), time.perf_counter()
                for i in range(per_round):
                    _one(services, token, pairs[(round_no * per_round + i) % len(pairs)])
                round_cpu = time.process_time() - cpu_before
                wall += time.perf_counter() - wall_before
                cpu += round_cpu
                ticks += sum(_backend_ticks(pid) for pid in backends) - ticks_before
                rounds.append(1000 * round_cpu / per_round)
        finally:
            services.close()
    done = per_round * 5
    hertz = os.sysconf("SC_CLK_TCK")
    return Measured(
        backend=backend,
        lookups=done,
        cpu_ms=1000 * cpu / done,
        wall_ms=1000 * wall / done,
        backend_cpu_ms=1000 * ticks / hertz / done if backend == "postgresql" else None,
        rounds_cpu=rounds,
    )


def render(args: argparse.Namespace, results: list[Measured]) -> str:
    rows = "\n".join(
        f"| {m.backend} | {m.lookups:,} | **{m.cpu_ms:.3f} ms** "
        f"({min(m.rounds_cpu):.3f}-{max(m.rounds_cpu):.3f}) | {m.wall_ms:.3f} ms | "
        + (f"{m.backend_cpu_ms:.3f} ms |" if m.backend_cpu_ms is not None else "in process |")
        for m in results
    )
    command = (
        f".venv/bin/python -m bench.bench_lookup_path --lookups {args.lookups} "
        f"--insured {args.insured}"
    )
    return f"""## The lookup path in process: SQLite and PostgreSQL

One lookup after another on one thread, HTTP aside, exactly as the API route runs it
(`lookup_scope`, the session check, `guarded_lookup`: the guard decides, in its learning
window so that the loop is never refused, its state in process; the person read with
the guard's facts; the audit entry chained and committed before the next lookup).
{args.insured:,} insured persons, {args.lookups:,} lookups of real (NIR, birth date) pairs
after 200 to warm up, in 5 rounds (range of the rounds' CPU per lookup in brackets).

| database | lookups | this process's CPU / lookup | wall / lookup | server's CPU / lookup |
| --- | ---: | ---: | ---: | ---: |
{rows}

- SQLite is the embedded default (one file, WAL, `synchronous=FULL`); its audit append is
  several statements in the lookup's transaction, with the hash computed in Python (one
  writer at a time anyway). PostgreSQL: the lookup's connection in autocommit, three round
  trips (`tests/functional/test_lookup_round_trips.py`), the statements run by psycopg
  itself (`store/direct.py`), the audit entry hashed by PostgreSQL in its one statement;
  the server's CPU is that of the database's backends (read from `/proc`).
- Against the same lookups over HTTP (`bench:lookup`), what this leaves out is the web
  stack (uvicorn, FastAPI, the thread pool) and the contention of two workers, wrk and
  PostgreSQL on two cores.
- **Code**: {code_version()}.
- **Reproduce**: `{command}`
- **Machine**: {platform.machine()}, 2 cores; a single thread, so the figures are per
  lookup and not a throughput.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lookups", type=int, default=5_000)
    parser.add_argument("--insured", type=int, default=20_000)
    parser.add_argument("--professionals", type=int, default=200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("warning")
    env = base_env(OUT / "path-data")
    world, _ = world_dir(env, args.insured, args.professionals)
    pairs = sample_pairs(world, 4_096)
    results = on_both_databases(
        DB_NAME, lambda backend, url: measure(backend, url, world, pairs, args.lookups)
    )
    for m in results:
        print(f"{m.backend}: {m.cpu_ms:.3f} ms CPU, {m.wall_ms:.3f} ms wall per lookup")
    publish("lookup-path", render(args, results), dry_run=args.no_write)


if __name__ == "__main__":
    main()
