"""Benchmark: what the audit trail costs lookups, audit on against a no-op writer, one run.

Two servers on the same PostgreSQL database, the same world, the same account and bearer
token and the same wrk load: ``rempart serve --workers 2`` with the audit trail as in
production (``REMPART_AUDIT_WRITER=sql``: every lookup commits its chained entry before
the answer leaves), and the same with ``REMPART_AUDIT_WRITER=noop-benchmark-only``
(the writer replaced by one that writes nothing). The two alternate (A B A B ...) so
that noise shows. Goal: with the audit on, at least 0.7 of the lookups/s without.
Each audited run must have grown ``audit_events`` by at least the number of answers
wrk counted (all 2xx), and the trail written under load must verify intact.

    .venv/bin/python -m bench.bench_audit_cost [--duration S] [--connections C] [--rounds R]

Needs ``wrk`` (``apt-get install -y wrk``, or ``make bench-deps``) and the PostgreSQL
server on 127.0.0.1:5432 (user postgres, trust authentication). The database is created
fresh and dropped at the end; the world is generated once into ``bench/out/`` and reused.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from bench.bench_lookup import (
    DISTURBED,
    LOGIN,
    LOOKUP_PATH,
    RETRIES,
    WORKERS,
    BenchError,
    CpuShare,
    Server,
    WrkResult,
    busy_before,
    check_once,
    check_wrk_args,
    code_version,
    log_in,
    lua_script,
    rempart,
    require_wrk,
    run_wrk,
    running,
    sample_pairs,
    server_command,
    wait_until_quiet,
    world_dir,
)
from bench.report import publish
from rempart.audit.chain import CheckpointSigner
from rempart.audit.verify import verify_database
from rempart.config import load_settings
from rempart.store.engine import make_engine

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DB_NAME = "rempart_bench_audit_cost"
DB_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
GOAL_RATIO = 0.7

# The two configurations: name -> (REMPART_AUDIT_WRITER, what the report calls it).
CONFIGS = {
    "audit": ("sql", "audit on (`REMPART_AUDIT_WRITER=sql`, the default)"),
    "noop": ("noop-benchmark-only", "no-op writer (`REMPART_AUDIT_WRITER=noop-benchmark-only`)"),
}

DEFAULTS: dict[str, int] = {
    "insured": 200_000,
    "professionals": 2_000,
    "duration": 20,
    "connections": 32,
    "threads": 2,
    "warmup": 5,
    "rounds": 3,
    "pairs": 4_096,
    "max_wait": 1800,
}


@contextlib.contextmanager
def serving(config: str, env: dict[str, str]) -> Iterator[Server]:
    """``rempart serve --workers 2`` (log level warning) with the configuration's writer."""
    server_env = {**env, "REMPART_AUDIT_WRITER": CONFIGS[config][0]}
    command, port = server_command("lookup", server_env, "warning")
    with running(f"audit-cost-{config}-server", command, server_env, port) as server:
        server.url += LOOKUP_PATH
        yield server


# --------------------------------------------------------------------------- set-up


def _admin(statement: sql.Composed) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(statement)


def drop_database() -> None:
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))


def audit_rows() -> int:
    with psycopg.connect(DB_URL) as connection:
        row = connection.execute("SELECT count(*) FROM audit_events").fetchone()
    assert row is not None
    return int(row[0])


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class Measured:
    config: str
    wrk: WrkResult
    cpu: CpuShare
    audit_rows: int  # rows audit_events grew by during the run (and its last answers)


@dataclass
class Run:
    results: dict[str, list[Measured]] = field(default_factory=dict)
    busy_before: float = 0.0
    waited: float = 0.0
    remeasured: int = 0
    load_seconds: float = 0.0
    world_reused: bool = False
    pairs: int = 0
    trail_entries: int = 0
    trail_checkpoints: int = 0
    verify_seconds: float = 0.0
    code: str = ""


