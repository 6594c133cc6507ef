"""Benchmark: logins per second (argon2 as configured) and what checking a token costs.

Issue 3 asks for logins per second with the configured argon2 cost, and for the token
validation cost per request (goal: under 50 µs per request). Measured here:

1. ``TokenSigner.check_access`` alone (HS256 signature and claims), in-process: the figure
   compared with the goal; then the whole ``AuthService.authenticate`` (token, plus the
   one-statement session and account read, plus the occasional ``last_seen_at`` write)
   in a transaction of its own, as a request runs it, on PostgreSQL and on SQLite.
2. Full logins over HTTP (password step, then the TOTP step) from concurrent client
   threads against a real ``rempart serve --workers 2``, on PostgreSQL (throttle state in
   Redis, as several workers need) and on the embedded SQLite default (throttle in
   memory), with the argon2 parameters of ``rempart.config`` left at their defaults.

    .venv/bin/python -m bench.bench_auth [--duration S] [--threads 4 8] [--accounts N]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and Redis on 127.0.0.1:6379
(database 14, which must be empty; its throttle keys are deleted at the end). The
benchmark database ``rempart_bench_auth`` is created, then dropped.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import hmac
import os
import resource
import secrets
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
import psycopg
import pyotp
import redis
from psycopg import sql
from sqlalchemy import select

from bench.bench_lookup import (
    ADMIN_URL,
    DISTURBED,
    OUT,
    BenchError,
    _machine_busy,
    _proc_table,
    busy_before,
    code_version,
    cpu_snapshot,
    rempart,
    running,
    server_command,
    wait_until_quiet,
)
from bench.report import publish
from rempart.audit.events import Origin
from rempart.auth.levels import ACR_PASSWORD_TOTP
from rempart.auth.passwords import PasswordHasher
from rempart.auth.sessions import SessionPolicy, SessionStore
from rempart.auth.tokens import InvalidToken, TokenSigner
from rempart.auth.totp import STEP_SECONDS
from rempart.config import Settings, load_settings
from rempart.logs import configure_logging
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Account

DB_NAME = "rempart_bench_auth"
PG_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/14"
THROTTLE_PREFIX = "rempart:throttle:"
WORKERS = 2
GOAL_US = 50.0
USER_AGENT = "rempart-bench-auth/1"
# The throttle rightly stops one address trying many logins; these limits are raised for
# the benchmark (every login comes from 127.0.0.1). Failure limits stay at their defaults.
THROTTLE_ENV = {
    "REMPART_THROTTLE_ADDRESS_ATTEMPTS": "1000000000",
    "REMPART_THROTTLE_ADDRESS_LOGINS": "1000000000",
    "REMPART_THROTTLE_NETWORK_LOGINS": "1000000000",
}
BACKENDS = ("postgresql", "sqlite")
BACKEND_NAMES = {
    "postgresql": "PostgreSQL 15 (throttle in Redis)",
    "sqlite": "SQLite, the embedded default (throttle in memory)",
}

DEFAULTS: dict[str, object] = {
    "duration": 20,
    "warmup": 3,
    "threads": [4, 8],
    "accounts": 320,
    "token_calls": 20_000,
    "db_calls": 1_000,
    "repeats": 7,
    "argon2_rounds": 10,
}


def production_argon2() -> dict[str, int]:
    """The argon2 parameters of ``rempart.config`` (what a server gets with no setting)."""
    fields = Settings.model_fields
    return {
        name: int(fields[f"argon2_{name}"].default)
        for name in ("time_cost", "memory_kib", "parallelism")
    }


def bench_settings(**overrides: object) -> Settings:
    """Settings for the in-process parts, ignoring any ``REMPART_*`` of the caller's shell,
    so that they match the servers (started with none but the ones set here)."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("REMPART_")}
    try:
        return load_settings(**overrides)
    finally:
        os.environ.update(saved)


# --------------------------------------------------------------------------- in-process timings


@dataclass(frozen=True)
class Timing:
    """Per-call cost over several repeats: wall time (median, range) and process CPU."""

    label: str
    wall_us: list[float]
    cpu_us: list[float]
    other: float  # percent of one core other processes used meanwhile (all repeats)

    @property
    def median(self) -> float:
        return statistics.median(self.wall_us)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpu_us)


