"""Benchmark: the lookup path's CPU, the production path beside its variants, one run.

Every round measures, with the same wrk command and the same request bytes, on the same
uvicorn settings (2 workers, PostgreSQL), the endpoints alternating:

- ``lookup``: ``POST /api/v1/rights/lookup`` as in production: the audit entry written
  (``REMPART_AUDIT_WRITER=sql``) and the guard on in its learning window
  (``REMPART_GUARD_LEARN_UNTIL`` far ahead: every lookup is decided, recorded with its
  decision and learnt from; only the enforcement of a refusal is skipped, which one
  account at wrk speed would otherwise trigger), its state in process;
- ``lookup-redis``: the same, the guard's state in Redis (the production deployment's);
- ``lookup-plain``: the same lookups with a no-op audit writer and the guard off;
- ``lookup-before``: ``lookup`` served by the code of another commit (``--before REV``,
  a git worktree under ``bench/out/``), on the same database: before and after side by side;
- ``bare`` and ``bare-sync``: a bare FastAPI endpoint returning a constant
  (``bench/bare_app.py``), ``async def`` and plain ``def``.

Issue 16's targets, checked in the report: the uvicorn workers' CPU per lookup at most
1.0 ms; ``lookup`` at least 0.8 of ``lookup-plain``'s and 0.15 of ``bare``'s
requests/s; ``lookup``'s p99 under 50 ms at 32 connections.

    .venv/bin/python -m bench.bench_lookup [--insured N] [--duration S] [--before REV|none]

Needs ``wrk`` (``apt-get install -y wrk``, or ``make bench-deps``), the PostgreSQL
server on 127.0.0.1:5432 (user postgres, trust authentication) and Redis on
127.0.0.1:6379 (``--redis-url``; only the keys under this benchmark's prefixes are
removed). The benchmark database is created fresh and dropped at the end; the world is
kept in ``bench/out/`` for reuse.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pyotp
import redis
import structlog
from psycopg import sql

from bench.code_at import CodeAt, CodeError, checkout, imported_from, same_schema, with_src
from bench.report import publish
from rempart.logs import configure_logging
from rempart.world.io import read_table

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
BIN = Path(sys.executable).parent
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
# One database per run: another checkout's run (or a profiling session built on this
# script) drops its own, not this one.
DB_NAME = f"rempart_bench_lookup_{os.getpid()}"
DB_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
LOOKUP_PATH = "/api/v1/rights/lookup"
BARE_PATH = "/bare"
# Issue 16's targets.
GOAL_WORKER_MS = 1.0  # uvicorn workers' CPU per answered lookup, audit and guard on
GOAL_PLAIN_RATIO = 0.8  # lookup / lookup-plain requests/s
GOAL_BARE_RATIO = 0.15  # lookup / bare requests/s
GOAL_P99_MS = 50.0  # lookup's p99
QUIET = 30.0  # percent of one core: below this the machine counts as idle
DISTURBED = 15.0  # percent of one core used by other processes during a run: measure again
RETRIES = 2
WORKERS = 2
LOGIN = "bench.lookup"
# Far ahead: the guard decides, records and learns every lookup, and refuses none.
LEARN_UNTIL = "2099-01-01T00:00:00Z"
# A database of its own and prefixes of their own: only these keys are ever removed.
GUARD_PREFIX = "bench-lookup:guard:"
THROTTLE_PREFIX = "bench-lookup:throttle:"
BEFORE = "7b68168"  # the commit before issue 16's work on the lookup path

DEFAULTS: dict[str, int | str] = {
    "insured": 200_000,
    "professionals": 2_000,
    "duration": 20,
    "connections": 32,
    "threads": 2,
    "warmup": 5,
    "rounds": 3,
    "pairs": 4_096,
    "log_level": "warning",
    "before": BEFORE,
    "redis_url": "redis://127.0.0.1:6379/13",
}

# The endpoints measured in every round: name -> what the report calls it
# (``lookup-before`` only with ``--before REV``).
ENDPOINTS = {
    "lookup": "`lookup`: audit written, guard on (learning window), its state in process",
    "lookup-redis": "`lookup-redis`: the same, the guard's state in Redis",
    "lookup-plain": "`lookup-plain`: no-op audit writer, guard off",
    "lookup-before": "`lookup-before`: `lookup` served by the code before",
    "bare": f"`bare`: `POST {BARE_PATH}`, bare FastAPI, `async def` (the reference)",
    "bare-sync": f"`bare-sync`: `POST {BARE_PATH}`, bare FastAPI, plain `def`",
}
GUARDED = ("lookup", "lookup-redis", "lookup-before")
# Where a lookup failed closed is counted and reported rather than voiding the run: with
# the state in Redis, the two workers' decisions for the one account conflict (a record
# saved by the other worker meanwhile is decided again; the guard tries 24 times with a
# random pause, then refuses the lookup, 503 guard_unavailable, recorded in the trail).
# At wrk's 32 connections on one account, a worker can lose every race while the other
# runs its queue: a few lookups in ten thousand (2-4 in a hundred with five tries).
# Anywhere else, any answer that is not 2xx voids the run.
TOLERATED = ("lookup-redis",)


def endpoints(args: argparse.Namespace) -> list[str]:
    """The endpoints of this run, in their order within a round."""
    return [n for n in ENDPOINTS if n != "lookup-before" or args.before != "none"]


class BenchError(Exception):
    """The benchmark cannot give a valid figure; the message says why."""


# --------------------------------------------------------------------------- CPU accounting


@dataclass(frozen=True)
class CpuSnapshot:
    """Clock ticks used so far (user + system, reaped children included)."""

    workers: dict[int, int]  # the server's child processes (uvicorn workers)
    server: int  # the server's whole process tree
    postgres: int  # every PostgreSQL process (the postmaster has reaped exited backends)
    machine: int  # all cores, anything but idle
    redis: int = 0  # the Redis server (the guard's state, for lookup-redis)
    # The backends connected to one database (pid -> ticks): PostgreSQL's work for this
    # benchmark alone, whatever other databases on the server are doing.
    backends: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CpuShare:
    """CPU used during one wrk run, in percent of one core (200 % is the whole 2-core machine)."""

    wrk: float
    server: float
    workers: tuple[float, ...]
    postgres: float
    machine: float
    ms_per_request: float  # whole-machine CPU time per request
    redis: float = 0.0
    seconds: float = 0.0  # the run's wall time
    requests: int = 0  # the 2xx answers wrk counted
    backends: float | None = None  # the benchmark database's backends, if asked for

    @property
    def other(self) -> float:
        """CPU used by anything else than wrk, the server, PostgreSQL and Redis: a
        disturbance."""
        return max(0.0, self.machine - self.wrk - self.server - self.postgres - self.redis)

    def ms(self, percent: float) -> float:
        """A share of one core during the run, as CPU milliseconds per answered request."""
        return 10 * percent * self.seconds / self.requests if self.requests else 0.0

    @property
    def workers_ms(self) -> float:
        """The uvicorn workers' CPU per answered request (the supervisor left out)."""
        return self.ms(sum(self.workers))

    @property
    def postgres_ms(self) -> float:
        """PostgreSQL's CPU per answered request: the benchmark database's backends when
        they were followed (the shared background processes left out), else every
        PostgreSQL process."""
        return self.ms(self.postgres if self.backends is None else self.backends)

    @property
    def redis_ms(self) -> float:
        return self.ms(self.redis)

    def text(self) -> str:
        split = " + ".join(f"{w:.0f}" for w in self.workers if w >= 1)
        redis_part = f"Redis {self.redis:.0f} %, " if self.redis >= 1 else ""
        return (
            f"wrk {self.wrk:.0f} %, uvicorn {self.server:.0f} % ({split}), "
            f"PostgreSQL {self.postgres:.0f} %, {redis_part}other {self.other:.0f} %; "
            f"machine {self.machine:.0f} %, {self.ms_per_request:.2f} ms CPU/request "
            f"(workers {self.workers_ms:.2f} ms, PostgreSQL {self.postgres_ms:.2f} ms)"
        )


