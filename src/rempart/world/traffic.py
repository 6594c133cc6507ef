"""Legitimate traffic: the rights lookups of honest professionals, and the claims that follow.

Everything is drawn per account and per day, then per lookup, with NumPy
arrays (no Python loop over lookups); strings are made once per vocabulary
entry (an address, a browser, a session) and taken by index into Arrow.

Who looks up how much (lookups per account on a working day, median; each
account draws its own level around it, log-normal with sigma 0.35, and each
day adds Poisson and gamma noise):

================  =====  ==========================================================
profession        daily  when
================  =====  ==========================================================
generaliste       25     weekdays 8-12 and 14-19, some Saturday mornings
specialiste       16     weekdays 9-18
pharmacie         120    Monday-Saturday 9-19, Sundays and nights on call (garde)
infirmier         12     every day for most, early mornings and early evenings
kinesitherapeute  10     weekdays 8-20
dentiste          12     weekdays 9-19
sage_femme        6      weekdays 9-18
laboratoire       60     Monday-Saturday, mornings
etablissement     250    around the clock, every day (admissions desks)
================  =====  ==========================================================

With the profession mix of :mod:`rempart.world.professionals` this averages
about 40 lookups per account and working day, some 33 per account and
calendar day: the default demo world (400 accounts, 28 days) holds about
370,000 legitimate lookups; 10,000 accounts over 28 days about 9 million.
Hours are local (Paris, or the overseas department's zone, daylight saving
included) and written in UTC.

Who is looked up: mostly the account's own patients (its care links; for
pharmacies, laboratories and hospitals those of the whole organisation),
older people and people with a long-term illness more often; a
profession-dependent share of new patients (8% for a GP, 50% for a hospital)
who live near the practice (85% in its department, 12% next door, 3%
anywhere); and a share of repeat visits of patients seen in the days before.

How: each practice (an organisation, or a solo account) has a stable fixed
line and a backup line, an organisation shares them; nurses, physiotherapists
and midwives on home visits often go through a mobile carrier's shared
addresses. Each account mostly uses practice software (``software``, with
``cps`` or ``psc``) or the portal (``portal``, with its usual second factor:
``totp``, ``webauthn``, ``psc``, or ``password`` alone for legacy accounts);
its browser updates once during the world. Sessions end after an hour idle
or at a four-hour boundary. About 1% of lookups are typos (a mistyped NIR or
a wrong birth date) followed by the corrected lookup seconds later.

Claims follow most legitimate visits: pharmacies within minutes, doctors the
same day or a few days later, nurses and physiotherapists in weekly batches,
laboratories in a day or three, hospitals days to weeks later (often after
the world ends, so never seen); some visits are never billed. That makes about
0.5 claims per legitimate lookup (0.56 on a 30,000-insured, 600-account world,
0.50 counting the attacks' lookups). ``claims_per_lookup`` makes billing
heavier (0.75 for the issue 15 world): every visit billed, further claims of
some visits (a pharmacy's other items, repeated acts) and care billed without a
lookup, always of the practice's own patients: attackers still cause no claim.

The oddities that fool naive detectors, all legitimate: holidays and the
busy days after them, a regional epidemic surge, vaccination days (many new
local patients), a practice changing ISP (a new network for good), a locum
(new network, device and hours for a few days), late evenings, Sunday and
night duty at pharmacies, a mass-casualty day at a hospital, and two that
``world.json`` records account-day by account-day (``oddity_days``) so that a
guard can be scored on them:

* **seasonal surge** (the resort town in the holidays): one or two coastal or
  mountain departments get tourists for 4-8 consecutive days of the window;
  every pharmacy there (GPs less) sees many extra patients who live far away
  (neither the department nor a neighbour), unknown to the practice, each
  billed at the counter minutes after the lookup; the practice's usual
  network, devices and hours;
* **software batch check** (the day's appointment list): a share of the
  practices on software check, each working morning, 10-40 of their own
  patients about one a second in one session of their software, from their
  usual network; from the world's first day, so a world with no history
  (``history_days=0``) is a fresh deployment that meets it at once.

At least one of each falls in the evaluation window when the world has the
accounts for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from rempart.world.geography import DEPARTMENT_CODES, RESORT_CODES, neighbour_indices
from rempart.world.population import Population
from rempart.world.schema import CLAIMS, LABELS, LOOKUPS, PROFESSIONS
from rempart.world.timeline import WorldCalendar

__all__ = [
    "AUTH_VALUES",
    "CHANNELS",
    "ODDITIES",
    "PROFILES",
    "Events",
    "Locality",
    "ProfessionTraffic",
    "Traffic",
    "TrafficParams",
    "Vocab",
    "build_traffic",
    "by_key_then_time",
    "local_offsets",
    "random_ips",
    "session_tokens",
    "to_utc",
    "traffic_tables",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Progress = Callable[[str, int, int], None]

SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
AUTH_VALUES: tuple[str, ...] = ("password", "totp", "webauthn", "cps", "psc")
CHANNELS: tuple[str, ...] = ("portal", "software")
_AUTH = {name: i for i, name in enumerate(AUTH_VALUES)}
_SESSION_IDLE_US = HOUR_US
_SESSION_BLOCK_US = 4 * HOUR_US


def _hours(*spans: tuple[int, int, float]) -> tuple[float, ...]:
    """24 hourly weights from ``(first hour, end hour, weight)`` spans."""
    weights = [0.0] * 24
    for first, end, weight in spans:
        for hour in range(first, end):
            weights[hour] += weight
    return tuple(weights)


@dataclass(frozen=True, slots=True)
class ProfessionTraffic:
    """How accounts of one profession work."""

    daily: float
    """Median lookups per account on a working day."""
    presence: float
    """Chance of working on a given weekday (days off, training, illness)."""
    saturday: float
    """Share of accounts that work on Saturdays."""
    saturday_volume: float
    sunday: float
    """Share of accounts that work on Sundays and public holidays."""
    sunday_volume: float
    new_patients: float
    """Share of lookups of someone outside the practice's patients."""
    revisit: float
    """Share of lookups of a patient the account looked up in the days before."""
    software: float
    """Share of accounts whose lookups go mostly through practice software."""
    mobile: float
    """Share of sessions from a mobile carrier's network (home visits)."""
    bill: float
    """Share of visits billed."""
    delays: tuple[tuple[float, float, float], ...]
    """Claim delay after the lookup: ``(weight, min hours, max hours)`` ranges."""
    weekday_hours: tuple[float, ...]
    saturday_hours: tuple[float, ...]
    sunday_hours: tuple[float, ...]


_OFFICE = _hours((8, 9, 0.4), (9, 12, 1.0), (12, 14, 0.25), (14, 18, 1.0), (18, 19, 0.4))
_MORNING = _hours((8, 9, 0.5), (9, 12, 1.0), (12, 13, 0.3))

