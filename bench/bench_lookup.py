"""Benchmark: authenticated rights lookups per second, 2 workers, PostgreSQL, against wrk.

In the same run and on the same uvicorn settings, a bare FastAPI endpoint returning a
constant (``bench/bare_app.py``) is measured with the same wrk command and the same
request bytes. Goal: lookups reach at least 0.4 of the bare endpoint's requests/s.

    .venv/bin/python -m bench.bench_lookup [--insured N] [--duration S] [--connections C]

Needs ``wrk`` (``apt-get install -y wrk``, or ``make bench-deps``) and the PostgreSQL
server on 127.0.0.1:5432 (user postgres, trust authentication). The benchmark database
is created fresh and dropped at the end; the world is kept in ``bench/out/`` for reuse.
"""

from __future__ import annotations

import argparse
import contextlib
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pyotp
import structlog
from psycopg import sql

from bench.report import publish
from rempart.logs import configure_logging
from rempart.world.io import read_table

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
BIN = Path(sys.executable).parent
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DB_NAME = "rempart_bench_lookup"
DB_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
LOOKUP_PATH = "/api/v1/rights/lookup"
BARE_PATH = "/bare"
GOAL_RATIO = 0.4
QUIET = 30.0  # percent of one core: below this the machine counts as idle
DISTURBED = 15.0  # percent of one core used by other processes during a run: measure again
RETRIES = 2
WORKERS = 2
LOGIN = "bench.lookup"

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
}

# The endpoints measured in every round: name -> what the report calls it.
ENDPOINTS = {
    "lookup": f"`POST {LOOKUP_PATH}` (authenticated, PostgreSQL)",
    "bare": f"`POST {BARE_PATH}`, bare FastAPI, `async def` (the reference)",
    "bare-sync": f"`POST {BARE_PATH}`, bare FastAPI, plain `def` (for comparison)",
}


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


@dataclass(frozen=True)
class CpuShare:
    """CPU used during one wrk run, in percent of one core (200 % is the whole 2-core machine)."""

    wrk: float
    server: float
    workers: tuple[float, ...]
    postgres: float
    machine: float
    ms_per_request: float  # whole-machine CPU time per request

    @property
    def other(self) -> float:
        """CPU used by anything else than wrk, the server and PostgreSQL: a disturbance."""
        return max(0.0, self.machine - self.wrk - self.server - self.postgres)

    def text(self) -> str:
        split = " + ".join(f"{w:.0f}" for w in self.workers if w >= 1)
        return (
            f"wrk {self.wrk:.0f} %, uvicorn {self.server:.0f} % ({split}), "
            f"PostgreSQL {self.postgres:.0f} %, other {self.other:.0f} %; "
            f"machine {self.machine:.0f} %, {self.ms_per_request:.2f} ms CPU/request"
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


def cpu_snapshot(server_pid: int) -> CpuSnapshot:
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
    )