def _proc_table() -> dict[int, tuple[int, str, int]]:
    """pid -> (ppid, command name, utime + stime + cutime + cstime), from /proc."""
    table: dict[int, tuple[int, str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        rest = raw[raw.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(rest[1]), comm, sum(int(v) for v in rest[11:15]))
    return table


def _backends(table: dict[int, tuple[int, str, int]], database: str) -> dict[int, int]:
    """The PostgreSQL backends connected to ``database`` (their process title names it:
    ``postgres: 15/main: user database host(port) state``): pid -> ticks."""
    found = {}
    for pid, (_, comm, ticks) in table.items():
        if comm.startswith("postgres"):
            with contextlib.suppress(OSError):
                title = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ")
                if f" {database} ".encode() in title:
                    found[pid] = ticks
    return found


def cpu_snapshot(server_pid: int, database: str | None = None) -> CpuSnapshot:
    table = _proc_table()
    tree, frontier = {server_pid}, [server_pid]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _, _) in table.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return CpuSnapshot(
        workers={pid: t for pid, (ppid, _, t) in table.items() if ppid == server_pid},
        server=sum(table[pid][2] for pid in tree if pid in table),
        postgres=sum(t for _, comm, t in table.values() if comm.startswith("postgres")),
        machine=_machine_busy(),
        redis=sum(t for _, comm, t in table.values() if comm.startswith("redis-server")),
        backends=_backends(table, database) if database else {},
    )


def _machine_busy() -> int:
    """Clock ticks all cores spent on anything but idling, from /proc/stat."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    jiffies = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(jiffies) - jiffies[3] - jiffies[4]


def process_tree(root: int) -> set[int]:
    """``root`` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                raw = (entry / "stat").read_text()
                parents[int(entry.name)] = int(raw[raw.rindex(")") + 2 :].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return tree


def _own_tree() -> set[int]:
    """This process and all its descendants (our servers, our wrk)."""
    return process_tree(os.getpid())


def other_load_generators() -> list[str]:
    """wrk processes that are not ours: another benchmark is measuring."""
    own = _own_tree()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in own:
            continue
        with contextlib.suppress(OSError):
            words = [
                w.decode(errors="replace")
                for w in (entry / "cmdline").read_bytes().split(b"\0")
                if w
            ]
            if words and Path(words[0]).name == "wrk":
                found.append(" ".join(words)[:80])
    return found


def wait_until_quiet(max_wait: int) -> float:
    """Waits (up to ``max_wait`` s) until no other wrk runs and the machine is nearly idle.

    Only activity counts, not the mere presence of another benchmark: two benchmarks
    that each waited for the other to exit would wait for ever.
    """
    if not Path("/proc/stat").exists():
        return 0.0
    began = time.monotonic()
    while True:
        others = other_load_generators()
        busy = busy_before(3.0)
        if not others and busy < QUIET:
            return time.monotonic() - began
        if time.monotonic() - began > max_wait:
            print(f"warning: still not quiet after {max_wait} s; measuring anyway")
            return time.monotonic() - began
        print(f"waiting for a quiet machine (busy {busy:.0f} % of a core; other wrk: {others})")
        time.sleep(15)


def busy_before(seconds: float = 2.0) -> float:
    """How busy the machine is right now (percent of one core), before the run starts."""
    if not Path("/proc/stat").exists():
        return 100 * os.getloadavg()[0]
    began = _machine_busy()
    time.sleep(seconds)
    return 100 * (_machine_busy() - began) / os.sysconf("SC_CLK_TCK") / seconds


# --------------------------------------------------------------------------- wrk


@dataclass(frozen=True)
class WrkResult:
    label: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    cpu: CpuShare | None = None
    output: str = field(default="", repr=False)
    non_2xx: int = 0  # only where tolerated (see parse_wrk)

    @property
    def answered(self) -> int:
        """The answers that were 2xx."""
        return self.requests - self.non_2xx

    @property
    def answered_per_second(self) -> float:
        return self.requests_per_second * self.answered / self.requests


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(output: str, label: str, *, tolerate_non_2xx: bool = False) -> WrkResult:
    """Requests/s and the p50/p99 of ``--latency``; refuses a run with any error, or,
    with ``tolerate_non_2xx``, counts the answers that were not 2xx (the report says
    how many)."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    percentiles = {
        int(p): float(value) * _UNITS_MS[unit]
        for p, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
    }
    if not rps or not total or set(percentiles) != {50, 99}:
        raise BenchError(f"{label}: cannot read wrk's output:\n{output}")
    problems = []
    non_2xx_match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    non_2xx = int(non_2xx_match.group(1)) if non_2xx_match else 0
    if non_2xx and not tolerate_non_2xx:
        problems.append(f"{non_2xx} responses were not 2xx")
    if non_2xx >= int(total.group(1)):
        problems.append("no 2xx answer")
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if errors and any(int(n) for n in errors.groups()):
        problems.append(f"socket errors ({errors.group(0)})")
    if int(total.group(1)) == 0:
        problems.append("no request completed")
    if problems:
        raise BenchError(f"{label}: invalid run: {'; '.join(problems)}\n{output}")
    return WrkResult(
        label=label,
        requests_per_second=float(rps.group(1)),
        p50_ms=percentiles[50],
        p99_ms=percentiles[99],
        requests=int(total.group(1)),
        output=output,
        non_2xx=non_2xx,
    )


def json_body(nir: str, birth_date: str) -> str:
    return f'{{"nir":"{nir}","birth_date":"{birth_date}"}}'


def lua_script(pairs: list[tuple[str, str]], token: str) -> str:
    """wrk script: POSTs JSON bodies cycling through ``pairs``, one offset per thread.

    The requests are formatted once in ``init``, so that wrk spends no time per request
    building them; the path comes from the URL given to wrk, so the same script serves
    every endpoint and all of them receive exactly the same bytes.
    """
    bodies = ",\n".join(f"  '{json_body(n, d)}'" for n, d in pairs)
    return f"""-- Generated by bench/bench_lookup.py: {len(pairs)} real (nir, birth_date) pairs.
local bodies = {{
{bodies}
}}
local headers = {{
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer {token}",
}}
local requests = {{}}
local i = 0
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  for k, body in ipairs(bodies) do
    requests[k] = wrk.format("POST", nil, headers, body)
  end
  i = ((id or 1) * 1009) % #requests
end

function request()
  i = i % #requests + 1
  return requests[i]
end
"""


def run_wrk(
    args: argparse.Namespace,
    url: str,
    *,
    script: Path,
    seconds: int,
    label: str,
    server_pid: int,
    tolerate_non_2xx: bool = False,
    database: str | None = None,
) -> WrkResult:
    """One wrk run with the CPU used meanwhile (with ``database``, that of its backends
    apart); per-request CPU is per 2xx answer."""
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    has_proc = Path("/proc/stat").exists()
    before = cpu_snapshot(server_pid, database) if has_proc else None
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = cpu_snapshot(server_pid, database) if has_proc else None
    if done.returncode != 0:
        raise BenchError(f"{label}: wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    result = parse_wrk(done.stdout, label, tolerate_non_2xx=tolerate_non_2xx)
    if before is None or after is None:
        return result
    tick = os.sysconf("SC_CLK_TCK")

    def percent(ticks: float) -> float:
        return 100 * ticks / tick / wall

    wrk_seconds = (wrk_after.ru_utime + wrk_after.ru_stime) - (
        wrk_before.ru_utime + wrk_before.ru_stime
    )
    machine = after.machine - before.machine
    cpu = CpuShare(
        wrk=100 * wrk_seconds / wall,
        server=percent(after.server - before.server),
        workers=tuple(
            percent(ticks - before.workers.get(pid, 0))
            for pid, ticks in sorted(after.workers.items())
        ),
        postgres=percent(after.postgres - before.postgres),
        machine=percent(machine),
        ms_per_request=1000 * machine / tick / result.answered,
        redis=percent(after.redis - before.redis),
        seconds=wall,
        requests=result.answered,
        # Per backend: one that exited meanwhile took its ticks with it (a pooled
        # connection rarely does).
        backends=percent(sum(t - before.backends.get(pid, 0) for pid, t in after.backends.items()))
        if database
        else None,
    )
    return dataclasses.replace(result, cpu=cpu)


def access_log_line_us(lines: int = 20_000) -> float:
    """CPU time (µs) of one access-log line as the service writes it: structlog JSON to a file."""
    saved = sys.stderr
    with tempfile.TemporaryFile("w") as sink:
        sys.stderr = sink
        try:
            configure_logging("info", json=True)
            log = structlog.get_logger("rempart.access")
            began = time.process_time()
            for _ in range(lines):
                log.info(
                    "request",
                    method="POST",
                    route=LOOKUP_PATH,
                    status=200,
                    duration_ms=12.34,
                    client="127.0.0.1",
                )
            seconds = time.process_time() - began
        finally:
            sys.stderr = saved
            structlog.reset_defaults()
    return 1e6 * seconds / lines


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    url: str  # the endpoint wrk hits
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running(
    name: str, command: list[str], env: dict[str, str], port: int, *, start_seconds: int = 60
) -> Iterator[Server]:
    """Starts a server in its own session, waits (up to ``start_seconds``) for /healthz;
    stops it with SIGINT."""
    log_path = OUT / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_seconds
        while True:
            if process.poll() is not None:
                raise BenchError(f"{name} exited ({process.returncode}); see {log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{name} did not answer /healthz within {start_seconds} s; see {log_path}"
                )
            time.sleep(0.2)
        yield Server(name, base_url, process)
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT (uvicorn's graceful shutdown, workers included), then wait."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def server_command(endpoint: str, env: dict[str, str], log_level: str) -> tuple[list[str], int]:
    """The command that serves ``endpoint``, on a free port, with ``log_level``: ``rempart
    serve`` for ``lookup`` and its variants (``lookup-…``), else the bare app."""
    port = _free_port()
    if endpoint.startswith("lookup"):
        env["REMPART_LOG_LEVEL"] = log_level
        return [
            str(BIN / "rempart"),
            "serve",
            "--workers",
            str(WORKERS),
            "--port",
            str(port),
        ], port
    # What `rempart serve` gives uvicorn: host, workers, log level, no access log, no
    # server header; uvloop and httptools are picked the same way (uvicorn[standard]).
    factory = "bench.bare_app:app" if endpoint == "bare" else "bench.bare_app:app_sync"
    return [
        str(BIN / "uvicorn"),
        factory,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
        "--log-level",
        log_level,
        "--no-access-log",
        "--no-server-header",
    ], port


def endpoint_env(
    endpoint: str, env: dict[str, str], args: argparse.Namespace, before: CodeAt | None
) -> dict[str, str]:
    """The environment of ``endpoint``'s server: ``env`` (:func:`base_env`) with its
    settings, and for ``lookup-before`` the ``--before`` commit's ``src`` in front."""
    server_env = dict(env)
    if endpoint == "lookup-plain":
        server_env["REMPART_AUDIT_WRITER"] = "noop-benchmark-only"
        server_env["REMPART_GUARD_ENABLED"] = "false"
    elif endpoint in GUARDED:
        server_env["REMPART_AUDIT_WRITER"] = "sql"
        server_env["REMPART_GUARD_ENABLED"] = "true"
        server_env["REMPART_GUARD_LEARN_UNTIL"] = LEARN_UNTIL
    if endpoint == "lookup-redis":
        server_env["REMPART_REDIS_URL"] = args.redis_url
        server_env["REMPART_GUARD_REDIS_PREFIX"] = GUARD_PREFIX
        server_env["REMPART_THROTTLE_REDIS_PREFIX"] = THROTTLE_PREFIX
    if endpoint == "lookup-before":
        if before is None:
            raise BenchError("lookup-before needs the --before commit's checkout")
        return with_src(server_env, before.src)
    return server_env


@contextlib.contextmanager
def serving(endpoint: str, env: dict[str, str], log_level: str) -> Iterator[Server]:
    """``endpoint``'s server, with ``env`` (from :func:`endpoint_env`) and ``log_level``."""
    server_env = dict(env)
    command, port = server_command(endpoint, server_env, log_level)
    lookup = endpoint.startswith("lookup")
    # With the guard on, a server learns the audit trail before it answers (a warm
    # start): the access-log server, started after the rounds, has the whole run's.
    with running(
        f"{endpoint}-server-{log_level}",
        command,
        server_env,
        port,
        start_seconds=300 if lookup else 60,
    ) as server:
        server.url += LOOKUP_PATH if lookup else BARE_PATH
        yield server


# --------------------------------------------------------------------------- set-up


def rempart(env: dict[str, str], *argv: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(BIN / "rempart"), *argv],
        env=env,
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"rempart {' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def world_dir(env: dict[str, str], insured: int, professionals: int) -> tuple[Path, bool]:
    """The world of this size (seed 0), generated once and reused from bench/out."""
    path = OUT / f"world-{insured}-{professionals}-seed0"
    if (path / "world.json").is_file():
        return path, True
    rempart(
        env,
        "world",
        "generate",
        "--out",
        str(path),
        "--insured",
        str(insured),
        "--professionals",
        str(professionals),
        "--seed",
        "0",
    )
    return path, False


def drop_database() -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME))
        )


