"""The claims stream against the real RabbitMQ, with the guard's state in process and in
the real Redis (queues and Redis keys of each test's own).

A claim published reaches the server's guard (the table's follower is off: only the
consumer can have told it); the same message twice is one row; poison messages land
in the rejected queue with their reason and the good ones behind them pass; a guard
whose state is away keeps the message in the queue until a guard can take it; the
broker going away and coming back is survived.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from rempart.api import create_app
from rempart.claims.consumer import REASON_HEADER, ClaimsConsumer
from rempart.config import Settings
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Claim
from tests.functional.conftest import PEER, Person, guard_state_settings
from tests.functional.test_claims_follower import HOUR_US, now_us, reasons_of
from tests.functional.test_guard_inline import build_town, guard_settings
from tests.functional.test_guard_inline_redis import RedisRelay

pytestmark = pytest.mark.rabbitmq

Town = tuple[list[Person], list[Person]]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def state(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The guard's state: in process, or in the real Redis under a prefix of its own."""
    with guard_state_settings(request, "claims") as settings:
        yield settings


@pytest.fixture
def queues(amqp_url: str) -> Iterator[tuple[str, str]]:
    """A claims queue and its rejected queue of this test's own, deleted afterwards."""
    name = f"test.claims.{secrets.token_hex(6)}"
    pair = (name, name + ".rejected")
    yield pair
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    for queue in pair:
        channel.queue_delete(queue)
    connection.close()


