"""Queue depths read from the database at scrape time: e-mails waiting in the outbox,
breach notices waiting in campaigns.

Computed by whichever worker answers the scrape (the database is shared, so one count
is the truth for all), cached a few seconds so that several scrapers or a dashboard
refresh do not count the tables again; a failing count leaves the families out of
that scrape rather than failing it (readiness reports the database).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from rempart.notify.outbox import MAX_ATTEMPTS
from rempart.store.engine import as_utc
from rempart.store.models import MailOutbox, NoticeMessage

__all__ = ["QueueDepths"]

log = structlog.get_logger("rempart.ops")

# A notice still to send or print (rempart.store.models.NoticeMessage's states).
_WAITING_NOTICE_STATES = ("planned", "rendered")


class QueueDepths:
    """A collector (``collect()``) of the outbox's and the campaigns' depths."""

    def __init__(
        self,
        engine: Engine,
        *,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._at: float | None = None
        self._families: list[Metric] = []

    def collect(self) -> list[Metric]:
        with self._lock:
            now = self._clock()
            if self._at is None or now - self._at >= self._cache_seconds:
                try:
                    self._families = self._count()
                except SQLAlchemyError as exc:
                    log.warning("queue_depths_failed", error_type=type(exc).__name__)
                    self._families = []
                self._at = now
            return list(self._families)

    def _count(self) -> list[Metric]:
        waiting = MailOutbox.sent_at.is_(None) & (MailOutbox.attempts < MAX_ATTEMPTS)
        with self._engine.connect() as connection:
            depth, oldest = connection.execute(
                select(func.count(), func.min(MailOutbox.created_at)).where(waiting)
            ).one()
            notices = connection.execute(
                select(NoticeMessage.channel, func.count())
                .where(NoticeMessage.state.in_(_WAITING_NOTICE_STATES))
                .group_by(NoticeMessage.channel)
            ).all()
        outbox = GaugeMetricFamily(
            "rempart_outbox_depth", "E-mails waiting in the outbox (not sent, not given up)."
        )
        outbox.add_metric([], float(depth))
        age = GaugeMetricFamily(
            "rempart_outbox_oldest_age_seconds",
            "Age of the oldest e-mail waiting in the outbox (0 when none waits).",
        )
        age.add_metric([], _age(oldest))
        campaign = GaugeMetricFamily(
            "rempart_campaign_queue_depth",
            "Breach notices waiting to be sent or printed, by channel.",
            labels=["channel"],
        )
        counts = {"email": 0, "letter": 0}
        for channel, count in notices:
            if channel in counts:
                counts[channel] = int(count)
        for channel, count in counts.items():
            campaign.add_metric([channel], float(count))
        return [outbox, age, campaign]


def _age(oldest: datetime | None) -> float:
    if oldest is None:
        return 0.0
    return max(0.0, (datetime.now(UTC) - as_utc(oldest)).total_seconds())