def recreate_database() -> None:
    drop_database()
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))


def sample_pairs(world: Path, count: int) -> list[tuple[str, str]]:
    """``count`` real (NIR, birth date) pairs spread over the whole table (seeded)."""
    table = read_table(world, "insured", ["nir", "birth_date"])
    rows = np.random.default_rng(0).choice(
        table.num_rows, size=min(count, table.num_rows), replace=False
    )
    picked = table.take(np.sort(rows)).to_pylist()
    return [(str(r["nir"]), r["birth_date"].isoformat()) for r in picked]


def log_in(base_url: str, password: str, otpauth_uri: str, login: str = LOGIN) -> str:
    """The real login over HTTP: password, then a TOTP code. Returns the bearer token."""
    totp = pyotp.TOTP(pyotp.parse_uri(otpauth_uri).secret)
    with httpx.Client(base_url=base_url, timeout=30) as http:
        first = http.post("/api/v1/auth/login", json={"login": login, "password": password})
        if first.status_code != 200:
            raise BenchError(f"login failed: {first.status_code} {first.text}")
        second = http.post(
            "/api/v1/auth/mfa/totp",
            json={"mfa_token": first.json()["mfa_token"], "code": totp.now()},
        )
        if second.status_code != 200:
            raise BenchError(f"TOTP step failed: {second.status_code} {second.text}")
        token: str = second.json()["access_token"]
        return token