PROFILES: dict[str, ProfessionTraffic] = {
    "generaliste": ProfessionTraffic(
        daily=25, presence=0.92, saturday=0.4, saturday_volume=0.5, sunday=0.03,
        sunday_volume=0.5, new_patients=0.08, revisit=0.15, software=0.75, mobile=0.05,
        bill=0.93, delays=((0.78, 0.05, 0.6), (0.2, 20, 120), (0.02, 120, 400)),
        weekday_hours=_hours((8, 12, 1.0), (12, 14, 0.15), (14, 19, 1.0), (19, 20, 0.4),
                             (20, 21, 0.08)),
        saturday_hours=_MORNING, sunday_hours=_hours((9, 12, 1.0), (14, 18, 0.6)),
    ),
    "specialiste": ProfessionTraffic(
        daily=16, presence=0.9, saturday=0.2, saturday_volume=0.5, sunday=0.0,
        sunday_volume=0.5, new_patients=0.35, revisit=0.1, software=0.65, mobile=0.02,
        bill=0.9, delays=((0.7, 0.05, 0.8), (0.3, 20, 150)),
        weekday_hours=_OFFICE, saturday_hours=_MORNING, sunday_hours=_MORNING,
    ),
    "pharmacie": ProfessionTraffic(
        daily=120, presence=0.97, saturday=0.9, saturday_volume=0.8, sunday=0.0,
        sunday_volume=0.4, new_patients=0.12, revisit=0.25, software=0.92, mobile=0.0,
        bill=0.88, delays=((0.85, 0.01, 0.3), (0.15, 2, 8)),
        weekday_hours=_hours((8, 9, 0.5), (9, 12, 1.0), (12, 14, 0.6), (14, 19, 1.0),
                             (19, 20, 0.5)),
        saturday_hours=_hours((9, 12, 1.0), (12, 14, 0.5), (14, 19, 0.8)),
        # On call (garde): daytime, then a trickle through the night.
        sunday_hours=_hours((0, 8, 0.05), (9, 12, 1.0), (12, 14, 0.5), (14, 20, 0.8),
                            (20, 24, 0.15)),
    ),
    "infirmier": ProfessionTraffic(
        daily=12, presence=0.8, saturday=0.7, saturday_volume=0.9, sunday=0.6,
        sunday_volume=0.8, new_patients=0.04, revisit=0.45, software=0.55, mobile=0.45,
        bill=0.92, delays=((1.0, 12, 170),),
        weekday_hours=_hours((6, 7, 0.4), (7, 11, 1.0), (11, 13, 0.4), (13, 16, 0.15),
                             (16, 20, 0.6)),
        saturday_hours=_hours((6, 7, 0.4), (7, 12, 1.0), (17, 20, 0.5)),
        sunday_hours=_hours((7, 12, 1.0), (17, 20, 0.5)),
    ),
    "kinesitherapeute": ProfessionTraffic(
        daily=10, presence=0.9, saturday=0.3, saturday_volume=0.5, sunday=0.0,
        sunday_volume=0.5, new_patients=0.15, revisit=0.5, software=0.45, mobile=0.2,
        bill=0.9, delays=((0.5, 0.1, 2), (0.5, 24, 170)),
        weekday_hours=_hours((8, 12, 1.0), (12, 14, 0.3), (14, 20, 1.0), (20, 21, 0.2)),
        saturday_hours=_MORNING, sunday_hours=_MORNING,
    ),
    "dentiste": ProfessionTraffic(
        daily=12, presence=0.9, saturday=0.25, saturday_volume=0.5, sunday=0.0,
        sunday_volume=0.5, new_patients=0.12, revisit=0.2, software=0.7, mobile=0.0,
        bill=0.85, delays=((0.8, 0.1, 1.5), (0.2, 24, 240)),
        weekday_hours=_hours((8, 9, 0.3), (9, 12, 1.0), (12, 14, 0.2), (14, 19, 1.0)),
        saturday_hours=_MORNING, sunday_hours=_MORNING,
    ),
    "sage_femme": ProfessionTraffic(
        daily=6, presence=0.85, saturday=0.2, saturday_volume=0.5, sunday=0.05,
        sunday_volume=0.5, new_patients=0.2, revisit=0.35, software=0.45, mobile=0.35,
        bill=0.9, delays=((0.6, 0.1, 2), (0.4, 24, 170)),
        weekday_hours=_hours((9, 12, 1.0), (12, 13, 0.2), (13, 18, 1.0)),
        saturday_hours=_MORNING, sunday_hours=_MORNING,
    ),
    "laboratoire": ProfessionTraffic(
        daily=60, presence=0.97, saturday=0.85, saturday_volume=0.6, sunday=0.1,
        sunday_volume=0.3, new_patients=0.35, revisit=0.1, software=0.92, mobile=0.0,
        bill=0.92, delays=((1.0, 12, 72),),
        weekday_hours=_hours((7, 11, 1.0), (11, 13, 0.5), (13, 18, 0.35)),
        saturday_hours=_hours((7, 12, 1.0)), sunday_hours=_hours((8, 12, 1.0)),
    ),
    "etablissement": ProfessionTraffic(
        daily=250, presence=0.98, saturday=1.0, saturday_volume=0.75, sunday=1.0,
        sunday_volume=0.65, new_patients=0.5, revisit=0.2, software=0.95, mobile=0.0,
        bill=0.82, delays=((1.0, 48, 600),),
        weekday_hours=_hours((0, 6, 0.22), (6, 8, 0.5), (8, 18, 1.0), (18, 22, 0.6),
                             (22, 24, 0.35)),
        saturday_hours=_hours((0, 7, 0.3), (7, 22, 0.7), (22, 24, 0.4)),
        sunday_hours=_hours((0, 7, 0.3), (7, 22, 0.7), (22, 24, 0.4)),
    ),
}  # fmt: skip
assert tuple(PROFILES) == PROFESSIONS

# Professions whose organisation shares one patient base.
_SHARED_PATIENTS = ("pharmacie", "laboratoire", "etablissement")
# Professions that may be replaced by a locum.
_LOCUM_PROFESSIONS = ("generaliste", "specialiste", "kinesitherapeute", "dentiste", "sage_femme")
# Professions whose volume follows an epidemic.
_SURGE_PROFESSIONS = ("generaliste", "pharmacie", "laboratoire", "etablissement")
_VACCINATORS = ("pharmacie", "generaliste", "infirmier")
# Practices whose software may check the day's appointments (their own patients).
_BATCH_PROFESSIONS = (
    "generaliste", "specialiste", "infirmier", "kinesitherapeute", "dentiste", "sage_femme",
)  # fmt: skip
# The oddities whose accounts and days world.json records (Events.oddity is 1 + index).
ODDITIES: tuple[str, ...] = ("seasonal_surge", "batch_check")
_TOURIST, _BATCH = 1, 2

_TIMEZONES: dict[str, str] = {
    "971": "America/Guadeloupe",
    "972": "America/Martinique",
    "973": "America/Cayenne",
    "974": "Indian/Reunion",
    "976": "Indian/Mayotte",
}

# (first octet, second octet range): address blocks of French fixed-line ISPs, mobile
# carriers' shared (CGNAT) egress, and hospital/academic networks.
FIXED_LINE_BLOCKS: tuple[tuple[int, int, int], ...] = (
    (90, 0, 127), (86, 192, 255), (82, 64, 127), (88, 160, 191), (78, 192, 255),
    (176, 128, 191), (92, 128, 191), (109, 0, 31), (2, 0, 15), (81, 48, 79),
)  # fmt: skip
MOBILE_BLOCKS: tuple[tuple[int, int, int], ...] = (
    (37, 160, 175),
    (80, 214, 215),
    (92, 184, 191),
    (176, 144, 151),
    (46, 193, 193),
)
INSTITUTION_BLOCKS: tuple[tuple[int, int, int], ...] = (
    (193, 48, 63),
    (194, 254, 254),
    (195, 83, 83),
    (194, 57, 57),
    (193, 248, 251),
)

