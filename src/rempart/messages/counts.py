"""The message checker's anonymous counts: checks per day, door, channel and verdict.

This is all the checker keeps. A row tells how many messages a door judged one way on
one day; nothing in it tells one check from another (no text, no sender, no address,
no time of day). Each check adds one in a single upsert statement, atomic on SQLite and
PostgreSQL alike, so concurrent workers never lose a count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from rempart.store.models import MessageCheckCount

__all__ = ["DOORS", "CheckCount", "Door", "count_check", "read_counts", "verdict_totals"]

Door = Literal["cli", "api", "page"]
DOORS: tuple[Door, ...] = ("cli", "api", "page")


@dataclass(frozen=True, slots=True)
class CheckCount:
    day: date
    door: str
    channel: str
    verdict: str
    checks: int

    def to_json(self) -> dict[str, object]:
        return {
            "day": self.day.isoformat(),
            "door": self.door,
            "channel": self.channel,
            "verdict": self.verdict,
            "checks": self.checks,
        }


def count_check(
    engine: Engine, *, door: Door, channel: str, verdict: str, day: date | None = None
) -> None:
    """Add one check to its day's count (today, UTC, unless ``day`` is given)."""
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    statement = insert(MessageCheckCount).values(
        day=day or datetime.now(UTC).date(), door=door, channel=channel, verdict=verdict, checks=1
    )
    statement = statement.on_conflict_do_update(
        index_elements=["day", "door", "channel", "verdict"],
        set_={"checks": MessageCheckCount.checks + 1},
    )
    with engine.begin() as connection:
        connection.execute(statement)


def read_counts(engine: Engine, *, since: date | None = None) -> list[CheckCount]:
    """Every count from ``since`` on (all when None), oldest day first."""
    query = select(MessageCheckCount).order_by(
        MessageCheckCount.day,
        MessageCheckCount.door,
        MessageCheckCount.channel,
        MessageCheckCount.verdict,
    )
    if since is not None:
        query = query.where(MessageCheckCount.day >= since)
    with engine.connect() as connection:
        return [
            CheckCount(row.day, row.door, row.channel, row.verdict, row.checks)
            for row in connection.execute(query)
        ]


def verdict_totals(engine: Engine, *, since: date) -> dict[str, int]:
    """Checks per verdict from ``since`` on, every door and channel together."""
    query = (
        select(MessageCheckCount.verdict, func.sum(MessageCheckCount.checks))
        .where(MessageCheckCount.day >= since)
        .group_by(MessageCheckCount.verdict)
    )
    with engine.connect() as connection:
        return {verdict: int(total) for verdict, total in connection.execute(query)}