def check_once(url: str, token: str, pair: tuple[str, str]) -> None:
    """One request by hand before wrk: the answer must be 200 (and the right person)."""
    response = httpx.post(
        url,
        content=json_body(*pair),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=10,
    )
    if response.status_code != 200:
        raise BenchError(f"POST {url}: {response.status_code} {response.text}")
    if url.endswith(LOOKUP_PATH) and response.json().get("nir") != pair[0]:
        raise BenchError(f"POST {url}: the answer is not the person asked for")


def _lookup_rows() -> int:
    with psycopg.connect(DB_URL) as connection:
        row = connection.execute(
            "SELECT count(*) FROM audit_events WHERE event = 'lookup'"
        ).fetchone()
    return int(row[0]) if row else 0


def _last_lookup() -> tuple[str, str, str]:
    """(decision, reasons, outcome) of the latest lookup in the trail."""
    with psycopg.connect(DB_URL) as connection:
        row = connection.execute(
            "SELECT decision, reasons, outcome FROM audit_events WHERE event = 'lookup' "
            "ORDER BY ts_us DESC LIMIT 1"
        ).fetchone()
    if row is None:
        raise BenchError("no lookup in the audit trail")
    return str(row[0]), str(row[1]), str(row[2])


def check_configuration(
    endpoint: str, server: Server, token: str, pair: tuple[str, str], redis_url: str
) -> None:
    """One request by hand and, for a lookup server, the proof in the trail (and in
    Redis) that it runs the configuration it is named for: a server that ignored a
    setting would otherwise be measured under the wrong name."""
    rows = _lookup_rows()
    check_once(server.url, token, pair)
    if not endpoint.startswith("lookup"):
        return
    grown = _lookup_rows() - rows
    if endpoint == "lookup-plain":
        if grown:
            raise BenchError(f"{endpoint}: the no-op audit writer wrote {grown} row(s)")
        return
    if grown != 1:
        raise BenchError(f"{endpoint}: one lookup grew the audit trail by {grown} rows")
    decision, reasons, outcome = _last_lookup()
    if not decision or reasons.split(",")[0] != "learning" or outcome != "ok":
        raise BenchError(
            f"{endpoint}: the lookup was not decided in the guard's learning window "
            f"(decision {decision!r}, reasons {reasons!r}, outcome {outcome!r})"
        )
    if endpoint == "lookup-redis" and not any(
        _redis(redis_url).scan_iter(match=f"{GUARD_PREFIX}*", count=1000)
    ):
        raise BenchError(f"{endpoint}: the guard wrote nothing under {GUARD_PREFIX} in Redis")


def guard_failures(endpoint: str, log_level: str) -> dict[str, int]:
    """What the server's log says made its guard fail (error type -> count)."""
    counts: dict[str, int] = {}
    log_path = OUT / f"{endpoint}-server-{log_level}.log"
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("event") == "guard_failed":
                kind = str(entry.get("error_type", "?"))
                counts[kind] = counts.get(kind, 0) + 1
    return counts


def trail_summary() -> dict[tuple[str, bool, str], int]:
    """Lookups in the trail by (guard decision, decided in the learning window, outcome)."""
    with psycopg.connect(DB_URL) as connection:
        rows = connection.execute(
            "SELECT decision, split_part(reasons, ',', 1) = 'learning', outcome, count(*) "
            "FROM audit_events WHERE event = 'lookup' GROUP BY 1, 2, 3"
        ).fetchall()
    return {(str(d), bool(learning), str(o)): int(n) for d, learning, o, n in rows}


def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def clear_redis(url: str) -> int:
    """Removes this benchmark's keys (its two prefixes) from ``url``; nothing else."""
    client = _redis(url)
    removed = 0
    for prefix in (GUARD_PREFIX, THROTTLE_PREFIX):
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) == 1000:
                removed += int(client.delete(*batch))
                batch = []
        if batch:
            removed += int(client.delete(*batch))
    return removed


# --------------------------------------------------------------------------- the run


@dataclass
class Run:
    results: dict[str, list[WrkResult]]
    info: WrkResult | None
    load_seconds: float
    world_reused: bool
    pairs: int
    body_bytes: int
    busy_before: float  # percent of one core, just before the run
    remeasured: int  # runs measured again because other processes disturbed them
    code: str
    src_tree: str | None
    before: CodeAt | None = None
    trail: dict[tuple[str, bool, str], int] = field(default_factory=dict)
    # Per tolerated endpoint: why its guard failed, from its server's log (error type ->
    # count).
    guard_failures: dict[str, dict[str, int]] = field(default_factory=dict)


def _git(*argv: str) -> str:
    return subprocess.run(
        ["git", *argv], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def code_version() -> str:
    """The commit measured, and whether ``src/`` had uncommitted changes then."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--", "src"))
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"commit `{commit}`" + (" with uncommitted changes in `src/`" if dirty else "")


def src_tree() -> str | None:
    """The hash of the committed ``src/`` tree: it identifies the code measured across
    commits that leave ``src/`` alone. None with uncommitted changes in ``src/`` (such a
    run is compared with no other) or without git."""
    try:
        if _git("status", "--porcelain", "--", "src"):
            return None
        return _git("rev-parse", "HEAD:src")
    except (OSError, subprocess.CalledProcessError):
        return None


HISTORY = OUT / "lookup-history.jsonl"
# Names what `lookup` measures in the history: runs of another setup are not compared.
SETUP = "audit+guard-learning"


def _paired(run: Run, name: str, other: str) -> list[float]:
    """Per-round ratios of ``name``'s requests/s to ``other``'s."""
    return [
        a.answered_per_second / b.answered_per_second
        for a, b in zip(run.results[name], run.results[other], strict=True)
    ]


def remember(args: argparse.Namespace, run: Run) -> list[dict[str, float | str]]:
    """Appends this run to bench/out/lookup-history.jsonl; returns the runs of the same
    code with the same settings on this machine, this one included."""
    med = statistics.median
    settings = f"{args.duration}s c{args.connections} t{args.threads} {args.log_level} {SETUP}"
    lookups = run.results["lookup"]
    entry: dict[str, float | str] = {
        "time": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "src": run.src_tree or "",
        "settings": settings,
        "lookup": med([r.answered_per_second for r in lookups]),
        "bare": med([r.answered_per_second for r in run.results["bare"]]),
        "ratio": med(_paired(run, "lookup", "bare")),
        "plain_ratio": med(_paired(run, "lookup", "lookup-plain")),
    }
    shares = [r.cpu for r in lookups if r.cpu is not None]
    if shares:
        entry["workers_ms"] = med([c.workers_ms for c in shares])
    if run.src_tree is None:
        return [entry]
    with HISTORY.open("a", encoding="utf-8") as history:
        history.write(json.dumps(entry) + "\n")
    same = []
    for line in HISTORY.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):
            past = json.loads(line)
            if past.get("src") == run.src_tree and past.get("settings") == settings:
                same.append(past)
    return same


def base_env(data_dir: Path) -> dict[str, str]:
    """What every command and server shares; each server adds its own settings
    (:func:`endpoint_env`). The code is this checkout's (its ``src`` first on
    ``PYTHONPATH``), whatever the environment's editable install points to."""
    # No REMPART_* from the caller's shell: the run depends only on what is set here.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
    env.update({"REMPART_DATABASE_URL": DB_URL, "REMPART_DATA_DIR": str(data_dir)})
    return with_src(env, ROOT / "src")