SOFTWARE_AGENTS: dict[str, tuple[str, ...]] = {
    "medical": (
        "Weda/2025.1 (Windows NT 10.0; Win64)", "MLM-Medistory/4.4.2", "Crossway/9.3.2",
        "HelloDoc/6.2.0", "AxiSante/6.1.4", "Doctolib-Medical/1.18.3",
    ),
    "pharmacie": (
        "LGPI/3.9.2 (Pharmagest; Windows NT 10.0)", "Winpharma/21.1.0", "SmartRx/7.2.1",
        "LEO/2.4.0 (Isipharm)",
    ),
    "etablissement": ("DxCare/8.3.1", "ORBIS/08.04.44", "HM-Admission/5.2.0", "Sillage/16.4"),
    "laboratoire": ("Hexalis/4.1.7", "Kalisil/8.0.2", "GLIMS/10.2.0"),
    "paramedical": (
        "Vega/3.2.5", "Topaze/8.4.1", "Kine4000/2.1.0", "Julie/5.3.2", "Logosw/8.1.0",
        "Desmos/4.0.3",
    ),
}  # fmt: skip
_SOFTWARE_KIND = {
    "generaliste": "medical",
    "specialiste": "medical",
    "pharmacie": "pharmacie",
    "infirmier": "paramedical",
    "kinesitherapeute": "paramedical",
    "dentiste": "paramedical",
    "sage_femme": "paramedical",
    "laboratoire": "laboratoire",
    "etablissement": "etablissement",
}
_WIN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)"
_WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)"
# Browsers as (weight, user agent before the update, after it).
BROWSERS: tuple[tuple[float, str, str], ...] = tuple(
    (w, template.format(v=old), template.format(v=new))
    for w, template, old, new in (
        (0.40, f"{_WIN} {_WEBKIT} Chrome/{{v}}.0.0.0 Safari/537.36", 133, 134),
        (0.22, f"{_WIN} {_WEBKIT} Chrome/{{v}}.0.0.0 Safari/537.36 Edg/{{v}}.0.0.0", 133, 134),
        (0.12, f"{_WIN[:-1]}; rv:{{v}}.0) Gecko/20100101 Firefox/{{v}}.0", 135, 136),
        (0.08, f"{_MAC} {_WEBKIT} Chrome/{{v}}.0.0.0 Safari/537.36", 133, 134),
        (0.07, f"{_MAC} AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{{v}} "
               "Safari/605.1.15", "18.2", "18.3"),
        (0.06, f"Mozilla/5.0 (Linux; Android 10; K) {_WEBKIT} Chrome/{{v}}.0.0.0 Mobile "
               "Safari/537.36", 133, 134),
        (0.05, "Mozilla/5.0 (iPhone; CPU iPhone OS {v} like Mac OS X) AppleWebKit/605.1.15 "
               "(KHTML, like Gecko) Mobile/15E148", "18_2", "18_3"),
    )
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TrafficParams:
    """The knobs of legitimate traffic, as recorded in ``world.json``."""

    volume: float = 1.0
    """Multiplies every account's daily volume."""
    typo_rate: float = 0.01
    """Share of lookups that are typos (then corrected)."""
    holiday_share: float = 0.15
    """Share of accounts taking 4-10 days off during the world."""
    late_evening_rate: float = 0.02
    """Chance per account-day of part of the work moving to 20:00-23:30."""
    vaccination_rate: float = 0.01
    """Chance per weekday that a pharmacy, GP or nurse holds a vaccination day."""
    isp_change_share: float = 0.03
    """Share of practices moving to a new network during the world."""
    locum_share: float = 0.04
    """Share of doctors, dentists, physiotherapists and midwives replaced for a few days."""
    surge: float = 0.4
    """Peak extra volume of the epidemic in the departments it hits (0 for none)."""
    mass_casualty: bool = True
    """One hospital's day of mass casualties in the evaluation window."""
    seasonal_surge: float = 0.8
    """Tourists in one or two resort departments for several days of the window: extra
    lookups of patients who live far away, per open day, as a share of each pharmacy's
    daily volume (a third of it at GPs); every one billed at the counter (0 for none)."""
    batch_check_share: float = 0.3
    """Share of practices on software (GPs, specialists, nurses, physiotherapists,
    dentists, midwives) whose software checks the rights of the day's appointments
    every working morning: 10-40 of their own patients, about one a second."""
    claims_per_lookup: float | None = None
    """None: one claim per billed visit (about 0.5 claims per legitimate lookup). A
    number: billing that heavy (claims per legitimate lookup): every visit billed,
    several claims for some visits, care billed without a lookup."""

    def __post_init__(self) -> None:
        for name in ("volume", "surge", "seasonal_surge"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative")
        for name in (
            "typo_rate", "holiday_share", "late_evening_rate", "vaccination_rate",
            "isp_change_share", "locum_share", "batch_check_share",
        ):  # fmt: skip
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.claims_per_lookup is not None and not 0.0 < self.claims_per_lookup <= 5.0:
            raise ValueError("claims_per_lookup must be between 0 (excluded) and 5")


class Vocab:
    """Strings referred to by index: a base Arrow array, then added strings."""

    def __init__(self, base: pa.Array | None = None) -> None:
        self._base = base if base is not None else pa.array([], pa.string())
        self._chunks: list[pa.Array] = [self._base]
        self._size = len(self._base)

    def __len__(self) -> int:
        return self._size

    def add(self, values: Sequence[str] | pa.Array) -> IntArray:
        """Append strings; returns their indices."""
        chunk = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
        first = self._size
        self._chunks.append(chunk)
        self._size += len(chunk)
        return np.arange(first, self._size, dtype=np.int64)

    def __getitem__(self, index: int) -> str:
        return self.values(np.array([index], dtype=np.int64))[0]

    def take(self, indices: IntArray) -> pa.Array:
        if not len(indices) or int(indices.max()) < len(self._base):
            return self._base.take(pa.array(indices, pa.int64()))
        values = pa.concat_arrays(self._chunks)
        return values.take(pa.array(indices, pa.int64()))

    def values(self, indices: IntArray) -> list[str]:
        """The strings at ``indices``, as Python strings."""
        return [str(v) for v in self.take(indices).to_pylist()]


@dataclass
class Events:
    """Lookups as parallel arrays; strings are indices into :class:`Traffic`'s vocabularies."""

    ts: IntArray
    """Microseconds since the epoch, UTC."""
    account: IntArray
    person: IntArray
    """Row in the insured table, -1 when the NIR matches nobody."""
    nir: IntArray
    birth: IntArray
    ip: IntArray
    ua: IntArray
    session: IntArray
    auth: IntArray
    channel: IntArray
    label: IntArray
    """-1 for legitimate lookups, else the attack scenario's number."""
    typo: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    oddity: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """0, or which recorded oddity (1 + its index in :data:`ODDITIES`) made the lookup."""

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, rows: IntArray) -> Events:
        return Events(**{name: getattr(self, name)[rows] for name in _EVENT_FIELDS})

    @staticmethod
    def concat(parts: Sequence[Events]) -> Events:
        return Events(
            **{name: np.concatenate([getattr(p, name) for p in parts]) for name in _EVENT_FIELDS}
        )

    @staticmethod
    def empty() -> Events:
        zero = np.zeros(0, dtype=np.int64)
        return Events(
            **dict.fromkeys(_EVENT_FIELDS[:-2], zero), typo=zero.astype(bool), oddity=zero
        )


_EVENT_FIELDS = (
    "ts", "account", "person", "nir", "birth", "ip", "ua", "session", "auth", "channel",
    "label", "typo", "oddity",
)  # fmt: skip


@dataclass
class Locality:
    """Insured persons grouped by residence department, for picking people near a place."""

    order: IntArray
    starts: IntArray
    counts: IntArray
    shares: FloatArray
    """Each department's share of the insured."""
    neighbours: IntArray
    """``[department, k]``: the k-th neighbour (padded with -1)."""
    neighbour_counts: IntArray

    @classmethod
    def of(cls, departments: IntArray) -> Locality:
        n_dept = len(DEPARTMENT_CODES)
        order = np.argsort(departments, kind="stable").astype(np.int64)
        counts = np.bincount(departments, minlength=n_dept).astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        nbrs = neighbour_indices()
        width = max(len(n) for n in nbrs)
        table = np.full((n_dept, width), -1, dtype=np.int64)
        for dept, row in enumerate(nbrs):
            table[dept, : len(row)] = row
        return cls(
            order=order,
            starts=starts,
            counts=counts,
            shares=counts / max(1, int(counts.sum())),
            neighbours=table,
            neighbour_counts=np.array([len(n) for n in nbrs], dtype=np.int64),
        )

    def near(
        self,
        departments: IntArray,
        rng: np.random.Generator,
        home: float = 0.85,
        next_door: float = 0.12,
    ) -> IntArray:
        """A person for each department given: at home, next door, or anywhere."""
        n = len(departments)
        dept = departments.copy()
        u = rng.random(n)
        counts = self.neighbour_counts[dept]
        to_neighbour = (u >= home) & (u < home + next_door) & (counts > 0)
        pick = (rng.random(n) * np.maximum(counts, 1)).astype(np.int64)
        dept[to_neighbour] = self.neighbours[dept[to_neighbour], pick[to_neighbour]]
        anywhere = u >= home + next_door
        dept[anywhere] = rng.choice(len(self.shares), size=int(anywhere.sum()), p=self.shares)
        return self.within(dept, rng)

    def far(self, departments: IntArray, rng: np.random.Generator) -> IntArray:
        """A person living far from each department given (neither it nor a neighbour).

        Departments are drawn by population (the big cities send most tourists) and
        drawn again where they fall too close; a person from anywhere after 32 tries.
        """
        n = len(departments)
        dept = rng.choice(len(self.shares), size=n, p=self.shares)
        for _ in range(32):
            close = (dept == departments) | (self.neighbours[departments] == dept[:, None]).any(
                axis=1
            )
            if not close.any():
                break
            dept[close] = rng.choice(len(self.shares), size=int(close.sum()), p=self.shares)
        return self.within(dept.astype(np.int64), rng)

    def within(self, departments: IntArray, rng: np.random.Generator) -> IntArray:
        """A random resident of each department (anyone when nobody lives there)."""
        size = self.counts[departments]
        offset = (rng.random(len(departments)) * size).astype(np.int64)
        person = self.order[np.minimum(self.starts[departments] + offset, len(self.order) - 1)]
        empty = size == 0
        person[empty] = rng.integers(0, len(self.order), size=int(empty.sum()))
        out: IntArray = person.astype(np.int64)
        return out


@dataclass
class Traffic:
    """Legitimate lookups and claims, and what the attack step needs to blend in."""

    events: Events
    """Legitimate lookups, sorted by account then time."""
    claim_ts: IntArray
    claim_account: IntArray
    claim_person: IntArray
    nirs: Vocab
    births: Vocab
    ips: Vocab
    user_agents: Vocab
    sessions: Vocab
    daily: FloatArray
    """Each account's typical lookups on a working day."""
    working_hours: FloatArray
    """``[account, 24]``: each account's share of weekday lookups per local hour."""
    offsets: IntArray
    """:func:`local_offsets` of the world."""
    locality: Locality
    oddities: dict[str, int]
    oddity_cells: dict[str, tuple[IntArray, IntArray]] = field(default_factory=dict)
    """Per recorded oddity (:data:`ODDITIES`): the accounts and UTC days (days since the
    epoch) its lookups touched, in that order."""


# --------------------------------------------------------------------------- calendar


def public_holidays(year: int) -> set[date]:
    """France's public holidays (Easter by the anonymous Gregorian algorithm).

    >>> sorted(d.isoformat() for d in public_holidays(2025))[:3]
    ['2025-01-01', '2025-04-21', '2025-05-01']
    """
    a, (b, c) = year % 19, divmod(year, 100)
    d, e = divmod(b, 4)
    g = (b - (b + 8) // 25 + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday) // 451
    month, day = divmod(h + weekday - 7 * m + 114, 31)
    easter = date(year, month, day + 1)
    fixed = {(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)}
    moving = {easter + timedelta(days=n) for n in (1, 39, 50)}
    return {date(year, mo, dd) for mo, dd in fixed} | moving


def _day_types(calendar: WorldCalendar, days: int) -> IntArray:
    """0 weekday, 1 Saturday, 2 Sunday or public holiday, per day of the world."""
    first = calendar.start.date()
    out = np.zeros(days, dtype=np.int64)
    holidays: dict[int, set[date]] = {}
    for d in range(days):
        day = first + timedelta(days=d)
        if day.year not in holidays:
            holidays[day.year] = public_holidays(day.year)
        out[d] = 2 if day.weekday() == 6 or day in holidays[day.year] else day.weekday() == 5
    return out


def local_offsets(calendar: WorldCalendar) -> IntArray:
    """``[department, day, 2]``: local time minus UTC in minutes, at 01:00 and at 12:00.

    Daylight saving changes between the two (at 02:00 or 03:00); one day
    before the start and after the end are included.
    """
    days = (calendar.end - calendar.start).days + 2
    first = calendar.start.date() - timedelta(days=1)
    by_zone: dict[str, IntArray] = {}
    for zone in sorted({*_TIMEZONES.values(), "Europe/Paris"}):
        tz = ZoneInfo(zone)
        minutes = np.zeros((days, 2), dtype=np.int64)
        for d in range(days):
            for k, hour in enumerate((1, 12)):
                offset = datetime.combine(first + timedelta(days=d), time(hour), tz).utcoffset()
                assert offset is not None
                minutes[d, k] = int(offset.total_seconds()) // 60
        by_zone[zone] = minutes
    return np.stack([by_zone[_TIMEZONES.get(code, "Europe/Paris")] for code in DEPARTMENT_CODES])


def to_utc(
    calendar: WorldCalendar,
    offsets: IntArray,
    department: IntArray,
    day: IntArray,
    local_minute: FloatArray,
) -> IntArray:
    """Microseconds since the epoch of a local time (minutes from the day's local midnight).

    Minutes beyond the day (or before it) belong to the next (or previous) day.
    """
    start_us = int(calendar.start.timestamp()) * SECOND_US
    whole = np.floor(local_minute / 1440.0).astype(np.int64)
    day = day.astype(np.int64) + whole
    minute = local_minute - whole * 1440.0
    row = np.clip(day + 1, 0, offsets.shape[1] - 1)
    offset = offsets[department, row, (minute >= 150).astype(np.int64)]
    local_us = (minute * MINUTE_US).astype(np.int64)
    utc: IntArray = (start_us + day * DAY_US + local_us - offset * MINUTE_US).astype(np.int64)
    return utc


# --------------------------------------------------------------------------- strings


def random_ips(
    rng: np.random.Generator, count: int, blocks: Sequence[tuple[int, int, int]]
) -> list[str]:
    """``count`` IPv4 addresses drawn from the given ``(a, b_min, b_max)`` blocks."""
    which = rng.integers(0, len(blocks), size=count)
    table = np.array(blocks, dtype=np.int64)
    a = table[which, 0]
    b = table[which, 1] + (rng.random(count) * (table[which, 2] - table[which, 1] + 1)).astype(
        np.int64
    )
    c = rng.integers(0, 256, size=count)
    d = rng.integers(1, 255, size=count)
    return [f"{w}.{x}.{y}.{z}" for w, x, y, z in zip(a, b, c, d, strict=True)]


def session_tokens(rng: np.random.Generator, count: int) -> pa.Array:
    """Opaque session identifiers (128 random bits, 32 hex digits)."""
    data = rng.bytes(16 * count).hex().encode("ascii")
    offsets = np.arange(0, 32 * count + 1, 32, dtype=np.int32)
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))


