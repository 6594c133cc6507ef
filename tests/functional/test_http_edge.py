"""Findings 6 and 7 of issue 10, at the service's edge: control characters, data errors,
unexpected exceptions, security headers, chunked bodies, the throttle's Redis keys.

Each test plays the request as an attacker would send it, through the real app (the
test client, or uvicorn over TCP where the transport matters), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from structlog.testing import capture_logs

from rempart.api import create_app
from rempart.api.server import running_server
from rempart.audit.models import AuditEvent
from rempart.config import Settings, load_settings
from rempart.services import Services
from rempart.store.engine import session_scope
from tests.conftest import FAST_HASHING
from tests.functional.conftest import PEER, PROXY, Login, Person, log_in

API = "/api/v1"
HEADERS = {
    "strict-transport-security": "max-age=63072000; includeSubDomains",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
NUL = "\x00"
B64 = "AAAA"
ASSERTION = {
    "id": B64,
    "rawId": B64,
    "type": "public-key",
    "response": {"clientDataJSON": B64, "authenticatorData": B64, "signature": B64},
}
ATTESTATION = {
    "id": B64,
    "rawId": B64,
    "type": "public-key",
    "response": {"clientDataJSON": B64, "attestationObject": B64},
}


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, (response.status_code, name)


def lookups_in_trail(services: Services) -> int:
    with session_scope(services.sessions) as session:
        count = session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.event == "lookup")
        )
    return int(count or 0)


# -- finding 6: control characters ---------------------------------------------------------


def nul_requests(mfa_token: str, token: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every request field that reaches the database (or a token check), with a NUL."""
    bearer = {"Authorization": f"Bearer {token}"}
    return [
        ("login", f"{API}/auth/login", {"json": {"login": f"a{NUL}b", "password": "x"}}),
        (
            "reset login",
            f"{API}/auth/password/reset",
            {
                "json": {
                    "login": f"pharmacie{NUL}",
                    "new_password": "a new long password 42",
                    "method": "recovery_code",
                    "code": "abcd-efgh",
                }
            },
        ),
        (
            "reset code",
            f"{API}/auth/password/reset",
            {
                "json": {
                    "login": "pharmacie.lilas",
                    "new_password": "a new long password 42",
                    "method": "operator_code",
                    "code": f"abcd{NUL}",
                }
            },
        ),
        (
            "totp mfa_token",
            f"{API}/auth/mfa/totp",
            {"json": {"mfa_token": mfa_token + NUL, "code": "123456"}},
        ),
        ("totp code", f"{API}/auth/mfa/totp", {"json": {"mfa_token": mfa_token, "code": NUL}}),
        (
            "recovery code",
            f"{API}/auth/mfa/recovery",
            {"json": {"mfa_token": mfa_token, "code": f"ab{NUL}cd"}},
        ),
        (
            "webauthn login handle",
            f"{API}/auth/mfa/webauthn",
            {"json": {"mfa_token": mfa_token, "handle": f"h{NUL}", "credential": ASSERTION}},
        ),
        (
            "webauthn options mfa_token",
            f"{API}/auth/mfa/webauthn/options",
            {"json": {"mfa_token": NUL + mfa_token}},
        ),
        (
            "webauthn register handle",
            f"{API}/auth/webauthn/register",
            {"json": {"handle": f"h{NUL}", "credential": ATTESTATION}, "headers": bearer},
        ),
        (
            "webauthn key label",
            f"{API}/auth/webauthn/register",
            {
                "json": {"handle": "h", "credential": ATTESTATION, "label": f"Clé{NUL}"},
                "headers": bearer,
            },
        ),
        (
            "step-up handle",
            f"{API}/auth/step-up/webauthn",
            {"json": {"handle": f"{NUL}h", "credential": ASSERTION}, "headers": bearer},
        ),
        (
            "password change",
            f"{API}/auth/password/change",
            {
                "json": {"current_password": "x", "new_password": f"new password{NUL}42"},
                "headers": bearer,
            },
        ),
        (
            "birth date",
            f"{API}/rights/lookup",
            {
                "json": {"nir": "185037505600158", "birth_date": f"1985-03-14{NUL}"},
                "headers": bearer,
            },
        ),
    ]


