"""Benchmark: `audit verify` over 10 million entries on PostgreSQL; export and its check.

Builds a real audit trail of N entries (default 10,000,000) in a fresh PostgreSQL
database: 8 shards, each a genuine hash chain exactly as ``SqlAuditTrail`` writes it
(``AuditEntry.row()`` and ``entry_hash``; checked against ``SqlAuditTrail`` itself on
a few thousand entries first), Ed25519 checkpoints every 1000 entries per shard,
``audit_head`` set to each shard's last entry. Realistic values: lookups (found, not
found, invalid NIR) and authentication events, by 10,000 accounts with their sessions,
client addresses and browsers, pseudonyms in hex, over 60 days.
The set-up (generation in parallel processes, ``COPY`` into the table without its
indexes, index build, ``VACUUM ANALYZE``) is timed but is not what is measured.

Measured: ``verify_database`` with ``--jobs J`` (default 2) and with one job,
alternating; the same after one entry in the middle was altered (it must be found);
an incremental verification; ``export_trail`` of the whole trail (entries/s and MB/s
on disk) and ``verify_export`` of it, each in a process of its own whose peak memory
is read (``bench.child``), and with ``--before-src`` the ``verify_export`` of another
checkout on the same export; and, on one shard, where the time of a verification goes
(fetching rows from PostgreSQL against hashing in Python).
Goals: the full verification of 10 million entries in under 60 s; the verification
of their export with a peak memory under 1 GB.

    .venv/bin/python -m bench.bench_audit_verify [--entries N] [--jobs J]
    .venv/bin/python -m bench.bench_audit_verify --only export [--before-src DIR/src]

Needs the PostgreSQL server on 127.0.0.1:5432 (user postgres, trust authentication).
The database is dropped at the end (``--keep-database`` keeps it, ``--reuse-database``
starts from a kept one; ``--only export`` reuses a kept one of the right size); the
export goes to ``bench/out/audit-export`` and is removed (``--keep-export`` keeps it,
``--reuse-export`` verifies a kept one again without exporting). ``--only export``
writes only the export part of the section (its own markers inside it).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import heapq
import json
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psycopg
from psycopg import sql
from sqlalchemy import Engine, select

from bench.bench_lookup import busy_before, code_version, other_load_generators, wait_until_quiet
from bench.child import SRC, run_child
from bench.report import BENCHMARKS_MD, publish
from rempart.audit.chain import (
    CATEGORIES,
    FIELD_NAMES,
    GENESIS,
    AuditEntry,
    CheckpointSigner,
    CheckpointVerifier,
    entry_hash,
)
from rempart.audit.models import AuditCheckpoint, AuditEvent
from rempart.audit.trail import SqlAuditTrail
from rempart.audit.verify import (
    VerifyReport,
    _stream,
    load_checkpoints,
    verify_chain,
    verify_database,
)
from rempart.store.engine import make_engine
from rempart.store.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
GENERATED = OUT / "audit-verify-generated"
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DB_NAME = "rempart_bench_audit"
DB_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"  # psycopg
SA_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"  # SQLAlchemy
GOAL_SECONDS = 60.0
SECTION = "audit-verify"
EXPORT_SECTION = "audit-verify-export"  # inside SECTION
START_US = 1_759_276_800_000_000  # 2025-10-01 00:00 UTC
DAY_US = 86_400_000_000
ACR = "password+totp"
ALL_CATEGORIES = ",".join(CATEGORIES)
COLUMNS = ("shard", *FIELD_NAMES, "prev_hash", "hash")
_N = len(FIELD_NAMES)

DEFAULTS: dict[str, int] = {
    "entries": 10_000_000,
    "jobs": 2,
    "shards": 8,
    "checkpoint_every": 1000,
    "days": 60,
    "accounts": 10_000,
    "rounds": 2,
    "processes": 2,
    "seed": 0,
    "max_wait": 1800,
}

USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 6.1; Win64; x64; Trident/7.0; rv:11.0) like Gecko",
    "LogicielMedical/4.2.1 (Windows; cabinet) httpx/0.27",
)

T = TypeVar("T")


class BenchError(Exception):
    """The benchmark cannot give a valid figure; the message says why."""


# --------------------------------------------------------------------------- the population


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    login_pseudonym: str
    client_ip: str
    user_agent: str


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.15:  # some practices are on IPv6
        words = ":".join(f"{rng.getrandbits(16):x}" for _ in range(3))
        return f"2a01:cb0{rng.randrange(10)}:{words}::{rng.getrandbits(16):x}"
    return (
        f"{rng.randrange(2, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    )


class Population:
    """The accounts that make the trail, the same in every process for a given seed."""

    def __init__(self, seed: int, accounts: int) -> None:
        rng = random.Random(f"rempart-bench-audit-accounts-{seed}")
        self.accounts = [
            Account(
                account_id=f"acct-{rng.getrandbits(64):016x}",
                login_pseudonym=f"{rng.getrandbits(128):032x}",
                client_ip=_ip(rng),
                user_agent=rng.choice(USER_AGENTS),
            )
            for _ in range(accounts)
        ]
        self._sessions: dict[tuple[int, int], str] = {}
        self._session_rng = random.Random(f"rempart-bench-audit-sessions-{seed}")

    def session(self, index: int, day: int) -> str:
        """One session a day per account (a token_urlsafe(16), as the service issues)."""
        key = (index, day)
        found = self._sessions.get(key)
        if found is None:
            raw = self._session_rng.getrandbits(128).to_bytes(16, "big")
            found = self._sessions[key] = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return found

    def entry(self, rng: random.Random, seq: int, ts_us: int) -> AuditEntry:
        """One event: lookups mostly, and the authentication events around them."""
        # A few accounts look up much more than most (quadratic skew).
        index = int(len(self.accounts) * rng.random() ** 2)
        account = self.accounts[index]
        kind = rng.random()
        if kind < 0.95:
            outcome_draw = rng.random()
            found, categories, outcome = (
                (1, ALL_CATEGORIES, "ok")
                if outcome_draw < 0.97
                else (0, "", "not_found")
                if outcome_draw < 0.995
                else (-1, "", "invalid_nir")
            )
            return AuditEntry(
                seq=seq,
                ts_us=ts_us,
                event="lookup",
                account_id=account.account_id,
                session_id=self.session(index, ts_us // DAY_US),
                acr=ACR,
                client_ip=account.client_ip,
                user_agent=account.user_agent,
                channel="portal",
                subject=f"{rng.getrandbits(128):032x}",
                found=found,
                categories=categories,
                outcome=outcome,
            )
        if kind < 0.97:
            return AuditEntry(
                seq=seq,
                ts_us=ts_us,
                event="login_password_ok",
                account_id=account.account_id,
                client_ip=account.client_ip,
                user_agent=account.user_agent,
                subject=account.login_pseudonym,
                outcome="ok",
            )
        if kind < 0.99:
            return AuditEntry(
                seq=seq,
                ts_us=ts_us,
                event="login_succeeded",
                account_id=account.account_id,
                session_id=self.session(index, ts_us // DAY_US),
                acr=ACR,
                client_ip=account.client_ip,
                user_agent=account.user_agent,
                subject=account.login_pseudonym,
                outcome="ok",
            )
        if kind < 0.997:
            return AuditEntry(
                seq=seq,
                ts_us=ts_us,
                event="login_failed",
                account_id=account.account_id,
                client_ip=account.client_ip,
                user_agent=account.user_agent,
                subject=account.login_pseudonym,
                reasons="wrong_password",
                outcome="invalid_credentials",
            )
        return AuditEntry(  # a stranger trying logins
            seq=seq,
            ts_us=ts_us,
            event="login_failed",
            client_ip=_ip(rng),
            user_agent=rng.choice(USER_AGENTS),
            subject=f"{rng.getrandbits(128):032x}",
            reasons="unknown_login",
            outcome="invalid_credentials",
        )


def shard_entries(
    population: Population, *, seed: int, shard: int, count: int, span_us: int
) -> Iterator[AuditEntry]:
    """The ``count`` entries of one shard, sequence numbers 1.., times spread over the span."""
    rng = random.Random(seed * 1_000 + shard)
    gap = max(1, 2 * span_us // max(count, 1))
    ts = START_US + rng.randrange(gap)
    for seq in range(1, count + 1):
        ts += rng.randrange(gap)
        yield population.entry(rng, seq, ts)


def shard_counts(entries: int, shards: int, seed: int) -> list[int]:
    """Entries per shard: about even, as writers pick any free shard, but not exactly
    (so that a shard's head is rarely on a checkpoint, as in a trail that lives)."""
    rng = random.Random(f"rempart-bench-audit-shards-{seed}")
    weights = [1 + 0.01 * (rng.random() - 0.5) for _ in range(shards)]
    counts = [int(entries * w / sum(weights)) for w in weights]
    counts[-1] += entries - sum(counts)
    return counts


def _copy_line(shard: int, row: tuple[int | str, ...], previous: bytes, digest: bytes) -> str:
    """One line of COPY's text format (no field holds a tab, newline or backslash)."""
    fields = "\t".join(map(str, row))
    return f"{shard}\t{fields}\t\\\\x{previous.hex()}\t\\\\x{digest.hex()}\n"


# --------------------------------------------------------------------------- building the trail


@dataclass(frozen=True)
class ShardJob:
    shard: int
    count: int
    seed: int
    accounts: int
    span_us: int
    checkpoint_every: int
    signer_seed: bytes
    path: str  # where its COPY lines go


@dataclass(frozen=True)
class ShardLoaded:
    shard: int
    last_seq: int
    last_hash: bytes
    checkpoints: list[tuple[int, int, bytes, bytes]]  # seq, ts_us, hash, signature
    seconds: float


_COPY_EVENTS = f"COPY audit_events ({', '.join(COLUMNS)}) FROM STDIN"


def generate_shard(job: ShardJob) -> ShardLoaded:
    """Generate and chain one shard's entries into a file of COPY lines, in time order."""
    began = time.perf_counter()
    population = Population(job.seed, job.accounts)
    signer = CheckpointSigner(job.signer_seed)
    checkpoint_rng = random.Random(f"checkpoints-{job.seed}-{job.shard}")
    checkpoints: list[tuple[int, int, bytes, bytes]] = []
    previous = GENESIS
    buffer: list[str] = []
    with Path(job.path).open("w", encoding="utf-8") as out:
        for entry in shard_entries(
            population, seed=job.seed, shard=job.shard, count=job.count, span_us=job.span_us
        ):
            row = entry.row()
            digest = entry_hash(previous, row)
            buffer.append(_copy_line(job.shard, row, previous, digest))
            if entry.seq % job.checkpoint_every == 0:
                # Signed in the append's transaction, a moment after the entry's time.
                ts_us = entry.ts_us + checkpoint_rng.randrange(200, 20_000)
                signature = signer.sign(entry.seq, digest, ts_us, shard=job.shard)
                checkpoints.append((entry.seq, ts_us, digest, signature))
            previous = digest
            if len(buffer) >= 20_000:
                out.write("".join(buffer))
                buffer.clear()
        out.write("".join(buffer))
    return ShardLoaded(job.shard, job.count, previous, checkpoints, time.perf_counter() - began)


def _line_ts(line: str) -> int:
    return int(line.split("\t", 3)[2])  # shard, seq, ts_us, ...


def copy_in_time_order(paths: list[Path]) -> None:
    """One COPY of all shards' lines merged by time: the table then holds them as the
    live service leaves them, the shards interleaved page by page (its writers append
    to all shards side by side), so that reading one shard is not a sequential read."""
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(p.open(encoding="utf-8")) for p in paths]
        connection = stack.enter_context(psycopg.connect(DB_URL))
        cursor = stack.enter_context(connection.cursor())
        with cursor.copy(_COPY_EVENTS) as copy:
            buffer: list[str] = []
            for line in heapq.merge(*files, key=_line_ts):
                buffer.append(line)
                if len(buffer) >= 20_000:
                    copy.write("".join(buffer))
                    buffer.clear()
            copy.write("".join(buffer))
        connection.commit()


