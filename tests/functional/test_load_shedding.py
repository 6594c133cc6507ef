"""Load shedding: past ``max_in_flight`` requests in progress, a worker refuses at once
with ``503 overloaded`` and ``Retry-After``, in the door's own error format, touches
nothing, never sheds its probes, serves again once a slot is free, and counts what it
shed; a slow body holds no slot; the anonymous public checks are shed in their own lane.

Over real TCP, requests are held in progress the way a hung dependency holds them: the
Pro Santé Connect login start asks the provider's discovery document, and the provider
here is a port that accepts and never answers, until the test closes it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rempart.api import create_app
from rempart.api.server import running_server
from rempart.api.shedding import LoadSheddingMiddleware
from rempart.audit.models import AuditEvent
from rempart.config import load_settings
from rempart.services import Services
from rempart.store.migrate import upgrade
from tests.conftest import FAST_HASHING

LOGIN_BODY = b'{"login": "dr.martin", "password": "not the password"}'
PSC_START = "/api/v1/auth/psc/start"


@contextmanager
def serving(
    tmp_path: Path, provider_port: int = 9, **limits: int
) -> Iterator[tuple[str, Services]]:
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'rempart.db'}",
        data_dir=tmp_path / "data",
        overload_retry_after_seconds=3,
        psc_discovery_url=f"http://127.0.0.1:{provider_port}/.well-known/openid-configuration",
        psc_client_id="rempart-test",
        psc_client_secret="not-a-real-secret-for-the-hung-provider",  # pragma: allowlist secret
        psc_redirect_uri="http://127.0.0.1/api/v1/auth/psc/callback",
        psc_timeout_seconds=60,
        **limits,
        **FAST_HASHING,
    )
    services = Services(settings)
    upgrade(services.engine, schema="data")
    upgrade(services.audit_engine, schema="audit")
    with running_server(create_app(services=services)) as url:
        yield url, services


def psc_start(url: str) -> httpx.Response:
    """A login through Pro Santé Connect begun: in progress while the provider is hung."""
    return httpx.get(url + PSC_START, timeout=90, follow_redirects=False)


def wait_until_in_flight(client: httpx.Client, count: int, probe: str = "/api/v1/no-route") -> None:
    """The held requests reach the server asynchronously: wait until a probe of the
    next one (a POST to ``probe``) is refused, i.e. until ``count`` are in progress."""
    for _ in range(200):
        if client.post(probe, content=b"{}", headers=_json()).status_code == 503:
            return
        # A 404 answered in between took and freed a slot: nothing is left over.
        time.sleep(0.02)
    raise AssertionError(f"{count} held requests were never counted in progress")


def test_past_its_capacity_a_worker_refuses_at_once_then_serves_again(tmp_path: Path) -> None:
    with (
        ThreadPoolExecutor(max_workers=2) as pool,
        serving_with_hung_provider(tmp_path, max_in_flight=2) as (url, services, release),
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        shed_before = shed_so_far(client, "worker")
        held = [pool.submit(psc_start, url) for _ in range(2)]
        time.sleep(0.3)  # let them in first: a probe arriving before would take a slot
        wait_until_in_flight(client, 2)
        audit_before = _audit_rows(services)

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
        assert "réessayez dans 3 secondes" in page.text
        assert page.headers["retry-after"] == "3"

        # The probes are never shed: the monitoring sees the truth when it matters,
        # and the metrics count what was shed (the probe's refusal, then three).
        assert client.get("/healthz").status_code == 200
        assert client.get("/health/live").status_code == 200
        assert shed_so_far(client, "worker") >= shed_before + 4
        # A shed request touched nothing: a refused login left no audit entry.
        assert _audit_rows(services) == audit_before

        # The provider comes back (here: goes away for good); the held requests end
        # with their own answer, and there is room again.
        release()
        for answer in (future.result(timeout=30) for future in held):
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"] == "psc_unavailable"
        again = client.post("/api/v1/auth/login", content=LOGIN_BODY, headers=_json())
        assert again.status_code == 401
        assert again.json()["error"] == "invalid_credentials"
        # What one served login leaves, which the refused one did not.
        assert _audit_rows(services) > audit_before


@contextmanager
def serving_with_hung_provider(
    tmp_path: Path, **limits: int
) -> Iterator[tuple[str, Services, Callable[[], None]]]:
    """The app with its PSC provider hung (a port that accepts and never answers);
    ``release()`` closes the provider, which resets every connection waiting on it."""
    with socket.socket() as provider:
        provider.bind(("127.0.0.1", 0))
        provider.listen(64)
        with serving(tmp_path, provider.getsockname()[1], **limits) as (url, services):
            yield url, services, provider.close


def test_a_slow_body_holds_no_slot(tmp_path: Path) -> None:
    """A client that opens connections and sends its bodies a byte at a time cannot fill
    the bound: a request counts once its body is in."""
    with (
        serving(tmp_path, max_in_flight=1) as (url, _),
        httpx.Client(base_url=url, timeout=10) as client,
        slow_body(url),
        slow_body(url),
        slow_body(url),
    ):
        time.sleep(0.3)  # their headers read: the body is being waited for
        login = client.post("/api/v1/auth/login", content=LOGIN_BODY, headers=_json())
        assert login.status_code == 401, login.text
        assert login.json()["error"] == "invalid_credentials"


@contextmanager
def slow_body(url: str) -> Iterator[socket.socket]:
    """A POST whose headers are sent and whose body is not (yet)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    try:
        sock.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(LOGIN_BODY)}\r\n\r\n".encode()
            + LOGIN_BODY[:10]
        )
        yield sock
    finally:
        sock.close()


