"""Finding 2 of issue 10: the client address cannot be forged with ``X-Forwarded-For``.

The attacks are played over real TCP against the app served by uvicorn with the
configuration of ``rempart serve`` (:func:`rempart.api.server.running_server`), on
127.0.0.1. The insurer's reverse proxy is played by a client bound to 127.0.0.2 (the
whole 127/8 is loopback on Linux), the only trusted proxy: what it appends to
``X-Forwarded-For`` is the address it saw. The attacker either connects directly from
127.0.0.1 (an untrusted peer) or comes through the proxy with a forged header.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from rempart.api import create_app
from rempart.api.server import running_server, uvicorn_options
from rempart.audit.models import AuditEvent
from rempart.config import Settings, load_settings
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import MailOutbox
from tests.conftest import FAST_HASHING
from tests.functional.conftest import Login, Person, totp_code
from tests.functional.test_guard_inline import ORIGIN, build_town, lookup_entries

PROXY_HOST = "127.0.0.2"  # the trusted reverse proxy
ATTACKER_HOST = "127.0.0.1"  # a peer that is not a proxy
OFFICE = {"X-Forwarded-For": "203.0.113.20", "User-Agent": "LogicielOfficine/5.2"}
ROBOT_ADDRESS = "198.51.100.23"
API = "/api/v1/auth"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        trusted_proxies=PROXY_HOST,
        webauthn_rp_id="testserver",
        webauthn_origins=[ORIGIN],
        **FAST_HASHING,
    )


@pytest.fixture
def base_url(services: Services) -> Iterator[str]:
    with running_server(create_app(services=services)) as url:
        yield url


def http_from(base_url: str, source: str) -> httpx.Client:
    """A client whose TCP connections come from ``source`` (a loopback address)."""
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=base_url, transport=transport, timeout=30)


@pytest.fixture
def proxy(base_url: str) -> Iterator[httpx.Client]:
    with http_from(base_url, PROXY_HOST) as client:
        yield client


@pytest.fixture
def direct(base_url: str) -> Iterator[httpx.Client]:
    with http_from(base_url, ATTACKER_HOST) as client:
        yield client


def test_serve_leaves_the_proxy_headers_to_rempart() -> None:
    options = uvicorn_options(host="127.0.0.1", port=8000, log_level="info")
    # uvicorn's default would rewrite the address from X-Forwarded-For for any loopback peer.
    assert options["proxy_headers"] is False
    assert options["server_header"] is False


def unknown_login(http: httpx.Client, i: int, headers: dict[str, str]) -> int:
    response = http.post(
        f"{API}/login",
        json={"login": f"nobody{i}@mail.example", "password": "Leaked-password-1"},
        headers=headers,
    )
    return response.status_code


def test_rotating_forged_addresses_do_not_escape_the_login_throttle(
    services: Services, settings: Settings, direct: httpx.Client
) -> None:
    """(a) 40 unknown logins, each with another forged X-Forwarded-For, from a peer that
    is not a trusted proxy: throttled exactly as the same run without any header."""
    forged = [unknown_login(direct, i, {"X-Forwarded-For": f"203.0.113.{i}"}) for i in range(40)]
    # The same run without the header, against a fresh throttle (another process).
    plain_services = Services(settings)
    app = create_app(services=plain_services)
    with running_server(app) as url, http_from(url, ATTACKER_HOST) as http:
        plain = [unknown_login(http, i, {}) for i in range(40)]
    plain_services.close()
    limit = settings.throttle_address_failed_logins
    assert forged == plain
    assert forged[:limit] == [401] * limit
    assert set(forged[limit:]) == {429}, forged
    # Every attempt is recorded with the peer's own address, whatever the header said.
    with session_scope(services.sessions) as session:
        addresses = set(session.scalars(select(AuditEvent.client_ip)))
    assert addresses == {ATTACKER_HOST}


def totp_login(http: httpx.Client, login: Login, headers: dict[str, str], *, ahead: int) -> str:
    first = http.post(
        f"{API}/login", json={"login": login.login, "password": login.password}, headers=headers
    )
    assert first.status_code == 200, first.text
    second = http.post(
        f"{API}/mfa/totp",
        json={
            "mfa_token": first.json()["mfa_token"],
            "code": totp_code(login, ahead),
        },
        headers=headers,
    )
    assert second.status_code == 200, second.text
    token: str = second.json()["access_token"]
    return token


def new_origin_notices(services: Services) -> list[str]:
    with session_scope(services.sessions) as session:
        return list(
            session.scalars(
                select(MailOutbox.body_text).where(MailOutbox.kind == "login_new_origin")
            )
        )


def events_of(services: Services, event: str) -> list[AuditEvent]:
    with session_scope(services.sessions) as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.ts_us)
            )
        )


def test_behind_the_proxy_the_right_most_untrusted_entry_is_the_client(
    services: Services, pharmacist: Login, proxy: httpx.Client
) -> None:
    """(b) The robot copies the owner's address (read in a notice) into its own
    X-Forwarded-For; the proxy appends the address it really saw. The forged left-most
    entry is ignored: the trail, the new-origin notice and the access log name the robot."""
    totp_login(proxy, pharmacist, OFFICE, ahead=-1)
    # What the robot sent, then what the proxies added: the address the first one saw,
    # then (on a second header line) a hop between two proxies of the insurer.
    headers = [
        ("X-Forwarded-For", f"{OFFICE['X-Forwarded-For']}, {ROBOT_ADDRESS}"),
        ("X-Forwarded-For", PROXY_HOST),
        ("User-Agent", "python-requests/2.32.3"),
    ]
    with capture_logs() as logs:
        first = proxy.post(
            f"{API}/login",
            json={"login": pharmacist.login, "password": pharmacist.password},
            headers=headers,
        )
        assert first.status_code == 200, first.text
        second = proxy.post(
            f"{API}/mfa/totp",
            json={"mfa_token": first.json()["mfa_token"], "code": pharmacist.totp.now()},
            headers=headers,
        )
    assert second.status_code == 200, second.text

    [new_origin] = events_of(services, "login_new_origin")
    assert new_origin.client_ip == ROBOT_ADDRESS
    assert "network" in new_origin.reasons.split(",")
    [notice] = new_origin_notices(services)
    assert ROBOT_ADDRESS in notice
    assert OFFICE["X-Forwarded-For"] not in notice
    logins = events_of(services, "login_succeeded")
    assert [e.client_ip for e in logins] == [OFFICE["X-Forwarded-For"], ROBOT_ADDRESS]
    access = [line for line in logs if line["event"] == "request"]
    assert [line["client"] for line in access] == [ROBOT_ADDRESS, ROBOT_ADDRESS]


@pytest.mark.parametrize(
    "forwarded",
    [
        "not-an-ip",
        f"{ROBOT_ADDRESS}, unknown",
        f"{ROBOT_ADDRESS},",
        "198.51.100.300",
        "fe80::1%eth0",
    ],
)
def test_a_forwarded_entry_that_is_not_an_address_is_refused(
    proxy: httpx.Client, forwarded: str
) -> None:
    """(c) Where it is read (right of the client), an entry must be an IP address."""
    response = proxy.post(
        f"{API}/login",
        json={"login": "someone", "password": "whatever"},
        headers={"X-Forwarded-For": forwarded},
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_forwarded_for",
        "detail": "X-Forwarded-For holds an entry that is not an IP address",
    }


@pytest.mark.parametrize(
    ("forwarded", "seen"),
    [
        (f"junk, {ROBOT_ADDRESS}", ROBOT_ADDRESS),  # left of the client: the client's own text
        ("[2001:db8::7]:443", "2001:db8::7"),
        (f"{ROBOT_ADDRESS}:4711", ROBOT_ADDRESS),
        (f"::ffff:{ROBOT_ADDRESS}", ROBOT_ADDRESS),
        (PROXY_HOST, PROXY_HOST),  # every entry a proxy: the left-most
        ("", PROXY_HOST),
    ],
)
def test_what_the_proxy_forwards_is_read_as_an_address(
    services: Services, proxy: httpx.Client, direct: httpx.Client, forwarded: str, seen: str
) -> None:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    response = proxy.post(f"{API}/login", json={"login": "x", "password": "y"}, headers=headers)
    assert response.status_code == 401
    # From a peer that is not a proxy, the header is not even read.
    junk = direct.post(
        f"{API}/login", json={"login": "x", "password": "y"}, headers={"X-Forwarded-For": "junk"}
    )
    assert junk.status_code == 401
    failed = events_of(services, "login_failed")
    assert [e.client_ip for e in failed] == [seen, ATTACKER_HOST]


def counter_yesterday(
    http: httpx.Client, services: Services, login: Login, customers: list[Person]
) -> None:
    """The owner's ordinary use the day before, through the proxy: the guard knows the
    pharmacy's network and its software (as in test_guard_inline)."""
    guard = services.guard
    assert guard is not None
    clock = guard.clock
    yesterday = (int(time.time()) // 86_400 - 1) * 86_400
    moments = itertools.count(yesterday * 1_000_000 + 9 * 3_600_000_000, 600_000_000)
    guard.clock = lambda: next(moments)
    try:
        token = totp_login(http, login, OFFICE, ahead=-1)
        for person in customers:
            assert lookup(http, token, person, OFFICE).status_code == 200
    finally:
        guard.clock = clock


def lookup(http: httpx.Client, token: str, person: Person, headers: dict[str, str]) -> Any:
    return http.post(
        "/api/v1/rights/lookup",
        json={"nir": person.nir.value, "birth_date": person.birth_date.isoformat()},
        headers={"Authorization": f"Bearer {token}", **headers},
    )


def test_forging_the_owners_address_does_not_defeat_the_strangers_rule(
    services: Services, pharmacist: Login, proxy: httpx.Client, direct: httpx.Client
) -> None:
    """(d) The robot holds the password and a relayed code, and copies the owner's
    address and user agent into its headers, connecting straight to the service: the
    guard sees the robot's real address, a network the account never used, and
    contains it as it contains any robot (the issue measured 14 of 14 lookups allowed)."""
    customers, strangers = build_town(services)
    counter_yesterday(proxy, services, pharmacist, customers)
    history = len(lookup_entries(services, "ph-lilas"))
    robot = totp_login(direct, pharmacist, OFFICE, ahead=1)
    statuses = []
    for person in strangers:
        statuses.append(lookup(direct, robot, person, OFFICE).status_code)
        if statuses[-1] == 403:
            break
    assert statuses.count(200) <= 1, statuses
    assert 401 in statuses, statuses
    assert statuses[-1] == 403, statuses
    entries = lookup_entries(services, "ph-lilas")[history:]
    assert {e.client_ip for e in entries} == {ATTACKER_HOST}