def check_fidelity(population: Population, signer_seed: bytes, count: int = 2_500) -> None:
    """The generator must chain exactly as SqlAuditTrail does: compare on a real one (SQLite)."""
    entries = list(shard_entries(population, seed=99, shard=0, count=count, span_us=DAY_US))
    with tempfile.TemporaryDirectory(prefix="rempart-bench-audit-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'audit.db'}")
        try:
            upgrade(engine, schema="audit")
            trail = SqlAuditTrail(engine, CheckpointSigner(signer_seed), checkpoint_every=1000)
            for start in range(0, count, 7):  # appended in small batches, as requests come
                trail.append([_with_seq(e, 0) for e in entries[start : start + 7]])
            with engine.connect() as connection:
                stored = connection.execute(
                    select(*[getattr(AuditEvent, c) for c in COLUMNS]).order_by(AuditEvent.seq)
                ).all()
                signed = sorted(connection.scalars(select(AuditCheckpoint.seq)))
        finally:
            engine.dispose()
    previous = GENESIS
    for entry, db_row in zip(entries, stored, strict=True):
        row = entry.row()
        digest = entry_hash(previous, row)
        if tuple(db_row[1 : 1 + _N]) != row or bytes(db_row[-1]) != digest:
            raise BenchError(f"generated entry {entry.seq} differs from what SqlAuditTrail writes")
        previous = digest
    if signed != list(range(1000, count + 1, 1000)):
        raise BenchError(f"checkpoints at {signed}, not every 1000 entries")


