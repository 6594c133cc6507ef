"""The overview's figures: lookups per minute, decisions, charts over hours and days.

The audit trail may hold tens of millions of entries, so no page view scans it whole.
A closed hour never changes (entries are appended when they happen), so it is counted
once into ``console_hourly_counts`` (entries per hour, event and decision) and marked in
``console_hours_done``; the open hour and the last minutes are read live, through the
trail's index on ``ts_us``. An hour counts as closed only :data:`GRACE_US` after its
end: an entry stamped just before the hour turned may be committed just after it.

Each page view counts at most ``max_hours`` missing closed hours, the newest first (the
oldest wait for the next views): the first view after a deployment on a large trail does
not count a month at once, and once caught up a view counts at most the one hour that
closed since the last. Hours before the trail's first entry are marked done without
counting (one index lookup), and the server's roll-up pump (``api/rollup_pump.py``)
counts every missing hour in the background a minute after start and every minute
after, so views rarely find one. Hours not counted yet are reported as such, never
guessed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rempart.audit.models import AuditEvent
from rempart.store.models import Account, ConsoleHourDone, ConsoleHourlyCount, GuardAlert

__all__ = [
    "CHART_DAYS",
    "CHART_HOURS",
    "DECISIONS",
    "GRACE_US",
    "HOUR_US",
    "MAX_HOURS_PER_VIEW",
    "Bar",
    "Chart",
    "ChartBar",
    "Overview",
    "chart",
    "count_closed_hours",
    "overview",
]

HOUR_US = 3_600_000_000
MINUTE_US = 60_000_000
GRACE_US = 2 * MINUTE_US
CHART_HOURS = 48
CHART_DAYS = 30
MAX_HOURS_PER_VIEW = 12
DECISIONS = ("allow", "step_up", "deny")
LOOKUP = "lookup"
PARIS = ZoneInfo("Europe/Paris")

# (event, decision) -> entries
Counts = dict[tuple[str, str], int]


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of a chart: lookups in a period, the denied ones apart; ``pending`` when
    some of its closed hours are not counted yet (its figures are then partial)."""

    start: datetime
    label: str
    lookups: int
    denied: int
    pending: bool


@dataclass(frozen=True, slots=True)
class Overview:
    now: datetime
    per_minute_5: float
    per_minute_60: float
    decisions_24h: dict[str, int]
    since_24h: datetime
    open_alerts: int
    suspended_accounts: int
    hours: tuple[Bar, ...]
    days: tuple[Bar, ...]
    pending_hours: int
    """Closed hours of the charts' span still to be counted (later views will)."""
    counted_now: int
    """Closed hours this view counted."""


@dataclass(frozen=True, slots=True)
class ChartBar:
    """A bar's place in a chart's SVG (user units): the whole bar, its denied part."""

    bar: Bar
    x: float
    width: float
    y: float
    height: float
    deny_y: float
    deny_height: float


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    top: int
    """The largest bar's value (the scale)."""
    bars: tuple[ChartBar, ...]


def chart(bars: tuple[Bar, ...], *, width: int = 720, height: int = 160) -> Chart:
    """Bar geometry for a server-rendered SVG (no script, no inline style: the page
    draws it with presentation attributes)."""
    top = max((bar.lookups for bar in bars), default=0)
    step = width / max(len(bars), 1)
    scale = (height - 12) / top if top else 0.0
    placed = []
    for i, bar in enumerate(bars):
        h = bar.lookups * scale
        d = bar.denied * scale
        placed.append(
            ChartBar(
                bar=bar,
                x=round(i * step + step * 0.1, 2),
                width=round(step * 0.8, 2),
                y=round(height - h, 2),
                height=round(h, 2),
                deny_y=round(height - d, 2),
                deny_height=round(d, 2),
            )
        )
    return Chart(width=width, height=height, top=top, bars=tuple(placed))


def _closed_before(now_us: int) -> int:
    """The first hour that is not closed yet (hours since the epoch)."""
    return (now_us - GRACE_US) // HOUR_US


