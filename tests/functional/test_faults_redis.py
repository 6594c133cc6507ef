"""Redis stopped under load, where it holds the guard's state and the login throttle: the
guard and the throttle fail closed while it is away, and both work again when it is back
on the same port, without a restart of Rempart.

``rempart serve --workers 2`` on the private PostgreSQL cluster, ``REMPART_REDIS_URL`` a
private Redis without persistence (it comes back empty: the worst case). The guard is on,
in its learning window (``REMPART_GUARD_LEARN_UNTIL`` tomorrow: every lookup is decided,
recorded and learnt from, in Redis, but a robot-speed test load is not stopped for being
one). Three threads drive lookups, one guesses a password. While Redis is down, the test
itself sends lookups and wrong passwords one by one: each must be ``503
guard_unavailable`` / ``503 throttle_unavailable`` (a ``401`` would be a password checked
without a throttle: unlimited guessing during an outage). Afterwards every lookup thread
is served again, a fresh login goes through, every answer has its audit entry and the
chains verify.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
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

LOOKUP_THREADS = 3
WARM_SECONDS = 1.5
PROBES_DURING_OUTAGE = 15
RECOVERY_SECONDS = 30.0
WRONG = "not the password at all"


@pytest.fixture
def stack(private_pg: PrivatePostgres, fault_world: Path, tmp_path: Path) -> Iterator[Stack]:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    with fault_stack(
        private_pg, fault_world, tmp_path, guard_enabled="true", guard_learn_until=tomorrow
    ) as built:
        yield built


def _code(response: httpx.Response) -> str | None:
    body = response.json()
    return body.get("error") if isinstance(body, dict) else None


def _guesses(base: str, target: Login, stop: threading.Event, load: Load) -> Load:
    """A password guesser: throttled (401 then 429) while Redis is there, refused (503)
    while it is not."""
    with httpx.Client(base_url=base, timeout=10) as http:
        while not stop.is_set():
            response = http.post(
                "/api/v1/auth/login", json={"login": target.login, "password": WRONG}
            )
            load.statuses[response.status_code] += 1
            code = _code(response)
            if response.status_code in (401, 429) or code == "throttle_unavailable":
                load.refusals[f"{response.status_code} {code}"] += 1
            else:
                load.unexpected.append(f"{response.status_code} {response.text[:200]}")
            time.sleep(0.05)
    return load


def test_redis_stopped_under_load_fails_the_guard_and_the_throttle_closed_then_recovers(
    stack: Stack, fault_world: Path, tmp_path: Path
) -> None:
    reader = make_login(stack.services, "ph.reader")
    target = make_login(stack.services, "ph.target")
    later = make_login(stack.services, "ph.later")
    probes = probes_of(fault_world, stack.settings.keys.pseudonym_key, count=200)
    found = [p for p in probes if p.key[2] == "ok"]
    during: Counter[str] = Counter()
    back_at: list[float] = []
    loads: list[Load] = []
    readiness: list[tuple[int, dict[str, str]]] = []

    with serve(stack.env, tmp_path / "server.log") as server:
        auth = log_in(server.base, reader, reader.totp.now())

        def fault() -> None:
            time.sleep(WARM_SECONDS)
            stack.redis.stop()
            with httpx.Client(base_url=server.base, timeout=10) as http:
                ready = http.get("/health/ready")  # what a load balancer sees meanwhile
                readiness.append((ready.status_code, ready.json()["checks"]))
                for probe in found[:PROBES_DURING_OUTAGE]:
                    guess = http.post(
                        "/api/v1/auth/login", json={"login": target.login, "password": WRONG}
                    )
                    during[f"login {guess.status_code} {_code(guess)}"] += 1
                    right = http.post(
                        "/api/v1/auth/login",
                        json={"login": later.login, "password": later.password},
                    )
                    during[f"login {right.status_code} {_code(right)}"] += 1
                    lookup = http.post(
                        "/api/v1/rights/lookup",
                        json={"nir": probe.nir, "birth_date": probe.birth_date},
                        headers=auth,
                    )
                    during[f"lookup {lookup.status_code} {_code(lookup)}"] += 1
            stack.redis.start()  # the same port, empty
            back_at.append(time.monotonic())
            deadline = back_at[0] + RECOVERY_SECONDS
            while time.monotonic() < deadline and not all(
                load.last_ok > back_at[0] for load in loads[1:]
            ):
                time.sleep(0.2)

        def worker(seed: int, stop: threading.Event) -> Load:
            load = Load()
            loads.append(load)
            if seed == 1000:
                return _guesses(server.base, target, stop, load)
            return drive(
                server.base,
                auth,
                probes,
                seed,
                stop,
                refusals=frozenset({"guard_unavailable"}),
                through_outages=True,
                deadline_seconds=WARM_SECONDS + RECOVERY_SECONDS + 30,
                max_requests=100_000,
                pause=0.02,
                into=load,
            )

        results = run_load(LOOKUP_THREADS + 1, worker, fault)
        assert server.process.poll() is None, "the server died during the outage"
        served_again = [load.last_ok > back_at[0] for load in loads[1:]]
        recovered_in = max(load.last_ok for load in loads[1:]) - back_at[0]
        # A login from scratch after the outage: the throttle is back.
        fresh = log_in(server.base, later, later.totp.now())
        again = httpx.post(
            f"{server.base}/api/v1/rights/lookup",
            json={"nir": found[0].nir, "birth_date": found[0].birth_date},
            headers=fresh,
            timeout=10,
        )
        assert again.status_code == 200, again.text
        ready_again = httpx.get(f"{server.base}/health/ready", timeout=10)
        readiness.append((ready_again.status_code, ready_again.json()["checks"]))

    # The probe told the truth: not ready while Redis was away, ready after.
    assert readiness[0][0] == 503
    assert readiness[0][1]["redis"] in {"unreachable", "timeout"}
    assert readiness[1] == (200, {**readiness[1][1], "redis": "ok", "database": "ok"})

    statuses = sum((load.statuses for load in results), Counter[int]())
    refusals = sum((load.refusals for load in results), Counter[str]())
    unexpected = [line for load in results for line in load.unexpected]
    print(  # the figures docs/reliability.md quotes (pytest -rP shows them)
        f"load answers {statuses.total()} {dict(statuses)}, refusals {dict(refusals)}; "
        f"during the outage {dict(during)}; lookups served again within "
        f"{recovered_in:.2f} s of Redis' start"
    )
    assert not unexpected, f"unexpected answers {statuses}: {unexpected[:5]}"
    # While Redis was away: nothing but refusals, and no password was checked unthrottled.
    assert during == {
        "login 503 throttle_unavailable": 2 * PROBES_DURING_OUTAGE,
        "lookup 503 guard_unavailable": PROBES_DURING_OUTAGE,
    }
    assert all(served_again), "a lookup thread was not served again after Redis came back"

    answered = sum((load.answered for load in results), Counter[Key]())
    answered[found[0].key] += 1
    assert_trail_holds(answered, stack.services.audit_engine, stack.env, tmp_path / "server.log")