def prepare_before(args: argparse.Namespace) -> CodeAt | None:
    """The ``--before`` commit's checkout, with the proof that a server would run it and
    that it expects the schema this checkout creates; None with ``--before none``."""
    if args.before == "none":
        return None
    try:
        before = checkout(args.before)
        if not same_schema(ROOT / "src", before.src):
            raise BenchError(
                f"the migrations of {before.short} differ from this checkout's: both codes "
                "cannot serve the same database"
            )
        found = imported_from(with_src(dict(os.environ), before.src))
        if found != (before.src / "rempart").resolve():
            raise BenchError(f"with {before.src} first on PYTHONPATH, rempart came from {found}")
    except CodeError as exc:
        raise BenchError(str(exc)) from None
    print(f"lookup-before: the code of {before.short}, imported from {found}")
    return before


def prepare_redis(args: argparse.Namespace) -> None:
    try:
        removed = clear_redis(args.redis_url)
    except redis.RedisError as exc:
        raise BenchError(
            f"Redis at {args.redis_url} is not usable ({type(exc).__name__}: {exc}); "
            "lookup-redis needs it (--redis-url)"
        ) from None
    if removed:
        print(f"removed {removed:,} keys of an earlier run under {GUARD_PREFIX}/{THROTTLE_PREFIX}")


def measure(args: argparse.Namespace) -> Run:
    OUT.mkdir(parents=True, exist_ok=True)
    wait_until_quiet(args.max_wait)  # setting up (loading the world) is heavy work too
    code, tree = code_version(), src_tree()
    env = base_env(OUT / "lookup-data")
    found = imported_from(env)
    if found != (ROOT / "src" / "rempart").resolve():
        raise BenchError(f"with {ROOT / 'src'} first on PYTHONPATH, rempart came from {found}")
    before = prepare_before(args)
    prepare_redis(args)
    world, reused = world_dir(env, args.insured, args.professionals)
    print(f"world {'reused' if reused else 'generated'}: {world.relative_to(ROOT)}")
    recreate_database()
    try:
        rempart(env, "db", "upgrade")
        began = time.perf_counter()
        rempart(env, "db", "load-world", str(world))
        load_seconds = time.perf_counter() - began
        print(f"loaded into database {DB_NAME} in {load_seconds:.1f} s")
        password = f"banc d'essai {secrets.token_urlsafe(18)}"
        otpauth = rempart(
            env, "accounts", "create", "--login", LOGIN, "--password-stdin", stdin=password + "\n"
        ).strip()
        pairs = sample_pairs(world, args.pairs)
        servers = {name: endpoint_env(name, env, args, before) for name in endpoints(args)}
        results, info, remeasured, busy = _measure_servers(args, servers, password, otpauth, pairs)
        trail = trail_summary()
        failures = {n: guard_failures(n, args.log_level) for n in TOLERATED if n in servers}
    finally:
        drop_database()
        with contextlib.suppress(redis.RedisError):
            clear_redis(args.redis_url)
    return Run(
        results=results,
        info=info,
        load_seconds=load_seconds,
        world_reused=reused,
        pairs=len(pairs),
        body_bytes=len(json_body(*pairs[0])),
        busy_before=busy,
        remeasured=remeasured,
        code=code,
        src_tree=tree,
        before=before,
        trail=trail,
        guard_failures=failures,
    )


def _show(label: str, result: WrkResult) -> None:
    failed = f", {result.non_2xx:,} not 2xx" if result.non_2xx else ""
    print(
        f"{label:28} {result.answered_per_second:8,.0f} answered/s{failed}  "
        f"p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms  "
        f"({result.cpu.text() if result.cpu else 'no /proc'})"
    )


def measure_clean(
    args: argparse.Namespace,
    server: Server,
    *,
    seconds: int,
    label: str,
    remeasured: list[int],
    tolerate_non_2xx: bool = False,
) -> WrkResult:
    """A wrk run, measured again (up to RETRIES times) if other processes disturbed it."""
    for attempt in range(RETRIES + 1):
        result = run_wrk(
            args,
            server.url,
            script=OUT / "lookup.lua",
            seconds=seconds,
            label=label,
            server_pid=server.process.pid,
            tolerate_non_2xx=tolerate_non_2xx,
            database=DB_NAME,
        )
        if result.cpu is None or result.cpu.other < DISTURBED or attempt == RETRIES:
            return result
        remeasured[0] += 1
        print(
            f"{label}: other processes used {result.cpu.other:.0f} % of a core "
            f"({result.answered_per_second:,.0f} req/s): measuring again"
        )
        time.sleep(5)
    raise AssertionError("unreachable")


def _measure_servers(
    args: argparse.Namespace,
    envs: dict[str, dict[str, str]],
    password: str,
    otpauth: str,
    pairs: list[tuple[str, str]],
) -> tuple[dict[str, list[WrkResult]], WrkResult | None, int, float]:
    """Every endpoint in every round, then the access-log run; returns results, the info
    run, how many runs were measured again, and how busy the machine was just before."""
    script = OUT / "lookup.lua"
    results: dict[str, list[WrkResult]] = {name: [] for name in envs}
    remeasured = [0]
    with contextlib.ExitStack() as stack:
        # All servers stay up for the whole run (an idle server costs nothing); only the
        # one being measured receives requests.
        servers = {
            name: stack.enter_context(serving(name, env, args.log_level))
            for name, env in envs.items()
        }
        # One account, one token for every lookup server (they share the database and
        # the development keys).
        token = log_in(servers["lookup"].url.removesuffix(LOOKUP_PATH), password, otpauth)
        script.write_text(lua_script(pairs, token), encoding="utf-8")
        for name, server in servers.items():
            check_configuration(name, server, token, pairs[0], args.redis_url)
        wait_until_quiet(args.max_wait)
        busy = busy_before()
        for name, server in servers.items():
            if args.warmup:
                measure_clean(
                    args,
                    server,
                    seconds=args.warmup,
                    label=f"{name} warm-up",
                    remeasured=[0],
                    tolerate_non_2xx=name in TOLERATED,
                )
        for round_no in range(1, args.rounds + 1):
            # Alternate the order, so that a drift during the run affects all alike.
            order = list(servers) if round_no % 2 else list(reversed(servers))
            for name in order:
                result = measure_clean(
                    args,
                    servers[name],
                    seconds=args.duration,
                    label=f"{name} #{round_no}",
                    remeasured=remeasured,
                    tolerate_non_2xx=name in TOLERATED,
                )
                results[name].append(result)
                _show(f"round {round_no} {name}", result)
        # Still answering (and still in the learning window) after the whole run; the
        # pause lets the last run's requests in flight land in the trail first.
        time.sleep(1.0)
        for name, server in servers.items():
            check_configuration(name, server, token, pairs[-1], args.redis_url)
    info = None
    if not args.no_info_run and args.log_level != "info":
        with serving("lookup", envs["lookup"], "info") as server:
            check_configuration("lookup", server, token, pairs[0], args.redis_url)
            if args.warmup:
                measure_clean(
                    args, server, seconds=args.warmup, label="info warm-up", remeasured=[0]
                )
            info = measure_clean(
                args, server, seconds=args.duration, label="lookup (info)", remeasured=remeasured
            )
            _show("lookup, access log on", info)
    return results, info, remeasured[0], busy


# --------------------------------------------------------------------------- report