def _count_hour_live(audit: Session, start_us: int, end_us: int) -> Counts:
    rows = audit.execute(
        select(AuditEvent.event, AuditEvent.decision, func.count())
        .where(AuditEvent.ts_us >= start_us, AuditEvent.ts_us < end_us)
        .group_by(AuditEvent.event, AuditEvent.decision)
    ).all()
    return {(str(event), str(decision)): int(n) for event, decision, n in rows}


def count_closed_hours(
    data_engine: Engine,
    audit_engine: Engine,
    *,
    now_us: int,
    span_hours: int = CHART_DAYS * 24 + 24,
    max_hours: int | None = MAX_HOURS_PER_VIEW,
) -> tuple[int, int]:
    """Counts up to ``max_hours`` (None: all) closed hours of the last ``span_hours`` that
    are not in the roll-up yet, newest first. Returns (hours counted, closed hours still missing).

    Each hour is written with its ``console_hours_done`` row in one transaction: two
    views counting the same hour at once collide on that row's key, and the second one
    leaves the first one's counts alone."""
    first_open = _closed_before(now_us)
    oldest = first_open - span_hours
    _mark_before_trail(data_engine, audit_engine, oldest, first_open)
    with Session(data_engine) as data:
        done = set(
            data.scalars(
                select(ConsoleHourDone.hour).where(
                    ConsoleHourDone.hour >= oldest, ConsoleHourDone.hour < first_open
                )
            )
        )
    missing = [hour for hour in range(first_open - 1, oldest - 1, -1) if hour not in done]
    counted = 0
    with Session(audit_engine) as audit:
        for hour in missing if max_hours is None else missing[:max_hours]:
            counts = _count_hour_live(audit, hour * HOUR_US, (hour + 1) * HOUR_US)
            audit.rollback()  # no read transaction held open across hours
            try:
                with Session(data_engine) as data, data.begin():
                    data.add(ConsoleHourDone(hour=hour))
                    data.flush()  # the key claims the hour before its counts go in
                    data.add_all(
                        ConsoleHourlyCount(hour=hour, event=event, decision=decision, entries=n)
                        for (event, decision), n in counts.items()
                    )
            except IntegrityError:
                continue  # another view counted it meanwhile
            counted += 1
    return counted, len(missing) - counted


def _mark_before_trail(
    data_engine: Engine, audit_engine: Engine, oldest: int, first_open: int
) -> None:
    """Marks done, without counting them, the closed hours of [oldest, first_open) that
    end before the trail's first entry (all of them when the trail is empty): a new
    deployment's charts are complete at once, not after dozens of views."""
    with Session(audit_engine) as audit:
        first_us = audit.scalar(select(func.min(AuditEvent.ts_us)))
    before = first_open if first_us is None else min(first_open, int(first_us) // HOUR_US)
    if before <= oldest:
        return
    with Session(data_engine) as data:
        done = set(
            data.scalars(
                select(ConsoleHourDone.hour).where(
                    ConsoleHourDone.hour >= oldest, ConsoleHourDone.hour < before
                )
            )
        )
    empty = [hour for hour in range(oldest, before) if hour not in done]
    if not empty:
        return
    try:
        with Session(data_engine) as data, data.begin():
            data.add_all(ConsoleHourDone(hour=hour) for hour in empty)
    except IntegrityError:
        pass  # another view marked some meanwhile; the next one finishes


def _rolled_up(data: Session, first: int, last: int) -> tuple[dict[int, Counts], set[int]]:
    """Counts per hour in [first, last) from the roll-up, and the hours marked done."""
    per_hour: dict[int, Counts] = defaultdict(dict)
    for hour, event, decision, n in data.execute(
        select(
            ConsoleHourlyCount.hour,
            ConsoleHourlyCount.event,
            ConsoleHourlyCount.decision,
            ConsoleHourlyCount.entries,
        ).where(ConsoleHourlyCount.hour >= first, ConsoleHourlyCount.hour < last)
    ):
        per_hour[int(hour)][(str(event), str(decision))] = int(n)
    done = set(
        data.scalars(
            select(ConsoleHourDone.hour).where(
                ConsoleHourDone.hour >= first, ConsoleHourDone.hour < last
            )
        )
    )
    return per_hour, done


def _lookups(counts: Counts) -> tuple[int, int]:
    total = sum(n for (event, _), n in counts.items() if event == LOOKUP)
    return total, counts.get((LOOKUP, "deny"), 0)


def _lookups_since(audit: Session, since_us: int) -> int:
    return int(
        audit.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.ts_us >= since_us, AuditEvent.event == LOOKUP)
        )
        or 0
    )