def _machine_busy() -> int:
    """Clock ticks all cores spent on anything but idling, from /proc/stat."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    jiffies = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(jiffies) - jiffies[3] - jiffies[4]


def _own_tree() -> set[int]:
    """This process and all its descendants (our servers, our wrk)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                raw = (entry / "stat").read_text()
                parents[int(entry.name)] = int(raw[raw.rindex(")") + 2 :].split()[1])
    tree, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return tree


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


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(output: str, label: str) -> WrkResult:
    """Requests/s and the p50/p99 of ``--latency``; refuses a run with any error."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    percentiles = {
        int(p): float(value) * _UNITS_MS[unit]
        for p, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
    }
    if not rps or not total or set(percentiles) != {50, 99}:
        raise BenchError(f"{label}: cannot read wrk's output:\n{output}")
    problems = []
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non_2xx and int(non_2xx.group(1)):
        problems.append(f"{non_2xx.group(1)} responses were not 2xx")
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
    args: argparse.Namespace, url: str, *, script: Path, seconds: int, label: str, server_pid: int
) -> WrkResult:
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
    before = cpu_snapshot(server_pid) if has_proc else None
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = cpu_snapshot(server_pid) if has_proc else None
    if done.returncode != 0:
        raise BenchError(f"{label}: wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    result = parse_wrk(done.stdout, label)
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
        ms_per_request=1000 * machine / tick / result.requests,
    )
    return WrkResult(
        label=label,
        requests_per_second=result.requests_per_second,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        requests=result.requests,
        cpu=cpu,
        output=result.output,
    )


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
    """The command that serves ``endpoint``, on a free port, with ``log_level``."""
    port = _free_port()
    if endpoint == "lookup":
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


@contextlib.contextmanager
def serving(endpoint: str, env: dict[str, str], log_level: str) -> Iterator[Server]:
    server_env = dict(env)
    command, port = server_command(endpoint, server_env, log_level)
    with running(f"{endpoint}-server-{log_level}", command, server_env, port) as server:
        path = LOOKUP_PATH if endpoint == "lookup" else BARE_PATH
        server.url += path
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


def log_in(base_url: str, password: str, otpauth_uri: str) -> str:
    """The real login over HTTP: password, then a TOTP code. Returns the bearer token."""
    totp = pyotp.TOTP(pyotp.parse_uri(otpauth_uri).secret)
    with httpx.Client(base_url=base_url, timeout=30) as http:
        first = http.post("/api/v1/auth/login", json={"login": LOGIN, "password": password})
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


def remember(args: argparse.Namespace, run: Run) -> list[dict[str, float | str]]:
    """Appends this run to bench/out/lookup-history.jsonl; returns the runs of the same
    code with the same settings on this machine, this one included."""
    med = statistics.median
    lookup = med([r.requests_per_second for r in run.results["lookup"]])
    bare = med([r.requests_per_second for r in run.results["bare"]])
    settings = f"{args.duration}s c{args.connections} t{args.threads} {args.log_level}"
    entry: dict[str, float | str] = {
        "time": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "src": run.src_tree or "",
        "settings": settings,
        "lookup": lookup,
        "bare": bare,
        "ratio": med(
            [
                lk.requests_per_second / b.requests_per_second
                for lk, b in zip(run.results["lookup"], run.results["bare"], strict=True)
            ]
        ),
    }
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
    # No REMPART_* from the caller's shell: the run depends only on what is set here.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
    env.update(
        {
            "REMPART_DATABASE_URL": DB_URL,
            "REMPART_DATA_DIR": str(data_dir),
            # One account at wrk speed is a robot by construction: the guard would (rightly)
            # suspend it. This measures the lookup path; bench_guard_inline measures the guard.
            "REMPART_GUARD_ENABLED": "false",
        }
    )
    return env


def measure(args: argparse.Namespace) -> Run:
    OUT.mkdir(parents=True, exist_ok=True)
    wait_until_quiet(args.max_wait)  # setting up (loading the world) is heavy work too
    code, tree = code_version(), src_tree()
    env = base_env(OUT / "lookup-data")
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
        results, info, remeasured, busy = _measure_servers(args, env, password, otpauth, pairs)
    finally:
        drop_database()
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
    )


def _show(label: str, result: WrkResult) -> None:
    print(
        f"{label:22} {result.requests_per_second:8,.0f} req/s  p50 {result.p50_ms:6.1f} ms  "
        f"p99 {result.p99_ms:6.1f} ms  ({result.cpu.text() if result.cpu else 'no /proc'})"
    )


def measure_clean(
    args: argparse.Namespace, server: Server, *, seconds: int, label: str, remeasured: list[int]
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
        )
        if result.cpu is None or result.cpu.other < DISTURBED or attempt == RETRIES:
            return result
        remeasured[0] += 1
        print(
            f"{label}: other processes used {result.cpu.other:.0f} % of a core "
            f"({result.requests_per_second:,.0f} req/s): measuring again"
        )
        time.sleep(5)
    raise AssertionError("unreachable")


def _measure_servers(
    args: argparse.Namespace,
    env: dict[str, str],
    password: str,
    otpauth: str,
    pairs: list[tuple[str, str]],
) -> tuple[dict[str, list[WrkResult]], WrkResult | None, int, float]:
    """Every endpoint in every round, then the access-log run; returns results, the info
    run, how many runs were measured again, and how busy the machine was just before."""
    script = OUT / "lookup.lua"
    results: dict[str, list[WrkResult]] = {name: [] for name in ENDPOINTS}
    remeasured = [0]
    with contextlib.ExitStack() as stack:
        # All servers stay up for the whole run (an idle server costs nothing); only the
        # one being measured receives requests.
        servers = {
            name: stack.enter_context(serving(name, env, args.log_level)) for name in ENDPOINTS
        }
        token = log_in(servers["lookup"].url.removesuffix(LOOKUP_PATH), password, otpauth)
        script.write_text(lua_script(pairs, token), encoding="utf-8")
        wait_until_quiet(args.max_wait)
        busy = busy_before()
        for name, server in servers.items():
            check_once(server.url, token, pairs[0])
            if args.warmup:
                measure_clean(
                    args, server, seconds=args.warmup, label=f"{name} warm-up", remeasured=[0]
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
                )
                results[name].append(result)
                _show(f"round {round_no} {name}", result)
    info = None
    if not args.no_info_run and args.log_level != "info":
        with serving("lookup", env, "info") as server:
            check_once(server.url, token, pairs[0])
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


def _cpu_line(name: str, results: list[WrkResult]) -> str:
    shares = [r.cpu for r in results if r.cpu is not None]
    if not shares:
        return f"  - {name}: not measured (no /proc)"
    med = statistics.median
    return (
        f"  - {name}: uvicorn workers {med([s.server for s in shares]):.0f} %, "
        f"PostgreSQL {med([s.postgres for s in shares]):.0f} %, "
        f"wrk {med([s.wrk for s in shares]):.0f} %; whole machine "
        f"{med([s.machine for s in shares]):.0f} %, i.e. "
        f"**{med([s.ms_per_request for s in shares]):.2f} ms of CPU per request**"
    )


def _between_runs(history: list[dict[str, float | str]]) -> str:
    if len(history) < 2:
        return (
            "this is the first run of this code with these settings here (kept in "
            "`bench/out/lookup-history.jsonl`): run it again to see the noise between "
            "invocations"
        )

    def span(key: str, fmt: str) -> str:
        values = [float(h[key]) for h in history]
        return f"{min(values):{fmt}}-{max(values):{fmt}}"

    return (
        f"between the {len(history)} runs of this code with these settings on this machine "
        f"(`bench/out/lookup-history.jsonl`), the medians ranged {span('lookup', ',.0f')} "
        f"requests/s for the lookup and {span('bare', ',.0f')} for the bare endpoint, the "
        f"ratio {span('ratio', '.3f')}"
    )


def render(args: argparse.Namespace, run: Run, history: list[dict[str, float | str]]) -> str:
    med = statistics.median
    lookups, bares, syncs = (run.results[name] for name in ENDPOINTS)
    ratios = [
        lk.requests_per_second / b.requests_per_second for lk, b in zip(lookups, bares, strict=True)
    ]
    sync_ratios = [
        lk.requests_per_second / s.requests_per_second for lk, s in zip(lookups, syncs, strict=True)
    ]
    ratio = med(ratios)
    met = ratio >= GOAL_RATIO
    bare_rps = med([b.requests_per_second for b in bares])
    sync_share = med([s.requests_per_second for s in syncs]) / bare_rps

    def row(name: str) -> str:
        results = run.results[name]
        rps = [r.requests_per_second for r in results]
        return (
            f"| {ENDPOINTS[name]} | **{med(rps):,.0f}** ({min(rps):,.0f}-{max(rps):,.0f}) "
            f"| {med([r.p50_ms for r in results]):.1f} ms "
            f"| {med([r.p99_ms for r in results]):.1f} ms |"
        )

    rounds = "\n".join(
        f"| {i} | {lk.requests_per_second:,.0f} | {lk.p50_ms:.1f} / {lk.p99_ms:.1f} ms "
        f"| {b.requests_per_second:,.0f} | {b.p50_ms:.1f} / {b.p99_ms:.1f} ms "
        f"| {s.requests_per_second:,.0f} | {r:.3f} |"
        for i, (lk, b, s, r) in enumerate(zip(lookups, bares, syncs, ratios, strict=True), 1)
    )
    if run.info is not None:
        change = 100 * (
            run.info.requests_per_second / med([r.requests_per_second for r in lookups]) - 1
        )
        line_us = access_log_line_us()
        lookup_cpu = [r.cpu.ms_per_request for r in lookups if r.cpu is not None]
        share = (
            f", {100 * line_us / 1000 / med(lookup_cpu):.1f} % of a lookup's CPU"
            if lookup_cpu
            else ""
        )
        info_text = (
            f"- **Access log cost**: one more lookup run, on a server started with "
            f"`REMPART_LOG_LEVEL=info` (the default; one JSON line per request, written to a "
            f"file): {run.info.requests_per_second:,.0f} requests/s, p50 "
            f"{run.info.p50_ms:.1f} ms, p99 {run.info.p99_ms:.1f} ms, {change:+.0f} % "
            f"requests/s against the median at `{args.log_level}`. The line itself costs "
            f"{line_us:.0f} µs of CPU, measured in-process{share}: a difference larger than "
            f"that is the noise between two server starts (a single run)."
        )
    else:
        info_text = "- **Access log cost**: not measured in this run (`--no-info-run`)."
    others = [r.cpu.other for rs in run.results.values() for r in rs if r.cpu is not None]
    max_other = max(others, default=0.0)
    remeasured = (
        f"{run.remeasured} run(s) measured again because others took over {DISTURBED:.0f} %"
        if run.remeasured
        else f"a run disturbed by over {DISTURBED:.0f} % is measured again; none was"
    )
    noise = (
        f"- **Noise**: one round only, so no spread within the run; {_between_runs(history)}."
        if len(ratios) < 2
        else f"- **Noise**: over the rounds, requests/s vary by "
        f"{_spread([r.requests_per_second for r in lookups])} of the median for the lookup "
        f"and {_spread([r.requests_per_second for r in bares])} for the bare endpoint, and "
        f"the ratio stays within {min(ratios):.3f}-{max(ratios):.3f}; "
        f"{_between_runs(history)}."
    )
    wrk_command = f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency"
    reused = ", reused from `bench/out/`" if run.world_reused else ""
    return f"""## Authenticated lookups over HTTP (PostgreSQL, {WORKERS} workers)

