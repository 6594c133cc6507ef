"""Load shedding over real TCP: past ``max_in_flight`` requests in progress, a worker
refuses at once with ``503 overloaded`` and ``Retry-After``, in the door's own error
format, touches nothing, never sheds its probes, and serves again once a slot is free.

A request is held in progress the way a slow client holds one: its headers sent, its
body not yet (the body is read after the shedding decision, so the request counts).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from rempart.api import create_app
from rempart.api.server import running_server
from rempart.audit.models import AuditEvent
from rempart.config import load_settings
from rempart.services import Services
from rempart.store.migrate import upgrade
from tests.conftest import FAST_HASHING

LOGIN_BODY = b'{"login": "dr.martin", "password": "not the password"}'


@contextmanager
def serving(tmp_path: Path, **limits: int) -> Iterator[tuple[str, Services]]:
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'rempart.db'}",
        data_dir=tmp_path / "data",
        overload_retry_after_seconds=3,
        **limits,
        **FAST_HASHING,
    )
    services = Services(settings)
    upgrade(services.engine, schema="data")
    upgrade(services.audit_engine, schema="audit")
    with running_server(create_app(services=services)) as url:
        yield url, services


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[tuple[str, Services]]:
    with serving(tmp_path, max_in_flight=2) as served:
        yield served


@contextmanager
def held_request(url: str, path: str = "/api/v1/auth/login") -> Iterator[socket.socket]:
    """A POST whose body is still on its way: in progress until :func:`finish` sends it."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    try:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: test\r\n".encode()
            + b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(LOGIN_BODY)}\r\n\r\n".encode()
            + LOGIN_BODY[:10]
        )
        # Let the server read these headers before anything else is sent: a probe that
        # arrived first would take the slot and this request would be the one shed.
        time.sleep(0.3)
        yield sock
    finally:
        sock.close()


def finish(sock: socket.socket) -> int:
    """Sends the rest of the held body; the status line of the answer."""
    sock.sendall(LOGIN_BODY[10:])
    head = sock.recv(4096).split(b"\r\n", 1)[0]
    return int(head.split()[1])


def wait_until_in_flight(client: httpx.Client, count: int, probe: str = "/api/v1/no-route") -> None:
    """The held requests reach the server asynchronously: wait until a probe of the
    next one (a POST to ``probe``) is refused, i.e. until ``count`` are in progress."""
    for _ in range(200):
        if client.post(probe, content=b"{}", headers=_json()).status_code == 503:
            return
        # A 404 answered in between took and freed a slot: nothing is left over.
        time.sleep(0.02)
    raise AssertionError(f"{count} held requests were never counted in progress")


def test_past_its_capacity_a_worker_refuses_at_once_then_serves_again(
    base_url: tuple[str, Services],
) -> None:
    url, services = base_url
    with httpx.Client(base_url=url, timeout=10) as client:
        shed_before = shed_so_far(client, "worker")
        with held_request(url) as first, held_request(url) as second:
            wait_until_in_flight(client, 2)
            refused = client.post("/api/v1/auth/login", content=LOGIN_BODY, headers=_json())
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "3"
            assert refused.json() == {
                "error": "overloaded",
                "detail": "the service is overloaded; retry in 3 seconds",
            }
            # The security headers are on a shed answer too (the access log adds them).
            assert refused.headers["x-content-type-options"] == "nosniff"

            # The FHIR facade answers in its own format; a page gets a page, in French.
            fhir = client.post(
                "/fhir/Patient/_search",
                content=b"identifier=x",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert fhir.status_code == 503
            assert fhir.headers["content-type"].startswith("application/fhir+json")
            coding = fhir.json()["issue"][0]["details"]["coding"][0]
            assert coding == {"system": "urn:rempart:error", "code": "overloaded"}
            page = client.get("/verifier", headers={"Accept": "text/html"})
            assert page.status_code == 503
            assert "Service momentanément surchargé" in page.text
            assert page.headers["retry-after"] == "3"

            # The probes are never shed: the monitoring sees the truth when it matters,
            # and the metrics count what was shed (the probe's refusal, then three).
            assert client.get("/healthz").status_code == 200
            assert client.get("/health/live").status_code == 200
            assert shed_so_far(client, "worker") >= shed_before + 4

            # The held requests were not harmed: each gets its real answer (a wrong
            # password), and then there is room again.
            assert finish(first) == 401
            assert finish(second) == 401
        again = client.post("/api/v1/auth/login", content=LOGIN_BODY, headers=_json())
        assert again.status_code == 401
        assert again.json()["error"] == "invalid_credentials"

        # A shed request touched nothing: the trail holds what the three served logins
        # left, and one more login shows what one leaves.
        served = _audit_rows(services)
        assert client.post("/api/v1/auth/login", content=LOGIN_BODY, headers=_json())
        per_login = _audit_rows(services) - served
    assert per_login >= 1
    assert served == 3 * per_login


def _audit_rows(services: Services) -> int:
    with services.audit_engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def shed_so_far(client: httpx.Client, lane: str) -> float:
    """The ``rempart_requests_shed_total`` of ``lane`` on the server's own /metrics."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'rempart_requests_shed_total{{lane="{lane}"}}'):
            return float(line.split()[-1])
    raise AssertionError(f"no shed counter for lane {lane}")


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}


MESSAGE = {"channel": "sms", "sender": "36 01", "text": "Votre carte Vitale expire."}


def test_the_anonymous_public_checks_are_shed_in_their_own_lane(tmp_path: Path) -> None:
    """A flood of public checks (no account needed; a long message costs CPU) fills its
    own lane and is shed there, while the professionals' requests still get through."""
    with (
        serving(tmp_path, max_in_flight=4, max_public_in_flight=1) as (url, _),
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        public_before = shed_so_far(client, "public")
        worker_before = shed_so_far(client, "worker")
        with held_request(url, "/api/v1/messages/check") as held:
            wait_until_in_flight(client, 1, probe="/api/v1/messages/check")
            refused = client.post("/api/v1/messages/check", json=MESSAGE)
            assert refused.status_code == 503
            assert refused.json()["error"] == "overloaded"
            assert refused.headers["retry-after"] == "3"
            notice = client.post("/api/v1/notices/verify", json={"code": "ABCD-EFGH"})
            assert notice.status_code == 503
            page = client.post(
                "/verifier/message", data={"channel": "sms"}, headers={"Accept": "text/html"}
            )
            assert page.status_code == 503
            assert "Service momentanément surchargé" in page.text
            # Outside the lane, a professional's request is served as usual.
            login = client.post("/api/v1/auth/login", content=LOGIN_BODY, headers=_json())
            assert login.status_code == 401
            # The public page itself (a GET) is not in the lane: only the checks are.
            assert client.get("/verifier/message").status_code == 200
            assert shed_so_far(client, "public") >= public_before + 4
            assert shed_so_far(client, "worker") == worker_before
            # The held check ends (the login body is not a message: refused), and the
            # lane has room again.
            assert finish(held) == 422
        checked = client.post("/api/v1/messages/check", json=MESSAGE)
        assert checked.status_code == 200, checked.text
        assert checked.json()["verdict"] in {"phishing", "suspicious", "genuine-looking"}