# What docs/benchmarks.md said before this benchmark measured issue 16's targets, quoted
# so that the history stays in the section (each figure with its commit and command).
EARLIER = (
    "`bench:lookup` at commit `b5e5f30` (2026-11-29; `.venv/bin/python -m "
    "bench.bench_lookup`, 3 rounds of 20 s, `wrk -t2 -c32`; audit written, no guard in "
    "that code yet): lookup **537** requests/s (478-538), p50 58.6 ms, p99 143.8 ms; bare "
    "`async def` 14,803, bare `def` 6,467; **lookup / bare 0.035** (0.035-0.040 over 3 "
    "runs); CPU: uvicorn workers 129 %, PostgreSQL 33 %, machine 167 % of a core, "
    "**3.13 ms of machine CPU per request** (so about 2.4 ms of the workers' and 0.6 ms "
    "of PostgreSQL's per request: 129 % and 33 % of a core at 537 requests/s).",
    "`bench:audit-cost` at commit `39ed51a` (2026-11-29; `.venv/bin/python -m "
    "bench.bench_audit_cost`, 3 rounds of 20 s, `wrk -t2 -c32`; no guard in that code "
    "yet): audit on **560** lookups/s (410-569), p99 144.3 ms, 3.05 ms of machine CPU per "
    "lookup (uvicorn 130 %, PostgreSQL 33 %); no-op audit writer 990 (729-1,101), p99 "
    "119.3 ms, 1.88 ms; **audit on / no-op 0.57** (per round 0.52-0.57).",
)


def _spread(values: list[float]) -> str:
    """Relative range, (max - min) / median."""
    if len(values) < 2:
        return "n/a (one round)"
    spread = 100 * (max(values) - min(values)) / statistics.median(values)
    return f"{spread:.1f} %" if spread < 10 else f"{spread:.0f} %"


def _command(args: argparse.Namespace) -> str:
    parts = [".venv/bin/python -m bench.bench_lookup"]
    for name, default in DEFAULTS.items():
        value = getattr(args, name)
        if value != default:
            parts.append(f"--{name.replace('_', '-')} {value}")
    if args.no_info_run:
        parts.append("--no-info-run")
    return " ".join(parts)


def _shares(results: list[WrkResult]) -> list[CpuShare]:
    return [r.cpu for r in results if r.cpu is not None]


def _per_request(results: list[WrkResult], of: Callable[[CpuShare], float]) -> float | None:
    """The median over the rounds of a CPU time per request (ms); None without /proc."""
    shares = _shares(results)
    return statistics.median([of(s) for s in shares]) if shares else None


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def _cpu_line(name: str, results: list[WrkResult]) -> str:
    shares = _shares(results)
    if not shares:
        return f"  - `{name}`: not measured (no /proc)"
    med = statistics.median
    redis_part = f"Redis {med([s.redis for s in shares]):.0f} %, " if name == "lookup-redis" else ""
    own = [s.backends for s in shares if s.backends is not None]
    own_part = f" (the benchmark database's backends {med(own):.0f} %)" if own else ""
    return (
        f"  - `{name}`: uvicorn workers {med([sum(s.workers) for s in shares]):.0f} %, "
        f"PostgreSQL {med([s.postgres for s in shares]):.0f} %{own_part}, {redis_part}"
        f"wrk {med([s.wrk for s in shares]):.0f} %; whole machine "
        f"{med([s.machine for s in shares]):.0f} %"
    )


def _between_runs(history: list[dict[str, float | str]]) -> str:
    if len(history) < 2:
        return (
            "this is the first run of this code with these settings here (kept in "
            "`bench/out/lookup-history.jsonl`): run it again to see the noise between "
            "invocations"
        )

    def span(key: str, fmt: str) -> str:
        values = [float(h[key]) for h in history if key in h]
        return f"{min(values):{fmt}}-{max(values):{fmt}}" if values else "n/a"

    return (
        f"between the {len(history)} runs of this code with these settings on this machine "
        f"(`bench/out/lookup-history.jsonl`), the medians ranged {span('lookup', ',.0f')} "
        f"requests/s for `lookup` and {span('bare', ',.0f')} for `bare`, `lookup` / `bare` "
        f"{span('ratio', '.3f')}, `lookup` / `lookup-plain` {span('plain_ratio', '.2f')}, "
        f"the workers' CPU per lookup {span('workers_ms', '.2f')} ms"
    )


@dataclass(frozen=True)
class Target:
    label: str
    goal: str
    value: Callable[[str], float | None]  # endpoint -> its figure
    text: Callable[[float], str]
    met: Callable[[float], bool] | None  # None: reported beside the targets, no goal


def _targets(args: argparse.Namespace, run: Run) -> str:
    """Issue 16's targets for `lookup`, `lookup-redis` and `lookup-before`, side by side."""
    med = statistics.median
    names = [n for n in GUARDED if n in run.results]
    at = f"p99 at {args.connections} connections" + (
        "" if args.connections == 32 else " (the target is stated at 32)"
    )
    targets = [
        Target(
            "uvicorn workers' CPU per lookup",
            f"≤ {GOAL_WORKER_MS:.1f} ms",
            lambda n: _per_request(run.results[n], lambda s: s.workers_ms),
            lambda v: f"{v:.2f} ms",
            lambda v: v <= GOAL_WORKER_MS,
        ),
        Target(
            "PostgreSQL backends' CPU per lookup",
            "(reported)",
            lambda n: _per_request(run.results[n], lambda s: s.postgres_ms),
            lambda v: f"{v:.2f} ms",
            None,
        ),
        Target(
            "requests/s / `lookup-plain`'s",
            f"≥ {GOAL_PLAIN_RATIO}",
            lambda n: med(_paired(run, n, "lookup-plain")),
            lambda v: f"{v:.2f}",
            lambda v: v >= GOAL_PLAIN_RATIO,
        ),
        Target(
            "requests/s / `bare`'s",
            f"≥ {GOAL_BARE_RATIO}",
            lambda n: med(_paired(run, n, "bare")),
            lambda v: f"{v:.3f}",
            lambda v: v >= GOAL_BARE_RATIO,
        ),
        Target(
            at,
            f"< {GOAL_P99_MS:.0f} ms",
            lambda n: med([r.p99_ms for r in run.results[n]]),
            lambda v: f"{v:.1f} ms",
            lambda v: v < GOAL_P99_MS,
        ),
    ]

    def cell(target: Target, name: str) -> str:
        value = target.value(name)
        if value is None:
            return "n/a (no /proc)"
        if target.met is None:
            return target.text(value)
        verdict = "met" if target.met(value) else "NOT met"
        # The verdicts that count are the current code's; the code before's are for reading.
        return f"{target.text(value)}: " + (
            verdict if name == "lookup-before" else f"**{verdict}**"
        )

    header = [
        f"`{n}` (code of `{run.before.short}`)" if n == "lookup-before" and run.before else f"`{n}`"
        for n in names
    ]
    return "\n".join(
        [
            "| target | goal | " + " | ".join(header) + " |",
            "| --- | --- | " + " | ".join("---:" for _ in names) + " |",
            *(
                f"| {t.label} | {t.goal} | " + " | ".join(cell(t, n) for n in names) + " |"
                for t in targets
            ),
        ]
    )


def _endpoint_table(run: Run) -> str:
    med = statistics.median

    def row(name: str) -> str:
        results = run.results[name]
        rps = [r.answered_per_second for r in results]
        label = ENDPOINTS[name]
        if name == "lookup-before" and run.before is not None:
            label += f" (`{run.before.short}`)"
        return (
            f"| {label} | **{med(rps):,.0f}** ({min(rps):,.0f}-{max(rps):,.0f}) "
            f"| {med([r.p50_ms for r in results]):.1f} ms "
            f"| {med([r.p99_ms for r in results]):.1f} ms "
            f"| {_ms(_per_request(results, lambda s: s.workers_ms))} "
            f"| {_ms(_per_request(results, lambda s: s.postgres_ms))} "
            f"| {_ms(_per_request(results, lambda s: s.ms_per_request))} |"
        )

    return "\n".join(
        [
            "| endpoint | 2xx answers/s | p50 | p99 | workers' CPU / request "
            "| PostgreSQL backends' CPU / request | machine CPU / request |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            *(row(name) for name in run.results),
        ]
    )


