"""The claims feed's broker restarted while claims are published: afterwards every claim
is in the table exactly once (none lost, none applied twice).

The broker is a RabbitMQ node of the test's own (``private_rabbit``: its own name,
ports and disk; about 8 s to start here), so that stopping it whole, as an operator
restarting the broker would, leaves the shared broker the other tests use alone.
A publisher thread sends numbered claims with publisher confirms (persistent messages,
a durable queue), and when the broker is away connects again and publishes the
unconfirmed claim again (at least once, the same body). The consumer runs as the server
runs it (:class:`~rempart.claims.consumer.ClaimsConsumer` in a thread, the guard behind
it). Mid-stream the node is stopped, left down two seconds and started again.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest
from sqlalchemy import func, select

from rempart.claims.consumer import ClaimsConsumer
from rempart.config import Settings
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Claim
from tests.functional.conftest import Person
from tests.functional.private_servers import PrivateRabbit, private_rabbit
from tests.functional.test_claims_follower import HOUR_US, now_us
from tests.functional.test_claims_stream import message, publish, until
from tests.functional.test_guard_inline import build_town, guard_settings

pytestmark = [pytest.mark.faults, pytest.mark.rabbitmq]

WARM_SECONDS = 1.5
DOWN_SECONDS = 2.0
AFTER_SECONDS = 1.5
PAUSE = 0.01
DRAIN_SECONDS = 60.0


@pytest.fixture(scope="module")
def rabbit() -> Iterator[PrivateRabbit]:
    with private_rabbit() as node:
        yield node


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return guard_settings(database_url, tmp_path, claims_poll_seconds=0)


class Publisher:
    """Numbered claims, each published until the broker confirms it."""

    def __init__(self, url: str, queue: str, people: list[Person]) -> None:
        self.url, self.queue, self.people = url, queue, people
        self.confirmed: list[str] = []
        self.sent: Counter[str] = Counter()
        self.reconnections = 0
        self.stop = threading.Event()
        self._now = now_us()

    def _channel(self) -> tuple[pika.BlockingConnection, object]:
        parameters = pika.URLParameters(self.url)
        parameters.connection_attempts = 1
        parameters.socket_timeout = 2
        connection = pika.BlockingConnection(parameters)
        channel = connection.channel()
        channel.queue_declare(self.queue, durable=True)
        channel.confirm_delivery()
        return connection, channel

    def run(self) -> None:
        connection, channel = self._channel()
        n = 0
        while not self.stop.is_set():
            claim_id = f"R-{n}"
            person = self.people[n % len(self.people)]
            body = message(person, self._now - HOUR_US + n, claim_id=claim_id)
            try:
                self.sent[claim_id] += 1
                publish(channel, self.queue, body)  # raises unless confirmed
            except (pika.exceptions.AMQPError, OSError):
                self.reconnections += 1
                connection = self._reconnect(connection)
                if connection is None:
                    return
                channel = connection.channel()
                channel.confirm_delivery()
                continue  # the same claim again
            self.confirmed.append(claim_id)
            n += 1
            time.sleep(PAUSE)
        connection.close()

    def _reconnect(self, old: pika.BlockingConnection) -> pika.BlockingConnection | None:
        with contextlib.suppress(pika.exceptions.AMQPError, OSError):
            old.close()
        while not self.stop.is_set():
            try:
                connection, _ = self._channel()
            except (pika.exceptions.AMQPError, OSError):
                time.sleep(0.2)
            else:
                return connection
        return None


def _claims(services: Services) -> Counter[str]:
    with session_scope(services.sessions) as session:
        rows = session.execute(select(Claim.claim_id, func.count()).group_by(Claim.claim_id)).all()
    return Counter({str(claim_id): int(n) for claim_id, n in rows})


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_every_claim_published_across_a_broker_restart_is_taken_exactly_once(
    services: Services, rabbit: PrivateRabbit
) -> None:
    _, strangers = build_town(services)
    queue = f"test.claims.{secrets.token_hex(6)}"
    publisher = Publisher(rabbit.url, queue, strangers)
    consumer = ClaimsConsumer(
        url=rabbit.url,
        queue=queue,
        rejected_queue=queue + ".rejected",
        engine=services.engine,
        guard=lambda: services.guard,
        reconnect_pause=0.2,
    )
    consumer.start()
    feeder = threading.Thread(target=publisher.run)
    try:
        until(consumer.connected.is_set, "the consumer did not connect")
        feeder.start()
        time.sleep(WARM_SECONDS)
        before = len(publisher.confirmed)
        rabbit.stop()
        time.sleep(DOWN_SECONDS)
        rabbit.start()
        restarted = len(publisher.confirmed)
        time.sleep(AFTER_SECONDS)
        publisher.stop.set()
        feeder.join(timeout=30)
        published = set(publisher.confirmed)
        until(
            lambda: set(_claims(services)) >= published,
            "claims confirmed by the broker never reached the table",
            within=DRAIN_SECONDS,
        )
        time.sleep(0.5)  # anything redelivered late would land now
    finally:
        publisher.stop.set()
        consumer.stop()
    taken = _claims(services)
    print(  # the figures docs/reliability.md quotes (pytest -rP shows them)
        f"published {len(published)} ({before} before the stop, {restarted - before} "
        f"during the stop and start commands, {len(published) - restarted} after), sent again "
        f"{sum(publisher.sent.values()) - len(publisher.sent)}, publisher reconnections "
        f"{publisher.reconnections}, consumer {dict(consumer.counts)}, rows {taken.total()}"
    )
    assert before > 0
    assert len(published) > restarted, "nothing published after the restart"
    assert publisher.reconnections >= 1
    assert consumer.counts["reconnections"] >= 1
    assert consumer.counts["rejected"] == 0
    # Every claim once: none confirmed is lost, none twice (a claim sent again is the
    # same claim); a claim sent and never confirmed (cut at the very end) may be either.
    assert published <= set(taken) <= set(publisher.sent)
    assert max(taken.values()) == 1
