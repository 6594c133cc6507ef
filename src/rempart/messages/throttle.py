"""Bounds on the public message checker, in the login throttle's store (memory or Redis).

Two limits of its own: checks per client address (an IPv4 address, an IPv6 ``/64``)
over a window, and checks across the service per minute, so that nobody turns the
checker into a free oracle for tuning phishing texts at machine speed. Keys are keyed
hashes: the store holds no address.

A message can carry a breach notice's verification code, which the checker looks up.
That lookup must not be a way round ``/verifier``'s guessing limits, so
:func:`throttled_notice_check` counts it in the notice check's own windows
(:class:`~rempart.notify.breach.verify.NoticeCheckThrottle`): per address, network,
code and service, as if the code had been typed on ``/verifier``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from rempart.auth.throttle import Alarm, CounterStore, Throttled, Window, source_of
from rempart.messages import NoticeCodeCheck
from rempart.notify.breach.codes import normalize_code
from rempart.notify.breach.verify import NoticeCheckThrottle

if TYPE_CHECKING:
    from rempart.config import Settings

__all__ = ["MessageCheckLimits", "MessageCheckThrottle", "throttled_notice_check"]


def _log() -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("rempart.messages")
    return logger


@dataclass(frozen=True)
class MessageCheckLimits:
    window_seconds: int = 600
    address_checks: int = 120
    global_per_minute: int = 1200

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"message check limit {name} must be a positive integer")

    @classmethod
    def from_settings(cls, settings: Settings) -> MessageCheckLimits:
        return cls(
            window_seconds=settings.messages_check_window_seconds,
            address_checks=settings.messages_check_address_checks,
            global_per_minute=settings.messages_check_global_per_minute,
        )


class MessageCheckThrottle:
    """Fixed windows, checked and counted atomically in one call to the store."""

    _GLOBAL_SECONDS = 60

    def __init__(
        self,
        store: CounterStore,
        limits: MessageCheckLimits,
        *,
        secret: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the message throttle's secret must hold at least 16 bytes")
        self._store = store
        self._secret = secret
        self.limits = limits
        self.clock = clock

    def admit(self, address: str) -> None:
        """Count a check from ``address``, or raise :class:`Throttled` (nothing counted)."""
        now = self.clock()
        lim = self.limits
        mac = hmac.new(self._secret, source_of(address).address.encode(), hashlib.sha256)
        minute = int(now // self._GLOBAL_SECONDS)
        rules = [
            Window(
                "message_address_checks",
                f"m:a:{mac.hexdigest()[:24]}",
                lim.address_checks,
                lim.address_checks,
                lim.window_seconds,
                True,
            ),
            # One key per minute: the window turns on the clock's minute on every worker.
            Window(
                "message_global_checks",
                f"m:g:{minute}",
                lim.global_per_minute,
                lim.global_per_minute,
                self._GLOBAL_SECONDS,
                True,
            ),
        ]
        # The login throttle's "under attack" mode is not used here (threshold 0).
        alarm = Alarm(current_key="m:alarm", previous_key="m:alarm:previous", threshold=0)
        verdict = self._store.attempt(now, alarm, rules)
        if verdict.wait > 0:
            _log().info("message_check_throttled", rule=verdict.rule, retry_after=verdict.wait)
            raise Throttled(verdict.wait)


def throttled_notice_check(
    check: NoticeCodeCheck, throttle: NoticeCheckThrottle, address: str
) -> NoticeCodeCheck:
    """``check`` counted in the notice check's limits for ``address``: admitted first
    (raising :class:`Throttled` past a limit), a code that matches no notice counted as
    a failed check of that code."""

    def guarded(code: str, last_name: str | None) -> bool:
        bare = normalize_code(code)
        throttle.admit(address, bare)
        genuine = check(code, last_name)
        if not genuine and bare is not None:
            throttle.failure(address, bare)
        return genuine

    return guarded