def measure_once(
    args: argparse.Namespace, config: str, server: Server, *, script: Path, seconds: int, label: str
) -> Measured:
    """One wrk run, with the rows the audit trail grew by; refused if they do not add up."""
    before = audit_rows()
    result = run_wrk(
        args, server.url, script=script, seconds=seconds, label=label, server_pid=server.process.pid
    )
    time.sleep(1.0)  # the requests in flight when wrk stopped are answered (and audited)
    grown = audit_rows() - before
    # wrk counts the answers it read; the requests in flight when it stopped (at most one
    # per connection) were answered and audited too, but not counted.
    if config == "audit" and not result.requests <= grown <= result.requests + args.connections:
        raise BenchError(
            f"{label}: wrk counted {result.requests:,} answers (all 2xx) but audit_events "
            f"grew by {grown:,}"
        )
    if config == "noop" and grown != 0:
        raise BenchError(f"{label}: the no-op writer wrote {grown:,} audit rows")
    if result.cpu is None:
        raise BenchError("this benchmark needs /proc to account CPU")
    return Measured(config, result, result.cpu, grown)


def measure_clean(
    args: argparse.Namespace, config: str, server: Server, *, script: Path, seconds: int, run: Run
) -> Measured:
    """A wrk run, measured again (up to RETRIES times) if other processes disturbed it."""
    label = f"{config} {seconds} s"
    for attempt in range(RETRIES + 1):
        run.waited += wait_until_quiet(args.max_wait)
        measured = measure_once(args, config, server, script=script, seconds=seconds, label=label)
        if measured.cpu.other < DISTURBED or attempt == RETRIES:
            return measured
        run.remeasured += 1
        print(
            f"{label}: other processes used {measured.cpu.other:.0f} % of a core "
            f"({measured.wrk.requests_per_second:,.0f} req/s): measuring again"
        )
    raise AssertionError("unreachable")


def _show(label: str, m: Measured) -> None:
    print(
        f"{label:10} {m.wrk.requests_per_second:7,.0f} req/s  p50 {m.wrk.p50_ms:6.1f} ms  "
        f"p99 {m.wrk.p99_ms:6.1f} ms  {m.wrk.requests:,} answers, {m.audit_rows:,} audit rows; "
        f"{m.cpu.text()}"
    )


def measure(args: argparse.Namespace) -> Run:
    OUT.mkdir(parents=True, exist_ok=True)
    # No REMPART_* from the caller's shell: the run depends only on what is set here.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
    data_dir = OUT / "audit-cost-data"
    env.update(
        {
            "REMPART_DATABASE_URL": DB_URL,
            "REMPART_DATA_DIR": str(data_dir),
            # One account at wrk speed is a robot by construction: the guard would (rightly)
            # suspend it. This measures the lookup path; bench_guard_inline measures the guard.
            "REMPART_GUARD_ENABLED": "false",
        }
    )
    run = Run(code=code_version())
    world, run.world_reused = world_dir(env, args.insured, args.professionals)
    drop_database()
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    rempart(env, "db", "upgrade")
    began = time.perf_counter()
    rempart(env, "db", "load-world", str(world))
    run.load_seconds = time.perf_counter() - began
    print(f"world loaded into {DB_NAME} in {run.load_seconds:.0f} s")
    password = f"banc d'essai {secrets.token_urlsafe(18)}"
    otpauth = rempart(
        env, "accounts", "create", "--login", LOGIN, "--password-stdin", stdin=password + "\n"
    ).strip()
    pairs = sample_pairs(world, args.pairs)
    run.pairs = len(pairs)
    script = OUT / "audit-cost.lua"
    run.results = {config: [] for config in CONFIGS}
    with contextlib.ExitStack() as stack:
        # Both servers stay up (an idle one costs nothing); only the measured one is loaded.
        servers = {config: stack.enter_context(serving(config, env)) for config in CONFIGS}
        token = log_in(servers["audit"].url.removesuffix(LOOKUP_PATH), password, otpauth)
        script.write_text(lua_script(pairs, token), encoding="utf-8")
        for server in servers.values():
            check_once(server.url, token, pairs[0])
        run.waited += wait_until_quiet(args.max_wait)
        run.busy_before = busy_before()
        for config, server in servers.items():
            if args.warmup:
                measure_once(
                    args, config, server, script=script, seconds=args.warmup, label="warm-up"
                )
        for round_no in range(1, args.rounds + 1):
            for config, server in servers.items():  # A B A B ...
                measured = measure_clean(
                    args, config, server, script=script, seconds=args.duration, run=run
                )
                run.results[config].append(measured)
                _show(f"{config} #{round_no}", measured)
    # The trail written by the 2 workers under load must be intact.
    settings = load_settings(database_url=DB_URL, data_dir=data_dir)
    engine = make_engine(settings.database_url)
    try:
        began = time.perf_counter()
        report = verify_database(
            engine, CheckpointSigner(settings.keys.audit_signing_key).verifier()
        )
        run.verify_seconds = time.perf_counter() - began
    finally:
        engine.dispose()
    if not report.ok:
        raise BenchError(f"the trail written under load is broken: {report.problems}")
    run.trail_entries, run.trail_checkpoints = report.entries, report.checkpoints
    print(f"trail intact: {report.entries:,} entries, {report.checkpoints:,} checkpoints")
    return run