def test_control_characters_are_refused_before_any_code_or_database_sees_them(
    client: TestClient, services: Services, pharmacist: Login, people: list[Person]
) -> None:
    token = log_in(client, pharmacist)
    first = client.post(
        f"{API}/auth/login", json={"login": pharmacist.login, "password": pharmacist.password}
    )
    mfa_token = first.json()["mfa_token"]
    with capture_logs() as logs:
        for name, url, request in nul_requests(mfa_token, token):
            response = client.post(url, **request)
            assert response.status_code == 422, (name, response.text)
            assert response.json()["error"] == "control_characters", name
            assert NUL not in response.text
            assert_security_headers(response)
        # JSON can spell a lone surrogate, which no encoder (nor the database) takes.
        surrogate = client.post(
            f"{API}/auth/login",
            content=b'{"login": "a\\ud800b", "password": "x"}',
            headers={"Content-Type": "application/json"},
        )
        assert surrogate.status_code == 422, surrogate.text
        assert_security_headers(surrogate)
        removed = client.delete(
            f"{API}/auth/webauthn/credentials/key%00id",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert removed.status_code == 422, removed.text
    assert removed.json()["error"] == "control_characters"
    assert not [line for line in logs if line.get("log_level") == "error"], logs
    # The session is intact, and nothing was read.
    assert lookups_in_trail(services) == 0


@pytest.mark.parametrize("nir", [f"18503750560015{NUL}", f"1 85 03 75 056 001{NUL}58", "\x7f" * 15])
def test_a_nir_with_control_characters_is_invalid_before_the_guard_is_asked(
    client: TestClient, services: Services, pharmacist: Login, nir: str
) -> None:
    token = log_in(client, pharmacist)
    with capture_logs() as logs:
        response = client.post(
            f"{API}/rights/lookup",
            json={"nir": nir, "birth_date": "1985-03-14"},
            headers={"Authorization": f"Bearer {token}"},
        )
    # Not 503 guard_unavailable: the guard never saw it (no decision, no trail entry).
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_nir"
    assert response.json()["reason"] == "nir_characters"
    assert_security_headers(response)
    assert not [line for line in logs if "guard" in str(line.get("event"))], logs
    assert lookups_in_trail(services) == 0


def test_the_oauth_token_endpoint_refuses_control_characters(client: TestClient) -> None:
    for body in (
        "grant_type=client_credentials&client_id=lgc%00&client_secret=s",
        "grant_type=client_credentials&client_id=lgc&client_secret=s%01",
    ):
        response = client.post(
            f"{API}/oauth/token",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"
        assert_security_headers(response)


def test_a_control_character_in_the_user_agent_is_recorded_not_refused(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    """A header is past the schemas (an HTTP server refuses a NUL in one; a test client
    lets it through): the user agent is recorded with U+FFFD in its place, on SQLite and
    on PostgreSQL alike, and the login goes on."""
    odd = {"User-Agent": f"Firefox{NUL}"}
    first = client.post(
        f"{API}/auth/login",
        json={"login": pharmacist.login, "password": pharmacist.password},
        headers=odd,
    )
    assert first.status_code == 200, first.text
    response = client.post(
        f"{API}/auth/mfa/totp",
        json={"mfa_token": first.json()["mfa_token"], "code": pharmacist.totp.now()},
        headers=odd,
    )
    assert response.status_code == 200, response.text
    with session_scope(services.sessions) as session:
        agents = session.scalars(
            select(AuditEvent.user_agent).where(AuditEvent.event == "login_succeeded")
        ).all()
    assert agents == ["Firefox\ufffd"]


def app_with_a_query_the_database_refuses(services: Services) -> FastAPI:
    app = create_app(services=services)

    @app.post(f"{API}/test-only/nul")
    def nul() -> None:
        # A real statement on the real database with a value PostgreSQL cannot hold: what
        # a future field that escaped its schema would do.
        with session_scope(services.sessions) as session:
            session.execute(select(func.length(f"x{NUL}y")))

    return app


# SQLite stores a NUL: only PostgreSQL refuses one.
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_value_the_database_refuses_gets_a_clean_answer(services: Services) -> None:
    """Past the schemas, a value PostgreSQL cannot hold is the request's fault: 422
    invalid_value, with the headers, the type and route logged, no traceback."""
    with (
        capture_logs() as logs,
        TestClient(app_with_a_query_the_database_refuses(services), client=PEER) as client,
    ):
        response = client.post(f"{API}/test-only/nul", json={})
    assert response.status_code == 422, response.text
    assert response.json() == {
        "error": "invalid_value",
        "detail": "a value of the request cannot be stored or searched",
    }
    assert_security_headers(response)
    [refused] = [line for line in logs if line["event"] == "database_refused_value"]
    assert refused["error_type"] == "DataError"
    assert refused["route"] == f"{API}/test-only/nul"


def app_with_a_failing_route(services: Services) -> FastAPI:
    app = create_app(services=services)

    @app.post(f"{API}/test-only/boom")
    def boom() -> None:
        # What a bug could carry in its message: never in the log, never in the answer.
        raise RuntimeError("NIR 185037505600158 of Dupont")

    return app


def test_an_unexpected_exception_answers_500_with_headers_and_logs_no_traceback(
    services: Services, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    with (
        capture_logs() as logs,
        running_server(app_with_a_failing_route(services)) as url,
        httpx.Client(base_url=url) as http,
    ):
        response = http.post(f"{API}/test-only/boom", json={})
        still = http.get("/healthz")
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "detail": "an internal error occurred"}
    assert_security_headers(response)
    assert still.status_code == 200  # the server is not hurt
    [error] = [line for line in logs if line["event"] == "unhandled_error"]
    assert error == {
        "event": "unhandled_error",
        "log_level": "error",
        "error_type": "RuntimeError",
        "method": "POST",
        "route": f"{API}/test-only/boom",
    }
    [access] = [line for line in logs if line["event"] == "request" and line["status"] == 500]
    assert access["route"] == f"{API}/test-only/boom"
    out, err = capfd.readouterr()
    everything = caplog.text + out + err + repr(logs)
    assert "Traceback" not in everything
    assert "185037505600158" not in everything
    assert "Exception in ASGI application" not in everything


# -- finding 7: headers on every answer, chunked bodies -------------------------------------


def test_every_answer_carries_the_security_headers(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    answers = {
        "ok": client.get("/healthz"),
        "openapi": client.get("/openapi.json"),
        "not found": client.get("/nowhere"),
        "wrong method": client.get(f"{API}/auth/login"),
        "unauthorized": client.post(f"{API}/auth/login", json={"login": "x", "password": "y"}),
        "malformed": client.post(
            f"{API}/auth/login", content=b"{", headers={"Content-Type": "application/json"}
        ),
        "media type": client.post(
            f"{API}/auth/login", content=b"x", headers={"Content-Type": "text/plain"}
        ),
        "too large": client.post(
            f"{API}/auth/login", json={"login": "x" * 20_000, "password": "y"}
        ),
        "no content": client.post(
            f"{API}/auth/logout", headers={"Authorization": f"Bearer {token}"}
        ),
        "psc off": client.get(f"{API}/auth/psc/start"),
    }
    assert [a.status_code for a in answers.values()] == [
        200,
        200,
        404,
        405,
        401,
        400,
        415,
        413,
        204,
        404,
    ]
    for answer in answers.values():
        assert_security_headers(answer)
    # Behind the trusted proxy, the refusal of a forged address has them too.
    proxies = (ipaddress.ip_network(PROXY),)
    services.settings = services.settings.model_copy(update={"trusted_proxies": proxies})
    with TestClient(create_app(services=services), client=PEER) as behind:
        refused = behind.get("/healthz", headers={"X-Forwarded-For": "not-an-address"})
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_forwarded_for"
    assert_security_headers(refused)


def chunks(size: int, piece: int = 1000) -> Iterator[bytes]:
    body = b'{"login": "' + b"x" * size + b'", "password": "y"}'
    for start in range(0, len(body), piece):
        yield body[start : start + piece]


def test_a_chunked_body_over_the_limit_gets_413(services: Services) -> None:
    limit = services.settings.max_body_bytes
    with running_server(create_app(services=services)) as url, httpx.Client(base_url=url) as http:
        # A generator body is sent with Transfer-Encoding: chunked, no Content-Length.
        over = http.post(
            f"{API}/auth/login",
            content=chunks(limit + 10),
            headers={"Content-Type": "application/json"},
        )
        under = http.post(
            f"{API}/auth/login", content=chunks(100), headers={"Content-Type": "application/json"}
        )
    assert over.status_code == 413, over.text
    assert over.json() == {
        "error": "payload_too_large",
        "detail": f"the body must not exceed {limit} bytes",
    }
    assert_security_headers(over)
    assert under.status_code == 401, under.text  # read whole and handled as usual


# -- finding 7: the throttle's keys in Redis -----------------------------------------------


@pytest.fixture
def throttle_prefix() -> str:
    return f"test:edge:{secrets.token_hex(6)}:throttle:"


@pytest.fixture
def settings(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path, throttle_prefix: str
) -> Settings:
    overrides: dict[str, Any] = {}
    if "redis_url" in request.fixturenames:
        overrides = {
            "redis_url": request.getfixturevalue("redis_url"),
            "throttle_redis_prefix": throttle_prefix,
            "guard_redis_prefix": throttle_prefix.replace(":throttle:", ":guard:"),
        }
    return load_settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        trusted_proxies=PROXY,
        **FAST_HASHING,
        **overrides,
    )


def redis_content(client: redis.Redis, key: bytes) -> list[bytes]:
    """What a key holds (members, fields and values), as bytes."""
    kind = client.type(key)
    raw: list[Any] = []
    if kind == b"zset":
        raw = list(client.zrange(key, 0, -1))
    elif kind == b"hash":
        raw = [item for pair in dict(client.hgetall(key)).items() for item in pair]
    elif kind == b"string":
        raw = [client.get(key)]
    return [item if isinstance(item, bytes) else str(item).encode() for item in raw]


@pytest.mark.redis
def test_the_throttles_redis_keys_are_prefixed_and_hold_no_login_or_address(
    client: TestClient,
    services: Services,
    pharmacist: Login,
    redis_url: str,
    throttle_prefix: str,
) -> None:
    addresses = ["198.51.100.23", "2001:db8:77::5", "203.0.113.7"]
    logins = [pharmacist.login, "unknown.login@mail.example", "dr.martin"]
    for address in addresses:
        for login in logins:
            client.post(
                f"{API}/auth/login",
                json={"login": login, "password": "wrong password"},
                headers={"X-Forwarded-For": address},
            )
    log_in(client, pharmacist)  # a success remembers its source too
    store = redis.Redis.from_url(redis_url)
    try:
        keys = list(store.scan_iter(match=throttle_prefix + "*", count=1000))
        assert len(keys) > 10
        stored = b" ".join([*keys, *(b for key in keys for b in redis_content(store, key))])
        nothing_under_the_default = list(store.scan_iter(match="rempart:throttle:*", count=1000))
    finally:
        for key in store.scan_iter(match=throttle_prefix.rsplit(":throttle:", 1)[0] + ":*"):
            store.delete(key)
        store.close()
    assert all(key.startswith(throttle_prefix.encode()) for key in keys)
    assert not [k for k in nothing_under_the_default if b"test:edge" in k]
    for clear in [*addresses, *logins, "198.51.100", "2001:db8:77", "testclient", "127.0.0.1"]:
        assert clear.encode() not in stored, clear
    assert pharmacist.login.casefold().encode() not in stored.lower()
