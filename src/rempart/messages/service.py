"""One check, the same through every door (the CLI, the API, the public page): read the
message, bound the caller, judge it, count it, log the verdict.

Nothing of the message is kept: the anonymous count (:mod:`rempart.messages.counts`)
and a log line naming the door and the verdict are all that remain. Its text, its
sender, its subject and the caller's address appear in no log line, no error detail,
no table.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from rempart.messages import (
    MessageChecker,
    MessageRules,
    NoticeCodeCheck,
    Verdict,
    read_message,
)
from rempart.messages.counts import Door, count_check
from rempart.messages.throttle import MessageCheckThrottle, throttled_notice_check
from rempart.notify.breach.verify import NoticeCheckThrottle

__all__ = ["MessageCheckService"]


def _log() -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("rempart.messages")
    return logger


@dataclass
class MessageCheckService:
    rules: MessageRules
    notice_check: NoticeCodeCheck
    """The notice-code lookup, unbounded: the doors that take callers' addresses bound it."""
    throttle: MessageCheckThrottle
    notice_throttle: NoticeCheckThrottle
    engine: Engine
    """Where the counts go (the data database)."""
    max_bytes: int

    def check(
        self,
        body: bytes,
        *,
        channel: str,
        sender: str = "",
        subject: str | None = None,
        door: Door,
        address: str | None = None,
    ) -> Verdict:
        """The verdict on a raw message (text or a whole ``.eml``).

        With an ``address`` (the API and the page), the caller is bounded first, and a
        notice code in the message counts against ``/verifier``'s limits; raises
        :class:`~rempart.auth.throttle.Throttled` past a limit. Without (the CLI, run
        by the insurer's own staff), nothing is bounded. Raises
        :class:`~rempart.messages.InvalidMessage` for what is not a message."""
        if address is not None:
            self.throttle.admit(address)
        message = read_message(
            body, channel=channel, sender=sender, subject=subject, max_bytes=self.max_bytes
        )
        notice_check = self.notice_check
        if address is not None:
            notice_check = throttled_notice_check(notice_check, self.notice_throttle, address)
        verdict = MessageChecker(self.rules, notice_check=notice_check).check(message)
        self._count(door, message.channel, verdict.verdict)
        _log().info("message_checked", door=door, verdict=verdict.verdict)
        return verdict

    def _count(self, door: Door, channel: str, verdict: str) -> None:
        try:
            count_check(self.engine, door=door, channel=channel, verdict=verdict)
        except SQLAlchemyError as exc:
            # A statistic lost is better than a person left without an answer.
            _log().warning("message_count_lost", door=door, error_type=type(exc).__name__)