def by_key_then_time(key: IntArray, ts: IntArray) -> IntArray:
    """Stable order by ``key`` (non-negative), then time."""
    if not len(ts):
        return np.zeros(0, dtype=np.int64)
    low = int(ts.min())
    span = int(ts.max()) - low + 1
    if (int(key.max()) + 1) * span < 2**62:
        order: IntArray = np.argsort(key * span + (ts - low), kind="stable").astype(np.int64)
    else:
        order = np.lexsort((ts, key)).astype(np.int64)
    return order


# --------------------------------------------------------------------------- accounts


@dataclass
class _Accounts:
    profession: IntArray
    department: IntArray
    unit: IntArray
    """Practice: the organisation, or the account itself when solo."""
    n_units: int
    daily: FloatArray
    p_new: FloatArray
    shift: FloatArray
    software: FloatArray
    portal_auth: IntArray
    software_auth: IntArray
    browser_old: IntArray
    browser_new: IntArray
    browser_update: IntArray
    software_ua: IntArray
    unit_ip: IntArray
    unit_ip_alt: IntArray
    unit_ip_new: IntArray
    unit_isp_change: IntArray
    mobile_pool: IntArray
    locum_ip: IntArray
    locum_ua: IntArray


def _profile_array(name: str) -> FloatArray:
    return np.array([getattr(PROFILES[p], name) for p in PROFESSIONS], dtype=np.float64)