`POST {LOOKUP_PATH}` with a bearer token, as served (token checked and account re-read
on every request, one query by primary key with the treating doctor joined, the audit
entry chained and committed before the answer leaves), against a bare FastAPI
`POST {BARE_PATH}` returning a constant, measured with `wrk` in the same run, on the same
uvicorn settings and with the same request bytes (JSON bodies of {run.body_bytes} bytes,
same headers). Medians of {args.rounds} rounds of {args.duration} s, the endpoints
alternating; range in brackets.

| endpoint | requests/s | p50 | p99 |
| --- | ---: | ---: | ---: |
{row("lookup")}
{row("bare")}
{row("bare-sync")}

**Ratio lookup / bare: {ratio:.3f}** (per round: {", ".join(f"{r:.3f}" for r in ratios)}).
Goal: at least {GOAL_RATIO} of the bare endpoint: **{"met" if met else "NOT met"}**.
For comparison: lookup / bare `def` endpoint {med(sync_ratios):.3f}; and a plain `def`
endpoint returning a constant (run in the thread pool, as the lookup route is) reaches
{sync_share:.2f} of the `async def` one by itself.

| round | lookup req/s | lookup p50 / p99 | bare req/s | bare p50 / p99 | bare `def` req/s | ratio |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{rounds}