# --------------------------------------------------------------------------- report


def _command(args: argparse.Namespace) -> str:
    parts = [".venv/bin/python -m bench.bench_audit_cost"]
    for name, default in DEFAULTS.items():
        value = getattr(args, name)
        if value != default:
            parts.append(f"--{name.replace('_', '-')} {value}")
    return " ".join(parts)


def _spread(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a (one round)"
    return f"{100 * (max(values) - min(values)) / statistics.median(values):.0f} %"


def render(args: argparse.Namespace, run: Run) -> str:
    med = statistics.median
    audits, noops = run.results["audit"], run.results["noop"]

    def rps(results: list[Measured]) -> list[float]:
        return [m.wrk.requests_per_second for m in results]

    ratio = med(rps(audits)) / med(rps(noops))
    pair_ratios = [a / n for a, n in zip(rps(audits), rps(noops), strict=True)]
    met = ratio >= GOAL_RATIO

    def row(config: str) -> str:
        results = run.results[config]
        values = rps(results)
        return (
            f"| {CONFIGS[config][1]} | **{med(values):,.0f}** ({min(values):,.0f}-"
            f"{max(values):,.0f}) | {med([m.wrk.p50_ms for m in results]):.1f} ms "
            f"| {med([m.wrk.p99_ms for m in results]):.1f} ms "
            f"| {med([m.cpu.ms_per_request for m in results]):.2f} ms "
            f"| {med([m.cpu.server for m in results]):.0f} % / "
            f"{med([m.cpu.postgres for m in results]):.0f} % / "
            f"{med([m.cpu.machine for m in results]):.0f} % |"
        )

    lines = [
        f"| {i} | {name} | {m.wrk.requests_per_second:,.0f} "
        f"| {m.wrk.p50_ms:.1f} / {m.wrk.p99_ms:.1f} ms | {m.wrk.requests:,} | {m.audit_rows:,} |"
        for i, pair in enumerate(zip(audits, noops, strict=True), 1)
        for name, m in zip(("audit on", "no-op"), pair, strict=True)
    ]
    rounds_table = "\n".join(
        [
            "| round | writer | lookups/s | p50 / p99 | answers (all 2xx) | audit rows written |",
            "| ---: | --- | ---: | ---: | ---: | ---: |",
            *lines,
        ]
    )
    others = max(m.cpu.other for results in run.results.values() for m in results)
    remeasured = (
        f"{run.remeasured} run(s) measured again because others took over {DISTURBED:.0f} %"
        if run.remeasured
        else f"a run disturbed by over {DISTURBED:.0f} % is measured again; none was"
    )
    reused = ", reused from `bench/out/`" if run.world_reused else ""
    wrk_command = f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency"
    return f"""## What the audit trail costs lookups (PostgreSQL, {WORKERS} workers)

`POST {LOOKUP_PATH}` with a bearer token, measured with `wrk` in one run against two
servers on the same database, world, account and token: the audit trail on, as in
production (each lookup appends its chained entry to one of 8 shards in its own
transaction, committed before the answer leaves), and the audit writer replaced by a
no-op. The two alternate (A B A B ...), {args.rounds} rounds of {args.duration} s each;
median, range in brackets.

| audit writer | lookups/s | p50 | p99 | CPU per lookup | CPU uvicorn / PostgreSQL / all |
| --- | ---: | ---: | ---: | ---: | ---: |
{row("audit")}
{row("noop")}

**Ratio audit on / no-op: {ratio:.2f}** (per round: {", ".join(f"{r:.2f}" for r in pair_ratios)}).
Goal: at least {GOAL_RATIO} of the lookups/s without the audit: **{"met" if met else "NOT met"}**.

{rounds_table}

- **Every lookup audited**: in each audited run `audit_events` grew by at least as many
  rows as wrk counted answers, and by at most one more per connection (the requests in
  flight when wrk stopped); with the no-op writer, by none. The trail written under
  load, {run.trail_entries:,} entries with {run.trail_checkpoints:,} signed checkpoints,
  verifies intact ({run.verify_seconds:.1f} s).
- **Noise**: lookups/s vary by {_spread(rps(audits))} over the audited runs and
  {_spread(rps(noops))} over the no-op ones; the per-round ratio stays within
  {min(pair_ratios):.2f}-{max(pair_ratios):.2f}.
- **Code**: {run.code}.
- **Reproduce**: `{_command(args)}` (needs `wrk`, see `make bench-deps`, and PostgreSQL
  on 127.0.0.1:5432).
- **Settings**: `rempart serve --workers {WORKERS}` for both, `REMPART_LOG_LEVEL=warning`,
  everything else at its default; `{wrk_command}` after a {args.warmup} s warm-up of each;
  {run.pairs:,} distinct real (NIR, birth date) pairs cycled; a run with any non-2xx
  answer or socket error is refused. The audit trail is in the same database as the data
  (`REMPART_AUDIT_DATABASE_URL` unset), 8 shards, a checkpoint every 1,000 entries per
  shard; PostgreSQL 15 with its defaults (`synchronous_commit = on`: an audited lookup's
  commit waits for the WAL flush; the no-op one commits a read-only transaction).
- **Database**: a fresh PostgreSQL database with {args.insured:,} insured persons and
  {args.professionals:,} professionals (world seed 0{reused}; loaded in
  {run.load_seconds:.0f} s); one account, logged in once (password + TOTP) before the
  measurement.
- **Machine**: wrk, PostgreSQL and the uvicorn workers share the same 2 cores (busy
  {run.busy_before:.0f} % just before the runs, on a 200 % scale; waited {run.waited:.0f} s
  in all for a quiet machine; other processes used at most {others:.0f} % of a core during
  a measured run, {remeasured}). CPU in percent of one core, 200 % being the whole machine.
"""


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    for name, default in DEFAULTS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    parser.add_argument(
        "--no-write", action="store_true", help="print the section, leave docs/benchmarks.md"
    )
    return check_wrk_args(parser, parser.parse_args(argv))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    require_wrk("bench_audit_cost")
    try:
        run = measure(args)
    except BenchError as exc:
        sys.exit(f"bench_audit_cost: {exc}")
    except psycopg.OperationalError as exc:
        sys.exit(f"bench_audit_cost: PostgreSQL on 127.0.0.1:5432 is not usable: {exc}")
    finally:
        drop_database()
    publish("audit-cost", render(args, run), dry_run=args.no_write)


if __name__ == "__main__":
    main()
