"""The claims stream: a RabbitMQ queue the billing system publishes claims to.

Each message is a JSON object ``{"claim_id"?, "ts", "account_id", "nir"}`` (``ts``
ISO-8601 with a UTC offset; without ``claim_id`` the key is
:func:`~rempart.claims.records.claim_key`). For each, in order: check it, write it to
the ``claims`` table (idempotent), hand it to the guard (``observe_claim``), and only
then acknowledge it. A redelivery (after a crash between two steps, a reconnection)
repeats steps that are both idempotent.

* **Poison** (not JSON, a field missing, a bad NIR or time, an unknown account, a
  ``claim_id`` already taken by other content…): it can never be taken. It is
  published, body untouched, to the durable ``REMPART_CLAIMS_AMQP_REJECTED_QUEUE``
  with its reason code in the ``x-rempart-reason`` header (publisher confirms: set
  aside for sure before the acknowledgement), then acknowledged: never requeued
  forever, and the messages behind it go on.
* **Transient** (the database, or the guard's Redis state, unavailable): the message
  is given back (``nack``, requeued) after a pause that grows up to half a minute,
  never a busy loop; nothing is lost.
* The broker going away: the consumer connects again every few seconds; the
  messages it had not acknowledged are redelivered by the broker.

The queues are declared durable; the broker hands over at most
``REMPART_CLAIMS_AMQP_PREFETCH`` unacknowledged messages. Logs carry counts and
reason codes, never a NIR. The server runs one in a thread when
``REMPART_CLAIMS_AMQP_URL`` is set; ``rempart claims consume`` runs one in the
foreground (for a deployment whose guard state is in Redis).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pika
import pika.exceptions
import structlog
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from rempart.claims.records import ClaimCode, ClaimProblem, ClaimRecord, parse_claim
from rempart.claims.sink import ClaimSink
from rempart.claims.table import known_accounts, lock_for_writing, write_claims
from rempart.guard.engine import UnknownAccount
from rempart.ops.metrics import claim_applied

if TYPE_CHECKING:
    from rempart.services import Services

__all__ = ["REASON_HEADER", "ClaimsConsumer", "parse_message"]

log = structlog.get_logger("rempart.claims")

REASON_HEADER = "x-rempart-reason"
DETAIL_HEADER = "x-rempart-detail"
MAX_BODY = 64 * 1024
"""A claim is a few hundred bytes; a larger message is not one."""
REQUIRED = ("ts", "account_id", "nir")


class _Transient(Exception):
    """This message cannot be taken now (database or guard state away): give it back."""


def parse_message(body: bytes, *, now_us: int) -> ClaimRecord:
    """A message's claim, or :class:`ClaimProblem` (poison) naming what is wrong."""
    if len(body) > MAX_BODY:
        raise ClaimProblem(ClaimCode.TOO_LARGE, f"a claim message has at most {MAX_BODY} bytes")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise ClaimProblem(ClaimCode.BAD_JSON, "the message is not JSON") from None
    if not isinstance(data, dict):
        raise ClaimProblem(ClaimCode.BAD_JSON, "the message is not a JSON object")
    missing = [name for name in REQUIRED if name not in data]
    if missing:
        raise ClaimProblem(
            ClaimCode.MISSING_FIELD, f"missing field(s): {', '.join(missing)}", column=missing[0]
        )
    return parse_claim(
        ts=data["ts"],
        account_id=data["account_id"],
        nir=data["nir"],
        claim_id=data.get("claim_id"),
        now_us=now_us,
    )