def _accounts(
    population: Population,
    *,
    days: int,
    params: TrafficParams,
    ips: Vocab,
    uas: Vocab,
    rng: np.random.Generator,
) -> _Accounts:
    pros = population.professionals
    n = len(pros.profession)
    prof = pros.profession.astype(np.int64)
    n_org = int(pros.organization.max()) + 1 if n else 0
    unit = np.where(pros.organization >= 0, pros.organization, n_org + np.arange(n)).astype(
        np.int64
    )
    n_units = n_org + n
    daily = _profile_array("daily")[prof] * rng.lognormal(0.0, 0.35, n) * params.volume
    p_new = np.clip(_profile_array("new_patients")[prof] * rng.lognormal(0.0, 0.3, n), 0, 0.95)
    shift = np.where(prof == PROFESSIONS.index("etablissement"), 0.0, rng.normal(0.0, 30.0, n))
    main_software = rng.random(n) < _profile_array("software")[prof]
    software = np.where(main_software, 0.95, 0.07)
    portal_auth = rng.choice(
        [_AUTH["totp"], _AUTH["webauthn"], _AUTH["psc"], _AUTH["password"]],
        size=n,
        p=[0.65, 0.12, 0.15, 0.08],
    ).astype(np.int64)
    software_auth = np.where(rng.random(n) < 0.8, _AUTH["cps"], _AUTH["psc"]).astype(np.int64)

    weights = np.array([b[0] for b in BROWSERS])
    old = uas.add([b[1] for b in BROWSERS])
    new = uas.add([b[2] for b in BROWSERS])
    browser = rng.choice(len(BROWSERS), size=n, p=weights / weights.sum())
    update = rng.integers(-days, 2 * days + 1, size=n)  # some update before or after the world

    # Practice software, one per practice, from the profession's vendors.
    unit_prof = np.zeros(n_units, dtype=np.int64)
    unit_prof[unit] = prof
    software_ua = np.zeros(n_units, dtype=np.int64)
    for kind, agents in SOFTWARE_AGENTS.items():
        ids = uas.add(agents)
        members = np.isin(unit_prof, [PROFESSIONS.index(p) for p, k in _SOFTWARE_KIND.items()
                                      if k == kind])  # fmt: skip
        software_ua[members] = ids[rng.integers(0, len(ids), size=int(members.sum()))]

    hospital = unit_prof == PROFESSIONS.index("etablissement")
    fixed = ips.add(random_ips(rng, n_units, FIXED_LINE_BLOCKS))
    institution = ips.add(random_ips(rng, n_units, INSTITUTION_BLOCKS))
    unit_ip = np.where(hospital, institution, fixed)
    # A hospital's second egress is next door to the first; a practice's backup is a 4G box.
    unit_ip_alt = np.where(
        hospital,
        ips.add([_next_address(ips[int(i)]) for i in institution]),
        ips.add(random_ips(rng, n_units, MOBILE_BLOCKS)),
    )
    unit_ip_new = ips.add(random_ips(rng, n_units, FIXED_LINE_BLOCKS))
    unit_isp_change = np.full(n_units, 10 * days + 10, dtype=np.int64)
    moving = rng.random(n_units) < params.isp_change_share
    unit_isp_change[moving] = rng.integers(1, max(2, days), size=int(moving.sum()))
    mobile_pool = ips.add(random_ips(rng, max(64, n // 8), MOBILE_BLOCKS))
    locum_ip = ips.add(random_ips(rng, n, FIXED_LINE_BLOCKS + MOBILE_BLOCKS))
    locum_browser = rng.choice(len(BROWSERS), size=n, p=weights / weights.sum())
    locum_ua = np.where(rng.random(n) < 0.5, old[locum_browser], new[locum_browser])
    return _Accounts(
        profession=prof,
        department=pros.department.astype(np.int64),
        unit=unit,
        n_units=n_units,
        daily=daily,
        p_new=p_new,
        shift=shift,
        software=software,
        portal_auth=portal_auth,
        software_auth=software_auth,
        browser_old=old[browser],
        browser_new=new[browser],
        browser_update=update.astype(np.int64),
        software_ua=software_ua,
        unit_ip=unit_ip.astype(np.int64),
        unit_ip_alt=unit_ip_alt.astype(np.int64),
        unit_ip_new=unit_ip_new,
        unit_isp_change=unit_isp_change,
        mobile_pool=mobile_pool,
        locum_ip=locum_ip,
        locum_ua=locum_ua.astype(np.int64),
    )


def _next_address(ip: str) -> str:
    head, last = ip.rsplit(".", 1)
    return f"{head}.{(int(last) % 254) + 1}"


# --------------------------------------------------------------------------- days


@dataclass
class _Days:
    mean: FloatArray
    """``[account, day]``: expected lookups."""
    day_type: IntArray
    """``[account, day]``: which hour profile (0 weekday, 1 Saturday, 2 Sunday/on call)."""
    late: BoolArray
    locum: BoolArray
    bursts: list[tuple[IntArray, IntArray, FloatArray, float, float, float]]
    """``(accounts, days, counts, first minute, last minute, share of new patients)``."""
    oddities: dict[str, int]
    tourists: tuple[IntArray, IntArray, FloatArray]
    """The seasonal surge: ``(accounts, days, expected lookups of tourists)``."""
    batch: BoolArray
    """``[account, day]``: the practice software checks the day's appointments."""


def _window_pick(rng: np.random.Generator, candidates: IntArray) -> int:
    return int(candidates[rng.integers(0, len(candidates))])


def _holidays(
    n: int,
    days: int,
    *,
    history: int,
    params: TrafficParams,
    rng: np.random.Generator,
    odd: dict[str, int],
) -> FloatArray:
    """``[account, day]`` volume factor: 0 away, 1.6 for the three days back, else 1."""
    away = rng.random(n) < params.holiday_share
    starts = rng.integers(-8, days, size=n)
    lengths = rng.integers(4, 11, size=n)
    if history >= 4 and days > history and n and params.holiday_share > 0:
        returner = _window_pick(rng, np.arange(n))  # one comes back as the window opens
        away[returner] = True
        lengths[returner] = min(10, history)
        starts[returner] = history - lengths[returner]
    day_idx = np.arange(days)
    off = away[:, None] & (day_idx >= starts[:, None]) & (day_idx < (starts + lengths)[:, None])
    back = (
        away[:, None]
        & (day_idx >= (starts + lengths)[:, None])
        & (day_idx < (starts + lengths + 3)[:, None])
    )
    factor: FloatArray = np.where(off, 0.0, np.where(back, 1.6, 1.0))
    odd["holiday_accounts"] = int(away.sum())

    return factor


def _days(
    acc: _Accounts,
    calendar: WorldCalendar,
    day_types: IntArray,
    params: TrafficParams,
    rng: np.random.Generator,
) -> _Days:
    n, days = len(acc.profession), len(day_types)
    history = calendar.history_days
    prof = acc.profession
    odd: dict[str, int] = {}
    presence = rng.random((n, days)) < _profile_array("presence")[prof][:, None]
    works_sat = rng.random(n) < _profile_array("saturday")[prof]
    works_sun = rng.random(n) < _profile_array("sunday")[prof]
    kind = np.broadcast_to(day_types, (n, days)).copy()
    volume = np.select(
        [kind == 0, kind == 1],
        [1.0, np.where(works_sat, _profile_array("saturday_volume")[prof], 0.0)[:, None]],
        np.where(works_sun, _profile_array("sunday_volume")[prof], 0.0)[:, None],
    )
    # Pharmacies on call (garde): an organisation's Sundays and holidays, one in eight.
    pharmacy = prof == PROFESSIONS.index("pharmacie")
    garde_unit = rng.random((acc.n_units, days)) < 1 / 8
    garde = garde_unit[acc.unit] & pharmacy[:, None] & (kind == 2)
    volume = np.where(garde, PROFILES["pharmacie"].sunday_volume, volume)
    odd["pharmacy_duty_days"] = int(garde.sum())

    factor = _holidays(n, days, history=history, params=params, rng=rng, odd=odd)
    day_idx = np.arange(days)

    # A regional epidemic: a quarter of the departments, rising then falling.
    if params.surge > 0:
        hit = rng.random(len(DEPARTMENT_CODES)) < 0.25
        peak = rng.integers(history, max(history + 1, days))
        width = max(3.0, days / 3)
        shape = np.clip(1 - np.abs(day_idx - peak) / width, 0, None)
        surge_prof = np.isin(prof, [PROFESSIONS.index(p) for p in _SURGE_PROFESSIONS])
        factor *= 1 + params.surge * (hit[acc.department] & surge_prof)[:, None] * shape[None, :]
        odd["surge_departments"] = int(hit.sum())

    locum = np.zeros((n, days), dtype=bool)
    eligible = np.flatnonzero(np.isin(prof, [PROFESSIONS.index(p) for p in _LOCUM_PROFESSIONS]))
    replaced = eligible[rng.random(len(eligible)) < params.locum_share]
    first = rng.integers(0, days, size=len(replaced))
    if len(eligible) and days > history and params.locum_share > 0:
        forced = _window_pick(rng, eligible)  # one locum works in the window
        replaced = np.r_[replaced, forced]
        first = np.r_[first, rng.integers(max(0, history - 3), days)]
    for a, d in zip(replaced.tolist(), first.tolist(), strict=True):
        locum[a, d : d + int(rng.integers(3, 9))] = True
    odd["locum_accounts"] = len(np.unique(replaced))

    mean = acc.daily[:, None] * presence * volume * factor * rng.gamma(8.0, 1 / 8, (n, days))
    mean = np.where(locum & (mean == 0) & (kind == 0), acc.daily[:, None], mean)  # locum works
    late = rng.random((n, days)) < params.late_evening_rate
    odd["late_evenings"] = int((late & (mean > 0)).sum())
    bursts = _bursts(acc, calendar=calendar, kind=kind, mean=mean, params=params, rng=rng, odd=odd)
    day_type = np.where(garde, 2, kind)
    tourists = _seasonal_surge(acc, calendar=calendar, mean=mean, params=params, rng=rng, odd=odd)
    batch = _batch_days(acc, kind=kind, mean=mean, locum=locum, params=params, rng=rng, odd=odd)
    return _Days(
        mean=mean,
        day_type=day_type,
        late=late,
        locum=locum,
        bursts=bursts,
        oddities=odd,
        tourists=tourists,
        batch=batch,
    )


def _seasonal_surge(
    acc: _Accounts,
    *,
    calendar: WorldCalendar,
    mean: FloatArray,
    params: TrafficParams,
    rng: np.random.Generator,
    odd: dict[str, int],
) -> tuple[IntArray, IntArray, FloatArray]:
    """Tourists at the counter: one or two resort departments, several days of the window.

    Every pharmacy of the department surges on the same days (the school holidays
    are the same for the whole area), GPs less; only on the days they are open.
    """
    n, days = mean.shape
    none = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))
    odd["seasonal_surge_departments"] = 0
    odd["seasonal_surge_accounts"] = 0
    history = calendar.history_days
    if params.seasonal_surge <= 0 or days <= history or not n:
        return none
    pharmacy = acc.profession == PROFESSIONS.index("pharmacie")
    gp = acc.profession == PROFESSIONS.index("generaliste")
    resort = np.isin(acc.department, [DEPARTMENT_CODES.index(c) for c in RESORT_CODES])
    # Where the surge can show: resort departments with a pharmacy, the best-served first;
    # in a world without one, any department with a pharmacy.
    places = acc.department[pharmacy & resort]
    if not len(places):
        places = acc.department[pharmacy]
    if not len(places):
        return none
    depts, counts = np.unique(places, return_counts=True)
    ranked = depts[np.argsort(-counts, kind="stable")][:4]
    hit = rng.choice(ranked, size=min(len(ranked), int(rng.integers(1, 3))), replace=False)
    window = days - history
    length = min(window, int(rng.integers(4, 9)))
    first = history + int(rng.integers(0, window - length + 1))
    span = np.zeros(days, dtype=bool)
    span[first : first + length] = True
    share = np.where(pharmacy, 1.0, np.where(gp, 1 / 3, 0.0)) * params.seasonal_surge
    touched = np.isin(acc.department, hit) & (share > 0)
    cells = touched[:, None] & span[None, :] & (mean > 0)
    a, d = np.nonzero(cells)
    expected = share[a] * acc.daily[a] * rng.gamma(8.0, 1 / 8, len(a))
    odd["seasonal_surge_departments"] = len(hit)
    odd["seasonal_surge_accounts"] = len(np.unique(a))
    return a.astype(np.int64), d.astype(np.int64), expected


def _batch_days(
    acc: _Accounts,
    *,
    kind: IntArray,
    mean: FloatArray,
    locum: BoolArray,
    params: TrafficParams,
    rng: np.random.Generator,
    odd: dict[str, int],
) -> BoolArray:
    """The working days on which a practice's software checks the day's appointments.

    A practice that does it does it every working weekday it works (its software is
    set up so), from the first day of the world: a deployment without history sees
    it on day one. Not on a locum's days (another person, another set-up).
    """
    n = len(acc.profession)
    eligible = np.isin(acc.profession, [PROFESSIONS.index(p) for p in _BATCH_PROFESSIONS]) & (
        acc.software > 0.5
    )
    chosen = eligible & (rng.random(n) < params.batch_check_share)
    if params.batch_check_share > 0 and eligible.any() and not chosen.any():
        chosen[_window_pick(rng, np.flatnonzero(eligible))] = True
    batch: BoolArray = chosen[:, None] & (kind == 0) & (mean > 0) & ~locum
    odd["batch_check_accounts"] = int(batch.any(axis=1).sum())
    odd["batch_check_days"] = int(batch.sum())
    return batch


def _bursts(
    acc: _Accounts,
    *,
    calendar: WorldCalendar,
    kind: IntArray,
    mean: FloatArray,
    params: TrafficParams,
    rng: np.random.Generator,
    odd: dict[str, int],
) -> list[tuple[IntArray, IntArray, FloatArray, float, float, float]]:
    """Vaccination days and a hospital's mass-casualty day: extra lookups of new patients."""
    n, days = mean.shape
    history = calendar.history_days
    out: list[tuple[IntArray, IntArray, FloatArray, float, float, float]] = []
    vaccinator = np.isin(acc.profession, [PROFESSIONS.index(p) for p in _VACCINATORS])
    vacc = (
        vaccinator[:, None]
        & (kind == 0)
        & (mean > 0)
        & (rng.random((n, days)) < params.vaccination_rate)
    )
    window = vaccinator[:, None] & (kind == 0) & (mean > 0) & (np.arange(days) >= history)
    if params.vaccination_rate > 0 and window.any() and not (vacc & window).any():
        cells = np.flatnonzero(window.ravel())
        vacc.ravel()[_window_pick(rng, cells)] = True
    a, d = np.nonzero(vacc)
    out.append((a.astype(np.int64), d.astype(np.int64), 1.2 * acc.daily[a], 540.0, 1080.0, 0.7))
    odd["vaccination_days"] = len(a)

    hospitals = np.flatnonzero(acc.profession == PROFESSIONS.index("etablissement"))
    odd["mass_casualty_days"] = 0
    if params.mass_casualty and len(hospitals) and days > history:
        unit = acc.unit[_window_pick(rng, hospitals)]
        members = np.flatnonzero(acc.unit == unit)
        day = int(rng.integers(history, days))
        first = float(rng.integers(0, 20) * 60)
        out.append(
            (
                members,
                np.full(len(members), day, dtype=np.int64),
                3.0 * acc.daily[members],
                first,
                first + 600.0,
                0.85,
            )
        )
        odd["mass_casualty_days"] = 1
    return out


# --------------------------------------------------------------------------- lookups


def _sample_hours(profile: IntArray, rng: np.random.Generator) -> IntArray:
    """An hour for each lookup from its profile (profession x day type)."""
    table = []
    for p in PROFESSIONS:
        prof = PROFILES[p]
        for hours in (prof.weekday_hours, prof.saturday_hours, prof.sunday_hours):
            w = np.array(hours)
            table.append(np.cumsum(w) / w.sum())
    cdf = np.stack(table)
    flat = (np.arange(len(cdf))[:, None] + cdf).ravel()
    flat[np.arange(len(cdf)) * 24 + 23] = np.arange(1, len(cdf) + 1)  # exact row ends
    found = np.searchsorted(flat, profile + rng.random(len(profile)), side="right")
    hour: IntArray = np.minimum(found - profile * 24, 23).astype(np.int64)
    return hour


def _base_lookups(
    acc: _Accounts, days: _Days, rng: np.random.Generator
) -> tuple[IntArray, IntArray, FloatArray, FloatArray, IntArray]:
    """Account, day, local minute, share of new patients and oddity of each lookup.

    Tourists (the seasonal surge) come at the practice's usual hours; who they are
    is drawn later (:meth:`Locality.far`).
    """
    n, n_days = days.mean.shape
    counts = rng.poisson(days.mean).ravel()
    cell = np.repeat(np.arange(n * n_days, dtype=np.int64), counts)
    account, day = cell // n_days, cell % n_days
    profile = acc.profession[account] * 3 + days.day_type.ravel()[cell]
    minute = _sample_hours(profile, rng) * 60.0 + rng.random(len(cell)) * 60.0
    minute += acc.shift[account]
    late = days.late.ravel()[cell] & (rng.random(len(cell)) < 0.25)
    minute[late] = 1200.0 + rng.random(int(late.sum())) * 210.0
    # A locum keeps their own hours.
    locum = days.locum.ravel()[cell]
    minute[locum] += 45.0
    p_new = acc.p_new[account]

    parts = [(account, day, minute, p_new)]
    for accounts, b_days, means, first, last, share in days.bursts:
        extra = rng.poisson(means)
        b_account = np.repeat(accounts, extra)
        b_day = np.repeat(b_days, extra)
        b_minute = first + rng.random(len(b_account)) * (last - first)
        parts.append((b_account, b_day, b_minute, np.full(len(b_account), share)))
    t_accounts, t_days, t_means = days.tourists
    extra = rng.poisson(t_means)
    t_account, t_day = np.repeat(t_accounts, extra), np.repeat(t_days, extra)
    t_profile = acc.profession[t_account] * 3 + days.day_type[t_account, t_day]
    t_minute = _sample_hours(t_profile, rng) * 60.0 + rng.random(len(t_account)) * 60.0
    parts.append((t_account, t_day, t_minute + acc.shift[t_account], np.zeros(len(t_account))))
    oddity = np.zeros(sum(len(p[0]) for p in parts), dtype=np.int64)
    oddity[len(oddity) - len(t_account) :] = _TOURIST
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        np.concatenate([p[3] for p in parts]),
        oddity,
    )


