"""Attacks injected into a world's evaluation window, one parameterised scenario per family.

The families are DESIGN.md's:

``scrape_2022``
    The March 2022 pattern: a few accounts, mostly pharmacies, logged into with
    a stolen password from hosting addresses, and a robot reading a list of
    insured persons at machine speed (two lookups a second, tens of thousands
    per account).
``slow_scrape``
    A scraper that stays near the professional's normal volume: a share of
    extra lookups of people from the practice's area, during working hours on
    working days, from a residential address and an ordinary browser.
``campaign``
    Many accounts each used a little, from one small block of hosting
    addresses with one user agent.
``enumeration``
    Made-up NIRs (valid check keys, guessed birth dates): almost all unknown.
``off_hours``
    An account used at night, from a new residential address.
``stolen_session``
    A session token of the professional reused minutes after its last
    legitimate use, from a new network (same user agent when copied along).

Each scenario is a dataclass of its knobs (accounts, rate, duration, start,
infrastructure, targets); its lookups carry its ``name`` in ``labels.parquet``
and never lead to a claim. Victims are distinct accounts chosen by the
attacks' own random stream, and nothing in ``world.json`` names them.

On the command line a scenario is written ``family[:knob=value...]``, e.g.
``scrape_2022:accounts=5:rate_per_second=3`` (tuples with ``+``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from stdnum.fr.nir import calc_check_digits

from rempart.world.geography import DEPARTMENT_CODES
from rempart.world.population import Population
from rempart.world.schema import PROFESSIONS
from rempart.world.timeline import WorldCalendar
from rempart.world.traffic import (
    AUTH_VALUES,
    BROWSERS,
    CHANNELS,
    FIXED_LINE_BLOCKS,
    HOUR_US,
    MINUTE_US,
    MOBILE_BLOCKS,
    SECOND_US,
    Events,
    Traffic,
    random_ips,
    session_tokens,
    to_utc,
)

__all__ = [
    "FAMILIES",
    "HOSTING_BLOCKS",
    "Campaign",
    "Enumeration",
    "OffHours",
    "Scenario",
    "Scrape2022",
    "SlowScrape",
    "StolenSession",
    "default_scenarios",
    "inject_attacks",
    "parse_scenarios",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

# Hosting providers' address blocks (VPS, proxies).
HOSTING_BLOCKS: tuple[tuple[int, int, int], ...] = (
    (185, 220, 247), (45, 132, 159), (51, 75, 91), (91, 219, 239), (5, 188, 188),
    (104, 244, 244), (146, 70, 70), (193, 32, 32),
)  # fmt: skip
_NETWORKS = {"hosting": HOSTING_BLOCKS, "residential": FIXED_LINE_BLOCKS, "mobile": MOBILE_BLOCKS}
_TARGETS = ("random", "department")


@dataclass(frozen=True)
class Scenario:
    """Knobs every family has."""

    family: ClassVar[str] = ""
    name: str = ""
    """Label of its lookups (default: the family)."""
    accounts: int = 1
    """Accounts compromised (fewer when the world has not enough)."""
    start_hour: float | None = None
    """Hours after the window opens; drawn when None."""
    network: str = "hosting"
    """Where the attacker's addresses come from: hosting, residential or mobile."""
    ips: tuple[str, ...] = ()
    """The attacker's addresses; drawn from ``network`` when empty."""
    user_agents: tuple[str, ...] = ()
    """The attacker's user agents; the family's default when empty."""
    auth: str = "totp"
    channel: str = "portal"
    target: str = "random"
    """Who is looked up: random insured persons, or people of the victim's area."""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.family)
        if self.accounts < 0:
            raise ValueError(f"{self.family}: accounts must be non-negative")
        if self.network not in _NETWORKS:
            raise ValueError(f"{self.family}: network must be one of {', '.join(_NETWORKS)}")
        if self.auth not in AUTH_VALUES:
            raise ValueError(f"{self.family}: auth must be one of {', '.join(AUTH_VALUES)}")
        if self.channel not in CHANNELS:
            raise ValueError(f"{self.family}: channel must be one of {', '.join(CHANNELS)}")
        if self.target not in _TARGETS:
            raise ValueError(f"{self.family}: target must be one of {', '.join(_TARGETS)}")
        if self.start_hour is not None and self.start_hour < 0:
            raise ValueError(f"{self.family}: start_hour must be non-negative")

    def describe(self) -> dict[str, Any]:
        """Family and knobs, for ``world.json``."""
        return {"family": self.family, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class Scrape2022(Scenario):
    family: ClassVar[str] = "scrape_2022"
    accounts: int = 3
    pharmacy_share: float = 0.8
    """Share of the victims that are pharmacies."""
    lookups_per_account: int = 20_000
    rate_per_second: float = 2.0
    stagger_hours: float = 6.0
    """Accounts start within this many hours of each other."""
    miss_rate: float = 0.02
    """Stale entries of the attacker's list (birth date no longer matching)."""
    session_lookups: int = 2_000
    """Lookups per login session."""
    user_agents: tuple[str, ...] = ("python-requests/2.27.1",)
    auth: str = "password"


@dataclass(frozen=True)
class SlowScrape(Scenario):
    family: ClassVar[str] = "slow_scrape"
    accounts: int = 3
    extra_share: float = 0.6
    """Extra lookups per working day, as a share of the account's normal volume."""
    days: int = 0
    """Days of activity (0: the whole window)."""
    network: str = "residential"
    target: str = "department"


@dataclass(frozen=True)
class Campaign(Scenario):
    family: ClassVar[str] = "campaign"
    accounts: int = 12
    per_account_per_day: int = 80
    days: int = 3
    addresses: int = 3
    """Addresses in the one /24 block the whole campaign uses."""
    user_agents: tuple[str, ...] = (BROWSERS[0][2],)


@dataclass(frozen=True)
class Enumeration(Scenario):
    family: ClassVar[str] = "enumeration"
    accounts: int = 1
    lookups_per_account: int = 3_000
    rate_per_second: float = 0.5
    valid_key_share: float = 0.9
    """Made-up NIRs with a correct check key (the rest fail validation)."""
    mode: str = "random"
    """``random`` NIRs, or ``sequential`` order numbers next to a real one."""
    user_agents: tuple[str, ...] = ("curl/8.5.0",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("random", "sequential"):
            raise ValueError("enumeration: mode must be random or sequential")


@dataclass(frozen=True)
class OffHours(Scenario):
    family: ClassVar[str] = "off_hours"
    accounts: int = 2
    nights: int = 3
    lookups_per_night: int = 150
    first_hour: int = 0
    """Local hour the night's activity starts."""
    seconds_between: tuple[float, float] = (5.0, 30.0)
    network: str = "residential"


@dataclass(frozen=True)
class StolenSession(Scenario):
    family: ClassVar[str] = "stolen_session"
    accounts: int = 3
    lookups_per_account: int = 300
    seconds_between: tuple[float, float] = (2.0, 8.0)
    delay_minutes: tuple[float, float] = (5.0, 45.0)
    """After the session's last legitimate lookup (within the idle timeout)."""
    same_user_agent: bool = True


FAMILIES: dict[str, type[Scenario]] = {
    cls.family: cls
    for cls in (Scrape2022, SlowScrape, Campaign, Enumeration, OffHours, StolenSession)
}


def default_scenarios(families: Iterable[str] | None = None) -> list[Scenario]:
    """One scenario with default knobs per family (all families when None)."""
    names = list(FAMILIES) if families is None else list(families)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown attack family: {', '.join(unknown)}")
    return [FAMILIES[n]() for n in names]


def _convert(raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"not a boolean: {raw}")
        return raw.lower() in ("true", "1", "yes")
    if isinstance(default, tuple):
        items = [s for s in raw.split("+") if s]
        return tuple(_convert(s, default[0]) if default else s for s in items)
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float) or default is None:
        return float(raw)
    return raw


def parse_scenarios(spec: str) -> list[Scenario]:
    """Scenarios from ``family[:knob=value...][,family...]``; ``all`` or ``none`` too.

    >>> [s.name for s in parse_scenarios("enumeration:lookups_per_account=10,off_hours")]
    ['enumeration', 'off_hours']
    >>> parse_scenarios("none"), len(parse_scenarios("all"))
    ([], 6)
    """
    spec = spec.strip()
    if spec in ("", "none"):
        return []
    if spec == "all":
        return default_scenarios()
    out: list[Scenario] = []
    for item in spec.split(","):
        family, *knobs = item.strip().split(":")
        if family not in FAMILIES:
            raise ValueError(f"unknown attack family: {family} (known: {', '.join(FAMILIES)})")
        cls = FAMILIES[family]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for knob in knobs:
            key, sep, raw = knob.partition("=")
            if not sep or key not in fields:
                raise ValueError(f"{family}: unknown knob {key!r} (known: {', '.join(fields)})")
            default = fields[key].default
            values[key] = _convert(raw, default)
        out.append(cls(**values))
    return out


# --------------------------------------------------------------------------- context


@dataclass
class _Context:
    population: Population
    calendar: WorldCalendar
    traffic: Traffic
    rng: np.random.Generator
    taken: set[int]
    window_start_us: int
    end_us: int

    @property
    def window_hours(self) -> float:
        return (self.end_us - self.window_start_us) / HOUR_US

    def victims(
        self,
        count: int,
        prefer: Sequence[str] = (),
        share: float = 0.0,
        among: IntArray | None = None,
    ) -> IntArray:
        """``count`` accounts not yet compromised; about ``share`` of them of ``prefer``."""
        pros = self.population.professionals.profession
        pool = np.arange(len(pros)) if among is None else among
        free = np.array([a for a in pool.tolist() if a not in self.taken], dtype=np.int64)
        free = free[self.rng.permutation(len(free))]
        preferred = np.isin(pros[free], [PROFESSIONS.index(p) for p in prefer])
        want = min(count, len(free))
        first = free[preferred][: round(want * share)]
        rest = np.setdiff1d(free, first, assume_unique=True)
        rest = rest[self.rng.permutation(len(rest))]
        chosen = np.concatenate([first, rest[: want - len(first)]]).astype(np.int64)
        self.taken.update(chosen.tolist())
        return chosen

    def start(self, scenario: Scenario, duration_hours: float) -> int:
        """When the scenario begins (microseconds), so that it fits in the window if it can."""
        if scenario.start_hour is not None:
            hours = scenario.start_hour
        else:
            hours = self.rng.random() * max(0.0, self.window_hours - duration_hours)
        return self.window_start_us + int(hours * HOUR_US)

    def ips(self, scenario: Scenario, count: int) -> IntArray:
        values = list(scenario.ips) or random_ips(self.rng, count, _NETWORKS[scenario.network])
        picked = [values[i % len(values)] for i in range(count)]
        return self.traffic.ips.add(picked)

    def agents(self, scenario: Scenario, count: int) -> IntArray:
        values = list(scenario.user_agents)
        if not values:
            weights = np.array([b[0] for b in BROWSERS])
            rows = self.rng.choice(len(BROWSERS), size=count, p=weights / weights.sum())
            values = [BROWSERS[int(r)][2] for r in rows]
        return self.traffic.user_agents.add([values[i % len(values)] for i in range(count)])

    def targets(self, scenario: Scenario, victim: int, count: int) -> IntArray:
        """Insured persons to read: a list without repeats while it lasts, or the victim's area."""
        n = self.population.insured.table.num_rows
        if scenario.target == "department":
            dept = self.population.professionals.department[victim]
            depts = np.full(count, dept, dtype=np.int64)
            return self.traffic.locality.near(depts, self.rng, home=0.9, next_door=0.1)
        rounds = -(-count // n)
        return np.concatenate([self.rng.permutation(n) for _ in range(rounds)])[:count].astype(
            np.int64
        )

    def events(
        self,
        scenario: Scenario,
        label: int,
        *,
        ts: IntArray,
        account: IntArray,
        person: IntArray,
        ip: IntArray,
        ua: IntArray,
        session: IntArray,
        auth: IntArray | None = None,
        channel: IntArray | None = None,
    ) -> Events:
        """Attack lookups of existing persons (right NIR and birth date) unless told otherwise."""
        n = len(ts)
        return Events(
            ts=ts.astype(np.int64),
            account=account.astype(np.int64),
            person=person.astype(np.int64),
            nir=person.astype(np.int64),
            birth=person.astype(np.int64),
            ip=ip.astype(np.int64),
            ua=ua.astype(np.int64),
            session=session.astype(np.int64),
            auth=np.full(n, AUTH_VALUES.index(scenario.auth), dtype=np.int64)
            if auth is None
            else auth,
            channel=np.full(n, CHANNELS.index(scenario.channel), dtype=np.int64)
            if channel is None
            else channel,
            label=np.full(n, label, dtype=np.int64),
            typo=np.zeros(n, dtype=bool),
            oddity=np.zeros(n, dtype=np.int64),
        )

    def local_day_minutes(self, victim: int, day: IntArray, minute: FloatArray) -> IntArray:
        """UTC microseconds of local times at the victim's practice (day of the world)."""
        dept = np.full(len(day), self.population.professionals.department[victim], dtype=np.int64)
        return to_utc(self.calendar, self.traffic.offsets, dept, day, minute)


def _paced(start: int, count: int, low: float, high: float, rng: np.random.Generator) -> IntArray:
    """``count`` instants from ``start``, ``low``-``high`` seconds apart."""
    gaps = (low + rng.random(count) * (high - low)) * SECOND_US
    instants: IntArray = (start + np.cumsum(gaps) - gaps[0]).astype(np.int64)
    return instants


# --------------------------------------------------------------------------- families


def _scrape_2022(s: Scrape2022, label: int, ctx: _Context) -> list[Events]:
    out = []
    duration = s.lookups_per_account / max(s.rate_per_second, 1e-9) / 3600 + s.stagger_hours
    begin = ctx.start(s, duration)
    for victim in ctx.victims(s.accounts, ("pharmacie",), s.pharmacy_share).tolist():
        n = s.lookups_per_account
        start = begin + int(ctx.rng.random() * s.stagger_hours * HOUR_US)
        ts = start + np.cumsum(ctx.rng.exponential(1 / s.rate_per_second, n) * SECOND_US)
        person = ctx.targets(s, victim, n)
        logins = -(-n // max(1, s.session_lookups))
        session = ctx.traffic.sessions.add(session_tokens(ctx.rng, logins))
        ev = ctx.events(
            s, label, ts=ts.astype(np.int64), account=np.full(n, victim), person=person,
            ip=ctx.ips(s, 2)[np.arange(n) // max(1, s.session_lookups) % 2],
            ua=np.full(n, ctx.agents(s, 1)[0]),
            session=session[np.arange(n) // max(1, s.session_lookups)],
        )  # fmt: skip
        _stale(ev, s.miss_rate, ctx)
        out.append(ev)
    return out


def _stale(ev: Events, rate: float, ctx: _Context) -> None:
    """Some entries of the attacker's list no longer match: a wrong birth date."""
    rows = np.flatnonzero(ctx.rng.random(len(ev)) < rate)
    births = ctx.traffic.births.values(ev.birth[rows])
    shifted = [f"{int(b[:4]) - 1:04d}{b[4:]}" for b in births]
    ev.birth[rows] = ctx.traffic.births.add(shifted)
    ev.person[rows] = -1


def _working_minutes(ctx: _Context, victim: int, count: int) -> FloatArray:
    """Local minutes drawn from the victim's usual weekday hours."""
    hours = ctx.traffic.working_hours[victim]
    hour = ctx.rng.choice(24, size=count, p=hours / hours.sum())
    return np.asarray(hour * 60.0 + ctx.rng.random(count) * 60.0, dtype=np.float64)


def _window_weekdays(ctx: _Context) -> IntArray:
    first = ctx.calendar.history_days
    total = (ctx.calendar.end - ctx.calendar.start).days
    days = np.arange(first, total)
    start = ctx.calendar.start.date()
    weekday = np.array([(start + timedelta(days=int(d))).weekday() < 5 for d in days])
    return days[weekday] if weekday.any() else days


def _slow_scrape(s: SlowScrape, label: int, ctx: _Context) -> list[Events]:
    out = []
    days = _window_weekdays(ctx)
    if s.days:
        first = ctx.rng.integers(0, max(1, len(days) - s.days + 1))
        days = days[first : first + s.days]
    for victim in ctx.victims(s.accounts, ("generaliste", "pharmacie"), 0.5).tolist():
        per_day = ctx.rng.poisson(ctx.traffic.daily[victim] * s.extra_share, len(days))
        day = np.repeat(days, per_day)
        n = len(day)
        ts = ctx.local_day_minutes(victim, day, _working_minutes(ctx, victim, n))
        session = ctx.traffic.sessions.add(session_tokens(ctx.rng, len(days)))
        ip = ctx.ips(s, 1)[0]
        ev = ctx.events(
            s, label, ts=ts, account=np.full(n, victim), person=ctx.targets(s, victim, n),
            ip=np.full(n, ip), ua=np.full(n, ctx.agents(s, 1)[0]),
            session=np.repeat(session, per_day),
        )  # fmt: skip
        out.append(ev)
    return out


def _campaign(s: Campaign, label: int, ctx: _Context) -> list[Events]:
    out = []
    base = list(s.ips) or random_ips(ctx.rng, 1, _NETWORKS[s.network])
    head = base[0].rsplit(".", 1)[0]
    lasts = ctx.rng.choice(np.arange(2, 254), s.addresses, replace=False)
    block = list(s.ips) or [f"{head}.{int(x)}" for x in lasts]
    shared_ips = ctx.traffic.ips.add(block)
    shared_ua = ctx.agents(s, 1)[0]
    days = _window_weekdays(ctx)
    first = int(
        ctx.rng.integers(0, max(1, len(days) - s.days + 1))
        if s.start_hour is None
        else min(len(days) - 1, int(s.start_hour // 24))
    )
    days = days[first : first + s.days]
    for victim in ctx.victims(s.accounts).tolist():
        per_day = ctx.rng.poisson(s.per_account_per_day, len(days))
        day = np.repeat(days, per_day)
        n = len(day)
        ts = ctx.local_day_minutes(victim, day, 540.0 + ctx.rng.random(n) * 540.0)
        session = ctx.traffic.sessions.add(session_tokens(ctx.rng, len(days)))
        ev = ctx.events(
            s, label, ts=ts, account=np.full(n, victim), person=ctx.targets(s, victim, n),
            ip=shared_ips[ctx.rng.integers(0, len(shared_ips), n)], ua=np.full(n, shared_ua),
            session=np.repeat(session, per_day),
        )  # fmt: skip
        out.append(ev)
    return out


def _made_up_nirs(s: Enumeration, count: int, ctx: _Context) -> tuple[list[str], list[str]]:
    """NIRs and birth dates an enumerator would try."""
    rng = ctx.rng
    nirs: list[str] = []
    births: list[str] = []
    insured = ctx.population.insured.table
    seed_nir = str(insured.column("nir")[int(rng.integers(0, insured.num_rows))])
    codes = [c for c in DEPARTMENT_CODES if len(c) == 2]
    for i in range(count):
        if s.mode == "sequential":
            order = (int(seed_nir[10:13]) + i + 1) % 999 + 1
            body = f"{seed_nir[:10]}{order:03d}"
        else:
            body = (
                f"{int(rng.integers(1, 3))}{int(rng.integers(0, 100)):02d}"
                f"{int(rng.integers(1, 13)):02d}{codes[int(rng.integers(len(codes)))]}"
                f"{int(rng.integers(1, 400)):03d}{int(rng.integers(1, 1000)):03d}"
            )
        key = calc_check_digits(body)
        if rng.random() >= s.valid_key_share:
            key = f"{(int(key) + int(rng.integers(1, 97))) % 97 + 1:02d}"  # a wrong key
        nirs.append(body + key)
        yy, mm = int(body[1:3]), min(12, max(1, int(body[3:5])))
        year = 2000 + yy if yy <= 24 else 1900 + yy
        births.append(f"{year:04d}-{mm:02d}-{int(rng.integers(1, 29)):02d}")
    return nirs, births


def _enumeration(s: Enumeration, label: int, ctx: _Context) -> list[Events]:
    out = []
    insured = ctx.population.insured.table
    duration = s.lookups_per_account / max(s.rate_per_second, 1e-9) / 3600
    for victim in ctx.victims(s.accounts).tolist():
        n = s.lookups_per_account
        ts = ctx.start(s, duration) + np.cumsum(
            ctx.rng.exponential(1 / s.rate_per_second, n) * SECOND_US
        )
        nirs, births = _made_up_nirs(s, n, ctx)
        # A made-up NIR may exist by chance; it is read only if the birth date matches too.
        row = pc.index_in(pa.array(nirs), insured.column("nir")).to_numpy(zero_copy_only=False)
        known = ~np.isnan(row.astype(np.float64))
        person = np.full(n, -1, dtype=np.int64)
        real_birth = ctx.traffic.births.values(np.nan_to_num(row).astype(np.int64))
        match = known & (np.array(real_birth) == np.array(births))
        person[match] = row[match].astype(np.int64)
        session = ctx.traffic.sessions.add(session_tokens(ctx.rng, 1))
        ev = ctx.events(
            s, label, ts=ts.astype(np.int64), account=np.full(n, victim), person=person,
            ip=np.full(n, ctx.ips(s, 1)[0]), ua=np.full(n, ctx.agents(s, 1)[0]),
            session=np.full(n, session[0]),
        )  # fmt: skip
        ev.nir = ctx.traffic.nirs.add(nirs)
        ev.birth = ctx.traffic.births.add(births)
        out.append(ev)
    return out


def _off_hours(s: OffHours, label: int, ctx: _Context) -> list[Events]:
    out = []
    first = ctx.calendar.history_days
    total = (ctx.calendar.end - ctx.calendar.start).days
    # A night belongs to the day whose early hours it takes; the window's first one may begin
    # before the window opens (local time ahead of UTC), so it is used only when alone.
    nights = np.arange(first + 1, total) if total - first > 1 else np.arange(first, total)
    for victim in ctx.victims(s.accounts, ("generaliste", "specialiste", "dentiste"), 0.7).tolist():
        pick = np.sort(ctx.rng.choice(nights, size=min(s.nights, len(nights)), replace=False))
        parts_ts = []
        for night in pick.tolist():
            minute = s.first_hour * 60.0 + ctx.rng.random() * 60.0
            start = ctx.local_day_minutes(victim, np.array([night]), np.array([minute]))[0]
            lo, hi = s.seconds_between
            parts_ts.append(_paced(int(start), s.lookups_per_night, lo, hi, ctx.rng))
        if not parts_ts:
            continue
        ts = np.concatenate(parts_ts)
        n = len(ts)
        session = ctx.traffic.sessions.add(session_tokens(ctx.rng, len(parts_ts)))
        ev = ctx.events(
            s, label, ts=ts, account=np.full(n, victim), person=ctx.targets(s, victim, n),
            ip=np.full(n, ctx.ips(s, 1)[0]), ua=np.full(n, ctx.agents(s, 1)[0]),
            session=np.repeat(session, s.lookups_per_night),
        )  # fmt: skip
        out.append(ev)
    return out


def _stolen_session(s: StolenSession, label: int, ctx: _Context) -> list[Events]:
    legit = ctx.traffic.events
    in_window = legit.ts >= ctx.window_start_us
    accounts = np.unique(legit.account[in_window & (legit.channel == CHANNELS.index("portal"))])
    if len(accounts) < s.accounts:
        accounts = np.unique(legit.account[in_window])
    out = []
    lo, hi = s.seconds_between
    duration_us = int(s.lookups_per_account * hi * SECOND_US)
    for victim in ctx.victims(s.accounts, among=accounts).tolist():
        mine = np.flatnonzero(in_window & (legit.account == victim))
        if not len(mine):
            continue
        _, last_row = np.unique(legit.session[mine][::-1], return_index=True)
        last_row = mine[len(mine) - 1 - last_row]  # each session's last lookup
        delay_lo, delay_hi = s.delay_minutes
        start = legit.ts[last_row] + int(delay_hi * MINUTE_US)
        fits = start + duration_us < ctx.end_us
        choices = last_row[fits] if fits.any() else last_row
        row = int(choices[ctx.rng.integers(0, len(choices))])
        delay = delay_lo + ctx.rng.random() * (delay_hi - delay_lo)
        ts = _paced(int(legit.ts[row] + delay * MINUTE_US), s.lookups_per_account, lo, hi, ctx.rng)
        n = len(ts)
        ua = legit.ua[row] if s.same_user_agent else ctx.agents(s, 1)[0]
        ev = ctx.events(
            s, label, ts=ts, account=np.full(n, victim), person=ctx.targets(s, victim, n),
            ip=np.full(n, ctx.ips(s, 1)[0]), ua=np.full(n, ua),
            session=np.full(n, legit.session[row]),
            auth=np.full(n, legit.auth[row]), channel=np.full(n, legit.channel[row]),
        )  # fmt: skip
        out.append(ev)
    return out


_BUILDERS: dict[str, Callable[[Any, int, _Context], list[Events]]] = {
    "scrape_2022": _scrape_2022,
    "slow_scrape": _slow_scrape,
    "campaign": _campaign,
    "enumeration": _enumeration,
    "off_hours": _off_hours,
    "stolen_session": _stolen_session,
}


def inject_attacks(
    scenarios: Sequence[Scenario],
    population: Population,
    calendar: WorldCalendar,
    traffic: Traffic,
    *,
    rng: np.random.Generator,
) -> tuple[Events, list[dict[str, Any]]]:
    """The scenarios' lookups (label = position in ``scenarios``), inside the window only.

    Returns the lookups and, per scenario, its knobs with the number of accounts and
    lookups it got (for ``world.json``).
    """
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise ValueError("attack scenarios need distinct names")
    ctx = _Context(
        population=population,
        calendar=calendar,
        traffic=traffic,
        rng=rng,
        taken=set(),
        window_start_us=int(calendar.window_start.timestamp()) * SECOND_US,
        end_us=int(calendar.end.timestamp()) * SECOND_US,
    )
    parts: list[Events] = []
    described = []
    for label, scenario in enumerate(scenarios):
        if calendar.window_days < 1:
            events: list[Events] = []
        else:
            events = _BUILDERS[scenario.family](scenario, label, ctx)
        kept = []
        for ev in events:
            inside = (ev.ts >= ctx.window_start_us) & (ev.ts < ctx.end_us)
            kept.append(ev.take(np.flatnonzero(inside)))
        kept = [ev for ev in kept if len(ev)]
        parts.extend(kept)
        described.append(
            scenario.describe()
            | {"compromised_accounts": len(kept), "lookups": sum(len(e) for e in kept)}
        )
    return (Events.concat(parts) if parts else Events.empty()), described