def _with_seq(entry: AuditEntry, seq: int) -> AuditEntry:
    return AuditEntry(**{**{n: getattr(entry, n) for n in FIELD_NAMES}, "seq": seq})


def _admin(statement: sql.Composed) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(statement)


def drop_database() -> None:
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))


def database_entries() -> int | None:
    """Entries of a kept benchmark database, or None if there is none."""
    try:
        with psycopg.connect(DB_URL) as connection:
            row = connection.execute("SELECT coalesce(sum(seq), 0) FROM audit_head").fetchone()
    except psycopg.Error:
        return None
    return None if row is None else int(row[0])


@dataclass
class Built:
    entries: int
    shards: int
    reused: bool = False
    generate_seconds: float = 0.0  # generation and chaining, in parallel processes
    copy_seconds: float = 0.0  # one COPY, the shards merged in time order
    index_seconds: float = 0.0
    vacuum_seconds: float = 0.0
    table_bytes: int = 0
    total_bytes: int = 0
    per_shard: dict[int, int] = field(default_factory=dict)


def build_trail(args: argparse.Namespace, signer_seed: bytes) -> Built:
    drop_database()
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    engine = make_engine(SA_URL)
    try:
        upgrade(engine, schema="audit")
    finally:
        engine.dispose()
    # The table is loaded without its indexes, which are then built in one pass each.
    with psycopg.connect(DB_URL, autocommit=True) as connection:
        indexes = [
            str(r[0])
            for r in connection.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_events'"
                " AND indexname <> 'pk_audit_events'"
            )
        ]
        primary = connection.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'pk_audit_events'"
        ).fetchone()
        assert primary is not None
        connection.execute("ALTER TABLE audit_events DROP CONSTRAINT pk_audit_events")
        for name in ("ix_audit_events_subject", "ix_audit_events_account_ts", "ix_audit_events_ts"):
            connection.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    counts = shard_counts(args.entries, args.shards, args.seed)
    shutil.rmtree(GENERATED, ignore_errors=True)
    GENERATED.mkdir(parents=True)
    jobs = [
        ShardJob(
            shard=s,
            count=counts[s],
            seed=args.seed,
            accounts=args.accounts,
            span_us=args.days * DAY_US,
            checkpoint_every=args.checkpoint_every,
            signer_seed=signer_seed,
            path=str(GENERATED / f"shard-{s}.copy"),
        )
        for s in range(args.shards)
        if counts[s]
    ]
    built = Built(entries=args.entries, shards=args.shards)
    began = time.perf_counter()
    try:
        with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
            loaded = list(pool.imap_unordered(generate_shard, jobs))
        built.generate_seconds = time.perf_counter() - began
        began = time.perf_counter()
        copy_in_time_order([Path(job.path) for job in jobs])
        built.copy_seconds = time.perf_counter() - began
    finally:
        shutil.rmtree(GENERATED, ignore_errors=True)
    for shard in sorted(loaded, key=lambda s: s.shard):
        print(f"  shard {shard.shard}: {shard.last_seq:,} entries in {shard.seconds:.0f} s")
    key_id = CheckpointSigner(signer_seed).key_id
    with psycopg.connect(DB_URL) as connection, connection.cursor() as cursor:
        with cursor.copy(
            "COPY audit_checkpoints (shard, seq, ts_us, hash, key_id, signature) FROM STDIN"
        ) as copy:
            for shard in loaded:
                for seq, ts_us, digest, signature in shard.checkpoints:
                    copy.write_row((shard.shard, seq, ts_us, digest, key_id, signature))
        cursor.executemany(
            "INSERT INTO audit_head (shard, seq, hash) VALUES (%s, %s, %s)",
            [(s.shard, s.last_seq, s.last_hash) for s in loaded],
        )
        connection.commit()
    began = time.perf_counter()
    with psycopg.connect(DB_URL, autocommit=True) as connection:
        connection.execute("SET maintenance_work_mem = '1GB'")
        connection.execute(
            sql.SQL("ALTER TABLE audit_events ADD CONSTRAINT pk_audit_events {}").format(
                sql.SQL(str(primary[0]))
            )
        )
        for definition in indexes:
            connection.execute(sql.SQL(definition))
        built.index_seconds = time.perf_counter() - began
        began = time.perf_counter()
        # As a trail that has lived: hint bits set, visibility map and statistics up to date.
        connection.execute("VACUUM (ANALYZE) audit_events")
        built.vacuum_seconds = time.perf_counter() - began
    built.per_shard = {s.shard: s.last_seq for s in loaded}
    return built


def sizes(built: Built) -> None:
    with psycopg.connect(DB_URL) as connection:
        row = connection.execute(
            "SELECT pg_table_size('audit_events'), pg_total_relation_size('audit_events')"
        ).fetchone()
        assert row is not None
        built.table_bytes, built.total_bytes = int(row[0]), int(row[1])
        built.per_shard = {
            int(s): int(q) for s, q in connection.execute("SELECT shard, seq FROM audit_head")
        }


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Cpu:
    """CPU seconds used by this Python process and its children, and by PostgreSQL."""

    python: float
    postgres: float