@pytest.fixture
def broker(amqp_url: str, queues: tuple[str, str]) -> Iterator[Any]:
    """The billing system's side: a channel to publish and read with."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    for queue in queues:
        channel.queue_declare(queue, durable=True)
    yield channel
    connection.close()


@pytest.fixture
def settings(
    database_url: str,
    tmp_path: Path,
    amqp_url: str,
    queues: tuple[str, str],
    state: dict[str, str],
) -> Settings:
    return guard_settings(
        database_url,
        tmp_path,
        claims_amqp_url=amqp_url,
        claims_amqp_queue=queues[0],
        claims_amqp_rejected_queue=queues[1],
        claims_poll_seconds=0,  # no follower: only the consumer tells the guard
        **state,
    )


@pytest.fixture
def town(services: Services) -> Town:
    return build_town(services)


def message(person: Person, ts_us: int, account_id: str = "ph-lilas", **extra: Any) -> bytes:
    stamp = datetime.fromtimestamp(ts_us / 1_000_000, UTC).isoformat()
    return json.dumps(
        {"ts": stamp, "account_id": account_id, "nir": person.nir.value, **extra}
    ).encode()


def publish(channel: Any, queue: str, body: bytes) -> None:
    channel.basic_publish(
        exchange="",
        routing_key=queue,
        body=body,
        properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
    )


def until(condition: Callable[[], bool], what: str, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def stream_of(server: TestClient) -> ClaimsConsumer:
    consumer: ClaimsConsumer = server.app.state.claims_stream  # type: ignore[attr-defined]
    assert consumer is not None
    until(consumer.connected.is_set, "the consumer did not connect")
    return consumer


def rows(services: Services) -> list[tuple[str, str]]:
    with session_scope(services.sessions) as session:
        found = session.execute(select(Claim.claim_id, Claim.source).order_by(Claim.seq)).all()
    return [(a, b) for a, b in found]


def waiting(channel: Any, queue: str) -> int:
    count: int = channel.queue_declare(queue, durable=True, passive=True).method.message_count
    return count


def test_a_published_claim_reaches_the_servers_guard(
    services: Services, broker: Any, queues: tuple[str, str], town: Town
) -> None:
    _, strangers = town
    now = now_us()
    with TestClient(create_app(services=services), client=PEER) as server:
        consumer = stream_of(server)
        assert "unexplained" in reasons_of(services, strangers[0], now)
        publish(broker, queues[0], message(strangers[1], now - HOUR_US, claim_id="F-1"))
        until(lambda: consumer.counts["taken"] == 1, "the claim was not taken")
        assert "unexplained" not in reasons_of(services, strangers[1], now + 1)
        assert "unexplained" in reasons_of(services, strangers[2], now + 2)
    assert rows(services) == [("F-1", "stream")]
    assert waiting(broker, queues[0]) == 0


def test_the_same_message_twice_is_one_row(
    services: Services, broker: Any, queues: tuple[str, str], town: Town
) -> None:
    _, strangers = town
    body = message(strangers[1], now_us() - HOUR_US)  # no claim_id: the derived key
    with TestClient(create_app(services=services), client=PEER) as server:
        consumer = stream_of(server)
        publish(broker, queues[0], body)
        publish(broker, queues[0], body)
        until(lambda: consumer.counts["taken"] == 2, "both deliveries acknowledged")
    assert len(rows(services)) == 1
    assert waiting(broker, queues[0]) == 0


def test_poison_messages_are_set_aside_with_their_reason_and_the_rest_passes(
    services: Services, broker: Any, queues: tuple[str, str], town: Town
) -> None:
    _, strangers = town
    now = now_us()
    good = strangers[5]
    nir = strangers[1].nir.value
    bad_key = nir[:13] + ("00" if nir[13:] != "00" else "01")
    poison = [
        (b"\xff not json", "claims_bad_json"),
        (json.dumps({"ts": "2025-03-10T10:00:00Z", "nir": nir}).encode(), "claims_missing_field"),
        (
            json.dumps(
                {"ts": "2025-03-10T10:00:00Z", "account_id": "ph-lilas", "nir": bad_key}
            ).encode(),
            "claims_bad_nir",
        ),
        (message(strangers[2], now - HOUR_US, account_id="ph-nowhere"), "claims_unknown_account"),
        (message(strangers[3], now - HOUR_US, claim_id=["F"]), "claims_bad_claim_id"),
    ]
    with TestClient(create_app(services=services), client=PEER) as server:
        consumer = stream_of(server)
        for body, _ in poison:
            publish(broker, queues[0], body)
        publish(broker, queues[0], message(good, now - HOUR_US, claim_id="F-good"))
        until(lambda: consumer.counts["taken"] == 1, "the good claim behind the poison")
        assert consumer.counts["rejected"] == len(poison)
        assert "unexplained" not in reasons_of(services, good, now)
    assert rows(services) == [("F-good", "stream")]
    assert waiting(broker, queues[0]) == 0
    set_aside = []
    for _ in poison:
        method, properties, body = broker.basic_get(queues[1], auto_ack=True)
        assert method is not None
        set_aside.append((body, properties.headers[REASON_HEADER]))
        assert properties.delivery_mode == 2  # survives a broker restart
        assert bad_key not in json.dumps(properties.headers)  # the reason, never the NIR
    assert set_aside == poison


def test_a_guard_whose_state_is_away_keeps_the_message_until_one_takes_it(
    settings: Settings, services: Services, broker: Any, queues: tuple[str, str], town: Town
) -> None:
    _, strangers = town
    now = now_us()
    cut_off = Services(
        settings.model_copy(
            update={"redis_url": "redis://127.0.0.1:1/0", "guard_redis_prefix": "test:cut:"}
        )
    )
    consumer = ClaimsConsumer.from_services(cut_off)
    consumer.start()
    try:
        until(consumer.connected.is_set, "the consumer did not connect")
        publish(broker, queues[0], message(strangers[1], now - HOUR_US, claim_id="F-1"))
        until(lambda: consumer.counts["retried"] >= 1, "the guard's failure was not met")
    finally:
        consumer.stop()
        cut_off.close()
    assert consumer.counts["taken"] == 0
    # Not acknowledged: back in the queue (the table has it: writing it is idempotent).
    until(lambda: waiting(broker, queues[0]) == 1, "the message was lost")
    assert rows(services) == [("F-1", "stream")]

    # A worker whose guard can write takes it, and its guard sees the claim.
    with TestClient(create_app(services=services), client=PEER) as server:
        working = stream_of(server)
        until(lambda: working.counts["taken"] == 1, "the message was not redelivered")
        assert "unexplained" not in reasons_of(services, strangers[1], now)
    assert rows(services) == [("F-1", "stream")]
    assert waiting(broker, queues[0]) == 0


@pytest.mark.parametrize("state", ["memory"], indirect=True)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_consumer_connects_again_when_the_broker_goes_away(
    services: Services, broker: Any, queues: tuple[str, str], town: Town
) -> None:
    _, strangers = town
    now = now_us()
    relay = RedisRelay("redis://127.0.0.1:5672/0")  # a TCP relay: here, to the broker
    consumer = ClaimsConsumer(
        url=f"amqp://guest:guest@127.0.0.1:{relay.port}/%2F",
        queue=queues[0],
        rejected_queue=queues[1],
        engine=services.engine,
        guard=lambda: services.guard,
        reconnect_pause=0.2,
    )
    consumer.start()
    try:
        until(consumer.connected.is_set, "the consumer did not connect")
        publish(broker, queues[0], message(strangers[1], now - HOUR_US, claim_id="F-1"))
        until(lambda: consumer.counts["taken"] == 1, "first claim")
        relay.cut()
        until(lambda: not consumer.connected.is_set(), "the consumer did not notice")
        publish(broker, queues[0], message(strangers[2], now - HOUR_US, claim_id="F-2"))
        relay.put_back()
        until(lambda: consumer.counts["taken"] == 2, "second claim after the outage")
    finally:
        consumer.stop()
        relay.cut()
    assert consumer.counts["reconnections"] >= 1
    assert rows(services) == [("F-1", "stream"), ("F-2", "stream")]
