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

import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from rempart.config import Settings
from rempart.services import Services
from rempart.store.load_world import load_world
from rempart.world.generator import generate_world
from tests.functional.conftest import make_login
from tests.functional.server_load import (
    Key,
    Load,
    Probe,
    Server,
    assert_trail_holds,
    audited,
    drive,
    entries,
    fast_env,
    kill_group,
    log_in,
    probes_of,
    run_load,
    serve,
    unaudited,
    verify,
)

pytestmark = pytest.mark.faults

THREADS = 4
LOAD_SECONDS = 1.5
MIN_ANSWERED = 20
"""Fewer answers than this before the kill would mean the load never really ran."""
RESTART_LOOKUPS = 12


@pytest.fixture(scope="module")
def crash_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crash-world")
    generate_world(out, insured=2_000, professionals=40, days=7, seed=17)
    return out


def _load_then_kill(server: Server, auth: dict[str, str], probes: list[Probe]) -> list[Load]:
    def kill() -> None:
        time.sleep(LOAD_SECONDS)
        assert server.process.poll() is None, "the server stopped before it was killed"
        kill_group(server.process, signal.SIGKILL)
        server.process.wait(timeout=10)

    def worker(seed: int, stop: threading.Event) -> Load:
        return drive(server.base, auth, probes, seed, stop)

    return run_load(THREADS, worker, kill)


def test_a_server_killed_under_load_answered_nothing_unaudited(
    services: Services, settings: Settings, crash_world: Path, tmp_path: Path
) -> None:
    load_world(services.engine, crash_world, pseudonym_key=settings.keys.pseudonym_key)
    account = make_login(services, "ph.crash")
    probes = probes_of(crash_world, settings.keys.pseudonym_key)
    env = fast_env(
        database_url=settings.database_url,
        data_dir=str(settings.resolved_data_dir),  # the same development keys
        # Small: signed checkpoints are written during the load, and verified after the kill.
        audit_checkpoint_every="10",
        # One account reading hundreds of persons a second is a robot: the guard would
        # (rightly) suspend it within a few records (tests/functional/test_guard_inline.py).
        # This test is about the trail under a kill, so the load runs without the guard.
        guard_enabled="false",
    )
    log_path = tmp_path / "server.log"

    with serve(env, log_path) as server:
        auth = log_in(server.base, account, account.totp.now())
        loads = _load_then_kill(server, auth, probes)
    answered = sum((load.answered for load in loads), Counter[Key]())
    statuses = sum((load.statuses for load in loads), Counter[int]())
    unexpected = [line for load in loads for line in load.unexpected]
    assert not unexpected, f"unexpected answers {statuses}: {unexpected[:5]}"
    assert answered.total() >= MIN_ANSWERED, f"too little load before the kill: {statuses}"
    assert sum(load.cut_in_flight for load in loads) >= 1, "the kill cut no request in flight"
    print(  # the figures docs/reliability.md quotes (pytest -rP shows them)
        f"answers before the kill {statuses.total()} {dict(statuses)}, "
        f"cut in flight {sum(load.cut_in_flight for load in loads)}, "
        f"fail closed {sum(load.fail_closed for load in loads)}"
    )

    # (1) Every answer a client received has its committed audit entry.
    assert unaudited(answered, audited(services.audit_engine)) == {}, statuses
    # (2) The chains survived the kill.
    verified = verify(env)
    assert verified.returncode == 0, verified.stderr
    assert "audit trail intact" in verified.stderr
    entries_after_kill = entries(services.audit_engine)

    # (3) A restarted server appends to the same chains, which still verify.
    with serve(env, log_path) as server:
        # A TOTP code is accepted once: use the next step's (within the ±1 step window).
        auth = log_in(server.base, account, account.totp.at(time.time() + 30))
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
    assert_trail_holds(answered, services.audit_engine, env)
    total = entries(services.audit_engine)
    print(f"entries after the kill {entries_after_kill}, after the restart {total}")
    assert total >= entries_after_kill + RESTART_LOOKUPS