def _at(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, UTC)


def overview(
    data_engine: Engine,
    audit_engine: Engine,
    *,
    now_us: int,
    max_hours: int = MAX_HOURS_PER_VIEW,
) -> Overview:
    """Everything the overview page shows, as of ``now_us``: first the roll-up brought
    up to date (at most ``max_hours`` hours counted), then the live parts."""
    first_open = _closed_before(now_us)
    current = now_us // HOUR_US
    now = datetime.fromtimestamp(now_us / 1_000_000, UTC)
    # Days are the Paris calendar's: the span reaches back to the start of the day that
    # is CHART_DAYS - 1 days before today.
    today = now.astimezone(PARIS).date()
    first_day = date.fromordinal(today.toordinal() - CHART_DAYS + 1)
    span_start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=PARIS)
    oldest = int(span_start.timestamp()) // 3600
    counted, _ = count_closed_hours(
        data_engine,
        audit_engine,
        now_us=now_us,
        span_hours=first_open - oldest,
        max_hours=max_hours,
    )
    with Session(data_engine) as data:
        per_hour, done = _rolled_up(data, oldest, first_open)
        open_alerts = int(
            data.scalar(
                select(func.count()).select_from(GuardAlert).where(GuardAlert.status == "open")
            )
            or 0
        )
        suspended = int(
            data.scalar(
                select(func.count()).select_from(Account).where(Account.status == "suspended")
            )
            or 0
        )
    with Session(audit_engine) as audit:
        # The hours not closed yet (the open one, and the last one during its grace).
        for hour in range(first_open, current + 1):
            per_hour[hour] = _count_hour_live(audit, hour * HOUR_US, (hour + 1) * HOUR_US)
            done.add(hour)
        last_5 = _lookups_since(audit, now_us - 5 * MINUTE_US)
        last_60 = _lookups_since(audit, now_us - 60 * MINUTE_US)

    hours: list[Bar] = []
    for hour in range(current - CHART_HOURS + 1, current + 1):
        lookups, denied = _lookups(per_hour.get(hour, {}))
        start = _at(hour).astimezone(PARIS)
        hours.append(Bar(start, start.strftime("%d/%m %Hh"), lookups, denied, hour not in done))

    days: dict[date, list[int]] = {}
    day_pending: set[date] = set()
    for hour in range(oldest, current + 1):
        day = _at(hour).astimezone(PARIS).date()
        totals = days.setdefault(day, [0, 0])
        lookups, denied = _lookups(per_hour.get(hour, {}))
        totals[0] += lookups
        totals[1] += denied
        if hour not in done:
            day_pending.add(day)
    day_bars = tuple(
        Bar(
            datetime(day.year, day.month, day.day, tzinfo=PARIS),
            day.strftime("%d/%m"),
            lookups,
            denied,
            day in day_pending,
        )
        for day, (lookups, denied) in sorted(days.items())
    )

    first_24 = current - 23
    decisions = dict.fromkeys(DECISIONS, 0)
    for hour in range(first_24, current + 1):
        for (event, decision), n in per_hour.get(hour, {}).items():
            if event == LOOKUP and decision in decisions:
                decisions[decision] += n
    pending = sum(1 for hour in range(oldest, first_open) if hour not in done)
    return Overview(
        now=now,
        per_minute_5=last_5 / 5,
        per_minute_60=last_60 / 60,
        decisions_24h=decisions,
        since_24h=_at(first_24),
        open_alerts=open_alerts,
        suspended_accounts=suspended,
        hours=tuple(hours),
        days=day_bars,
        pending_hours=pending,
        counted_now=counted,
    )