def _rounds_table(run: Run) -> str:
    names = list(run.results)
    plain, bare = _paired(run, "lookup", "lookup-plain"), _paired(run, "lookup", "bare")
    lines = [
        "| round | " + " | ".join(f"`{n}`" for n in names) + " | lookup / plain | lookup / bare |",
        "| ---: | " + " | ".join("---:" for _ in names) + " | ---: | ---: |",
    ]
    for i in range(len(plain)):
        cells = " | ".join(f"{run.results[n][i].answered_per_second:,.0f}" for n in names)
        lines.append(f"| {i + 1} | {cells} | {plain[i]:.2f} | {bare[i]:.3f} |")
    return "\n".join(lines)


def _thread_pool_hop(run: Run) -> str:
    """What a plain ``def`` route pays per request for FastAPI's thread-pool hop: the
    machine CPU per request of ``bare-sync`` minus ``bare``'s (same app, same bytes)."""
    machine = [
        (s.cpu.ms_per_request - b.cpu.ms_per_request, s.cpu.workers_ms - b.cpu.workers_ms)
        for s, b in zip(run.results["bare-sync"], run.results["bare"], strict=True)
        if s.cpu is not None and b.cpu is not None
    ]
    if not machine:
        return "- **Thread-pool hop**: not measured (no /proc)."
    med = statistics.median
    hop, workers = med([m for m, _ in machine]), med([w for _, w in machine])
    rounds = (
        f" (per round {min(m for m, _ in machine):.3f}-{max(m for m, _ in machine):.3f} ms)"
        if len(machine) > 1
        else ""
    )
    return (
        f"- **Thread-pool hop: {hop:.3f} ms of machine CPU per request**{rounds}, "
        f"{workers:.3f} ms of it in the uvicorn workers: `bare-sync` minus `bare`, the same "
        "constant answered by a plain `def` (run in FastAPI's thread pool) and by an "
        "`async def` (run on the event loop). It is what a sync route pays per request "
        "for the hop alone, against the lookup's CPU above."
    )


def _failures_text(run: Run) -> str:
    """The lookups refused where that is counted rather than voiding the run."""
    lines = []
    for name in TOLERATED:
        results = run.results.get(name)
        if not results:
            continue
        failed, total = sum(r.non_2xx for r in results), sum(r.requests for r in results)
        if not failed:
            lines.append(
                f"- **Failed closed**: none of `{name}`'s {total:,} measured lookups (one "
                "refused would be counted here rather than void the run)."
            )
            continue
        refused = sum(
            n for (_, _, outcome), n in run.trail.items() if outcome == "guard_unavailable"
        )
        causes = ", ".join(
            f"`{kind}` {n:,}" for kind, n in sorted(run.guard_failures.get(name, {}).items())
        )
        lines.append(
            f"- **Failed closed: `{name}` answered {failed:,} of its {total:,} measured "
            f"lookups ({100 * failed / total:.2g} %) with a status that was not 2xx**; the "
            f"trail holds {refused:,} lookups refused `guard_unavailable` (warm-ups included), "
            f"and its server logged `guard_failed` {causes or 'never'}. With the guard's "
            "state in Redis, the two workers decide for the one account at once: a record "
            "the other worker saved meanwhile (`StaleRecord`) is decided again from a fresh "
            "read a few times, then the lookup fails closed (503). Its requests/s and CPU "
            "per request count the 2xx answers only."
        )
    return "\n".join(lines)


def _trail_text(run: Run) -> str:
    trail = run.trail
    total = sum(trail.values())
    learning = {(d, o): n for (d, lrn, o), n in trail.items() if lrn}
    by_decision: dict[str, int] = {}
    for (decision, _), n in learning.items():
        by_decision[decision] = by_decision.get(decision, 0) + n
    decisions = ", ".join(f"`{d}` {n:,}" for d, n in sorted(by_decision.items()))
    not_ok = sum(n for (_, _, outcome), n in trail.items() if outcome != "ok")
    return (
        f"- **The guard's work, in the trail**: after the run it holds {total:,} lookups "
        f"(those of the guarded servers and of the checks; `lookup-plain` writes none), "
        f"{sum(learning.values()):,} of them decided in the learning window (first reason "
        f"`learning`): {decisions or 'none'}; {not_ok:,} with another outcome than `ok`. "
        "A `step_up` or `deny` there is a decision the guard would have enforced outside "
        "the window: one account at wrk speed is a robot by construction."
    )


def _info_text(args: argparse.Namespace, run: Run) -> str:
    if run.info is None:
        return "- **Access log cost**: not measured in this run (`--no-info-run`)."
    med = statistics.median
    lookups = run.results["lookup"]
    change = 100 * (
        run.info.answered_per_second / med([r.answered_per_second for r in lookups]) - 1
    )
    line_us = access_log_line_us()
    lookup_cpu = [r.cpu.ms_per_request for r in lookups if r.cpu is not None]
    share = (
        f", {100 * line_us / 1000 / med(lookup_cpu):.1f} % of a lookup's CPU" if lookup_cpu else ""
    )
    return (
        f"- **Access log cost**: one more `lookup` run, on a server started with "
        f"`REMPART_LOG_LEVEL=info` (the default; one JSON line per request, written to a "
        f"file): {run.info.answered_per_second:,.0f} requests/s, p50 "
        f"{run.info.p50_ms:.1f} ms, p99 {run.info.p99_ms:.1f} ms, {change:+.0f} % "
        f"requests/s against the median at `{args.log_level}`. The line itself costs "
        f"{line_us:.0f} µs of CPU, measured in-process{share}: a difference larger than "
        f"that is the noise between two server starts (a single run)."
    )


def _noise_text(run: Run, history: list[dict[str, float | str]]) -> str:
    def rps(name: str) -> list[float]:
        return [r.answered_per_second for r in run.results[name]]

    plain, bare = _paired(run, "lookup", "lookup-plain"), _paired(run, "lookup", "bare")
    if len(plain) < 2:
        return (
            f"- **Noise**: one round only, so no spread within the run; {_between_runs(history)}."
        )
    return (
        f"- **Noise**: over the rounds, requests/s vary by {_spread(rps('lookup'))} of the "
        f"median for `lookup`, {_spread(rps('lookup-plain'))} for `lookup-plain` and "
        f"{_spread(rps('bare'))} for `bare`; `lookup` / `lookup-plain` stays within "
        f"{min(plain):.2f}-{max(plain):.2f} and `lookup` / `bare` within "
        f"{min(bare):.3f}-{max(bare):.3f}; {_between_runs(history)}."
    )


