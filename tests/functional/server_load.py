"""The harness of the tests that load a real ``rempart serve`` and hurt it (a kill, a
database or Redis going away, a full disk): the server as a subprocess of its own process
group, client threads that drive lookups and count every answer they received, keyed as
the audit trail records it, and the checks against the trail afterwards.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, func, select

from rempart.audit.models import AuditEvent
from rempart.nir import pseudonymize
from tests.conftest import FAST_HASHING
from tests.functional.conftest import Login
from tests.functional.private_servers import free_port

__all__ = [
    "EXPECTED_STATUS",
    "Key",
    "Load",
    "Probe",
    "Server",
    "assert_trail_holds",
    "audited",
    "drive",
    "entries",
    "fast_env",
    "kill_group",
    "log_in",
    "probes_of",
    "quiet_log",
    "run_load",
    "serve",
    "unaudited",
    "verify",
]

STARTUP_SECONDS = 120.0
"""Generous: two workers import the whole application, on a busy machine too."""
EXPECTED_STATUS = {"ok": 200, "not_found": 404, "invalid_nir": 422}

Key = tuple[str, int, str]
"""What the trail records about a lookup: (subject pseudonym, found, outcome)."""


@dataclass(frozen=True)
class Probe:
    nir: str
    birth_date: str
    key: Key

    @property
    def status(self) -> int:
        return EXPECTED_STATUS[self.key[2]]


@dataclass
class Load:
    """What one client thread saw."""

    answered: Counter[Key] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    """Answers refused with an allowed code (503 ``audit_unavailable``...): no data served."""
    unexpected: list[str] = field(default_factory=list)
    cut_in_flight: int = 0
    refused_connection: int = 0
    last_ok: float = 0.0
    """When (monotonic) this thread last received the data it asked for."""

    @property
    def fail_closed(self) -> int:
        return self.refusals.total()


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[bytes]
    base: str


def probes_of(world: Path, pseudonym_key: bytes, count: int = 300) -> list[Probe]:
    """Found lookups mostly, then wrong birth dates (not found) and wrong NIR keys."""
    people = pq.read_table(world / "insured.parquet", columns=["nir", "birth_date"]).to_pylist()
    rng = random.Random(29)
    probes: list[Probe] = []
    for person in rng.sample(people, count):
        nir: str = person["nir"]
        born: str = person["birth_date"].isoformat()
        subject = pseudonymize(nir, pseudonym_key)
        probes.append(Probe(nir, born, (subject, 1, "ok")))
        draw = rng.random()
        if draw < 0.4:
            probes.append(Probe(nir, "1890-01-02", (subject, 0, "not_found")))
        elif draw < 0.65:
            wrong = nir[:-2] + f"{int(nir[-2:]) % 97 + 1:02d}"
            probes.append(
                Probe(wrong, born, (pseudonymize(wrong, pseudonym_key), -1, "invalid_nir"))
            )
    return probes


def fast_env(**settings: str) -> dict[str, str]:
    """The environment of a ``rempart`` subprocess: this one's, cheap hashing, ``settings``
    as ``REMPART_<NAME>`` variables."""
    return {
        **os.environ,
        **{f"REMPART_{k.upper()}": str(v) for k, v in FAST_HASHING.items()},
        **{f"REMPART_{k.upper()}": v for k, v in settings.items()},
    }


def kill_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


@contextlib.contextmanager
def serve(env: dict[str, str], log_path: Path, workers: int = 2) -> Iterator[Server]:
    """``rempart serve --workers N`` in its own process group; the group is SIGKILLed on exit
    (a no-op when the test already stopped it), so no server outlives the test."""
    port = free_port()
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rempart",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + STARTUP_SECONDS
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("rempart serve did not start: " + log_path.read_text())
                time.sleep(0.1)
            yield Server(process, base)
        finally:
            kill_group(process, signal.SIGKILL)
            process.wait(timeout=10)


def log_in(base: str, login: Login, code: str) -> dict[str, str]:
    with httpx.Client(base_url=base, timeout=10) as http:
        first = http.post(
            "/api/v1/auth/login", json={"login": login.login, "password": login.password}
        )
        assert first.status_code == 200, first.text
        second = http.post(
            "/api/v1/auth/mfa/totp", json={"mfa_token": first.json()["mfa_token"], "code": code}
        )
        assert second.status_code == 200, second.text
        return {"Authorization": f"Bearer {second.json()['access_token']}"}


def drive(
    base: str,
    auth: dict[str, str],
    probes: list[Probe],
    seed: int,
    stop: threading.Event,
    *,
    refusals: frozenset[str] = frozenset({"audit_unavailable"}),
    through_outages: bool = False,
    deadline_seconds: float = 20.0,
    max_requests: int = 5_000,
    pause: float = 0.0,
    into: Load | None = None,
) -> Load:
    """Lookups one after another until ``stop`` (or the bounds). A 503 whose code is in
    ``refusals`` serves no data: allowed, counted. A broken connection ends the thread
    (the server was killed), or, ``through_outages``, is counted and the thread goes on.
    ``into``: the record to fill as it goes (others watch it), a new one by default."""
    load = into if into is not None else Load()
    rng = random.Random(seed)
    deadline = time.monotonic() + deadline_seconds
    with httpx.Client(base_url=base, headers=auth, timeout=10) as http:
        for _ in range(max_requests):
            if stop.is_set() or time.monotonic() > deadline:
                break
            probe = rng.choice(probes)
            try:
                response = http.post(
                    "/api/v1/rights/lookup",
                    json={"nir": probe.nir, "birth_date": probe.birth_date},
                )
            except httpx.ConnectError:
                load.refused_connection += 1
                if not through_outages:
                    break
                time.sleep(0.05)
                continue
            except httpx.TransportError:
                load.cut_in_flight += 1  # sent, and the server went away before answering
                if not through_outages:
                    break
                continue
            load.statuses[response.status_code] += 1
            code = _code_of(response) if response.status_code == 503 else None
            if response.status_code == probe.status:
                load.answered[probe.key] += 1
                load.last_ok = time.monotonic()
            elif code in refusals:
                load.refusals[code] += 1
            else:
                load.unexpected.append(f"{response.status_code} {response.text[:200]}")
            if pause:
                time.sleep(pause)
    return load


def _code_of(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def run_load(
    threads: int,
    worker: Callable[[int, threading.Event], Load],
    during: Callable[[], None],
) -> list[Load]:
    """``threads`` client threads running ``worker(seed, stop)`` while ``during()`` runs (the
    fault), stopped afterwards; a thread's own failure is raised here."""
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(worker, 1000 + i, stop) for i in range(threads)]
        try:
            during()
        finally:
            stop.set()
        return [future.result(timeout=60) for future in futures]