def _postgres_seconds() -> float:
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        if raw[raw.index("(") + 1 : raw.rindex(")")].startswith("postgres"):
            ticks += sum(int(v) for v in raw[raw.rindex(")") + 2 :].split()[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_now() -> Cpu:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    python = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return Cpu(python, _postgres_seconds() if Path("/proc").exists() else 0.0)


@dataclass(frozen=True)
class Timed:
    label: str
    seconds: float
    python_cpu: float  # percent of one core over the run: this process and its children
    postgres_cpu: float  # every PostgreSQL process
    other_cpu: float  # anything else on the machine: a disturbance


def _machine_seconds() -> float:
    """CPU seconds all cores spent on anything but idling, from /proc/stat."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    jiffies = [int(v) for v in first[1:9]]
    return (sum(jiffies) - jiffies[3] - jiffies[4]) / os.sysconf("SC_CLK_TCK")


def timed(label: str, action: Callable[[], T]) -> tuple[T, Timed]:
    before, machine = cpu_now(), _machine_seconds()
    began = time.perf_counter()
    value = action()
    seconds = time.perf_counter() - began
    after, machine = cpu_now(), _machine_seconds() - machine
    python = after.python - before.python
    postgres = after.postgres - before.postgres
    return value, Timed(
        label,
        seconds,
        100 * python / seconds,
        100 * postgres / seconds,
        100 * max(0.0, machine - python - postgres) / seconds,
    )


DISTURBED = 20.0  # percent of one core used by other processes during a run: measured again
RETRIES = 2


class Meter:
    """Times runs on a quiet machine: waits until no other wrk runs and the machine idles,
    and measures a run again (up to RETRIES times) if something else disturbed it."""

    def __init__(self, max_wait: int) -> None:
        self.max_wait = max_wait
        self.waited = 0.0
        self.remeasured = 0
        self.max_other = 0.0

    def run(
        self, label: str, action: Callable[[], T], reset: Callable[[], None] | None = None
    ) -> tuple[T, Timed]:
        for attempt in range(RETRIES + 1):
            self.waited += wait_until_quiet(self.max_wait)
            if reset is not None:
                reset()
            value, run = timed(label, action)
            others = other_load_generators()
            if (run.other_cpu < DISTURBED and not others) or attempt == RETRIES:
                self.max_other = max(self.max_other, run.other_cpu)
                return value, run
            self.remeasured += 1
            print(
                f"{label}: disturbed ({run.seconds:.1f} s; others used {run.other_cpu:.0f} % "
                f"of a core; other wrk: {others[:2]}): measuring again"
            )
        raise AssertionError("unreachable")


def verify(
    engine: Engine, verifier: CheckpointVerifier, jobs: int, *, incremental: bool = False
) -> VerifyReport:
    return verify_database(engine, verifier, incremental=incremental, jobs=jobs, url=SA_URL)


def expect_intact(report: VerifyReport, entries: int, label: str) -> None:
    if not report.ok:
        raise BenchError(f"{label}: the trail is reported broken: {report.problems}")
    if report.entries != entries:
        raise BenchError(f"{label}: {report.entries:,} entries verified, not {entries:,}")


@dataclass(frozen=True)
class Step:
    name: str
    wall: float
    cpu: float  # this process's CPU time: what is not waiting for PostgreSQL


@dataclass(frozen=True)
class Breakdown:
    """Where the time of one shard's verification goes, in one process."""

    shard: int
    entries: int
    plan: str  # how PostgreSQL reads one shard in sequence order
    steps: list[Step]


def _step(name: str, action: Callable[[], object], steps: list[Step]) -> None:
    began, cpu = time.perf_counter(), time.process_time()
    action()
    steps.append(Step(name, time.perf_counter() - began, time.process_time() - cpu))


def breakdown(engine: Engine, verifier: CheckpointVerifier, shard: int) -> Breakdown:
    with engine.connect() as connection:
        checkpoints = load_checkpoints(connection, shard)
    rows: list[tuple[object, ...]] = []
    counted: list[int] = []

    def chain(source: Iterator[tuple[object, ...]] | list[tuple[object, ...]]) -> None:
        result = verify_chain(
            source,
            shard=shard,
            start_seq=0,
            start_hash=GENESIS,
            checkpoints=checkpoints,
            verifier=verifier,
        )
        if result.problem is not None:
            raise BenchError(f"breakdown: shard {shard}: {result.problem}")
        counted.append(result.entries)

    query = sql.SQL("SELECT {} FROM audit_events WHERE shard = %s ORDER BY seq").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS[1:])
    )

    def fetch_raw(binary: bool) -> None:
        with (
            psycopg.connect(DB_URL) as raw_connection,
            raw_connection.cursor(name="bench_fetch", binary=binary) as cursor,
        ):
            cursor.itersize = 20_000
            cursor.execute(query, (shard,))
            counted.append(sum(1 for _ in cursor))

    def hash_only() -> None:
        previous = GENESIS
        for row in rows:
            previous = entry_hash(previous, row[:_N])  # type: ignore[arg-type]

    with psycopg.connect(DB_URL) as explain:
        plan = " / ".join(
            str(r[0]).strip().split("  (")[0]
            for r in explain.execute(sql.SQL("EXPLAIN ") + query, (shard,))
        )
    steps: list[Step] = []
    _step(
        "the shard's verification as `audit verify` runs it (`_stream` + `verify_chain`)",
        lambda: chain(_stream(engine, shard, 0)),
        steps,
    )
    _step(
        "fetching its rows through SQLAlchemy into tuples, as `_stream` does",
        lambda: rows.extend(_stream(engine, shard, 0)),
        steps,
    )
    _step("fetching them with a raw psycopg server-side cursor", lambda: fetch_raw(False), steps)
    _step("the same, binary format", lambda: fetch_raw(True), steps)
    _step("`verify_chain` over the rows already in memory", lambda: chain(rows), steps)
    _step("`entry_hash` alone over the same rows", hash_only, steps)
    if len(set(counted)) != 1 or counted[0] != len(rows):
        raise BenchError(f"breakdown: the steps saw different rows: {counted}")
    return Breakdown(shard=shard, entries=len(rows), plan=plan, steps=steps)


