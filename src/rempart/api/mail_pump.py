"""Sends the outbox while the server runs.

E-mails are written to the outbox in the transaction of what they report; this
thread sends them shortly after, so no request waits on a mail server and a
mail server that is down delays e-mails without failing logins. Several
workers may each run one: the outbox hands every row to one of them only.
"""

from __future__ import annotations

import threading

import structlog

from rempart.services import Services

__all__ = ["MailPump"]

log = structlog.get_logger("rempart.mail")


class MailPump:
    def __init__(self, services: Services, *, interval_seconds: float) -> None:
        self._services = services
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rempart-mail", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        services = self._services
        while not self._stop.wait(self._interval):
            try:
                report = services.outbox.deliver_pending(services.sessions, services.mail_sender)
            except Exception as exc:  # noqa: BLE001 - the pump must outlive any one failure
                log.warning("mail_pump_failed", error=type(exc).__name__)
                continue
            if report.sent or report.failed:
                log.info("mail_delivered", sent=report.sent, failed=report.failed)