def audited(engine: Engine) -> Counter[Key]:
    """Committed lookup entries per (pseudonym, found, outcome)."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(AuditEvent.subject, AuditEvent.found, AuditEvent.outcome, func.count())
            .where(AuditEvent.event == "lookup")
            .group_by(AuditEvent.subject, AuditEvent.found, AuditEvent.outcome)
        ).all()
    return Counter({(str(s), int(f), str(o)): int(n) for s, f, o, n in rows})


def entries(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def unaudited(answered: Counter[Key], trail: Counter[Key]) -> dict[Key, tuple[int, int]]:
    """Answers received without as many committed entries: (answers, entries) per key."""
    return {key: (n, trail[key]) for key, n in answered.items() if trail[key] < n}


def quiet_log(log_path: Path) -> list[str]:
    """The server log's lines that show a stack trace or an unhandled error: a fault must
    be answered by the error handlers, not escape them."""
    markers = ("Traceback", "Exception in ASGI application", '"status": 500')
    return [
        line[:300]
        for line in log_path.read_text(errors="replace").splitlines()
        if any(marker in line for marker in markers)
    ]


def assert_trail_holds(
    answered: Counter[Key], engine: Engine, env: dict[str, str], log_path: Path | None = None
) -> None:
    """The promise after any fault: every answer received has its committed entry, the
    chains verify (``rempart audit verify``), and the server's log, when given, shows no
    stack trace nor unhandled error."""
    assert unaudited(answered, audited(engine)) == {}
    if log_path is not None:
        assert quiet_log(log_path) == []
    verified = verify(env)
    assert verified.returncode == 0, verified.stderr
    assert "audit trail intact" in verified.stderr


def verify(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rempart", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