class ClaimsConsumer:
    """Consumes ``queue`` on the broker at ``url`` (see the module); ``run`` in the
    foreground, or ``start``/``stop`` as a thread."""

    def __init__(
        self,
        *,
        url: str,
        queue: str,
        rejected_queue: str,
        engine: Engine,
        guard: Callable[[], ClaimSink | None],
        prefetch: int = 50,
        retry_pause: float = 1.0,
        max_retry_pause: float = 30.0,
        reconnect_pause: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._parameters = pika.URLParameters(url)
        # Fail fast, then try again in our own loop (which also watches for stop()).
        self._parameters.connection_attempts = 1
        self._parameters.socket_timeout = 5
        self._parameters.blocked_connection_timeout = 30
        self.queue = queue
        self.rejected_queue = rejected_queue
        self._engine = engine
        self._guard = guard
        self._prefetch = prefetch
        self._retry_pause = retry_pause
        self._max_retry_pause = max_retry_pause
        self._reconnect_pause = reconnect_pause
        self._clock = clock
        self._pause = retry_pause
        self.counts = {"taken": 0, "rejected": 0, "retried": 0, "reconnections": 0}
        self.connected = threading.Event()
        """Set while connected with the queues declared (tests wait on it)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name="rempart-claims-stream", daemon=True)
        self._logged_at = 0.0
        self._logged: dict[str, int] = {}

    @classmethod
    def from_services(cls, services: Services) -> ClaimsConsumer:
        s = services.settings
        if s.claims_amqp_url is None:
            raise ValueError("REMPART_CLAIMS_AMQP_URL is not set")
        return cls(
            url=s.claims_amqp_url.get_secret_value(),
            queue=s.claims_amqp_queue,
            rejected_queue=s.claims_amqp_rejected_queue,
            engine=services.engine,
            guard=lambda: services.guard,
            prefetch=s.claims_amqp_prefetch,
        )

    # -- running ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    def run(self) -> None:
        """Consume until :meth:`stop`, connecting again whenever the broker goes away."""
        first = True
        while not self._stop.is_set():
            if not first:
                self.counts["reconnections"] += 1
            first = False
            try:
                self._session()
            except (pika.exceptions.AMQPError, OSError) as exc:
                # The type only: a connection error may quote the URL, which holds a password.
                log.warning("claims_stream_unavailable", error=type(exc).__name__)
            if self._stop.wait(self._reconnect_pause):
                break
        self._log_counts(force=True)

    def _session(self) -> None:
        connection = pika.BlockingConnection(self._parameters)
        try:
            channel = connection.channel()
            channel.confirm_delivery()  # a poison message is set aside for sure before its ack
            channel.queue_declare(queue=self.queue, durable=True)
            channel.queue_declare(queue=self.rejected_queue, durable=True)
            channel.basic_qos(prefetch_count=self._prefetch)
            log.info("claims_stream_connected", queue=self.queue)
            self.connected.set()
            for method, properties, body in channel.consume(self.queue, inactivity_timeout=0.5):
                if self._stop.is_set():
                    break
                if method is None or body is None:
                    self._log_counts()
                    continue
                self._handle(channel, method.delivery_tag, properties, body)
            channel.cancel()  # prefetched, unacknowledged messages go back to the queue
        finally:
            self.connected.clear()
            if connection.is_open:
                with contextlib.suppress(pika.exceptions.AMQPError):
                    connection.close()

    # -- one message -----------------------------------------------------------------------

    def _handle(self, channel: BlockingChannel, tag: int, properties: Any, body: bytes) -> None:
        try:
            self.take(body)
        except ClaimProblem as problem:
            self._set_aside(channel, properties, body, problem)
            channel.basic_ack(tag)
            self.counts["rejected"] += 1
            log.warning("claim_rejected", reason=problem.code.value)
        except _Transient as exc:
            self.counts["retried"] += 1
            log.warning("claim_retried", error=str(exc), pause=self._pause)
            self._stop.wait(self._pause)  # no busy loop on a database or Redis that is away
            self._pause = min(self._pause * 2, self._max_retry_pause)
            channel.basic_nack(tag, requeue=True)
        else:
            channel.basic_ack(tag)
            self.counts["taken"] += 1
            self._pause = self._retry_pause

    def take(self, body: bytes) -> ClaimRecord:
        """Check, write and feed one message's claim; raises :class:`ClaimProblem` for a
        poison message, ``_Transient`` when it must be tried again later."""
        claim = parse_message(body, now_us=int(self._clock() * 1_000_000))
        try:
            with self._engine.begin() as connection:
                lock_for_writing(connection)
                if not known_accounts(connection, [claim.account_id]):
                    raise ClaimProblem(
                        ClaimCode.UNKNOWN_ACCOUNT,
                        f"no professional or account {claim.account_id!r}",
                        column="account_id",
                    )
                written = write_claims(
                    connection,
                    [claim],
                    source="stream",
                    received_at=datetime.fromtimestamp(self._clock(), UTC),
                )
                if written.conflicts:
                    raise ClaimProblem(
                        ClaimCode.CONFLICTS_WITH_KNOWN,
                        "this claim_id is already known with another time, account or NIR",
                        column="claim_id",
                    )
        except SQLAlchemyError as exc:
            raise _Transient(f"database: {type(exc).__name__}") from None
        try:
            guard = self._guard()
            if guard is not None:
                guard.observe_claim(claim.account_id, claim.nir, claim.ts_us)
                claim_applied("stream", claim.ts_us)
        except UnknownAccount:
            raise ClaimProblem(
                ClaimCode.UNKNOWN_ACCOUNT, "the guard does not know the account"
            ) from None
        except Exception as exc:  # noqa: BLE001 - whatever failed, the message is kept
            # StateUnavailable (Redis away), a guard that cannot be built yet, the
            # directory's database: the claim is in the table, the guard must see it too.
            raise _Transient(f"guard: {type(exc).__name__}") from None
        return claim

    def _set_aside(
        self, channel: BlockingChannel, properties: Any, body: bytes, problem: ClaimProblem
    ) -> None:
        headers = dict(getattr(properties, "headers", None) or {})
        headers[REASON_HEADER] = problem.code.value
        headers[DETAIL_HEADER] = problem.detail  # never a NIR (ClaimProblem's rule)
        channel.basic_publish(
            exchange="",
            routing_key=self.rejected_queue,
            body=body,
            properties=pika.BasicProperties(
                delivery_mode=pika.DeliveryMode.Persistent,
                content_type=getattr(properties, "content_type", None),
                message_id=getattr(properties, "message_id", None),
                headers=headers,
            ),
            mandatory=True,
        )

    def _log_counts(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._logged_at < 60:
            return
        self._logged_at = now
        if self.counts != self._logged:
            self._logged = dict(self.counts)
            log.info("claims_stream_counts", **self.counts)