def time_calls(label: str, call: Callable[[], object], *, number: int, repeats: int) -> Timing:
    """Like ``timeit.repeat`` (the garbage collector left on, as in a server), with the
    process CPU time of each repeat beside the wall time."""
    for _ in range(max(1, number // 10)):
        call()  # warm caches and connections
    wall, cpu = [], []
    machine_before, own_before, all_began = (
        _machine_busy(),
        time.process_time(),
        time.perf_counter(),
    )
    for _ in range(repeats):
        began, began_cpu = time.perf_counter(), time.process_time()
        for _ in range(number):
            call()
        wall.append(1e6 * (time.perf_counter() - began) / number)
        cpu.append(1e6 * (time.process_time() - began_cpu) / number)
    machine = (_machine_busy() - machine_before) / os.sysconf("SC_CLK_TCK")
    other = 100 * max(0.0, machine - (time.process_time() - own_before))
    other /= time.perf_counter() - all_began
    print(
        f"{label}: {statistics.median(wall):.1f} µs/call (median of {repeats}; "
        f"others used {other:.0f} % of a core)"
    )
    return Timing(label, wall, cpu, other)


def token_timings(args: argparse.Namespace) -> list[Timing]:
    """``check_access`` alone, and for context the HMAC alone and a forged token refused."""
    key = secrets.token_bytes(32)
    signer = TokenSigner(key, purpose="access", ttl_seconds=4 * 3600)
    now = int(time.time())
    token = signer.issue_access(
        "acct-0123456789abcdef",
        session_id=secrets.token_urlsafe(24),
        acr=ACR_PASSWORD_TOTP,
        epoch=0,
        auth_time=now,
        expires_at=now + 4 * 3600,
    )
    signer.check_access(token)  # must pass
    head, _, signature = token.rpartition(".")
    forged = f"{head}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"

    def refuse() -> None:
        with contextlib.suppress(InvalidToken):
            signer.check_access(forged)

    signing_input = head.encode()

    def decode_only() -> object:
        return jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            issuer="rempart",
            options={"require": ["exp", "iat", "sub", "typ", "iss"]},
        )

    return [
        # A session's token comes back with every request: from its second use on it is
        # remembered (exact string, until its expiry) and PyJWT is not run again.
        time_calls(
            "check_access",
            lambda: signer.check_access(token),
            number=args.token_calls,
            repeats=args.repeats,
        ),
        # What its first use costs: the full check, as for every token not seen before.
        time_calls(
            "full check",
            lambda: signer._check_access(token),
            number=args.token_calls,
            repeats=args.repeats,
        ),
        time_calls(
            "hmac alone",
            lambda: hmac.new(key, signing_input, hashlib.sha256).digest(),
            number=args.token_calls,
            repeats=args.repeats,
        ),
        time_calls("forged token", refuse, number=args.token_calls, repeats=args.repeats),
        time_calls("jwt.decode", decode_only, number=args.token_calls, repeats=args.repeats),
    ]


def authenticate_timings(
    services: Services, account_id: str, args: argparse.Namespace
) -> dict[str, Timing]:
    """``AuthService.authenticate`` as a request runs it, and the parts of it."""
    auth = services.auth
    with session_scope(services.sessions) as session:
        issued = auth.complete_login(
            session,
            account_id=account_id,
            acr=ACR_PASSWORD_TOTP,
            origin=Origin(login="bench", client_ip="127.0.0.1", user_agent=USER_AGENT),
            method="totp",
        )
    token = issued.access_token

    def per_request() -> None:
        with session_scope(services.sessions) as session:
            auth.authenticate(session, token)

    results = {
        "request": time_calls(
            "authenticate, own transaction", per_request, number=args.db_calls, repeats=args.repeats
        )
    }
    with session_scope(services.sessions) as session:
        results["statement"] = time_calls(
            "authenticate, inside one open transaction",
            lambda: auth.authenticate(session, token),
            number=args.db_calls,
            repeats=args.repeats,
        )
    default_store = auth.sessions
    auth.sessions = SessionStore(SessionPolicy(touch_seconds=0))
    try:
        results["touch"] = time_calls(
            "authenticate, touching last_seen_at every time",
            per_request,
            number=max(1, args.db_calls // 4),
            repeats=args.repeats,
        )
    finally:
        auth.sessions = default_store
    return results


@dataclass(frozen=True)
class Argon2Cost:
    wall_ms: list[float]
    cpu_ms: list[float]


def argon2_cost(rounds: int) -> Argon2Cost:
    """One verification with the production parameters, one thread, in this process."""
    hasher = PasswordHasher(**production_argon2())
    password = "violet tram sous la pluie 1987"  # noqa: S105 - a throwaway benchmark password
    stored = hasher.hash(password)
    wall, cpu = [], []
    for _ in range(rounds):
        began, began_cpu = time.perf_counter(), time.process_time()
        if not hasher.verify(stored, password):
            raise BenchError("argon2: the password does not verify")
        wall.append(1000 * (time.perf_counter() - began))
        cpu.append(1000 * (time.process_time() - began_cpu))
    print(
        f"argon2 verify: {statistics.median(wall):.0f} ms wall, {statistics.median(cpu):.0f} ms CPU"
    )
    return Argon2Cost(wall, cpu)


# --------------------------------------------------------------------------- accounts


@dataclass
class BenchAccount:
    login: str
    totp: pyotp.TOTP
    last_step: int = 0
    logged_in: bool = False


class AccountPool:
    """Hands each login a distinct (account, TOTP step) pair: an account comes back only
    once the 30 s step it last used has passed (the server accepts a code once)."""

    def __init__(self, accounts: list[BenchAccount]) -> None:
        self._queue = collections.deque(accounts)
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds client threads spent waiting for a usable account

    def take(self, deadline: float) -> tuple[BenchAccount, int] | None:
        while True:
            step = int(time.time() // STEP_SECONDS)
            with self._lock:
                account = self._queue[0]
                if account.last_step < step:
                    self._queue.rotate(-1)  # the oldest-used first; this one goes last
                    account.last_step = step
                    return account, step
            if time.monotonic() > deadline:
                return None
            began = time.monotonic()
            time.sleep(0.2)
            with self._lock:
                self.waited += time.monotonic() - began


def create_accounts(services: Services, count: int, password: str) -> list[BenchAccount]:
    """``count`` accounts through ``AuthService.create_account`` (argon2 at full cost)."""

    def create(index: int) -> BenchAccount:
        login = f"bench.auth.{index:05d}"
        with session_scope(services.sessions) as session:
            created = services.auth.create_account(session, login=login, password=password)
        return BenchAccount(login, pyotp.TOTP(pyotp.parse_uri(created.otpauth_uri).secret))

    began = time.perf_counter()
    # The first alone: on a fresh database the audit trail creates its shard heads in the
    # first writer's transaction, and a second thread of the same process appending before
    # that commits finds no head (AuditUnavailable); seen once here, reported.
    accounts = [create(0)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        accounts += pool.map(create, range(1, count))
    print(f"{count} accounts created in {time.perf_counter() - began:.0f} s")
    return accounts


# --------------------------------------------------------------------------- logins over HTTP


@dataclass(frozen=True)
class CpuSplit:
    """Percent of one core during a run (200 % is the whole 2-core machine)."""

    server: float
    postgres: float
    redis: float
    clients: float
    machine: float

    @property
    def other(self) -> float:
        return max(0.0, self.machine - self.server - self.postgres - self.redis - self.clients)


@dataclass
class LoginRun:
    backend: str
    threads: int
    seconds: float
    password_ms: list[float] = field(default_factory=list)
    totp_ms: list[float] = field(default_factory=list)
    first_logins: int = 0  # logins that were the account's first from this address/browser
    waited: float = 0.0
    cpu: CpuSplit | None = None
    remeasured: int = 0

    @property
    def logins(self) -> int:
        return len(self.totp_ms)

    @property
    def per_second(self) -> float:
        return self.logins / self.seconds

    @property
    def server_ms_per_login(self) -> float:
        """CPU the uvicorn workers spent per full login (both steps)."""
        if self.cpu is None or not self.logins:
            return float("nan")
        return 10 * self.cpu.server * self.seconds / self.logins


def _redis_ticks() -> int:
    return sum(t for _, comm, t in _proc_table().values() if comm.startswith("redis-server"))


def _log_in(
    http: httpx.Client, pool: AccountPool, deadline: float, password: str, run: LoginRun
) -> bool:
    taken = pool.take(deadline)
    if taken is None:
        return False
    account, step = taken
    began = time.perf_counter()
    first = http.post("/api/v1/auth/login", json={"login": account.login, "password": password})
    middle = time.perf_counter()
    if first.status_code != 200:
        raise BenchError(f"password step: {first.status_code} {first.text}")
    second = http.post(
        "/api/v1/auth/mfa/totp",
        json={"mfa_token": first.json()["mfa_token"], "code": account.totp.at(step * STEP_SECONDS)},
    )
    ended = time.perf_counter()
    if second.status_code != 200 or "access_token" not in second.json():
        raise BenchError(f"TOTP step: {second.status_code} {second.text}")
    run.password_ms.append(1000 * (middle - began))
    run.totp_ms.append(1000 * (ended - middle))
    if not account.logged_in:
        account.logged_in = True
        run.first_logins += 1
    return True


def login_run(
    base_url: str,
    server_pid: int,
    pool: AccountPool,
    password: str,
    *,
    backend: str,
    threads: int,
    seconds: float,
) -> LoginRun:
    """``threads`` clients logging in for ``seconds``; logins in flight at the deadline are
    finished and counted, and the rate divides by the time until the last one ended."""
    run = LoginRun(backend, threads, seconds)
    errors: list[BaseException] = []
    waited_before = pool.waited

    def client() -> None:
        with httpx.Client(
            base_url=base_url, timeout=60, headers={"User-Agent": USER_AGENT}
        ) as http:
            try:
                while time.monotonic() < deadline and not errors:
                    if not _log_in(http, pool, deadline, password, run):
                        return
            except (BenchError, httpx.HTTPError) as exc:
                errors.append(exc)

    before = cpu_snapshot(server_pid)
    redis_before, own_before = _redis_ticks(), resource.getrusage(resource.RUSAGE_SELF)
    began = time.monotonic()
    deadline = began + seconds
    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    run.seconds = time.monotonic() - began
    after = cpu_snapshot(server_pid)
    redis_after, own_after = _redis_ticks(), resource.getrusage(resource.RUSAGE_SELF)
    if errors:
        raise BenchError(f"{backend}, {threads} threads: {errors[0]}")
    tick = os.sysconf("SC_CLK_TCK")

    def percent(ticks: float) -> float:
        return 100 * ticks / tick / run.seconds

    own = (own_after.ru_utime + own_after.ru_stime) - (own_before.ru_utime + own_before.ru_stime)
    run.cpu = CpuSplit(
        server=percent(after.server - before.server),
        postgres=percent(after.postgres - before.postgres),
        redis=percent(redis_after - redis_before),
        clients=100 * own / run.seconds,
        machine=percent(after.machine - before.machine),
    )
    run.waited = pool.waited - waited_before
    return run


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def show(run: LoginRun) -> None:
    cpu = run.cpu
    split = (
        f"server {cpu.server:.0f} %, PostgreSQL {cpu.postgres:.0f} %, Redis {cpu.redis:.0f} %, "
        f"clients {cpu.clients:.0f} %, other {cpu.other:.0f} %"
        if cpu
        else ""
    )
    print(
        f"{run.backend} x{run.threads}: {run.per_second:.1f} logins/s ({run.logins}), "
        f"password p50 {statistics.median(run.password_ms):.0f} ms, "
        f"TOTP p50 {statistics.median(run.totp_ms):.0f} ms; {split}"
    )


# --------------------------------------------------------------------------- set-up per backend


@contextlib.contextmanager
def backend_database(backend: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A fresh, migrated database and the server environment for ``backend``."""
    data_dir = OUT / f"auth-{backend}"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
    env.update(THROTTLE_ENV)
    env.update({"REMPART_DATA_DIR": str(data_dir / "keys"), "REMPART_LOG_LEVEL": "warning"})
    if backend == "postgresql":
        url = PG_URL
        env["REMPART_REDIS_URL"] = REDIS_URL
        _recreate_database()
    else:
        url = f"sqlite:///{data_dir / 'rempart.db'}"
    env["REMPART_DATABASE_URL"] = url
    try:
        rempart(env, "db", "upgrade")
        yield url, env
    finally:
        if backend == "postgresql":
            _drop_database()
        shutil.rmtree(data_dir, ignore_errors=True)


def _drop_database() -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME))
        )


def _recreate_database() -> None:
    _drop_database()
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))


@contextlib.contextmanager
def throttle_redis() -> Iterator[None]:
    """Redis database 14, empty before the run; the throttle's keys are deleted after."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        if client.dbsize():
            raise BenchError(f"{REDIS_URL} is not empty: the benchmark will not touch it")
        yield
    finally:
        with contextlib.suppress(redis.RedisError):
            keys = list(client.scan_iter(match=f"{THROTTLE_PREFIX}*", count=1000))
            if keys:
                client.delete(*keys)
        client.close()


@dataclass
class BackendResult:
    backend: str
    authenticate: dict[str, Timing]
    runs: list[LoginRun]
    accounts: int
    account_seconds: float


def measure_backend(backend: str, args: argparse.Namespace) -> BackendResult:
    password = f"banc d'essai {secrets.token_urlsafe(18)}"
    with backend_database(backend) as (url, env):
        services = Services(
            bench_settings(database_url=url, data_dir=Path(env["REMPART_DATA_DIR"]))
        )
        try:
            began = time.perf_counter()
            accounts = create_accounts(services, args.accounts, password)
            account_seconds = time.perf_counter() - began
            probe_id = _account_id(services, accounts[-1].login)
            wait_until_quiet(args.max_wait)
            timings = authenticate_timings(services, probe_id, args)
        finally:
            services.close()
        pool = AccountPool(accounts[:-1])  # the last one served the token timings
        command, port = server_command("lookup", env, "warning")
        runs = []
        with running(f"auth-{backend}-server", command, env, port) as server:
            base_url = server.url
            for threads in args.threads:
                if args.warmup:
                    login_run(
                        base_url,
                        server.process.pid,
                        pool,
                        password,
                        backend=backend,
                        threads=threads,
                        seconds=args.warmup,
                    )
                runs.append(
                    _clean_run(
                        base_url=base_url,
                        pid=server.process.pid,
                        pool=pool,
                        password=password,
                        backend=backend,
                        threads=threads,
                        args=args,
                    )
                )
    return BackendResult(backend, timings, runs, args.accounts, account_seconds)


def _account_id(services: Services, login: str) -> str:
    with session_scope(services.sessions) as session:
        found = session.scalar(select(Account.account_id).where(Account.login == login))
    if found is None:
        raise BenchError(f"account {login} not found")
    return found


def _clean_run(
    *,
    base_url: str,
    pid: int,
    pool: AccountPool,
    password: str,
    backend: str,
    threads: int,
    args: argparse.Namespace,
) -> LoginRun:
    """A run, measured again (twice at most) when other processes disturbed it."""
    remeasured = 0
    while True:
        wait_until_quiet(args.max_wait)
        run = login_run(
            base_url, pid, pool, password, backend=backend, threads=threads, seconds=args.duration
        )
        run.remeasured = remeasured
        show(run)
        if run.cpu is None or run.cpu.other < DISTURBED or remeasured == 2:
            return run
        remeasured += 1
        print(f"other processes used {run.cpu.other:.0f} % of a core: measuring again")


# --------------------------------------------------------------------------- report


def _command(args: argparse.Namespace) -> str:
    parts = [".venv/bin/python -m bench.bench_auth"]
    for name, default in DEFAULTS.items():
        value = getattr(args, name)
        if value != default:
            shown = " ".join(str(v) for v in value) if isinstance(value, list) else value
            parts.append(f"--{name.replace('_', '-')} {shown}")
    return " ".join(parts)


def _us(value: float) -> str:
    return f"{value:,.1f} µs" if value < 100 else f"{value:,.0f} µs"


def _timing_cells(timing: Timing) -> str:
    return (
        f"**{_us(timing.median)}** ({_us(min(timing.wall_us))}-{_us(max(timing.wall_us))}) "
        f"| {_us(timing.cpu)}"
    )


def _cpu_cell(run: LoginRun) -> str:
    cpu = run.cpu
    if cpu is None:
        return "-"
    return (
        f"{cpu.server:.0f} / {cpu.postgres:.0f} / {cpu.redis:.0f} / {cpu.clients:.0f} "
        f"/ {cpu.other:.0f} %"
    )


def _spread(values: list[float]) -> float:
    return 100 * (max(values) - min(values)) / statistics.median(values)


def _scaling(backends: list[BackendResult]) -> str:
    """What more client threads did: the rate and the password step's median latency."""
    parts = []
    for backend in backends:
        if len(backend.runs) < 2:
            continue
        low, high = backend.runs[0], backend.runs[-1]
        parts.append(
            f"on {'PostgreSQL' if backend.backend == 'postgresql' else 'SQLite'} "
            f"{100 * (high.per_second / low.per_second - 1):+.0f} % logins/s while the "
            f"password step's p50 went from {statistics.median(low.password_ms):.0f} to "
            f"{statistics.median(high.password_ms):.0f} ms"
        )
    if not parts:
        return ""
    threads = f"{backends[0].runs[0].threads} to {backends[0].runs[-1].threads}"
    return f" From {threads} client threads: {'; '.join(parts)}."


@dataclass(frozen=True)
class Results:
    tokens: list[Timing]
    argon2: Argon2Cost
    backends: list[BackendResult]
    busy: float
    code: str


def render(args: argparse.Namespace, results: Results) -> str:
    check, full, hmac_alone, forged, decode = results.tokens
    met = check.median < GOAL_US
    full_met = full.median < GOAL_US
    params = production_argon2()
    by_backend = {b.backend: b for b in results.backends}
    auth_rows = []
    labels = {
        "request": "`authenticate` in a transaction of its own, as a request runs it "
        "(`last_seen_at` written at most once a minute)",
        "statement": "the same inside one open transaction (token + the one statement)",
        "touch": "as a request, but writing `last_seen_at` every time (what one request a "
        "minute per session pays)",
    }
    for key, label in labels.items():
        cells = " | ".join(
            _timing_cells(by_backend[b].authenticate[key]) if b in by_backend else "- | -"
            for b in BACKENDS
        )
        auth_rows.append(f"| {label} | {cells} |")
    whole = {b: by_backend[b].authenticate["request"].median for b in by_backend}
    whole_text = "; ".join(
        f"on {'PostgreSQL' if b == 'postgresql' else 'SQLite'} **{_us(v)}** "
        f"({v / GOAL_US:.0f} times the 50 µs: the whole check does **not** meet it)"
        if v >= GOAL_US
        else f"on {'PostgreSQL' if b == 'postgresql' else 'SQLite'} **{_us(v)}** (under 50 µs)"
        for b, v in whole.items()
    )
    login_rows = []
    for backend in results.backends:
        for run in backend.runs:
            login_rows.append(
                f"| {BACKEND_NAMES[run.backend]} | {run.threads} | **{run.per_second:.1f}** "
                f"| {run.logins} | {statistics.median(run.password_ms):.0f} / "
                f"{_pct(run.password_ms, 0.99):.0f} ms | {statistics.median(run.totp_ms):.0f} / "
                f"{_pct(run.totp_ms, 0.99):.0f} ms | {_cpu_cell(run)} "
                f"| {run.server_ms_per_login:.0f} ms |"
            )
    runs = [r for b in results.backends for r in b.runs]
    argon_cpu = statistics.median(results.argon2.cpu_ms)
    argon_wall = statistics.median(results.argon2.wall_ms)
    per_login = [r.server_ms_per_login for r in runs]
    busiest = min((r.cpu.server for r in runs if r.cpu is not None), default=float("nan"))
    others = [r.cpu.other for r in runs if r.cpu is not None]
    remeasured = sum(r.remeasured for r in runs)
    noisy = [r for r in runs if r.cpu is not None and r.cpu.other >= DISTURBED]
    noisy_text = (
        "**noisy**: "
        + ", ".join(
            f"{r.backend} x{r.threads} ({r.cpu.other:.0f} % of a core taken by others)"
            for r in noisy
            if r.cpu is not None
        )
        + " still disturbed after two more tries; read those rows as lower bounds"
        if noisy
        else f"no measured run was disturbed by over {DISTURBED:.0f} % of a core"
    )
    first = sum(r.first_logins for r in runs)
    total = sum(r.logins for r in runs)
    waited = sum(r.waited for r in runs)
    accounts = ", ".join(
        f"{b.accounts} on {'PostgreSQL' if b.backend == 'postgresql' else 'SQLite'} "
        f"(created in {b.account_seconds:.0f} s)"
        for b in results.backends
    )
    token_spread = _spread(full.wall_us)
    in_process_other = max(
        [t.other for t in results.tokens]
        + [
            t.other
            for b in results.backends
            if b.backend == "sqlite"
            for t in b.authenticate.values()
        ]
    )
    return f"""## Logins per second and the cost of checking a token (issue 3)

### Token validation per request

In-process, one thread; per call, the median of {args.repeats} repeats (range in
brackets) of {args.token_calls:,} calls for the token alone and {args.db_calls:,} calls with
the database (a quarter as many for the row that writes every time); CPU is this process's.

| what | per call | CPU |
| --- | ---: | ---: |
| `TokenSigner.check_access` on a token already checked (a session's every request after \
its first: remembered by its exact string until its expiry) | {_timing_cells(check)} |
| the full check, a token's first use: HS256 signature (PyJWT), expiry, issuer, purpose, \
claims | {_timing_cells(full)} |
| for context: HMAC-SHA256 of the same signing input, alone | {_timing_cells(hmac_alone)} |
| for context: PyJWT's `jwt.decode` alone, with the same key and checks | \
{_timing_cells(decode)} |
| for context: a token with a forged signature, refused (never remembered) | \
{_timing_cells(forged)} |

**Goal: token validation under {GOAL_US:.0f} µs per request: {"met" if met else "NOT met"}
for a session's requests after its first** ({_us(check.median)}); **{
        "met" if full_met else "NOT met"
    } for a token's first use** (the full check, {_us(full.median)}; in the same run
PyJWT's `jwt.decode` alone took {_us(decode.median)} and the HMAC itself {_us(hmac_alone.median)}:
the time is PyJWT's Python, not the cryptography; the repeats
of the full check spread over {token_spread:.0f} % of its median). A session of 25 requests
(a GP's day) averages {_us((full.median + 24 * check.median) / 25)} per request. Remembering a
token skips no decision: revocation, idleness and the account's state are read from the
server-side session on every request (next table).

The whole `AuthService.authenticate` adds the session and account read (one statement by
primary key, joined) and now and then the `last_seen_at` write, each in the request's own
transaction (open, `BEGIN`, `SELECT`, `COMMIT`, close), through SQLAlchemy:

| `AuthService.authenticate` | PostgreSQL 15 per call | CPU | SQLite per call | CPU |
| --- | ---: | ---: | ---: | ---: |
{chr(10).join(auth_rows)}

So per request: the token check itself {_us(check.median)} once remembered,
{_us(full.median)} the first time; with the database read {whole_text}. The transaction and
its statement, not the token, are what a request pays: most of it is this process's CPU
(SQLAlchemy, the driver, SQLite itself: the CPU column), the rest waiting for PostgreSQL
(another process, over TCP) or for a write to reach the disk.

### Logins per second (password step + TOTP step over HTTP)

A real `rempart serve --workers {WORKERS}` per database, full logins (`POST
/api/v1/auth/login`, then `POST /api/v1/auth/mfa/totp` with the current code) from
concurrent client threads (httpx, keep-alive) in the benchmark process, for {args.duration} s
per point after a {args.warmup} s warm-up; logins in flight at the end are finished and
counted, the rate dividing by the time until the last one ended. p99 is read from the
logins of one point (the table says how many), so it is rough. CPU in percent of one core
(200 % is the whole machine): uvicorn workers / PostgreSQL / Redis / client threads /
other processes.

| database | client threads | logins/s | logins | password step p50 / p99 \
| TOTP step p50 / p99 | CPU | server CPU per login |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{chr(10).join(login_rows)}

- **argon2id at the configured cost** (`rempart.config` defaults: memory
  {params["memory_kib"]:,} KiB = {params["memory_kib"] // 1024} MiB, time cost
  {params["time_cost"]}, parallelism {params["parallelism"]}): one verification, called from
  one thread, takes **{argon_wall:.0f} ms** wall and {argon_cpu:.0f} ms of CPU (median of
  {args.argon2_rounds}; argon2-cffi runs the {params["parallelism"]} lanes in threads of its
  own, whose CPU time, above the wall time when alone, includes their waiting for each
  other). Under load the workers spent {min(per_login):.0f}-{max(per_login):.0f} ms of CPU
  per full login, both steps, and kept the 2 cores at least {busiest:.0f} % busy by
  themselves: that gives the rates above. Argon2 is the cost of a login, on purpose.\
{_scaling(results.backends)}
- **Throttle raised for the benchmark**: every login comes from 127.0.0.1, and the throttle
  rightly stops one address trying many logins, so the servers run with
  {", ".join(f"`{k}={v}`" for k, v in THROTTLE_ENV.items())} (distinct logins and attempts per
  address and network); the failure limits and the back-off stay at their defaults
  (no login failed). The throttle still runs its checks on both steps: in Redis
  (`REMPART_REDIS_URL`, database 14) for PostgreSQL, as two workers need a shared
  store, and in each worker's memory for SQLite, the embedded default.
- **Accounts**: {accounts}, through `AuthService.create_account` (argon2 at full cost),
  no e-mail address. Each login gets a distinct (account, 30 s TOTP step) pair: an account
  returns only once the step it last used has passed (the server accepts a code once;
  client threads waited {waited:.1f} s in all for one). {first} of the {total} measured
  logins were the account's first from this address and browser, so they also recorded
  a new-origin event and looked for an address to notify (a few database statements;
  part of the TOTP step's time).
- **Settings**: `REMPART_LOG_LEVEL=warning`, every other `REMPART_*` setting at its
  default (audit written: each login appends its events to the chained trail; sessions
  stored server-side); uvicorn with uvloop and httptools as `rempart serve` starts it.
- **Noise**: while the token and SQLite timings ran, other processes used at most
  {in_process_other:.0f} % of a core (not counted for the PostgreSQL rows, where the
  server's backend works too); each row's range is the spread of its repeats.
  Logins: {noisy_text}; {remeasured} run(s) measured again for that. Other processes
  used at most {max(others, default=0.0):.0f} % of a core during a measured run (busy
  {results.busy:.0f} % just before the benchmark, on a 200 % scale). The clients,
  PostgreSQL, Redis and the server share the same 2 cores.
- **Code**: {results.code}.
- **Reproduce**: `{_command(args)}` (PostgreSQL on 127.0.0.1:5432, Redis on
  127.0.0.1:6379 with database 14 empty; the database `{DB_NAME}` is created, then dropped).
"""


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    for name in ("duration", "warmup", "accounts", "token_calls", "db_calls", "repeats"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=DEFAULTS[name])
    parser.add_argument("--argon2-rounds", type=int, default=DEFAULTS["argon2_rounds"])
    parser.add_argument(
        "--threads", type=int, nargs="+", default=DEFAULTS["threads"], help="client threads"
    )
    parser.add_argument(
        "--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--max-wait", type=int, default=600, help="seconds to wait for a quiet machine"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the section, leave docs/benchmarks.md"
    )
    args = parser.parse_args(argv)
    if min(args.duration, args.accounts, args.token_calls, args.db_calls, args.repeats) < 1:
        parser.error("duration, accounts, calls and repeats must be at least 1")
    if min(args.threads) < 1 or args.accounts < 2:
        parser.error("at least one client thread and two accounts")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging("warning")  # not one line per account created
    OUT.mkdir(parents=True, exist_ok=True)
    code = code_version()
    try:
        wait_until_quiet(args.max_wait)
        busy = busy_before()
        tokens = token_timings(args)
        argon2 = argon2_cost(args.argon2_rounds)
        backends = []
        for backend in args.backends:
            if backend == "postgresql":
                with throttle_redis():
                    backends.append(measure_backend(backend, args))
            else:
                backends.append(measure_backend(backend, args))
    except BenchError as exc:
        sys.exit(f"bench_auth: {exc}")
    except psycopg.OperationalError as exc:
        sys.exit(f"bench_auth: PostgreSQL on 127.0.0.1:5432 is not usable: {exc}")
    except redis.RedisError as exc:
        sys.exit(f"bench_auth: Redis on 127.0.0.1:6379 is not usable: {exc}")
    results = Results(tokens, argon2, backends, busy, code)
    publish("auth", render(args, results), dry_run=args.no_write)


if __name__ == "__main__":
    main()
