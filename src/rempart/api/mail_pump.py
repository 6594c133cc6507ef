"""Sends the outbox while the server runs.

E-mails are written to the outbox in the transaction of what they report; this
thread sends them shortly after, so no request waits on a mail server and a
mail server that is down delays e-mails without failing logins. Several
workers may each run one: the outbox hands every row to one of them only.
"""

from __future__ import annotations

import structlog

from rempart.periodic import Periodic
from rempart.services import Services

__all__ = ["MailPump"]

log = structlog.get_logger("rempart.mail")


class MailPump(Periodic):
    def __init__(self, services: Services, *, interval_seconds: float) -> None:
        self._services = services
        super().__init__(
            "rempart-mail",
            self._deliver,
            interval_seconds=interval_seconds,
            failed="mail_pump_failed",
            logger=log,
        )

    def _deliver(self) -> None:
        services = self._services
        report = services.outbox.deliver_pending(services.sessions, services.mail_sender)
        if report.sent or report.failed:
            log.info("mail_delivered", sent=report.sent, failed=report.failed)
