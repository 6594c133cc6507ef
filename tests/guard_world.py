"""Tiny hand-built worlds for the guard's tests (not the generator: the guard must not
depend on its quirks).

A few professionals in Paris, Marseille and Lyon, a few hundred insured persons,
care links, two weeks of honest history with claims after visits, then a window
where scripted attackers may be added.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from rempart.nir import make_nir
from rempart.world.io import write_table
from rempart.world.schema import CARE, CLAIMS, INSURED, LABELS, LOOKUPS, PROFESSIONALS

START = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday
HISTORY_DAYS = 14
WINDOW_DAYS = 7
WINDOW_START = START + timedelta(days=HISTORY_DAYS)
END = WINDOW_START + timedelta(days=WINDOW_DAYS)

# account_id, profession, department, organization, lookups per working day, share new
ACCOUNTS: tuple[tuple[str, str, str, str | None, int, float], ...] = (
    ("gp1", "generaliste", "75", None, 22, 0.12),
    ("gp2", "generaliste", "13", None, 18, 0.12),
    ("gp3", "generaliste", "69", None, 20, 0.12),
    ("ph1a", "pharmacie", "75", "750000001", 60, 0.3),
    ("ph1b", "pharmacie", "75", "750000001", 50, 0.3),
    ("ph2", "pharmacie", "13", "130000002", 70, 0.3),
    ("inf1", "infirmier", "69", None, 8, 0.05),
)
ADDRESS = {
    "gp1": ("203.0.113.10", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0"),
    "gp2": ("203.0.113.20", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) Safari/17.2"),
    "gp3": ("203.0.114.30", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/121.0"),
    "ph1a": ("198.18.5.2", "LGC-Pharma/4.2"),
    "ph1b": ("198.18.5.2", "LGC-Pharma/4.2"),
    "ph2": ("198.18.9.4", "LGC-Pharma/4.1"),
    "inf1": ("100.64.3.8", "Mozilla/5.0 (Linux; Android 14) Chrome/120.0"),
}
PEOPLE_PER_DEPARTMENT = {"75": 500, "13": 300, "69": 300}


@dataclass
class Person:
    nir: str
    birth: date
    department: str


@dataclass
class TinyWorld:
    people: list[Person]
    care: dict[str, list[int]]
    """Account -> indices of people linked to it."""
    doctor: dict[int, str]
    lookups: list[dict[str, object]] = field(default_factory=list)
    claims: list[tuple[datetime, str, str]] = field(default_factory=list)
    labels: dict[int, str | None] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(5))

    def by_department(self, department: str) -> list[int]:
        return [i for i, p in enumerate(self.people) if p.department == department]

    def add_lookup(
        self,
        ts: datetime,
        account: str,
        person: Person | None,
        *,
        nir: str | None = None,
        birth: str | None = None,
        ip: str,
        agent: str,
        session: str,
        attack: str | None = None,
        auth: str = "totp",
        channel: str = "portal",
    ) -> None:
        self.lookups.append(
            {
                "ts": ts,
                "account_id": account,
                "nir": nir if nir is not None else (person.nir if person else ""),
                "birth_date": birth
                if birth is not None
                else (person.birth.isoformat() if person else None),
                "ip": ip,
                "user_agent": agent,
                "session_id": session,
                "auth": auth,
                "channel": channel,
                "attack": attack,
            }
        )

    def honest_day(self, account: str, day: date, *, volume: int | None = None) -> None:
        """One working day of an honest account: its patients, some new local ones,
        claims after the visits."""
        spec = next(a for a in ACCOUNTS if a[0] == account)
        _, _, department, _, per_day, share_new = spec
        ip, agent = ADDRESS[account]
        rng = self.rng
        count = volume if volume is not None else max(1, int(rng.gauss(per_day, per_day * 0.15)))
        linked = self.care[account]
        local = self.by_department(department)
        session = f"{account}-{day.isoformat()}"
        for _ in range(count):
            minute = rng.randrange(7 * 60, 17 * 60)
            ts = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                minutes=minute, seconds=rng.randrange(60)
            )
            if rng.random() < share_new:
                person = self.people[rng.choice(local)]
            else:
                person = self.people[rng.choice(linked)]
            typo = rng.random() < 0.01
            self.add_lookup(
                ts,
                account,
                person,
                birth="1900-01-01" if typo else None,
                ip=ip,
                agent=agent,
                session=session,
            )
            if not typo and rng.random() < 0.9:
                delay = timedelta(minutes=rng.randrange(20, 60 * 30))
                self.claims.append((ts + delay, account, person.nir))

    def write(self, out: Path) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        people = self.people
        accounts = [a[0] for a in ACCOUNTS]
        write_table(
            out,
            "professionals",
            pa.table(
                {
                    "account_id": accounts,
                    "rpps": [f"1000000000{i}" for i in range(len(accounts))],
                    "profession": [a[1] for a in ACCOUNTS],
                    "department": [a[2] for a in ACCOUNTS],
                    "organization_id": [a[3] for a in ACCOUNTS],
                    "last_name": ["Martin"] * len(accounts),
                    "first_name": ["Claire"] * len(accounts),
                    "email": [f"{a}@example.org" for a in accounts],
                },
                schema=PROFESSIONALS,
            ),
        )
        write_table(
            out,
            "insured",
            pa.table(
                {
                    "nir": [p.nir for p in people],
                    "birth_date": [p.birth for p in people],
                    "sex": [int(p.nir[0]) for p in people],
                    "last_name": ["Durand"] * len(people),
                    "first_name": ["Lou"] * len(people),
                    "department": [p.department for p in people],
                    "treating_doctor": [self.doctor.get(i) for i in range(len(people))],
                    "c2s": [False] * len(people),
                    "ame": [False] * len(people),
                    "ald": [False] * len(people),
                    "email": [None] * len(people),
                    "street": ["1 rue de la Paix"] * len(people),
                    "postcode": ["75001"] * len(people),
                    "city": ["Paris"] * len(people),
                },
                schema=INSURED,
            ),
        )
        care_rows = [
            (account, people[i].nir) for account, linked in self.care.items() for i in linked
        ]
        write_table(
            out,
            "care",
            pa.table(
                {
                    "account_id": [a for a, _ in care_rows],
                    "nir": [n for _, n in care_rows],
                    "since": [date(2020, 1, 1)] * len(care_rows),
                },
                schema=CARE,
            ),
        )
        claims = sorted(c for c in self.claims if c[0] < END)
        write_table(
            out,
            "claims",
            pa.table(
                {
                    "ts": [c[0] for c in claims],
                    "account_id": [c[1] for c in claims],
                    "nir": [c[2] for c in claims],
                },
                schema=CLAIMS,
            ),
        )
        rows = sorted(self.lookups, key=lambda r: r["ts"])  # type: ignore[arg-type,return-value]
        columns = {name: [r[name] for r in rows] for name in LOOKUPS.names if name != "event_id"}
        ids = list(range(1, len(rows) + 1))
        write_table(out, "lookups", pa.table({"event_id": ids, **columns}, schema=LOOKUPS))
        window = [(i, r["attack"]) for i, r in zip(ids, rows, strict=True)]
        window = [
            (i, a)
            for (i, a), r in zip(window, rows, strict=True)
            if r["ts"] >= WINDOW_START  # type: ignore[operator]
        ]
        write_table(
            out,
            "labels",
            pa.table(
                {"event_id": [i for i, _ in window], "attack": [a for _, a in window]},
                schema=LABELS,
            ),
        )
        (out / "world.json").write_text(
            json.dumps(
                {
                    "format_version": 1,
                    "seed": 5,
                    "start": START.isoformat(),
                    "window_start": WINDOW_START.isoformat(),
                    "end": END.isoformat(),
                }
            ),
            encoding="utf-8",
        )
        return out


def make_people(rng: random.Random) -> list[Person]:
    people = []
    order = 1
    for department, count in PEOPLE_PER_DEPARTMENT.items():
        for _ in range(count):
            birth = date(rng.randrange(1940, 2020), rng.randrange(1, 13), rng.randrange(1, 29))
            nir = make_nir(
                sex=rng.choice((1, 2)),
                year=birth.year % 100,
                month=birth.month,
                department=department,
                commune=f"{order // 999 + 1:03d}",
                order=order % 999 + 1,
            )
            order += 1
            people.append(Person(str(nir), birth, department))
    return people


def tiny_world(*, history: bool = True, window: bool = True) -> TinyWorld:
    """People, care links, and honest traffic on working days (history and window)."""
    rng = random.Random(5)
    people = make_people(rng)
    world = TinyWorld(people=people, care={}, doctor={})
    for account, profession, department, *_ in ACCOUNTS:
        local = world.by_department(department)
        size = {"generaliste": 150, "pharmacie": 200, "infirmier": 30}[profession]
        linked = sorted(rng.sample(local, size))
        world.care[account] = linked
        if profession == "generaliste":
            for i in linked[:120]:
                world.doctor[i] = account
    days = []
    if history:
        days += [START.date() + timedelta(days=d) for d in range(HISTORY_DAYS)]
    if window:
        days += [WINDOW_START.date() + timedelta(days=d) for d in range(WINDOW_DAYS)]
    for day in days:
        if day.weekday() >= 5:
            continue
        for account, *_ in ACCOUNTS:
            world.honest_day(account, day)
    return world


def add_robot(
    world: TinyWorld,
    account: str,
    start: datetime,
    count: int,
    *,
    every: timedelta = timedelta(seconds=1),
    attack: str = "robot_2022",
    ip: str = "185.220.101.7",
    agent: str = "python-requests/2.31",
) -> None:
    """A robot reading random insured persons (right birth dates) at a steady pace."""
    rng = random.Random(11)
    for k in range(count):
        person = world.people[rng.randrange(len(world.people))]
        world.add_lookup(
            start + k * every,
            account,
            person,
            ip=ip,
            agent=agent,
            session=f"{attack}-{account}",
            attack=attack,
        )