{noise}
{info_text}
- **Code**: {run.code}.
- **Reproduce**: `{_command(args)}` (needs `wrk`, see `make bench-deps`, and
  PostgreSQL on 127.0.0.1:5432).
- **Settings**: {WORKERS} uvicorn workers for every server (`rempart serve --workers
  {WORKERS}`; `uvicorn bench.bare_app:app --factory --workers {WORKERS} --no-access-log
  --no-server-header`), uvloop and httptools, log level `{args.log_level}` everywhere (the
  access log is at `info`), every other `REMPART_*` setting at its default (audit
  written); `{wrk_command}` after a {args.warmup} s warm-up per server;
  {run.pairs:,} distinct real (NIR, birth date) pairs cycled; a run with any non-2xx answer
  or socket error is refused.
- **Database**: a fresh PostgreSQL database with {args.insured:,} insured persons and
  {args.professionals:,} professionals (world seed 0{reused}; loaded in
  {run.load_seconds:.0f} s). A lookup reads the account row and the insured row by primary
  key and appends one audit row, so the size of the table matters little. Argon2 is not
  involved: the login (password + TOTP) happens once before the measurement; requests
  carry an HMAC-SHA256 JWT.
- **Machine**: wrk, PostgreSQL and the uvicorn workers share the same 2 cores (busy
  {run.busy_before:.0f} % just before the run, on a 200 % scale), so absolute figures are
  low and the ratio is what matters. Other processes used at most {max_other:.0f} % of a
  core during a measured run ({remeasured}). CPU during the runs (percent of one core,
  200 % is the whole machine):
{_cpu_line("lookup", lookups)}
{_cpu_line("bare", bares)}
{_cpu_line("bare `def`", syncs)}
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
