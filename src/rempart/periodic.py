"""A step repeated in a background thread while the server runs (the outbox's sending,
the console's roll-up, the claims follower).

A pass that raises is logged, by the error's type only (a message could carry a value
from a row), and the next pass runs as usual: the thread outlives any one failure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

__all__ = ["Periodic"]


class Periodic:
    """Runs ``step`` every ``interval_seconds`` in a daemon thread named ``name``, from
    :meth:`start` until :meth:`stop`; with ``at_start``, the first pass runs at once,
    else after one interval (a server that starts and stops at once, a test or a health
    check, then does nothing). An interval of 0 or less starts no thread: whoever owns
    the step runs it by hand."""

    def __init__(
        self,
        name: str,
        step: Callable[[], None],
        *,
        interval_seconds: float,
        failed: str,
        logger: structlog.stdlib.BoundLogger,
        at_start: bool = False,
    ) -> None:
        self._step = step
        self._interval = interval_seconds
        self._failed = failed
        self._log = logger
        self._at_start = at_start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the thread repeats the step (False when it was never started, as with
        an interval of 0, or when it ended)."""
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        if not self._at_start and self._stop.wait(self._interval):
            return
        while True:
            try:
                self._step()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one failure
                self._log.warning(self._failed, error_type=type(exc).__name__)
            if self._stop.wait(self._interval):
                return