def render(args: argparse.Namespace, run: Run, history: list[dict[str, float | str]]) -> str:
    others = [r.cpu.other for rs in run.results.values() for r in rs if r.cpu is not None]
    max_other = max(others, default=0.0)
    remeasured = (
        f"{run.remeasured} run(s) measured again because others took over {DISTURBED:.0f} %"
        if run.remeasured
        else f"a run disturbed by over {DISTURBED:.0f} % is measured again; none was"
    )
    wrk_command = f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency"
    reused = ", reused from `bench/out/`" if run.world_reused else ""
    redis_ms = _per_request(run.results["lookup-redis"], lambda s: s.redis_ms)
    before = (
        f"`lookup-before`: the `lookup` configuration served by the code of commit "
        f"`{run.before.short}` (`--before {run.before.rev}`: a git worktree in `bench/out/`, "
        f"its `src` first on `PYTHONPATH`, the import checked before the run), on the same "
        "database (the two codes' migrations are checked identical)"
        if run.before is not None
        else "`lookup-before`: not measured in this run (`--before none`)"
    )
    before_note = (
        "; `lookup-before`'s ratio to `lookup-plain` takes today's `lookup-plain` as denominator"
        if run.before is not None
        else ""
    )
    earlier = "\n".join(f"  - {e}" for e in EARLIER)
    cpu_lines = "\n".join(_cpu_line(name, results) for name, results in run.results.items())
    return f"""## Authenticated lookups over HTTP, the lookup path's CPU ({WORKERS} workers)

`POST {LOOKUP_PATH}` with a bearer token (token checked and the session re-read on
every request, the insured person read by primary key), served in several
configurations, against a bare FastAPI `POST {BARE_PATH}` returning a constant; all
measured with `wrk` in the same run, on the same uvicorn settings, with the same request
bytes (JSON bodies of {run.body_bytes} bytes, same headers) and, for every lookup
server, the same account and bearer token. Medians of {args.rounds} rounds of
{args.duration} s, the endpoints alternating; range in brackets. CPU per request: the
CPU time used during a run divided by the 2xx answers wrk counted; PostgreSQL's is
that of the backends connected to the benchmark's database (the shared background
processes, WAL writer and checkpointer, left out; every PostgreSQL process is in the
CPU shares at the end).

- `lookup`, the production path: the audit entry chained and committed before the
  answer leaves (`REMPART_AUDIT_WRITER=sql`), the guard on (`REMPART_GUARD_ENABLED=true`)
  in its learning window (`REMPART_GUARD_LEARN_UNTIL={LEARN_UNTIL}`): every lookup is
  decided by the guard's engine, recorded in the trail with its decision and learnt
  from, and none is refused. The engine's whole work is done; only the enforcement of a
  refusal is skipped, which one account at wrk speed would otherwise (rightly) trigger.
  The guard's state in process (the embedded default: each worker keeps its own).
- `lookup-redis`: the same, the guard's state in Redis (`REMPART_REDIS_URL`, the
  production deployment's: the workers share it; keys under `{GUARD_PREFIX}`).
- `lookup-plain`: the same lookups with a no-op audit writer
  (`REMPART_AUDIT_WRITER=noop-benchmark-only`) and the guard off: the denominator of
  the 0.8 target.
- {before}.
- `bare` / `bare-sync`: the bare app (`bench/bare_app.py`), `async def` / plain `def`.

{_endpoint_table(run)}

Issue 16's targets (ratios: the median of the per-round ratios{before_note}):

{_targets(args, run)}

{_rounds_table(run)}

- **Redis**: the Redis server used {_ms(redis_ms)} of CPU per `lookup-redis` lookup
  (beside the workers' and PostgreSQL's above).
{_failures_text(run)}
{_thread_pool_hop(run)}
{_trail_text(run)}
{_noise_text(run, history)}
{_info_text(args, run)}
- **Earlier published figures** (before this section measured issue 16's targets):
{earlier}
- **Code**: {run.code}{f"; `lookup-before`: commit `{run.before.short}`" if run.before else ""}.
- **Reproduce**: `{_command(args)}` (needs `wrk`, see `make bench-deps`, PostgreSQL
  on 127.0.0.1:5432 and Redis on 127.0.0.1:6379).
- **Settings**: {WORKERS} uvicorn workers for every server (`rempart serve --workers
  {WORKERS}`; `uvicorn bench.bare_app:app --factory --workers {WORKERS} --no-access-log
  --no-server-header`), uvloop and httptools, log level `{args.log_level}` everywhere (the
  access log is at `info`), every other `REMPART_*` setting at its default;
  `{wrk_command}` after a {args.warmup} s warm-up per server; {run.pairs:,} distinct real
  (NIR, birth date) pairs cycled; a run with any non-2xx answer (but `lookup-redis`'s,
  counted above) or socket error is refused, and each lookup server is checked before
  and after the rounds (one lookup by hand: the trail grew by one row decided in the
  learning window, or by none for `lookup-plain`; the guard's keys present in Redis for
  `lookup-redis`).
- **Database**: a fresh PostgreSQL database with {args.insured:,} insured persons and
  {args.professionals:,} professionals (world seed 0{reused}; loaded in
  {run.load_seconds:.0f} s), shared by every lookup server; the audit trail in it.
  Argon2 is not involved: the login (password + TOTP) happens once before the
  measurement; requests carry an HMAC-SHA256 JWT.
- **Machine**: wrk, PostgreSQL, Redis and the uvicorn workers share the same 2 cores
  (busy {run.busy_before:.0f} % just before the run, on a 200 % scale), so absolute
  figures are low and the ratios and CPU per request are what matter. Other processes
  used at most {max_other:.0f} % of a core during a measured run ({remeasured}). CPU
  during the runs (percent of one core, 200 % is the whole machine):
{cpu_lines}
"""


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    for name in ("insured", "professionals", "duration", "connections", "threads"):
        parser.add_argument(f"--{name}", type=int, default=DEFAULTS[name])
    for name in ("warmup", "rounds", "pairs"):
        parser.add_argument(f"--{name}", type=int, default=DEFAULTS[name])
    parser.add_argument("--log-level", choices=["warning", "info"], default=DEFAULTS["log_level"])
    parser.add_argument(
        "--before",
        default=DEFAULTS["before"],
        help="measure `lookup` served by the code of this commit too (lookup-before); "
        f"none: skip it (default {BEFORE}, the commit before issue 16's work)",
    )
    parser.add_argument(
        "--redis-url",
        default=DEFAULTS["redis_url"],
        help="the Redis of lookup-redis; only the keys under this benchmark's prefixes "
        f"({GUARD_PREFIX}, {THROTTLE_PREFIX}) are removed, before and after",
    )
    parser.add_argument(
        "--no-info-run",
        action="store_true",
        help="skip the extra lookup run with the access log on (log level info)",
    )
    parser.add_argument(
        "--max-wait",
        type=int,
        default=1800,
        help="seconds to wait for a quiet machine (no other wrk, nearly idle) before measuring",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the section, leave docs/benchmarks.md"
    )
    return check_wrk_args(parser, parser.parse_args(argv))


def check_wrk_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """The checks every wrk-driven benchmark makes of its load settings."""
    if min(args.duration, args.connections, args.threads, args.rounds, args.pairs) < 1:
        parser.error("duration, connections, threads, rounds and pairs must be at least 1")
    if args.connections < args.threads:
        parser.error("wrk needs at least one connection per thread")
    return args


def require_wrk(program: str) -> None:
    if shutil.which("wrk") is None:
        sys.exit(
            f"{program} needs the wrk load generator, which is not installed.\n"
            "Install it with:  apt-get install -y wrk   (or: make bench-deps)"
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    require_wrk("bench_lookup")
    try:
        run = measure(args)
    except BenchError as exc:
        sys.exit(f"bench_lookup: {exc}")
    except psycopg.OperationalError as exc:
        sys.exit(f"bench_lookup: PostgreSQL on 127.0.0.1:5432 is not usable: {exc}")
    publish("lookup", render(args, run, remember(args, run)), dry_run=args.no_write)


if __name__ == "__main__":
    main()
