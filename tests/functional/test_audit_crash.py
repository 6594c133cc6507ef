"""The real server SIGKILLed in the middle of a load: no lookup answered without its audit
record, and a chain that still verifies, before and after a restart.

``rempart serve --workers 2`` runs as its own process group; four client threads drive
lookups (found, not found, malformed) and count, client side, every answer they received,
keyed as the audit trail records it: (pseudonym, found, outcome). The whole group is then
killed with SIGKILL, so requests are cut half-way through. Every answer received must have
its committed entry (the entry is committed before the answer leaves), ``rempart audit
verify`` must find the chains intact, and a restarted server must go on appending to them.
A ``503 audit_unavailable`` refusal serves no data, so it is allowed (and counted); any other
unexpected answer fails the test.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from rempart.audit.models import AuditEvent
from rempart.config import Settings
from rempart.nir import pseudonymize
from rempart.services import Services
from rempart.store.load_world import load_world
from rempart.world.generator import generate_world
from tests.conftest import FAST_HASHING
from tests.functional.conftest import Login, make_login

THREADS = 4
LOAD_SECONDS = 1.5
MAX_REQUESTS_PER_THREAD = 5_000
THREAD_DEADLINE_SECONDS = 20.0
MIN_ANSWERED = 20
"""Fewer answers than this before the kill would mean the load never really ran."""
RESTART_LOOKUPS = 12
STARTUP_SECONDS = 60.0
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
    unexpected: list[str] = field(default_factory=list)
    fail_closed: int = 0
    """503 ``audit_unavailable``: refused, no data served (allowed, but counted)."""
    cut_in_flight: int = 0
    refused_connection: int = 0


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[bytes]
    base: str


@pytest.fixture(scope="module")
def crash_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crash-world")
    generate_world(out, insured=2_000, professionals=40, days=7, seed=17)
    return out


def _probes(world: Path, pseudonym_key: bytes) -> list[Probe]:
    """Found lookups mostly, then wrong birth dates (not found) and wrong NIR keys."""
    people = pq.read_table(world / "insured.parquet", columns=["nir", "birth_date"]).to_pylist()
    rng = random.Random(29)
    probes: list[Probe] = []
    for person in rng.sample(people, 300):
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _kill_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


@contextlib.contextmanager
def _serve(env: dict[str, str], log_path: Path) -> Iterator[Server]:
    """``rempart serve --workers 2`` in its own process group; the group is SIGKILLed on exit
    (a no-op when the test already stopped it), so no server outlives the test."""
    port = _free_port()
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "rempart", "serve", "--port", str(port), "--workers", "2"],
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
            _kill_group(process, signal.SIGKILL)
            process.wait(timeout=10)


def _log_in(base: str, login: Login, code: str) -> dict[str, str]:
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


def _drive(
    base: str, auth: dict[str, str], probes: list[Probe], seed: int, stop: threading.Event
) -> Load:
    """Lookups one after another until the server goes away (or the bounds are reached)."""
    load = Load()
    rng = random.Random(seed)
    deadline = time.monotonic() + THREAD_DEADLINE_SECONDS
    with httpx.Client(base_url=base, headers=auth, timeout=10) as http:
        for _ in range(MAX_REQUESTS_PER_THREAD):
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
                break
            except httpx.TransportError:
                load.cut_in_flight += 1  # sent, and the server died before answering
                break
            load.statuses[response.status_code] += 1
            if response.status_code == probe.status:
                load.answered[probe.key] += 1
            elif response.status_code == 503 and "audit_unavailable" in response.text:
                load.fail_closed += 1
            else:
                load.unexpected.append(f"{response.status_code} {response.text[:200]}")
    return load


def _load_then_kill(server: Server, auth: dict[str, str], probes: list[Probe]) -> list[Load]:
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [
            pool.submit(_drive, server.base, auth, probes, 1000 + i, stop) for i in range(THREADS)
        ]
        try:
            time.sleep(LOAD_SECONDS)
            assert server.process.poll() is None, "the server stopped before it was killed"
            _kill_group(server.process, signal.SIGKILL)
            server.process.wait(timeout=10)
        finally:
            stop.set()
        # A client thread's own failure is raised here.
        return [future.result(timeout=THREAD_DEADLINE_SECONDS) for future in futures]


def _audited(services: Services) -> Counter[Key]:
    with services.audit_engine.connect() as connection:
        rows = connection.execute(
            select(AuditEvent.subject, AuditEvent.found, AuditEvent.outcome, func.count())
            .where(AuditEvent.event == "lookup")
            .group_by(AuditEvent.subject, AuditEvent.found, AuditEvent.outcome)
        ).all()
    return Counter({(str(s), int(f), str(o)): int(n) for s, f, o, n in rows})


def _entries(services: Services) -> int:
    with services.audit_engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def _unaudited(answered: Counter[Key], audited: Counter[Key]) -> dict[Key, tuple[int, int]]:
    """Answers received without as many committed entries: (answers, entries) per key."""
    return {key: (n, audited[key]) for key, n in answered.items() if audited[key] < n}


def _verify(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rempart", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_server_killed_under_load_answered_nothing_unaudited(
    services: Services, settings: Settings, crash_world: Path, tmp_path: Path
) -> None:
    load_world(services.engine, crash_world, pseudonym_key=settings.keys.pseudonym_key)
    account = make_login(services, "ph.crash")
    probes = _probes(crash_world, settings.keys.pseudonym_key)
    env = {
        **os.environ,
        "REMPART_DATABASE_URL": settings.database_url,
        "REMPART_DATA_DIR": str(settings.resolved_data_dir),  # the same development keys
        # Small: signed checkpoints are written during the load, and verified after the kill.
        "REMPART_AUDIT_CHECKPOINT_EVERY": "10",
        # One account reading hundreds of persons a second is a robot: the guard would
        # (rightly) suspend it within a few records (tests/functional/test_guard_inline.py).
        # This test is about the trail under a kill, so the load runs without the guard.
        "REMPART_GUARD_ENABLED": "false",
        **{f"REMPART_{k.upper()}": str(v) for k, v in FAST_HASHING.items()},
    }
    log_path = tmp_path / "server.log"

    with _serve(env, log_path) as server:
        auth = _log_in(server.base, account, account.totp.now())
        loads = _load_then_kill(server, auth, probes)
    answered = sum((load.answered for load in loads), Counter[Key]())
    statuses = sum((load.statuses for load in loads), Counter[int]())
    unexpected = [line for load in loads for line in load.unexpected]
    assert not unexpected, f"unexpected answers {statuses}: {unexpected[:5]}"
    assert answered.total() >= MIN_ANSWERED, f"too little load before the kill: {statuses}"
    assert sum(load.cut_in_flight for load in loads) >= 1, "the kill cut no request in flight"

    # (1) Every answer a client received has its committed audit entry.
    assert _unaudited(answered, _audited(services)) == {}, statuses
    # (2) The chains survived the kill.
    verified = _verify(env)
    assert verified.returncode == 0, verified.stderr
    assert "audit trail intact" in verified.stderr
    entries_after_kill = _entries(services)

    # (3) A restarted server appends to the same chains, which still verify.
    with _serve(env, log_path) as server:
        # A TOTP code is accepted once: use the next step's (within the ±1 step window).
        auth = _log_in(server.base, account, account.totp.at(time.time() + 30))
        with httpx.Client(base_url=server.base, headers=auth, timeout=10) as http:
            for probe in [p for p in probes if p.key[1] == 1][:RESTART_LOOKUPS]:
                response = http.post(
                    "/api/v1/rights/lookup",
                    json={"nir": probe.nir, "birth_date": probe.birth_date},
                )
                assert response.status_code == 200, response.text
                answered[probe.key] += 1
        server.process.send_signal(signal.SIGINT)  # a clean stop this time
        assert server.process.wait(timeout=20) == 0, log_path.read_text()
    assert _unaudited(answered, _audited(services)) == {}
    verified = _verify(env)
    assert verified.returncode == 0, verified.stderr
    assert "audit trail intact" in verified.stderr
    assert _entries(services) >= entries_after_kill + RESTART_LOOKUPS
