"""Keeps the console's roll-up of the audit trail current while the server runs.

The overview counts closed hours into ``console_hourly_counts``; a page view counts only
a few (its time is bounded). This thread counts every missing hour of the charts' span
a minute after start, then each minute the hour that closed, so that a view seldom has
anything left to count. Several workers may each run one: an hour is claimed by its
``console_hours_done`` row, so it is counted once.
"""

from __future__ import annotations

import threading

import structlog

from rempart.audit.trail import now_us
from rempart.console.activity import count_closed_hours
from rempart.services import Services

__all__ = ["RollupPump"]

log = structlog.get_logger("rempart.console")


class RollupPump:
    def __init__(self, services: Services, *, interval_seconds: float) -> None:
        self._services = services
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rempart-rollup", daemon=True)

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def run_once(self) -> int:
        """Counts every missing closed hour of the charts' span; returns how many."""
        services = self._services
        counted, _ = count_closed_hours(
            services.engine, services.audit_engine, now_us=now_us(), max_hours=None
        )
        return counted

    def _run(self) -> None:
        # The first pass waits an interval too: a server that starts and stops at once
        # (a test, a health check) does not scan the trail.
        while not self._stop.wait(self._interval):
            try:
                counted = self.run_once()
            except Exception as exc:  # noqa: BLE001 - the pump must outlive any one failure
                log.warning("rollup_pump_failed", error=type(exc).__name__)
                continue
            if counted:
                log.info("rollup_hours_counted", hours=counted)
