"""A world's calendar and its random streams: both fixed by the parameters, never the clock.

The world always ends at :data:`REFERENCE_END` (a Monday, midnight UTC), so
that the same parameters give the same files on any day. The first three
quarters of the days are history the guard may learn from; the rest (at least
one day) is the evaluation window.

>>> cal = WorldCalendar.from_days(28)
>>> cal.start.isoformat(), cal.window_start.isoformat(), cal.end.isoformat()
('2025-03-03T00:00:00+00:00', '2025-03-24T00:00:00+00:00', '2025-03-31T00:00:00+00:00')
>>> cal.history_days, cal.window_days
(21, 7)
>>> [WorldCalendar.from_days(d).history_days for d in (1, 2, 3, 7)]
[0, 1, 2, 5]
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

__all__ = ["REFERENCE_END", "WorldCalendar", "step_rng"]

REFERENCE_END = datetime(2025, 3, 31, tzinfo=UTC)
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class WorldCalendar:
    start: datetime
    window_start: datetime
    end: datetime

    @classmethod
    def from_days(cls, days: int) -> WorldCalendar:
        if days < 1:
            raise ValueError("a world needs at least one day")
        history = min(days - 1, max(1, (3 * days) // 4))  # a one-day world is all window
        start = REFERENCE_END - timedelta(days=days)
        return cls(start=start, window_start=start + timedelta(days=history), end=REFERENCE_END)

    @property
    def history_days(self) -> int:
        return (self.window_start - self.start).days

    @property
    def window_days(self) -> int:
        return (self.end - self.window_start).days

    @property
    def start_day(self) -> int:
        """The start date as days since 1970-01-01 (Arrow ``date32``)."""
        return (self.start.date() - _EPOCH).days


def step_rng(seed: int, step: str) -> np.random.Generator:
    """An independent random stream per generator step.

    Each step draws from its own stream, so adding or changing one step (say,
    traffic) leaves the output of the others unchanged.
    """
    if seed < 0:
        raise ValueError("the seed must be a non-negative integer")
    return np.random.default_rng([seed, zlib.crc32(step.encode("utf-8"))])