def _pools(
    population: Population, acc: _Accounts
) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
    """Care links grouped by patient pool: persons, pool starts and ends, cumulated weights."""
    n = len(acc.profession)
    shared = np.isin(acc.profession, [PROFESSIONS.index(p) for p in _SHARED_PATIENTS])
    pool_of_account = np.where(shared, n + acc.unit, np.arange(n)).astype(np.int64)
    link_pool = pool_of_account[population.care_account]
    order = np.argsort(link_pool, kind="stable")
    keys = link_pool[order]
    persons = population.care_insured[order].astype(np.int64)
    ins = population.insured
    weight = 1.0 + 1.5 * ins.ald[persons] + 0.8 * (ins.age[persons] >= 70)
    cum = np.concatenate([[0.0], np.cumsum(weight)])
    starts = np.searchsorted(keys, pool_of_account, side="left").astype(np.int64)
    ends = np.searchsorted(keys, pool_of_account, side="right").astype(np.int64)
    return persons, starts, ends, cum


def _patients(
    population: Population,
    acc: _Accounts,
    *,
    locality: Locality,
    account: IntArray,
    p_new: FloatArray,
    rng: np.random.Generator,
) -> IntArray:
    """Who each lookup (sorted by account then time) is about."""
    persons, starts, ends, cum = _pools(population, acc)
    s, e = starts[account], ends[account]
    new = (rng.random(len(account)) < p_new) | (e == s)
    target = cum[s] + rng.random(len(account)) * (cum[e] - cum[s])
    link = np.clip(np.searchsorted(cum, target, side="right") - 1, s, np.maximum(e - 1, s))
    person = np.full(len(account), -1, dtype=np.int64)
    person[~new] = persons[link[~new]]
    person[new] = locality.near(acc.department[account[new]], rng)

    # Repeat visits: the patient of one of the account's previous lookups.
    n = len(account)
    first = np.r_[True, account[1:] != account[:-1]] if n else np.zeros(0, dtype=bool)
    position = np.arange(n) - np.maximum.accumulate(np.where(first, np.arange(n), 0))
    revisit = (rng.random(n) < _profile_array("revisit")[acc.profession[account]]) & (position > 0)
    back = 1 + (rng.random(n) * np.minimum(position, 200)).astype(np.int64)
    source = np.where(revisit, np.arange(n) - back, np.arange(n))
    for _ in range(64):  # pointer jumping to the original visit
        nxt = source[source]
        if np.array_equal(nxt, source):
            break
        source = nxt
    return person[source].astype(np.int64)