def tamper(shard: int, seq: int, value: str) -> str:
    """Alter one entry's client address in place (its hash unchanged); returns the old value."""
    with psycopg.connect(DB_URL) as connection:
        row = connection.execute(
            "UPDATE audit_events AS e SET client_ip = %s FROM audit_events AS o"
            " WHERE e.shard = %s AND e.seq = %s AND o.shard = e.shard AND o.seq = e.seq"
            " RETURNING o.client_ip",
            (value, shard, seq),
        ).fetchone()
        if row is None:
            raise BenchError(f"no entry {seq} in shard {shard} to alter")
        connection.commit()
    return str(row[0])


def _tree_bytes(directory: Path) -> tuple[int, int]:
    files = [p for p in directory.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


@dataclass
class Results:
    built: Built
    busy_before: float
    meter: Meter
    full: dict[int, list[Timed]] = field(default_factory=dict)
    incremental: Timed | None = None
    incremental_entries: int = 0
    tampered: Timed | None = None
    tampered_at: str = ""
    export: Timed | None = None
    export_bytes: int = 0
    export_files: int = 0
    export_days: int = 0
    export_checkpoints: int = 0
    export_reused: bool = False
    export_rss: int = 0  # bytes, the exporting process's own peak
    export_checks: list[ExportCheck] = field(default_factory=list)  # this code's first
    import_rss: int = 0  # bytes, a process that only imports rempart.audit.export
    breakdown: Breakdown | None = None
    fidelity_entries: int = 0
    code: str = ""


def _trail(args: argparse.Namespace, signer_seed: bytes) -> Built:
    """The trail to measure: a kept database of the right size when asked to (always
    when only the export is measured), else a new one; none when a kept export is reused."""
    reusable = args.only == "export" and args.reuse_export
    if reusable and _exported_entries(EXPORT_DIR) == args.entries:
        return Built(entries=args.entries, shards=args.shards, reused=True)
    population = Population(args.seed, args.accounts)
    check_fidelity(population, signer_seed)
    print("generator checked against SqlAuditTrail: identical rows and hashes")
    kept = database_entries() if args.reuse_database or args.only == "export" else None
    if kept == args.entries:
        built = Built(entries=args.entries, shards=args.shards, reused=True)
        print(f"reusing the kept database {DB_NAME} ({kept:,} entries)")
    else:
        print(f"building {args.entries:,} entries in {args.shards} shards ...")
        built = build_trail(args, signer_seed)
        print(
            f"built: generated {built.generate_seconds:.0f} s, COPY {built.copy_seconds:.0f} s, "
            f"indexes {built.index_seconds:.0f} s, VACUUM ANALYZE {built.vacuum_seconds:.0f} s"
        )
    sizes(built)
    if len(built.per_shard) != args.shards:
        raise BenchError(f"{len(built.per_shard)} shards in the database, not {args.shards}")
    return built


def measure(args: argparse.Namespace) -> Results:
    OUT.mkdir(parents=True, exist_ok=True)
    signer_seed = f"rempart-bench-audit-signing-{args.seed}".encode()
    verifier = CheckpointSigner(signer_seed).verifier()
    built = _trail(args, signer_seed)
    meter = Meter(args.max_wait)
    meter.waited += wait_until_quiet(args.max_wait)
    results = Results(built=built, busy_before=busy_before(), meter=meter, code=code_version())
    if results.busy_before > 30:
        print(f"warning: the machine is {results.busy_before:.0f} % busy before measuring")
    if args.only == "all":
        engine = make_engine(SA_URL)
        try:
            _measure_verify(args, engine, verifier, results)
            _measure_export(args, verifier, results)
            if not args.no_breakdown:
                print("breakdown of one shard's verification ...")
                results.breakdown, _ = meter.run(
                    "breakdown", functools.partial(breakdown, engine, verifier, 0)
                )
        finally:
            engine.dispose()
    else:
        _measure_export(args, verifier, results)
    results.fidelity_entries = 2_500
    return results


def _measure_verify(
    args: argparse.Namespace, engine: Engine, verifier: CheckpointVerifier, results: Results
) -> None:
    entries = args.entries
    settings = [args.jobs, 1] if args.jobs != 1 else [1]
    results.full = {jobs: [] for jobs in settings}
    for round_no in range(1, args.rounds + 1):
        for jobs in settings:
            report, run = results.meter.run(
                f"full, jobs {jobs}", functools.partial(verify, engine, verifier, jobs)
            )
            expect_intact(report, entries, run.label)
            results.full[jobs].append(run)
            print(
                f"round {round_no}: verify --jobs {jobs}: {run.seconds:.1f} s "
                f"({entries / run.seconds:,.0f} entries/s; Python {run.python_cpu:.0f} %, "
                f"PostgreSQL {run.postgres_cpu:.0f} % of a core)"
            )
    report, results.incremental = results.meter.run(
        "incremental", lambda: verify(engine, verifier, args.jobs, incremental=True)
    )
    if not report.ok:
        raise BenchError(f"incremental verification: broken: {report.problems}")
    results.incremental_entries = report.entries
    print(f"incremental: {report.entries:,} entries in {results.incremental.seconds:.2f} s")
    # One entry in the middle of the middle shard is altered: it must be named.
    shard = args.shards // 2
    seq = results.built.per_shard[shard] // 2
    original = tamper(shard, seq, "203.0.113.66")
    try:
        report, results.tampered = results.meter.run(
            "tampered", lambda: verify(engine, verifier, args.jobs)
        )
    finally:
        tamper(shard, seq, original)
    problems = report.problems
    if (
        len(problems) != 1
        or (problems[0].shard, problems[0].seq) != (shard, seq)
        or "altered" not in problems[0].reason
    ):
        raise BenchError(f"the altered entry {shard}/{seq} was not found: {problems}")
    results.tampered_at = str(problems[0])
    print(f"tampered: found '{problems[0]}' in {results.tampered.seconds:.1f} s")


EXPORT_DIR = OUT / "audit-export"

# Each step runs in a process of its own, so that its peak memory is its own.
_EXPORT_SCRIPT = """
import json, sys
from pathlib import Path
from rempart.audit.chain import CheckpointVerifier
from rempart.audit.export import export_trail
from rempart.store.engine import make_engine
engine = make_engine(sys.argv[1])
summary = export_trail(engine, Path(sys.argv[2]), CheckpointVerifier.from_hex(sys.argv[3]))
engine.dispose()
print(json.dumps({"entries": summary.entries, "checkpoints": summary.checkpoints}))
"""
_VERIFY_SCRIPT = """
import json, sys, time
from pathlib import Path
from rempart.audit.chain import CheckpointVerifier
from rempart.audit.export import verify_export
began = time.perf_counter()
report = verify_export(Path(sys.argv[1]), CheckpointVerifier.from_hex(sys.argv[2]))
print(json.dumps({
    "seconds": time.perf_counter() - began,
    "ok": report.ok,
    "entries": report.entries,
    "unanchored": report.unanchored,
    "problems": [str(p) for p in report.problems[:5]],
}))
"""
_IMPORT_SCRIPT = 'import rempart.audit.export; print("{}")'


@dataclass(frozen=True)
class ExportCheck:
    """One ``verify_export`` of the export, in a process of its own."""

    code: str  # which code verified
    run: Timed
    peak_rss: int  # bytes, the child's own
    inner_seconds: float  # inside verify_export, without starting Python and importing


def _exported_entries(directory: Path) -> int | None:
    """Entries of a kept export, from its manifest, or None if there is none."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return int(manifest["entries"])


def _commit_at(src: Path) -> str | None:
    try:
        return subprocess.run(
            ["git", "-C", str(src), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _code_at(src: Path) -> str:
    commit = _commit_at(src)
    return f"the code in `{src}`" if commit is None else f"commit `{commit}`"


def _check_export(
    args: argparse.Namespace, verifier: CheckpointVerifier, results: Results, src: Path
) -> ExportCheck:
    code = results.code if src == SRC else _code_at(src)
    child, run = results.meter.run(
        f"verify export ({code})",
        lambda: run_child(_VERIFY_SCRIPT, str(EXPORT_DIR), verifier.public_hex(), src=src),
    )
    checked = child.result
    if not checked["ok"] or checked["unanchored"] or checked["entries"] != args.entries:
        raise BenchError(
            f"the export does not verify ({code}): {checked['problems']}, unanchored "
            f"{checked['unanchored']}, {checked['entries']:,} entries"
        )
    print(
        f"verify export ({code}): {run.seconds:.1f} s ({checked['seconds']:.1f} s inside), "
        f"peak memory {child.peak_rss / 1e6:,.0f} MB"
    )
    return ExportCheck(code, run, child.peak_rss, float(checked["seconds"]))


def _measure_export(
    args: argparse.Namespace, verifier: CheckpointVerifier, results: Results
) -> None:
    reused = args.reuse_export and _exported_entries(EXPORT_DIR) == args.entries
    try:
        if reused:
            results.export_reused = True
            print(f"reusing the kept export {EXPORT_DIR}")
        else:
            shutil.rmtree(EXPORT_DIR, ignore_errors=True)
            child, results.export = results.meter.run(
                "export",
                lambda: run_child(_EXPORT_SCRIPT, SA_URL, str(EXPORT_DIR), verifier.public_hex()),
                reset=lambda: shutil.rmtree(EXPORT_DIR, ignore_errors=True),
            )
            if child.result["entries"] != args.entries:
                raise BenchError(
                    f"export wrote {child.result['entries']:,} entries, not {args.entries:,}"
                )
            results.export_rss = child.peak_rss
        manifest = json.loads((EXPORT_DIR / "manifest.json").read_text(encoding="utf-8"))
        results.export_checkpoints = int(manifest["checkpoints"])
        results.export_bytes, results.export_files = _tree_bytes(EXPORT_DIR)
        results.export_days = len(list(EXPORT_DIR.glob("day=*")))
        if results.export is not None:
            print(
                f"export: {results.export.seconds:.1f} s, {results.export_bytes / 1e6:,.0f} MB "
                f"in {results.export_files} files, peak memory {results.export_rss / 1e9:.1f} GB"
            )
        results.import_rss = run_child(_IMPORT_SCRIPT).peak_rss
        results.export_checks.append(_check_export(args, verifier, results, SRC))
        if args.before_src is not None:
            results.export_checks.append(_check_export(args, verifier, results, args.before_src))
    finally:
        if not (args.keep_export or reused):
            shutil.rmtree(EXPORT_DIR, ignore_errors=True)


# --------------------------------------------------------------------------- report


def _command(args: argparse.Namespace) -> str:
    parts = [".venv/bin/python -m bench.bench_audit_verify"]
    for name, default in DEFAULTS.items():
        value = getattr(args, name)
        if value != default:
            parts.append(f"--{name.replace('_', '-')} {value}")
    if args.only != "all":
        parts.append(f"--only {args.only}")
    if args.reuse_export:
        parts.append("--reuse-export")
    if args.before_src is not None:
        parts.append(f"--before-src {args.before_src}")
    return " ".join(parts)


def _mb(count: float) -> str:
    return f"{count / 1e6:,.0f} MB"


def _table(header: list[str], align: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _cpu(run: Timed) -> str:
    return f"{run.python_cpu:.0f} % / {run.postgres_cpu:.0f} %"


def _verify_rows(args: argparse.Namespace, results: Results) -> list[list[str]]:
    med = statistics.median
    entries = results.built.entries
    rows = []
    for jobs, runs in results.full.items():
        seconds = [r.seconds for r in runs]
        middle = med(seconds)
        rows.append(
            [
                f"full, `--jobs {jobs}`",
                f"**{middle:.1f} s** ({', '.join(f'{s:.1f}' for s in seconds)})",
                f"{entries / middle:,.0f}",
                f"{med([r.python_cpu for r in runs]):.0f} % / "
                f"{med([r.postgres_cpu for r in runs]):.0f} %",
                "met" if middle < GOAL_SECONDS else "NOT met",
            ]
        )
    tampered, incremental = results.tampered, results.incremental
    assert tampered is not None
    assert incremental is not None
    rows.append(
        [
            f"one entry altered, `--jobs {args.jobs}`",
            f"{tampered.seconds:.1f} s",
            "-",
            _cpu(tampered),
            f"found: {results.tampered_at}",
        ]
    )
    rows.append(
        [
            f"incremental, `--jobs {args.jobs}`, after a full one",
            f"{incremental.seconds:.2f} s",
            "-",
            _cpu(incremental),
            f"{results.incremental_entries:,} entries checked",
        ]
    )
    return rows


MEMORY_GOAL = 1e9  # bytes: issue 16, "peak memory under 1 GB"
PUBLISHED_BEFORE = [
    "before, as first published (2026-11-29, commit `2d356c8`, "
    "`.venv/bin/python -m bench.bench_audit_verify`), in the benchmark's own process",
    "105.1 s",
    "95,133 entries/s",
    "12.1 GB",
    "Python 110 % of a core; `ru_maxrss` of the whole benchmark process, nearly all of it "
    "`verify_export`'s own: that version loaded the whole export into one table, then each "
    "shard as Python tuples. Alone in a process of its own on this export (as the rows "
    "above, `--before-src` a checkout of `2d356c8`; measured 2026-12-04): 11.5 GB, 87.4 s "
    "inside `verify_export`",
]


def _gb(count: float) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else _mb(count)


def _export_rows(results: Results) -> list[list[str]]:
    entries = results.built.entries
    export = results.export
    on_disk = (
        f"{_mb(results.export_bytes)} in {results.export_files} files "
        f"({results.export_days} days, {results.export_checkpoints:,} checkpoints)"
    )
    if export is None:
        rows = [
            [
                "`export_trail`, the whole trail to Parquet (`rempart audit export`)",
                "-",
                "-",
                "-",
                f"not measured: a kept export reused (`--reuse-export`); {on_disk}",
            ]
        ]
    else:
        rows = [
            [
                "`export_trail`, the whole trail to Parquet (`rempart audit export`)",
                f"{export.seconds:.1f} s",
                f"**{entries / export.seconds:,.0f} entries/s**, "
                f"{results.export_bytes / 1e6 / export.seconds:,.1f} MB/s written",
                _gb(results.export_rss),
                on_disk,
            ]
        ]
    for index, check in enumerate(results.export_checks):
        label = (
            "`verify_export` of it (`rempart audit verify --export DIR`)"
            if index == 0
            else f"before: `verify_export` at {check.code}, the same export"
        )
        rows.append(
            [
                label,
                f"**{check.run.seconds:.1f} s**" if index == 0 else f"{check.run.seconds:.1f} s",
                f"{entries / check.run.seconds:,.0f} entries/s",
                f"**{_gb(check.peak_rss)}**" if index == 0 else _gb(check.peak_rss),
                f"Python {check.run.python_cpu:.0f} % of a core; "
                f"{check.inner_seconds:.1f} s inside `verify_export`",
            ]
        )
    if entries == 10_000_000:
        rows.append(PUBLISHED_BEFORE)
    return rows


def render_export(args: argparse.Namespace, results: Results) -> str:
    """The export part of the section: its own markers, so that ``--only export``
    replaces it and leaves the database verification's figures as they are."""
    entries = results.built.entries
    table = _table(
        ["export", "time", "rate", "peak memory of its process", "notes"],
        ["---", "---:", "---:", "---:", "---"],
        _export_rows(results),
    )
    after = results.export_checks[0]
    verdict = "met" if after.peak_rss < MEMORY_GOAL else "NOT met"
    before = results.export_checks[1] if len(results.export_checks) > 1 else None
    versus = (
        f"; {before.run.seconds:.1f} s and {_gb(before.peak_rss)} for {before.code}"
        if before is not None
        else ""
    )
    findings = []
    if results.export is not None:
        findings.append(f"`export_trail` alone peaks at {_gb(results.export_rss)}")
    if before is not None:
        findings.append(f"the `verify_export` of {before.code} alone at {_gb(before.peak_rss)}")
    found = ""
    if findings and entries == 10_000_000:
        found = f" Measured the same way: {' and '.join(findings)}."
    busy = results.meter.max_other
    return f"""{table}

**Goal: export verification of {entries:,} entries with a peak memory under 1 GB:
{verdict}** ({_gb(after.peak_rss)} and {after.run.seconds:.1f} s{versus}).

- **Peak memory**: `ru_maxrss` of the process that ran the step and nothing else (a fresh
  `python -c`, read by `os.wait4`), the interpreter and its imports included (a process
  that only imports `rempart.audit.export` peaks at {_gb(results.import_rss)}). The times
  include starting that process.{found}
- **Export verification**: shard by shard, each row group streamed in batches of
  65,536 entries (`rempart.audit.export_read`), encoded by Arrow, re-chained by
  `verify_encoded`.
- **Reproduce**: `{_command(args)}`{_before_hint(args)}.
- **Code**: {results.code}. **Machine**: 2 cores; busy {results.busy_before:.0f} % just
  before measuring (200 % scale); other processes used at most {busy:.0f} % of a core
  during a measured run ({results.meter.remeasured} run(s) measured again).
"""


def _before_hint(args: argparse.Namespace) -> str:
    if args.before_src is None:
        return ""
    commit = _commit_at(args.before_src) or "COMMIT"
    return (
        f", where `--before-src` is the `src/` of a checkout of the code compared with "
        f"(`git worktree add {args.before_src.parent} {commit}`)"
    )


def _breakdown_text(b: Breakdown | None) -> str:
    if b is None:
        return ""
    rows = [
        [
            step.name,
            f"{1e6 * step.wall / b.entries:.1f} µs",
            f"{1e6 * step.cpu / b.entries:.1f} µs",
            f"{step.wall:.1f} s",
        ]
        for step in b.steps
    ]
    table = _table(
        ["step", "per entry", "of which Python CPU", "whole shard"],
        ["---", "---:", "---:", "---:"],
        rows,
    )
    return (
        f"\nWhere the time goes: shard {b.shard} ({b.entries:,} entries) in one process, "
        f"on a quiet machine (PostgreSQL plan: {b.plan}). Wall time per entry, and the "
        f"part of it this Python process spent on the CPU (the rest is waiting for "
        f"PostgreSQL):\n\n{table}\n"
    )


def render(args: argparse.Namespace, results: Results) -> str:
    built = results.built
    entries = built.entries
    med = statistics.median
    best_jobs = min(results.full, key=lambda j: med([r.seconds for r in results.full[j]]))
    best = med([r.seconds for r in results.full[best_jobs]])
    verdict = "met" if best < GOAL_SECONDS else "NOT met"
    verify_table = _table(
        ["verification", "time", "entries/s", "CPU Python / PostgreSQL", "goal / result"],
        ["---", "---:", "---:", "---:", "---"],
        _verify_rows(args, results),
    )
    export_part = (
        f"<!-- bench:{EXPORT_SECTION} -->\n{render_export(args, results).strip()}\n"
        f"<!-- /bench:{EXPORT_SECTION} -->"
    )
    spread = [
        f"`--jobs {jobs}` {100 * (max(s) - min(s)) / med(s):.0f} %"
        for jobs, runs in results.full.items()
        if len(s := [r.seconds for r in runs]) > 1
    ]
    set_up = (
        "reused from a kept database (`--reuse-database`)"
        if built.reused
        else (
            f"generated and chained in {built.generate_seconds:.0f} s ({args.processes} "
            f"processes), loaded with one `COPY` in time order in {built.copy_seconds:.0f} s "
            "(so the shards are interleaved in the table page by page, as the live writers "
            f"leave them), indexes built in {built.index_seconds:.0f} s, `VACUUM ANALYZE` "
            f"{built.vacuum_seconds:.0f} s"
        )
    )
    per_shard = sorted(set(built.per_shard.values()))
    shard_sizes = (
        f"{per_shard[0]:,}" if len(per_shard) == 1 else f"{per_shard[0]:,}-{per_shard[-1]:,}"
    )
    remeasured = (
        f"{results.meter.remeasured} run(s) measured again because others took over "
        f"{DISTURBED:.0f} %"
        if results.meter.remeasured
        else f"a run disturbed by over {DISTURBED:.0f} % would be measured again; none was"
    )
    goal = f"`audit verify` of {entries:,} entries in under {GOAL_SECONDS:.0f} s"
    return f"""## Audit trail: `audit verify` over {entries:,} entries, export (PostgreSQL)

A real trail of **{entries:,} entries** in {built.shards} shards ({shard_sizes} entries
each), chained exactly as `SqlAuditTrail` writes them (the generator is checked against
`SqlAuditTrail` itself on {results.fidelity_entries:,} entries first), with an Ed25519
checkpoint every {args.checkpoint_every:,} entries per shard, in a fresh PostgreSQL 15
database (table {_mb(built.table_bytes)}, {_mb(built.total_bytes)} with its indexes).
Times of `verify_database` (what `rempart audit verify` runs): {args.rounds} rounds, the
settings alternating; median, each run in brackets. CPU in percent of one core (the
machine has 2 cores): the Python processes / the PostgreSQL backends.

{verify_table}

**Goal: {goal}: {verdict}** (best setting `--jobs {best_jobs}`, {best:.1f} s).

{export_part}
{_breakdown_text(results.breakdown)}
- **Code**: {results.code}.
- **Reproduce**: `{_command(args)}` (PostgreSQL on 127.0.0.1:5432; the database
  `{DB_NAME}` is created, then dropped; about {_mb(built.total_bytes * 1.3)} of disk
  while it runs).
- **Set-up, not measured**: {set_up}. Entries: 95 % lookups (97 % found, 2.5 % not
  found, 0.5 % invalid NIR) and authentication events (password step, login succeeded,
  wrong password, unknown logins from stray addresses), by {args.accounts:,} accounts
  (skewed: a few look up much more), one session a day each, IPv4 and IPv6 addresses,
  8 browser strings, 128-bit hex pseudonyms, over {args.days} days.
- **Noise**: spread of the runs of one setting: {", ".join(spread) or "one round only"}.
  The table is in the OS page cache (24 GiB of RAM), not in PostgreSQL's 128 MB of
  shared buffers: a trail read from a cold disk would verify slower.
- **Machine**: 2 cores shared by the verifying processes and the PostgreSQL backends
  that feed them (busy {results.busy_before:.0f} % just before measuring, on a 200 % scale,
  after waiting {results.meter.waited:.0f} s in all for a quiet machine;
  other processes used at most {results.meter.max_other:.0f} % of a core during a measured
  run; {remeasured});
  with `--jobs 2` each job streams from a backend of its own, so two jobs already ask
  for more than the 2 cores.
"""


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    for name, default in DEFAULTS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    parser.add_argument("--keep-database", action="store_true", help="do not drop it at the end")
    parser.add_argument(
        "--reuse-database",
        action="store_true",
        help="start from a kept database of the same size instead of building one",
    )
    parser.add_argument(
        "--only",
        choices=["all", "export"],
        default="all",
        help="export: only the export and its verification (a kept database of the right "
        "size is reused, else one is built), published into the export part of the section",
    )
    parser.add_argument("--keep-export", action="store_true", help="keep bench/out/audit-export")
    parser.add_argument(
        "--reuse-export",
        action="store_true",
        help="verify a kept bench/out/audit-export of the same size instead of exporting again",
    )
    parser.add_argument(
        "--before-src",
        type=Path,
        help="also verify the export with the code in this src/ directory (a checkout of an "
        "earlier commit), in a process of its own",
    )
    parser.add_argument("--no-breakdown", action="store_true", help="skip the one-shard profile")
    parser.add_argument(
        "--no-write", action="store_true", help="print the section, leave docs/benchmarks.md"
    )
    args = parser.parse_args(argv)
    if min(args.entries, args.jobs, args.shards, args.checkpoint_every, args.rounds) < 1:
        parser.error("entries, jobs, shards, checkpoint-every and rounds must be at least 1")
    if min(args.days, args.accounts, args.processes) < 1:
        parser.error("days, accounts and processes must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    marker = f"<!-- bench:{EXPORT_SECTION} -->"
    if args.only == "export" and not args.no_write and marker not in BENCHMARKS_MD.read_text():
        sys.exit(f"bench_audit_verify: no {marker} in {BENCHMARKS_MD}: run the whole benchmark")
    try:
        results = measure(args)
    except BenchError as exc:
        sys.exit(f"bench_audit_verify: {exc}")
    except psycopg.OperationalError as exc:
        sys.exit(f"bench_audit_verify: PostgreSQL on 127.0.0.1:5432 is not usable: {exc}")
    finally:
        if not args.keep_database:
            drop_database()
    if args.only == "export":
        publish(EXPORT_SECTION, render_export(args, results), dry_run=args.no_write)
    else:
        publish(SECTION, render(args, results), dry_run=args.no_write)


if __name__ == "__main__":
    main()