def test_the_anonymous_public_checks_are_shed_in_their_own_lane() -> None:
    """A flood of public checks (no account needed; a long message costs CPU) fills its
    own lane and is shed there, while the professionals' requests still get through.
    The middleware over a small app whose public check waits until the test lets it go."""
    asyncio.run(_public_lane())


async def _public_lane() -> None:
    release = asyncio.Event()

    async def held_check(_: Request) -> Response:
        await release.wait()
        return JSONResponse({"verdict": "suspicious"})

    async def served(_: Request) -> Response:
        return JSONResponse({"served": True})

    app = LoadSheddingMiddleware(
        Starlette(
            routes=[
                Route("/api/v1/messages/check", held_check, methods=["POST"]),
                Route("/api/v1/notices/verify", served, methods=["POST"]),
                Route("/verifier/message", served, methods=["GET", "POST"]),
                Route("/api/v1/auth/login", served, methods=["POST"]),
                Route("/metrics", served, methods=["GET"]),
            ]
        ),
        max_in_flight=4,
        retry_after_seconds=3,
        public_paths={"/api/v1/messages/check", "/api/v1/notices/verify", "/verifier/message"},
        max_public_in_flight=1,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        public_before = _sample("public")
        worker_before = _sample("worker")
        held = asyncio.create_task(client.post("/api/v1/messages/check", json={}))
        for _ in range(100):  # until the held check is in progress
            await asyncio.sleep(0.01)
            if app.public_in_flight:
                break
        refused = await client.post("/api/v1/messages/check", json={})
        assert refused.status_code == 503
        assert refused.json()["error"] == "overloaded"
        assert refused.headers["retry-after"] == "3"
        notice = await client.post("/api/v1/notices/verify", json={})
        assert notice.status_code == 503
        page = await client.post(
            "/verifier/message", data={"channel": "sms"}, headers={"Accept": "text/html"}
        )
        assert page.status_code == 503
        assert "Service momentanément surchargé" in page.text
        # Outside the lane, a professional's request is served as usual.
        assert (await client.post("/api/v1/auth/login", json={})).status_code == 200
        # The public page itself (a GET) is not in the lane: only the checks are.
        assert (await client.get("/verifier/message")).status_code == 200
        assert _sample("public") == public_before + 3
        assert _sample("worker") == worker_before
        release.set()
        assert (await held).status_code == 200
        again = await client.post("/api/v1/messages/check", json={})
        assert again.status_code == 200


def _sample(lane: str) -> float:
    """The shed counter of ``lane`` in this process (the middleware runs here)."""
    return REGISTRY.get_sample_value("rempart_requests_shed_total", {"lane": lane}) or 0.0


def shed_so_far(client: httpx.Client, lane: str) -> float:
    """The ``rempart_requests_shed_total`` of ``lane`` on the server's own /metrics."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'rempart_requests_shed_total{{lane="{lane}"}}'):
            return float(line.split()[-1])
    raise AssertionError(f"no shed counter for lane {lane}")


def _audit_rows(services: Services) -> int:
    with services.audit_engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}