def _sessions(
    acc: _Accounts,
    days: _Days,
    *,
    ts: IntArray,
    account: IntArray,
    day: IntArray,
    sessions: Vocab,
    rng: np.random.Generator,
) -> tuple[IntArray, IntArray, IntArray, IntArray, IntArray]:
    """Session, IP, user agent, auth and channel of each lookup (sorted by account then time)."""
    n = len(ts)
    new = np.ones(n, dtype=bool)
    if n:
        new[1:] = (
            (account[1:] != account[:-1])
            | (ts[1:] - ts[:-1] > _SESSION_IDLE_US)
            | (ts[1:] // _SESSION_BLOCK_US != ts[:-1] // _SESSION_BLOCK_US)
        )
    first = np.flatnonzero(new)
    s_account, s_day = account[first], np.clip(day[first], 0, days.mean.shape[1] - 1)
    count = len(first)
    ids = sessions.add(session_tokens(rng, count))
    channel = (rng.random(count) < acc.software[s_account]).astype(np.int64)
    usual = np.where(channel == 1, acc.software_auth[s_account], acc.portal_auth[s_account])
    # Now and then another way in: Pro Santé Connect with the e-CPS app.
    auth = np.where(rng.random(count) < 0.95, usual, _AUTH["psc"])

    unit = acc.unit[s_account]
    ip = np.where(s_day >= acc.unit_isp_change[unit], acc.unit_ip_new[unit], acc.unit_ip[unit])
    alt_share = np.where(acc.profession[s_account] == PROFESSIONS.index("etablissement"), 0.5, 0.04)
    alt = rng.random(count) < alt_share
    ip = np.where(alt, acc.unit_ip_alt[unit], ip)
    mobile = rng.random(count) < _profile_array("mobile")[acc.profession[s_account]]
    ip = np.where(mobile, acc.mobile_pool[rng.integers(0, len(acc.mobile_pool), count)], ip)
    browser = np.where(
        s_day >= acc.browser_update[s_account],
        acc.browser_new[s_account],
        acc.browser_old[s_account],
    )
    ua = np.where(channel == 1, acc.software_ua[unit], browser)
    locum = days.locum[s_account, s_day]
    ip = np.where(locum, acc.locum_ip[s_account], ip)
    ua = np.where(locum & (channel == 0), acc.locum_ua[s_account], ua)

    which = np.cumsum(new) - 1
    return (
        ids[which],
        ip[which].astype(np.int64),
        ua[which].astype(np.int64),
        auth[which].astype(np.int64),
        channel[which].astype(np.int64),
    )


def _typos(
    events: Events, rate: float, nirs: Vocab, births: Vocab, rng: np.random.Generator
) -> Events:
    """Insert a mistyped lookup a few seconds before some lookups (same session)."""
    n = len(events)
    share = rate / (1.0 + rate)  # typos among all lookups, corrections included
    rows = np.flatnonzero(rng.random(n) < share)
    typo = events.take(rows)
    typo.ts = typo.ts - rng.integers(8 * SECOND_US, 90 * SECOND_US, size=len(rows))
    typo.typo = np.ones(len(rows), dtype=bool)
    wrong_nir = rng.random(len(rows)) < 0.5
    bad_nirs = []
    for nir, u, pos, digit in zip(
        nirs.values(typo.nir[wrong_nir]),
        rng.random(int(wrong_nir.sum())),
        rng.integers(0, 13, size=int(wrong_nir.sum())),
        rng.integers(1, 10, size=int(wrong_nir.sum())),
        strict=True,
    ):
        if u < 0.15:
            bad_nirs.append(nir[:13])  # the key forgotten
        else:  # one digit wrong: the key no longer matches
            ch = nir[pos]
            new = str((int(ch) + digit) % 10) if ch.isdigit() else "0"
            bad_nirs.append(nir[:pos] + new + nir[pos + 1 :])
    typo.nir[wrong_nir] = nirs.add(bad_nirs)
    wrong_birth = ~wrong_nir
    bad_births = []
    for birth, kind in zip(
        births.values(typo.birth[wrong_birth]),
        rng.integers(0, 3, size=int(wrong_birth.sum())),
        strict=True,
    ):
        year, month, day = birth.split("-")
        if kind == 0 and int(day) <= 12 and day != month:
            bad_births.append(f"{year}-{day}-{month}")  # day and month swapped
        elif kind == 1:
            bad_births.append(f"{int(year) + 1:04d}-{month}-{day}")
        else:
            bad_births.append(f"{year}-{month}-{(int(day) % 28) + 1:02d}")
    typo.birth[wrong_birth] = births.add(bad_births)
    typo.person = np.full(len(rows), -1, dtype=np.int64)
    return Events.concat([events, typo])


def _claims(
    acc: _Accounts,
    events: Events,
    end_us: int,
    rng: np.random.Generator,
    bill_floor: float = 0.0,
) -> tuple[IntArray, IntArray, IntArray]:
    """One claim per billed visit (account, person, day), after a profession-dependent delay.

    ``bill_floor`` raises every profession's share of visits billed (heavy billing).
    A tourist of the seasonal surge is always billed, at the counter, minutes after
    the lookup; a software batch check is no visit and is never billed.
    """
    ok = ~events.typo & (events.person >= 0) & (events.oddity != _BATCH)
    rows = np.flatnonzero(ok)
    prof = acc.profession[events.account[rows]]
    bill = np.maximum(_profile_array("bill"), bill_floor)[prof]
    rows = rows[(rng.random(len(rows)) < bill) | (events.oddity[rows] == _TOURIST)]
    prof = acc.profession[events.account[rows]]
    # Delay: pick a range of the profession's mixture, then a point in it.
    width = max(len(PROFILES[p].delays) for p in PROFESSIONS)
    bounds = np.ones((len(PROFESSIONS), width))
    low = np.zeros((len(PROFESSIONS), width))
    high = np.zeros((len(PROFESSIONS), width))
    for code, name in enumerate(PROFESSIONS):
        ranges = PROFILES[name].delays
        weights = np.cumsum([r[0] for r in ranges])
        bounds[code, : len(ranges)] = weights / weights[-1]
        low[code, : len(ranges)] = [r[1] for r in ranges]
        high[code, : len(ranges)] = [r[2] for r in ranges]
    u = rng.random(len(rows))
    pick = np.zeros(len(rows), dtype=np.int64)
    for k in range(width - 1):
        pick += u >= bounds[prof, k]
    delay = low[prof, pick] + rng.random(len(rows)) * (high[prof, pick] - low[prof, pick])
    counter = events.oddity[rows] == _TOURIST
    delay[counter] = (2.0 + rng.random(int(counter.sum())) * 23.0) / 60.0  # 2-25 minutes
    ts = events.ts[rows] + (delay * HOUR_US).astype(np.int64)
    account, person = events.account[rows], events.person[rows]
    # One claim per person, account and day of the visit; claims after the end are not seen.
    key = (account * (int(person.max(initial=0)) + 1) + person) * 100_000 + events.ts[
        rows
    ] // DAY_US
    _, first = np.unique(key, return_index=True)
    keep = first[ts[first] < end_us]
    keep = keep[np.argsort(ts[keep], kind="stable")]  # ties stay by account and person
    return ts[keep], account[keep], person[keep]


def _batch_checks(
    population: Population,
    acc: _Accounts,
    days: _Days,
    *,
    calendar: WorldCalendar,
    offsets: IntArray,
    sessions: Vocab,
    rng: np.random.Generator,
) -> Events:
    """The practice software checking the day's appointments at the start of the day.

    10-40 of the practice's own patients (its care links, the frail more often),
    about one a second (0.6-1.6 s apart), in one session of the software from the
    practice's usual network (its new one after a change of ISP), with its usual
    software login.
    """
    persons, starts, ends, cum = _pools(population, acc)
    a, d = np.nonzero(days.batch & (ends > starts)[:, None])
    a, d = a.astype(np.int64), d.astype(np.int64)
    size = rng.integers(10, 41, size=len(a))
    cell = np.repeat(np.arange(len(a)), size)
    account = a[cell]
    # The software starts before the first appointment (about 07:30-08:30, the practice's shift).
    begin = 450.0 + rng.random(len(a)) * 60.0 + acc.shift[a]
    begin_us = to_utc(calendar, offsets, acc.department[a], d, begin)
    gap = (0.6 + rng.random(len(cell)) * 1.0) * SECOND_US
    first = np.r_[0, np.cumsum(size)[:-1]]
    elapsed = np.cumsum(gap) - np.repeat(np.cumsum(gap)[first] if len(a) else gap[:0], size)
    ts = begin_us[cell] + elapsed.astype(np.int64)
    s, e = starts[account], ends[account]
    target = cum[s] + rng.random(len(cell)) * (cum[e] - cum[s])
    person = persons[np.clip(np.searchsorted(cum, target, side="right") - 1, s, e - 1)]
    unit = acc.unit[a]
    ip = np.where(d >= acc.unit_isp_change[unit], acc.unit_ip_new[unit], acc.unit_ip[unit])
    session = sessions.add(session_tokens(rng, len(a)))
    n = len(cell)
    return Events(
        ts=ts.astype(np.int64),
        account=account,
        person=person.astype(np.int64),
        nir=person.astype(np.int64),
        birth=person.astype(np.int64),
        ip=ip[cell].astype(np.int64),
        ua=acc.software_ua[unit][cell].astype(np.int64),
        session=session[cell],
        auth=acc.software_auth[account],
        channel=np.full(n, CHANNELS.index("software"), dtype=np.int64),
        label=np.full(n, -1, dtype=np.int64),
        typo=np.zeros(n, dtype=bool),
        oddity=np.full(n, _BATCH, dtype=np.int64),
    )


def _heavy_billing(
    population: Population,
    acc: _Accounts,
    events: Events,
    claims: tuple[IntArray, IntArray, IntArray],
    *,
    per_lookup: float,
    end_us: int,
    rng: np.random.Generator,
) -> tuple[IntArray, IntArray, IntArray]:
    """More claims, up to ``per_lookup`` claims per legitimate lookup.

    What is missing after every visit is billed comes two ways: two thirds as
    further claims of a billed visit (a pharmacy's other items minutes later, a
    doctor's or nurse's repeated acts hours to days later), a third as care billed
    without a lookup (the rights already known: a nurse's round, a repeat
    prescription) of the practice's own patients, at the hours it works.
    """
    ts, account, person = claims
    missing = round(per_lookup * len(events)) - len(ts)
    if missing <= 0 or not len(ts):
        return claims
    repeats = (2 * missing) // 3
    source = rng.integers(0, len(ts), size=repeats)
    pharmacy = acc.profession[account[source]] == PROFESSIONS.index("pharmacie")
    hours = np.where(pharmacy, rng.random(repeats) * 0.2, 1.0 + rng.random(repeats) * 71.0)
    r_ts = ts[source] + (hours * HOUR_US).astype(np.int64)
    r_account, r_person = account[source], person[source]

    persons, starts, ends, cum = _pools(population, acc)
    visits = np.flatnonzero(
        ~events.typo & (events.person >= 0) & (ends[events.account] > starts[events.account])
    )
    u_ts, u_account, u_person = (np.zeros(0, dtype=np.int64),) * 3
    if len(visits):
        pick = visits[rng.integers(0, len(visits), size=missing - repeats)]
        u_account = events.account[pick]
        s, e = starts[u_account], ends[u_account]
        target = cum[s] + rng.random(len(pick)) * (cum[e] - cum[s])
        u_person = persons[np.clip(np.searchsorted(cum, target, side="right") - 1, s, e - 1)]
        u_ts = events.ts[pick] + (rng.random(len(pick)) * 2 * HOUR_US).astype(np.int64)

    all_ts = np.concatenate([ts, r_ts, u_ts])
    all_account = np.concatenate([account, r_account, u_account])
    all_person = np.concatenate([person, r_person, u_person]).astype(np.int64)
    keep = np.flatnonzero(all_ts < end_us)
    keep = keep[np.argsort(all_ts[keep], kind="stable")]
    return all_ts[keep], all_account[keep], all_person[keep]


def _oddity_cells(events: Events) -> dict[str, tuple[IntArray, IntArray]]:
    """Per recorded oddity, the (account, UTC day) pairs its lookups touched."""
    out: dict[str, tuple[IntArray, IntArray]] = {}
    for code, name in enumerate(ODDITIES, start=1):
        rows = (events.oddity == code) & ~events.typo
        key = np.unique(events.account[rows] * 1_000_000 + events.ts[rows] // DAY_US)
        out[name] = (key // 1_000_000, key % 1_000_000)
    return out


def build_traffic(
    population: Population,
    calendar: WorldCalendar,
    *,
    params: TrafficParams,
    rng: np.random.Generator,
    progress: Progress | None = None,
) -> Traffic:
    """Legitimate lookups over the whole world (history and window) and their claims."""
    report = progress or (lambda _s, _d, _t: None)
    steps = 5
    report("traffic", 0, steps)
    n_days = (calendar.end - calendar.start).days
    ins = population.insured
    nirs = Vocab(ins.table.column("nir").combine_chunks())
    births = Vocab(ins.table.column("birth_date").combine_chunks().cast(pa.string()))
    ips, uas, sessions = Vocab(), Vocab(), Vocab()
    acc = _accounts(population, days=n_days, params=params, ips=ips, uas=uas, rng=rng)
    day_types = _day_types(calendar, n_days)
    days = _days(acc, calendar, day_types, params, rng)
    offsets = local_offsets(calendar)
    report("traffic", 1, steps)

    account, day, minute, p_new, oddity = _base_lookups(acc, days, rng)
    ts = to_utc(calendar, offsets, acc.department[account], day, minute)
    order = by_key_then_time(account, ts)
    account, day, ts, p_new = account[order], day[order], ts[order], p_new[order]
    oddity = oddity[order]
    locality = Locality.of(ins.department.astype(np.int64))
    person = _patients(population, acc, locality=locality, account=account, p_new=p_new, rng=rng)
    tourist = np.flatnonzero(oddity == _TOURIST)
    person[tourist] = locality.far(acc.department[account[tourist]], rng)
    report("traffic", 2, steps)

    session, ip, ua, auth, channel = _sessions(
        acc, days, ts=ts, account=account, day=day, sessions=sessions, rng=rng
    )
    n = len(ts)
    events = Events(
        ts=ts, account=account, person=person, nir=person.copy(), birth=person.copy(),
        ip=ip, ua=ua, session=session, auth=auth, channel=channel,
        label=np.full(n, -1, dtype=np.int64), typo=np.zeros(n, dtype=bool), oddity=oddity,
    )  # fmt: skip
    events = _typos(events, params.typo_rate, nirs, births, rng)
    batch = _batch_checks(
        population, acc, days, calendar=calendar, offsets=offsets, sessions=sessions, rng=rng
    )
    events = Events.concat([events, batch])
    start_us = int(calendar.start.timestamp()) * SECOND_US
    end_us = int(calendar.end.timestamp()) * SECOND_US
    inside = np.flatnonzero((events.ts >= start_us) & (events.ts < end_us))
    events = events.take(inside[by_key_then_time(events.account[inside], events.ts[inside])])
    report("traffic", 3, steps)

    heavy = params.claims_per_lookup
    claims = _claims(acc, events, end_us, rng, bill_floor=0.0 if heavy is None else 0.97)
    if heavy is not None:
        claims = _heavy_billing(
            population, acc, events, claims, per_lookup=heavy, end_us=end_us, rng=rng
        )
    claim_ts, claim_account, claim_person = claims
    report("traffic", 4, steps)

    weekday_hours = np.stack(
        [np.array(PROFILES[p].weekday_hours) / sum(PROFILES[p].weekday_hours) for p in PROFESSIONS]
    )
    report("traffic", steps, steps)
    return Traffic(
        events=events,
        claim_ts=claim_ts,
        claim_account=claim_account,
        claim_person=claim_person,
        nirs=nirs,
        births=births,
        ips=ips,
        user_agents=uas,
        sessions=sessions,
        daily=acc.daily,
        working_hours=weekday_hours[acc.profession],
        offsets=offsets,
        locality=locality,
        oddities=days.oddities,
        oddity_cells=_oddity_cells(events),
    )


# --------------------------------------------------------------------------- tables


def traffic_tables(
    population: Population,
    calendar: WorldCalendar,
    traffic: Traffic,
    attacks: Events,
    attack_names: Sequence[str],
) -> dict[str, pa.Table]:
    """``claims``, ``lookups`` (by time, ``event_id`` from 1) and ``labels`` (the window's)."""
    events = Events.concat([traffic.events, attacks])
    events = events.take(np.argsort(events.ts, kind="stable"))
    n = len(events)
    event_id = pa.array(np.arange(1, n + 1, dtype=np.int64), pa.int64())
    account_ids = population.professionals.table.column("account_id").combine_chunks()
    stamp = pa.timestamp("us", tz="UTC")
    lookups = pa.Table.from_arrays(
        [
            event_id,
            pa.array(events.ts, stamp),
            account_ids.take(pa.array(events.account, pa.int64())),
            traffic.nirs.take(events.nir),
            traffic.births.take(events.birth),
            traffic.ips.take(events.ip),
            traffic.user_agents.take(events.ua),
            traffic.sessions.take(events.session),
            pa.array(AUTH_VALUES, pa.string()).take(pa.array(events.auth, pa.int64())),
            pa.array(CHANNELS, pa.string()).take(pa.array(events.channel, pa.int64())),
        ],
        schema=LOOKUPS,
    )
    window = np.flatnonzero(events.ts >= int(calendar.window_start.timestamp()) * SECOND_US)
    label = events.label[window]
    names = pa.array(list(attack_names) or [""], pa.string())
    labels = pa.Table.from_arrays(
        [
            event_id.take(pa.array(window, pa.int64())),
            names.take(pa.array(np.maximum(label, 0), pa.int64(), mask=label < 0)),
        ],
        schema=LABELS,
    )
    claims = pa.Table.from_arrays(
        [
            pa.array(traffic.claim_ts, stamp),
            account_ids.take(pa.array(traffic.claim_account, pa.int64())),
            population.insured.table.column("nir")
            .combine_chunks()
            .take(pa.array(traffic.claim_person, pa.int64())),
        ],
        schema=CLAIMS,
    )
    return {"claims": claims, "lookups": lookups, "labels": labels}
