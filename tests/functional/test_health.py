"""Liveness and readiness against the real databases, Redis and broker: what is checked,
how a failure is named (a stable code, never a host, port or URL), and that a database
that does not answer makes the probe fail within its deadline instead of hanging it."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pika
import pytest
from fastapi.testclient import TestClient

from rempart.api import create_app
from rempart.api.ops_routes import Live, NotReady, Ready
from rempart.api.server import free_port, running_server
from rempart.config import Settings, load_settings
from rempart.services import Services
from rempart.store.migrate import upgrade
from tests.conftest import FAST_HASHING
from tests.functional.conftest import PEER


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a hung server): a
    PostgreSQL client waits there for the server's first message."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]
    # Closing resets the waiting connections: the stuck checks end.


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": f"sqlite:///{tmp_path / 'rempart.db'}",
        "data_dir": tmp_path / "data",
        **FAST_HASHING,
        **overrides,
    }
    return load_settings(**values)


def _migrated(settings: Settings) -> Services:
    services = Services(settings)
    upgrade(services.engine, schema="data")
    upgrade(services.audit_engine, schema="audit")
    return services


def _no_address(body: str, *ports: int) -> None:
    assert "127.0.0.1" not in body
    assert "postgres" not in body
    assert "redis://" not in body
    for port in ports:
        assert str(port) not in body


def test_live_and_its_former_alias(client: TestClient) -> None:
    for path in ("/health/live", "/healthz"):
        answer = client.get(path)
        assert answer.status_code == 200
        Live.model_validate(answer.json())


def test_ready_checks_the_databases_and_the_claims_follower(client: TestClient) -> None:
    answer = client.get("/health/ready")
    assert answer.status_code == 200, answer.text
    body = Ready.model_validate(answer.json())
    assert body.checks == {"database": "ok", "audit": "ok", "claims_table": "ok"}


def test_ready_checks_redis_where_configured(settings: Settings, redis_url: str) -> None:
    services = _migrated(settings.model_copy(update={"redis_url": redis_url}))
    with TestClient(create_app(services=services), client=PEER) as client:
        answer = client.get("/health/ready")
    assert answer.status_code == 200, answer.text
    assert answer.json()["checks"]["redis"] == "ok"


def test_redis_unreachable_is_named_without_its_address(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    services = _migrated(_settings(tmp_path, redis_url=f"redis://:s3cret@127.0.0.1:{port}/0"))
    with TestClient(create_app(services=services), client=PEER) as client:
        answer = client.get("/health/ready")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    body = NotReady.model_validate(answer.json())
    assert body.checks == {
        "database": "ok",
        "audit": "ok",
        "redis": "unreachable",
        "claims_table": "ok",
    }
    assert body.detail == "not ready: redis unreachable"
    _no_address(answer.text, port)
    assert "s3cret" not in answer.text


def test_a_database_that_does_not_answer_fails_the_probe_within_its_deadline(
    tmp_path: Path, black_hole: int
) -> None:
    url = f"postgresql+psycopg://postgres:pw-not-shown@127.0.0.1:{black_hole}/rempart"
    settings = _settings(tmp_path, database_url=url, claims_poll_seconds=0)
    services = Services(settings)
    app = create_app(services=services)
    # Over real TCP with a client deadline far above the check's (1 s): a probe that
    # hung on the database would fail here with a timeout instead of an answer.
    with running_server(app) as base, httpx.Client(base_url=base, timeout=15) as http:
        first = http.get("/health/ready")
        again = http.get("/health/ready")  # the stuck check is not started twice
        live = http.get("/health/live")
    app.state.readiness.close()
    for answer in (first, again):
        assert answer.status_code == 503
        assert answer.json()["checks"] == {"database": "timeout", "audit": "timeout"}
        _no_address(answer.text, black_hole)
        assert "pw-not-shown" not in answer.text
    assert live.status_code == 200  # alive: the orchestrator must not kill it for this


def test_audit_database_down_is_the_audit_check(tmp_path: Path) -> None:
    port = free_port()
    settings = _settings(tmp_path, claims_poll_seconds=0)
    services = _migrated(settings)
    services.close()
    down = settings.model_copy(
        update={"audit_database_url": f"postgresql+psycopg://postgres@127.0.0.1:{port}/audit"}
    )
    client = TestClient(create_app(services=Services(down)), client=PEER)
    answer = client.get("/health/ready")
    assert answer.status_code == 503
    assert answer.json()["checks"] == {"database": "ok", "audit": "unreachable"}
    _no_address(answer.text, port)


def test_a_database_not_migrated_is_named(tmp_path: Path) -> None:
    client = TestClient(
        create_app(services=Services(_settings(tmp_path, claims_poll_seconds=0))), client=PEER
    )
    answer = client.get("/health/ready")
    assert answer.status_code == 503
    assert answer.json()["checks"] == {"database": "ok", "audit": "not_migrated"}


def test_claims_stream_disconnected_then_connected(tmp_path: Path, amqp_url: str) -> None:
    port = free_port()
    down = _settings(tmp_path, claims_amqp_url=f"amqp://guest:guest@127.0.0.1:{port}/%2F")
    with TestClient(create_app(services=_migrated(down)), client=PEER) as client:
        answer = client.get("/health/ready")
    assert answer.status_code == 503
    assert answer.json()["checks"]["claims_stream"] == "disconnected"
    _no_address(answer.text, port)

    queue = f"test.ops.{secrets.token_hex(4)}"
    up = down.model_copy(
        update={
            "claims_amqp_url": load_settings(claims_amqp_url=amqp_url).claims_amqp_url,
            "claims_amqp_queue": queue,
            "claims_amqp_rejected_queue": queue + ".rejected",
        }
    )
    try:
        with TestClient(create_app(services=Services(up)), client=PEER) as client:
            client.app.state.claims_stream.connected.wait(timeout=15)  # type: ignore[attr-defined]
            answer = client.get("/health/ready")
        assert answer.status_code == 200, answer.text
        assert answer.json()["checks"]["claims_stream"] == "ok"
    finally:
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        channel = connection.channel()
        channel.queue_delete(queue)
        channel.queue_delete(queue + ".rejected")
        connection.close()


def test_health_routes_are_described_as_they_answer(client: TestClient) -> None:
    """The fuzzer reads the OpenAPI description: what it says of the health routes holds;
    /metrics (Prometheus text, restricted) is left out of it."""
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/health/live"]) == {"get"}
    ready = paths["/health/ready"]["get"]["responses"]
    assert {"200", "503"} <= set(ready)
    assert "/metrics" not in paths
    assert "/healthz" not in paths


def test_a_stopped_claims_follower_is_named(client: TestClient) -> None:
    client.app.state.claims_follower.stop()  # type: ignore[attr-defined]
    answer = client.get("/health/ready")
    assert answer.status_code == 503
    assert answer.json()["checks"]["claims_table"] == "stopped"


def test_served_without_its_lifespan_the_follower_is_not_asked(services: Services) -> None:
    """running_server's default (lifespan off) starts no follower: nothing to check."""
    with running_server(create_app(services=services)) as base:
        answer = httpx.get(f"{base}/health/ready", timeout=15)
    assert answer.status_code == 200, answer.text
    assert answer.json()["checks"] == {"database": "ok", "audit": "ok"}
