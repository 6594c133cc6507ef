"""Credential stuffing and targeted lockout through the real HTTP app.

Each test runs on SQLite and PostgreSQL, with the throttle in memory and in the real
Redis server. The throttle's clock is one the test advances: nothing sleeps. Client
addresses come from ``X-Forwarded-For`` (the test client is the trusted proxy, as deployed).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from rempart.config import Settings, load_settings
from rempart.services import Services
from tests.conftest import FAST_HASHING
from tests.functional.conftest import PROXY, Login, fresh_throttle, make_login, totp_code

PHARMACY = "192.0.2.10"  # where the professional works from
ROBOT = "198.51.100.66"


class FakeClock:
    def __init__(self) -> None:
        self.now = float(int(time.time()) // 60 * 60 + 1)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        trusted_proxies=PROXY,
        **FAST_HASHING,
    )


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def clock(request: pytest.FixtureRequest, services: Services) -> Iterator[FakeClock]:
    """The app's throttle, in memory or in Redis (a key prefix of its own), on a test clock."""
    clock = FakeClock()
    with fresh_throttle(request, services, clock=clock):
        yield clock


def password_step(client: TestClient, login: str, password: str, address: str) -> httpx.Response:
    answer: httpx.Response = client.post(
        "/api/v1/auth/login",
        json={"login": login, "password": password},
        headers={"X-Forwarded-For": address},
    )
    return answer


def full_login(client: TestClient, login: Login, address: str, *, step: int = 0) -> httpx.Response:
    """Password then TOTP; ``step`` picks a later code, since a code is never accepted twice."""
    first = password_step(client, login.login, login.password, address)
    if first.status_code != 200:
        return first
    second: httpx.Response = client.post(
        "/api/v1/auth/mfa/totp",
        json={
            "mfa_token": first.json()["mfa_token"],
            "code": totp_code(login, step),
        },
        headers={"X-Forwarded-For": address},
    )
    return second


def test_a_stuffing_run_is_stopped_before_the_end_of_its_list(
    client: TestClient, services: Services, pharmacist: Login, clock: FakeClock
) -> None:
    limit = services.settings.throttle_address_failed_logins
    assert full_login(client, pharmacist, PHARMACY).status_code == 200
    colleague = make_login(services, "officine.des.halles")
    # The robot's list: leaked e-mail credentials, one attempt per account. Most logins
    # do not exist here; the pharmacist's password is wrong; the colleague's is right,
    # far down the list.
    targets = [(f"pro{i}@mail.example", f"Leaked-password-{i}") for i in range(30)]
    targets[2] = (pharmacist.login, "her old mailbox password")
    targets[25] = (colleague.login, colleague.password)
    answers = [password_step(client, login, password, ROBOT) for login, password in targets]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [401] * limit + [429] * (len(targets) - limit)
    # The same answers whether the login exists or not.
    assert answers[2].json() == answers[3].json()
    assert {answer.json()["error"] for answer in answers[limit:]} == {"too_many_attempts"}
    retry_after = int(answers[-1].headers["retry-after"])
    assert 0 < retry_after <= services.settings.throttle_window_seconds
    # The leaked right password was never even checked; its owner logs in from their place.
    assert full_login(client, colleague, "203.0.113.40").status_code == 200
    # And the pharmacist, whose login was on the list, logs in from her pharmacy.
    assert full_login(client, pharmacist, PHARMACY, step=1).status_code == 200


def test_rotating_addresses_within_a_network_does_not_help_the_robot(
    client: TestClient, services: Services, clock: FakeClock
) -> None:
    limit = services.settings.throttle_network_failed_logins
    statuses = [
        password_step(
            client, f"pro{i}@mail.example", "Leaked-password", f"198.51.100.{i + 1}"
        ).status_code
        for i in range(limit + 10)
    ]
    assert statuses[:limit] == [401] * limit
    assert set(statuses[limit:]) == {429}
    assert password_step(client, "pro99@mail.example", "x" * 12, "203.0.113.9").status_code == 401


def test_a_targeted_lockout_from_elsewhere_does_not_lock_the_owner_out(
    client: TestClient, services: Services, pharmacist: Login, clock: FakeClock
) -> None:
    settings = services.settings
    assert full_login(client, pharmacist, PHARMACY).status_code == 200
    # Someone fails on her login over and over, from many places.
    waits = []
    for i in range(60):
        answer = password_step(client, pharmacist.login, f"guess-{i}-wrong", f"10.{i % 20}.7.1")
        assert answer.status_code in (401, 429)
        if answer.status_code == 429:
            waits.append(int(answer.headers["retry-after"]))
    assert waits  # the guessing was slowed down
    assert max(waits) <= settings.throttle_backoff_cap_seconds
    # At her pharmacy she is not held up at all.
    assert full_login(client, pharmacist, PHARMACY, step=1).status_code == 200
    # Travelling, she waits at most the low account-wide cap, then gets in.
    away = password_step(client, pharmacist.login, pharmacist.password, "203.0.113.77")
    assert away.status_code == 429
    wait = int(away.headers["retry-after"])
    assert wait <= settings.throttle_account_wide_cap_seconds
    clock.advance(wait)
    assert (
        password_step(client, pharmacist.login, pharmacist.password, "203.0.113.77").status_code
        == 200
    )


def test_an_attacker_at_the_owner_address_holds_them_back_at_most_the_cap(
    client: TestClient, services: Services, pharmacist: Login, clock: FakeClock
) -> None:
    cap = services.settings.throttle_backoff_cap_seconds
    free = services.settings.throttle_account_failures
    for i in range(free):
        assert password_step(client, pharmacist.login, f"wrong-{i}", PHARMACY).status_code == 401
    # The attacker takes every turn the back-off allows: the waits grow, up to the cap.
    waits = []
    for i in range(8):
        refused = password_step(client, pharmacist.login, pharmacist.password, PHARMACY)
        assert refused.status_code == 429
        waits.append(int(refused.headers["retry-after"]))
        clock.advance(waits[-1])
        assert password_step(client, pharmacist.login, f"again-{i}", PHARMACY).status_code == 401
    assert waits == sorted(waits)
    assert waits[0] < waits[-1] == cap
    # Never a lock: after at most the cap, the owner gets her turn and logs in.
    refused = password_step(client, pharmacist.login, pharmacist.password, PHARMACY)
    assert int(refused.headers["retry-after"]) <= cap
    clock.advance(int(refused.headers["retry-after"]))
    assert full_login(client, pharmacist, PHARMACY).status_code == 200
