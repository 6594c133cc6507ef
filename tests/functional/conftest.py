"""Fixtures for functional tests: the real app on a real database, a few people, an account."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyotp
import pytest
import redis
from fastapi.testclient import TestClient

from rempart.api import create_app
from rempart.auth.throttle import (
    CounterStore,
    LoginThrottle,
    MemoryCounterStore,
    RedisCounterStore,
    ThrottleLimits,
)
from rempart.nir import NIR, make_nir
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Insured, Professional
from rempart.world.generator import generate_world
from tests.functional.private_servers import PrivatePostgres, private_postgres

PASSWORD = "correct horse battery staple 42"
# The test client connects from loopback, where a deployment's reverse proxy would be:
# tests that play remote clients with X-Forwarded-For set REMPART_TRUSTED_PROXIES to it.
PROXY = "127.0.0.1"
PEER = (PROXY, 50000)


@dataclass(frozen=True)
class Person:
    nir: NIR
    birth_date: date
    last_name: str


@dataclass(frozen=True)
class Login:
    account_id: str
    login: str
    password: str
    totp: pyotp.TOTP


@pytest.fixture
def people(services: Services) -> list[Person]:
    """Three insured persons, one with a treating doctor, one born in Corsica."""
    specs = [
        (1, date(1985, 3, 14), "75", "056", "Dupont", "dr-martin", True),
        (2, date(1955, 8, 2), "2A", "073", "Santoni", None, False),
        (2, date(2001, 12, 30), "69", "123", "Lefebvre", "dr-martin", False),
    ]
    persons = []
    with session_scope(services.sessions) as session:
        session.add(
            Professional(
                account_id="dr-martin",
                rpps="10003456789",
                profession="generaliste",
                department="75",
                organization_id=None,
                last_name="Martin",
                first_name="Claire",
                email="claire.martin@example.fr",
            )
        )
        session.flush()
        for order, (sex, born, dept, commune, last, doctor, ald) in enumerate(specs, start=1):
            nir = make_nir(
                sex=sex,
                year=born.year,
                month=born.month,
                department=dept,
                commune=commune,
                order=order,
            )
            session.add(
                Insured(
                    nir=nir.value,
                    birth_date=born,
                    sex=sex,
                    last_name=last,
                    first_name="Camille",
                    department=dept,
                    treating_doctor=doctor,
                    c2s=order == 3,
                    ame=False,
                    ald=ald,
                    email=None,
                    street="3 rue des Lilas",
                    postcode="75011",
                    city="Paris",
                )
            )
            persons.append(Person(nir=nir, birth_date=born, last_name=last))
    return persons


def make_login(services: Services, login: str, account_id: str | None = None) -> Login:
    with session_scope(services.sessions) as session:
        created = services.auth.create_account(
            session,
            login=login,
            password=PASSWORD,
            profession="pharmacie",
            account_id=account_id,
            email=f"{login}@officine.example",
        )
    secret = pyotp.parse_uri(created.otpauth_uri).secret
    return Login(
        account_id=created.account_id, login=login, password=PASSWORD, totp=pyotp.TOTP(secret)
    )


@pytest.fixture
def pharmacist(services: Services) -> Login:
    return make_login(services, "pharmacie.lilas", account_id="ph-lilas")


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services=services), client=PEER) as test_client:
        yield test_client


def totp_code(login: Login, ahead: int = 0) -> str:
    """The TOTP code ``ahead`` steps of 30 s from now (negative: a past step), never
    computed in the last 2 s of a step: a code computed just before a boundary reaches the
    server after it, one step older than meant (``-1`` then falls out of the window)."""
    left = 30 - time.time() % 30
    if left < 2:
        time.sleep(left + 0.05)
    code: str = login.totp.at(time.time() + 30 * ahead)
    return code


def log_in(client: TestClient, login: Login) -> str:
    """The whole login: password, then a TOTP code. Returns the bearer token."""
    first = client.post(
        "/api/v1/auth/login", json={"login": login.login, "password": login.password}
    )
    assert first.status_code == 200, first.text
    second = client.post(
        "/api/v1/auth/mfa/totp",
        json={"mfa_token": first.json()["mfa_token"], "code": login.totp.now()},
    )
    assert second.status_code == 200, second.text
    token: str = second.json()["access_token"]
    return token


@contextmanager
def fresh_throttle(
    request: pytest.FixtureRequest,
    services: Services,
    *,
    clock: Callable[[], float] = time.time,
) -> Iterator[str]:
    """Gives the app a fresh throttle with the shipped limits, in memory or in the real
    Redis (``request.param``: ``memory`` or ``redis``) under a key prefix of its own,
    whose keys are removed afterwards. Yields the backend's name."""
    store: CounterStore
    client: redis.Redis | None = None
    prefix = f"test:throttle:{secrets.token_hex(6)}:"
    if request.param == "memory":
        store = MemoryCounterStore()
    else:
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        store = RedisCounterStore(client, prefix=prefix)
    services.auth.throttle = LoginThrottle(
        store,
        ThrottleLimits.from_settings(services.settings),
        secret=services.settings.keys.for_purpose("throttle"),
        clock=clock,
    )
    try:
        yield str(request.param)
    finally:
        if client is not None:
            for key in client.scan_iter(match=prefix + "*"):
                client.delete(key)
            client.close()


@contextmanager
def guard_state_settings(request: pytest.FixtureRequest, name: str) -> Iterator[dict[str, str]]:
    """Settings for the guard's state of a test parametrized ``memory`` | ``redis``: none
    (in process), or the real Redis under a prefix of its own, deleted afterwards."""
    if request.param == "memory":
        yield {}
        return
    url: str = request.getfixturevalue("redis_url")
    prefix = f"test:{name}:{secrets.token_hex(6)}:"
    yield {"redis_url": url, "guard_redis_prefix": prefix}
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster the fault tests own (they stop, restart and starve it), started
    once for the run; each test makes databases of its own in it."""
    with private_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def fault_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The world the fault tests load: a thousand persons, a week of traffic."""
    out = tmp_path_factory.mktemp("fault-world")
    generate_world(out, insured=1_000, professionals=20, days=7, seed=19)
    return out
