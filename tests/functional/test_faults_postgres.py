"""PostgreSQL restarted, then stopped for a few seconds, under a load of logins and lookups:
Rempart fails closed during the outage and answers again afterwards, without a restart.

``rempart serve --workers 2`` keeps its data and its audit trail in two databases of a
private cluster (``private_pg``), the login throttle in a private Redis. Four client
threads drive lookups and one drives logins (the password step, which reads the
accounts). Mid-load the cluster is restarted (``pg_ctl restart -m fast``), then stopped,
left down for a few seconds and started again. During the outage every answer must be a
503 with a stable code (``database_unavailable``, ``audit_unavailable``), never a 500 and
never data; afterwards every thread must be served again by the same server process;
every answer received must have its committed audit entry, and ``rempart audit verify``
must find the chains intact.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.functional.conftest import Login, make_login
from tests.functional.fault_stack import Stack, fault_stack
from tests.functional.private_servers import PrivatePostgres
from tests.functional.server_load import (
    Key,
    Load,
    assert_trail_holds,
    drive,
    log_in,
    probes_of,
    run_load,
    serve,
)

pytestmark = pytest.mark.faults

THREADS = 4
WARM_SECONDS = 1.5
DOWN_SECONDS = 3.0
RECOVERY_SECONDS = 30.0
"""Every thread must be served again within this long after the cluster is back."""
REFUSALS = frozenset({"database_unavailable", "audit_unavailable"})


@pytest.fixture
def stack(private_pg: PrivatePostgres, fault_world: Path, tmp_path: Path) -> Iterator[Stack]:
    """The guard on, its state in the private Redis, in its learning window: it decides,
    records and learns every lookup as in production, but does not stop this load (one
    account reading hundreds of persons a second is a robot it would rightly stop); the
    guard under a Redis outage is ``test_faults_redis``."""
    with fault_stack(
        private_pg,
        fault_world,
        tmp_path,
        guard_enabled="true",
        guard_learn_until="2099-01-01T00:00:00Z",
        # The logins thread tries a few hundred times from one address: over the
        # throttle's 100 a window, which is test_throttle_stuffing's matter, not this one's.
        throttle_address_attempts="100000",
    ) as built:
        yield built


def _logins(base: str, account: Login, stop: threading.Event, load: Load) -> Load:
    """The password step again and again: it reads the account (database) and the
    throttle (Redis)."""
    with httpx.Client(base_url=base, timeout=10) as http:
        while not stop.is_set():
            try:
                response = http.post(
                    "/api/v1/auth/login",
                    json={"login": account.login, "password": account.password},
                )
            except httpx.TransportError:
                load.cut_in_flight += 1
                continue
            load.statuses[response.status_code] += 1
            code = response.json().get("error") if response.status_code != 200 else None
            if response.status_code == 200:
                load.last_ok = time.monotonic()
            elif response.status_code == 503 and code in REFUSALS:
                load.refusals[str(code)] += 1
            else:
                load.unexpected.append(f"{response.status_code} {response.text[:200]}")
            time.sleep(0.05)
    return load


def test_postgresql_restarted_and_stopped_under_load_fails_closed_then_recovers(
    stack: Stack, fault_world: Path, tmp_path: Path
) -> None:
    account = make_login(stack.services, "ph.restart")
    probes = probes_of(fault_world, stack.settings.keys.pseudonym_key, count=200)
    back_at: list[float] = []

    with serve(stack.env, tmp_path / "server.log") as server:
        auth = log_in(server.base, account, account.totp.now())
        loads: list[Load] = []

        recovered: list[float] = []
        readiness: list[tuple[int, dict[str, str]]] = []

        def ready() -> None:
            answer = httpx.get(f"{server.base}/health/ready", timeout=10)
            readiness.append((answer.status_code, answer.json()["checks"]))

        def fault() -> None:
            time.sleep(WARM_SECONDS)
            stack.pg.restart()  # sessions cut, the cluster back at once
            time.sleep(WARM_SECONDS)
            stack.pg.stop()
            ready()  # what a load balancer sees during the outage
            time.sleep(DOWN_SECONDS)
            stack.pg.start()
            back_at.append(time.monotonic())
            deadline = back_at[0] + RECOVERY_SECONDS
            while time.monotonic() < deadline and not all(
                load.last_ok > back_at[0] for load in loads
            ):
                time.sleep(0.2)
            recovered.append(time.monotonic() - back_at[0])
            ready()
            time.sleep(0.5)  # served on, not just once

        def worker(seed: int, stop: threading.Event) -> Load:
            load = Load()
            loads.append(load)
            if seed == 1000:
                return _logins(server.base, account, stop, load)
            return drive(
                server.base,
                auth,
                probes,
                seed,
                stop,
                refusals=REFUSALS,
                through_outages=True,
                deadline_seconds=WARM_SECONDS * 2 + DOWN_SECONDS + RECOVERY_SECONDS + 5,
                max_requests=100_000,
                pause=0.01,
                into=load,
            )

        results = run_load(THREADS + 1, worker, fault)
        assert server.process.poll() is None, "the server died during the outage"
        served_again = [load.last_ok > back_at[0] for load in loads]

    statuses = sum((load.statuses for load in results), Counter[int]())
    refusals = sum((load.refusals for load in results), Counter[str]())
    unexpected = [line for load in results for line in load.unexpected]
    print(  # the figures docs/reliability.md quotes (pytest -rP shows them)
        f"answers {statuses.total()} {dict(statuses)}, refusals {dict(refusals)}, "
        f"cut in flight {sum(load.cut_in_flight for load in results)}, "
        f"every thread served again {recovered[0]:.2f} s after the start"
    )
    assert not unexpected, f"unexpected answers {statuses}: {unexpected[:5]}"
    assert refusals.total() >= 1, f"the outage was never felt: {statuses}"
    assert all(served_again), "a thread was not served again after the restart"
    # The probe told the truth: not ready while the cluster was down, ready after.
    (down_status, down_checks), (up_status, up_checks) = readiness
    assert down_status == 503
    assert down_checks["database"] in {"unreachable", "timeout"}
    assert (up_status, up_checks["database"], up_checks["audit"]) == (200, "ok", "ok")

    answered = sum((load.answered for load in results), Counter[Key]())
    assert answered.total() > 0
    stack.services.close()  # this process's pool still holds connections the restart cut
    assert_trail_holds(answered, stack.services.audit_engine, stack.env, tmp_path / "server.log")
