"""Keeps the console's roll-up of the audit trail current while the server runs.

The overview counts closed hours into ``console_hourly_counts``; a page view counts only
a few (its time is bounded). This thread counts every missing hour of the charts' span
a minute after start, then each minute the hour that closed, so that a view seldom has
anything left to count. Several workers may each run one: an hour is claimed by its
``console_hours_done`` row, so it is counted once.
"""

from __future__ import annotations

import structlog

from rempart.audit.trail import now_us
from rempart.console.activity import count_closed_hours
from rempart.periodic import Periodic
from rempart.services import Services

__all__ = ["RollupPump"]

log = structlog.get_logger("rempart.console")


class RollupPump(Periodic):
    def __init__(self, services: Services, *, interval_seconds: float) -> None:
        self._services = services
        super().__init__(
            "rempart-rollup",
            self._count,
            interval_seconds=interval_seconds,
            failed="rollup_pump_failed",
            logger=log,
        )

    def run_once(self) -> int:
        """Counts every missing closed hour of the charts' span; returns how many."""
        services = self._services
        counted, _ = count_closed_hours(
            services.engine, services.audit_engine, now_us=now_us(), max_hours=None
        )
        return counted

    def _count(self) -> None:
        counted = self.run_once()
        if counted:
            log.info("rollup_hours_counted", hours=counted)
