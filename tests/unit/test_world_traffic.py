"""Traffic and attacks in generated worlds: format, determinism, realism, and each attack family."""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from stdnum.fr import nir as stdnum_nir
from typer.testing import CliRunner

from rempart.cli import app
from rempart.world.attacks import (
    FAMILIES,
    Campaign,
    Enumeration,
    Scrape2022,
    default_scenarios,
    parse_scenarios,
)
from rempart.world.generator import generate_world
from rempart.world.geography import neighbours
from rempart.world.schema import TABLES
from rempart.world.traffic import TrafficParams, public_holidays

SEED = 5
WORLD = {"insured": 6_000, "professionals": 160, "days": 21, "seed": SEED}
TRAFFIC_FILES = ("claims.parquet", "lookups.parquet", "labels.parquet", "world.json")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("attacked")
    generate_world(out, **WORLD)  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module")
def quiet_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same world without attacks."""
    out = tmp_path_factory.mktemp("quiet")
    generate_world(out, attacks=[], **WORLD)  # type: ignore[arg-type]
    return out


def _read(world: Path, name: str) -> pa.Table:
    return pq.read_table(world / f"{name}.parquet")


def _meta(world: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((world / "world.json").read_text(encoding="utf-8"))
    return data


def _us(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp()) * 1_000_000


def _labelled(world: Path) -> pa.Table:
    """Lookups with their label (null in history and for legitimate lookups)."""
    lookups = _read(world, "lookups")
    labels = _read(world, "labels")
    return lookups.join(labels, "event_id", join_type="left outer").sort_by("event_id")


def _legit(world: Path) -> pa.Table:
    table = _labelled(world)
    return table.filter(pc.is_null(table["attack"]))


def _attack(world: Path, family: str) -> pa.Table:
    table = _labelled(world)
    return table.filter(pc.equal(table["attack"], family))


def _local_hour(ts: list[datetime], departments: list[str]) -> np.ndarray[Any, Any]:
    zones = {
        "971": "America/Guadeloupe",
        "972": "America/Martinique",
        "973": "America/Cayenne",
        "974": "Indian/Reunion",
        "976": "Indian/Mayotte",
    }
    return np.array(
        [
            t.astimezone(ZoneInfo(zones.get(d, "Europe/Paris"))).hour
            for t, d in zip(ts, departments, strict=True)
        ]
    )


# --------------------------------------------------------------------------- format


def test_files_follow_the_schemas_exactly(world: Path) -> None:
    for name in ("claims", "lookups", "labels"):
        schema = pq.read_schema(world / f"{name}.parquet").remove_metadata()
        assert schema.equals(TABLES[name]), name
        assert _read(world, name).num_rows > 0
    lookups = _read(world, "lookups")
    assert set(pc.unique(lookups["auth"]).to_pylist()) <= {
        "password",
        "totp",
        "webauthn",
        "cps",
        "psc",
    }
    assert set(pc.unique(lookups["channel"]).to_pylist()) == {"portal", "software"}
    accounts = set(_read(world, "professionals")["account_id"].to_pylist())
    assert set(pc.unique(lookups["account_id"]).to_pylist()) <= accounts
    assert set(pc.unique(_read(world, "claims")["account_id"]).to_pylist()) <= accounts


def test_same_seed_same_bytes(world: Path, tmp_path: Path) -> None:
    generate_world(tmp_path, **WORLD)  # type: ignore[arg-type]
    for name in TRAFFIC_FILES:
        assert (
            hashlib.sha256((world / name).read_bytes()).digest()
            == hashlib.sha256((tmp_path / name).read_bytes()).digest()
        ), name


def test_lookups_are_in_time_order_with_increasing_ids(world: Path) -> None:
    lookups = _read(world, "lookups")
    ts = lookups["ts"].cast(pa.int64()).to_numpy()
    ids = lookups["event_id"].to_numpy()
    assert (np.diff(ts) >= 0).all()
    assert ids[0] == 1
    assert (np.diff(ids) == 1).all()
    meta = _meta(world)
    assert ts.min() >= _us(meta["start"])
    assert ts.max() < _us(meta["end"])


def test_labels_cover_exactly_the_window(world: Path) -> None:
    lookups = _read(world, "lookups")
    labels = _read(world, "labels")
    window = lookups.filter(
        pc.greater_equal(
            lookups["ts"], pa.scalar(datetime.fromisoformat(_meta(world)["window_start"]))
        )
    )
    assert labels["event_id"].to_pylist() == window["event_id"].to_pylist()
    names = set(pc.unique(labels["attack"]).to_pylist()) - {None}
    assert names == set(FAMILIES)


def test_attacks_only_add_labelled_lookups_in_the_window(world: Path, quiet_world: Path) -> None:
    """History, legitimate window traffic and claims are the same with and without attacks."""
    columns = [c for c in TABLES["lookups"].names if c != "event_id"]
    legit = _legit(world).select(columns)
    quiet = _read(quiet_world, "lookups").select(columns)
    assert legit.cast(quiet.schema).equals(quiet)
    assert (world / "claims.parquet").read_bytes() == (quiet_world / "claims.parquet").read_bytes()
    attacks = _labelled(world).filter(pc.is_valid(_labelled(world)["attack"]))
    assert attacks.num_rows > 0
    window_start = datetime.fromisoformat(_meta(world)["window_start"])
    assert pc.min(attacks["ts"]).as_py() >= window_start
    assert (
        _read(quiet_world, "labels")["attack"].null_count == _read(quiet_world, "labels").num_rows
    )


# --------------------------------------------------------------------------- legitimate traffic


def _account_days(world: Path) -> dict[str, list[int]]:
    """Legitimate lookups per active account-day (local weekdays), by profession."""
    legit = _legit(world)
    pros = _read(world, "professionals")
    profession = dict(
        zip(pros["account_id"].to_pylist(), pros["profession"].to_pylist(), strict=True)
    )
    counts: dict[tuple[str, str], int] = defaultdict(int)
    paris = ZoneInfo("Europe/Paris")
    for account, ts in zip(legit["account_id"].to_pylist(), legit["ts"].to_pylist(), strict=True):
        local = ts.astimezone(paris)
        if local.weekday() < 5 and local.date() not in public_holidays(local.year):
            counts[(account, local.date().isoformat())] += 1
    out: dict[str, list[int]] = defaultdict(list)
    for (account, _day), n in counts.items():
        out[profession[account]].append(n)
    return out


def test_daily_volumes_per_profession(world: Path) -> None:
    per_day = _account_days(world)
    expected = {
        "generaliste": (15, 35),
        "specialiste": (8, 25),
        "pharmacie": (80, 200),
        "infirmier": (5, 20),
        "kinesitherapeute": (4, 18),
        "dentiste": (5, 20),
        "laboratoire": (30, 100),
        "etablissement": (150, 400),
    }
    for profession, (low, high) in expected.items():
        median = float(np.median(per_day[profession]))
        assert low <= median <= high, (profession, median)


def test_hours_weekends_and_the_hospital_night(world: Path) -> None:
    legit = _legit(world)
    pros = _read(world, "professionals")
    info = {
        a: (p, d)
        for a, p, d in zip(
            pros["account_id"].to_pylist(),
            pros["profession"].to_pylist(),
            pros["department"].to_pylist(),
            strict=True,
        )
    }
    accounts = legit["account_id"].to_pylist()
    hours = _local_hour(legit["ts"].to_pylist(), [info[a][1] for a in accounts])
    profession = np.array([info[a][0] for a in accounts])
    gp = profession == "generaliste"
    assert ((hours[gp] >= 8) & (hours[gp] < 20)).mean() > 0.85
    assert (hours[gp] < 6).mean() < 0.02
    hospital = profession == "etablissement"
    night = ((hours[hospital] >= 0) & (hours[hospital] < 6)).mean()
    assert 0.03 < night < 0.2  # around the clock, quieter at night
    sunday = np.array(
        [t.astimezone(ZoneInfo("Europe/Paris")).weekday() == 6 for t in legit["ts"].to_pylist()]
    )
    assert sunday[gp].mean() < 0.03  # GPs rarely work Sundays
    assert sunday[hospital].mean() > 0.07


def test_practices_keep_their_networks_and_devices(world: Path) -> None:
    legit = _legit(world)
    per_account: dict[str, set[str]] = defaultdict(set)
    agents: dict[str, set[str]] = defaultdict(set)
    for a, ip, ua in zip(
        legit["account_id"].to_pylist(),
        legit["ip"].to_pylist(),
        legit["user_agent"].to_pylist(),
        strict=True,
    ):
        per_account[a].add(ip)
        agents[a].add(ua)
    # Most lookups of an account come from its practice's line, on a device or two;
    # home visits go through mobile carriers' shared addresses.
    counts = Counter(zip(legit["account_id"].to_pylist(), legit["ip"].to_pylist(), strict=True))
    top: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for (a, _ip), n in counts.items():
        top[a] = max(top[a], n)
        total[a] += n
    assert np.median([top[a] / total[a] for a in total]) > 0.6
    assert np.median([len(s) for s in agents.values()]) <= 3
    # Accounts of one organisation share their network.
    pros = _read(world, "professionals").filter(
        pc.is_valid(_read(world, "professionals")["organization_id"])
    )
    orgs: dict[str, list[str]] = defaultdict(list)
    for a, o in zip(
        pros["account_id"].to_pylist(), pros["organization_id"].to_pylist(), strict=True
    ):
        if a in per_account:
            orgs[o].append(a)
    shared = [
        set.intersection(*(per_account[a] for a in members))
        for members in orgs.values()
        if len(members) > 1
    ]
    assert shared
    assert np.mean([bool(s) for s in shared]) > 0.9


def test_sessions_belong_to_one_account_and_stay_short(world: Path) -> None:
    legit = _legit(world)
    owner: dict[str, str] = {}
    span: dict[str, list[datetime]] = {}
    for a, s, t in zip(
        legit["account_id"].to_pylist(),
        legit["session_id"].to_pylist(),
        legit["ts"].to_pylist(),
        strict=True,
    ):
        assert owner.setdefault(s, a) == a
        first_last = span.setdefault(s, [t, t])
        first_last[1] = t
    hours = [(b - a).total_seconds() / 3600 for a, b in span.values()]
    assert max(hours) <= 4.01


def test_most_lookups_are_of_known_or_nearby_patients(world: Path) -> None:
    legit = _legit(world)
    care = _read(world, "care")
    pros = _read(world, "professionals")
    insured = _read(world, "insured")
    home = dict(zip(insured["nir"].to_pylist(), insured["department"].to_pylist(), strict=True))
    dept = dict(zip(pros["account_id"].to_pylist(), pros["department"].to_pylist(), strict=True))
    links = set(zip(care["account_id"].to_pylist(), care["nir"].to_pylist(), strict=True))
    pairs = list(zip(legit["account_id"].to_pylist(), legit["nir"].to_pylist(), strict=True))
    known = np.mean([p in links for p in pairs])
    near = {d: {d, *neighbours(d)} for d in set(dept.values())}
    nearby = np.mean([home.get(n) in near[dept[a]] for a, n in pairs])
    assert 0.3 < known < 0.95  # own patients, and new ones
    assert nearby > 0.8


def test_typos_are_about_one_percent(world: Path) -> None:
    legit = _legit(world)
    insured = _read(world, "insured")
    births = dict(
        zip(
            insured["nir"].to_pylist(),
            (d.isoformat() for d in insured["birth_date"].to_pylist()),
            strict=True,
        )
    )
    nirs = legit["nir"].to_pylist()
    given = legit["birth_date"].to_pylist()
    malformed = np.array([not stdnum_nir.is_valid(n) for n in nirs])
    wrong_birth = (
        np.array([births.get(n) != b for n, b in zip(nirs, given, strict=True)]) & ~malformed
    )
    assert 0.003 < malformed.mean() < 0.008
    assert 0.003 < wrong_birth.mean() < 0.008
    assert 0.007 < (malformed | wrong_birth).mean() < 0.014


def test_claims_follow_legitimate_visits(world: Path) -> None:
    legit = _legit(world)
    claims = _read(world, "claims")
    visits: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for a, n, t in zip(
        legit["account_id"].to_pylist(),
        legit["nir"].to_pylist(),
        legit["ts"].to_pylist(),
        strict=True,
    ):
        visits[(a, n)].append(t)  # in time order
    assert (np.diff(claims["ts"].cast(pa.int64()).to_numpy()) >= 0).all()
    # Most visits are billed; some never are, some after the world ends.
    assert 0.3 < claims.num_rows / legit.num_rows < 0.95
    # Pharmacies bill within the hour, hospitals days later.
    pros = _read(world, "professionals")
    profession = dict(
        zip(pros["account_id"].to_pylist(), pros["profession"].to_pylist(), strict=True)
    )
    delay: dict[str, list[float]] = defaultdict(list)
    for a, n, t in zip(
        claims["account_id"].to_pylist(),
        claims["nir"].to_pylist(),
        claims["ts"].to_pylist(),
        strict=True,
    ):
        before = bisect.bisect_left(visits[(a, n)], t)
        assert before > 0, (a, t)  # every claim follows a legitimate lookup of that person
        delay[profession[a]].append((t - visits[(a, n)][before - 1]).total_seconds() / 3600)
    # (measured from the last lookup before the claim, which may be a later visit)
    assert np.median(delay["pharmacie"]) < 1
    assert np.median(delay["etablissement"]) > 6


def test_legitimate_oddities_reach_the_window(world: Path) -> None:
    meta = _meta(world)
    for name in (
        "holiday_accounts",
        "locum_accounts",
        "late_evenings",
        "vaccination_days",
        "mass_casualty_days",
        "surge_departments",
        "pharmacy_duty_days",
    ):
        assert meta["oddities"][name] > 0, name
    # Some honest accounts show up in the window from a network they never used before.
    legit = _legit(world)
    window_start = datetime.fromisoformat(meta["window_start"])
    seen: dict[str, set[str]] = defaultdict(set)
    new_network = set()
    for a, ip, t in zip(
        legit["account_id"].to_pylist(),
        legit["ip"].to_pylist(),
        legit["ts"].to_pylist(),
        strict=True,
    ):
        if t >= window_start and ip not in seen[a]:
            new_network.add(a)
        seen[a].add(ip)
    assert len(new_network) >= 2


# --------------------------------------------------------------------------- recorded oddities


def _rows_by_account_day(table: pa.Table) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in table.to_pylist():
        out[(row["account_id"], row["ts"].date().isoformat())].append(row)
    return out


def _far(home: str | None, practice: str) -> bool:
    return home is not None and home != practice and home not in neighbours(practice)


def test_seasonal_surge_brings_far_patients_billed_at_the_counter(world: Path) -> None:
    meta = _meta(world)
    cells = {(a, d) for a, d in meta["oddity_days"]["seasonal_surge"]}
    window = datetime.fromisoformat(meta["window_start"]).date().isoformat()
    assert cells
    assert all(d >= window for _, d in cells)
    pros = {p["account_id"]: p for p in _read(world, "professionals").to_pylist()}
    touched = {a for a, _ in cells}
    assert {pros[a]["profession"] for a in touched} <= {"pharmacie", "generaliste"}
    # The area's pharmacies surge together: every pharmacy of the department, same days.
    departments = {pros[a]["department"] for a in touched}
    assert meta["oddities"]["seasonal_surge_departments"] == len(departments)
    for dept in departments:
        pharmacies = {
            a for a, p in pros.items() if p["department"] == dept and p["profession"] == "pharmacie"
        }
        assert pharmacies <= touched
        days = [{d for a2, d in cells if a2 == a} for a in pharmacies]
        assert len(set.union(*days)) <= 8
        assert len(set.intersection(*days)) >= 2

    insured = _read(world, "insured")
    home = dict(zip(insured["nir"].to_pylist(), insured["department"].to_pylist(), strict=True))
    care = {(c["account_id"], c["nir"]) for c in _read(world, "care").to_pylist()}
    legit = _legit(world)
    by_day = _rows_by_account_day(legit.filter(pc.is_in(legit["account_id"], pa.array(touched))))
    claims = defaultdict(list)
    for c in _read(world, "claims").to_pylist():
        claims[(c["account_id"], c["nir"])].append(c["ts"])
    for account in touched:
        if pros[account]["profession"] != "pharmacie":
            continue
        practice = pros[account]["department"]
        usual_ips = {r["ip"] for k, rows in by_day.items() if k[0] == account and k[1] < window
                     for r in rows}  # fmt: skip
        usual_agents = {r["user_agent"] for k, rows in by_day.items()
                        if k[0] == account and k[1] < window for r in rows}  # fmt: skip
        far = {
            day: [r for r in rows if _far(home.get(r["nir"]), practice)
                  and (account, r["nir"]) not in care]
            for (a, day), rows in by_day.items() if a == account
        }  # fmt: skip
        usual_high = max(len(v) for d, v in far.items() if (account, d) not in cells)
        for day in (d for a, d in cells if a == account):
            rows = by_day[(account, day)]
            tourists = far[day]
            # Several times the pharmacy's usual high day of far, unexplained patients.
            assert len(tourists) >= 4 * max(usual_high, 3), (account, day)
            # Billed at the counter, minutes after the lookup.
            billed = [
                any(timedelta(0) < t - r["ts"] <= timedelta(minutes=30)
                    for t in claims[(account, r["nir"])])
                for r in tourists
            ]  # fmt: skip
            assert sum(billed) >= 0.9 * len(tourists)
            # From the practice's usual place and devices, at a human pace.
            assert {r["ip"] for r in rows} <= usual_ips
            assert {r["user_agent"] for r in rows} <= usual_agents
            gaps = np.diff(sorted(r["ts"].timestamp() for r in rows))
            assert np.median(gaps) >= 30
            local = [r["ts"].astimezone(ZoneInfo("Europe/Paris")).hour for r in rows]
            assert min(local) >= 7
            assert max(local) <= 21


def _batch_sessions(world: Path) -> list[list[dict[str, Any]]]:
    """The software batch check of each recorded account-day: its session's lookups."""
    meta = _meta(world)
    cells = {(a, d) for a, d in meta["oddity_days"]["batch_check"]}
    legit = _legit(world)
    legit = legit.filter(pc.is_in(legit["account_id"], pa.array({a for a, _ in cells})))
    out = []
    for key, rows in _rows_by_account_day(legit).items():
        if key not in cells:
            continue
        sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            sessions[r["session_id"]].append(r)
        quick = [
            s for s in sessions.values()
            if len(s) >= 10 and np.median(np.diff([r["ts"].timestamp() for r in s])) < 2
        ]  # fmt: skip
        assert len(quick) == 1, key  # one batch a day
        out.append(quick[0])
    assert len(out) == len(cells)
    return out


def test_software_batch_checks_the_days_own_patients_at_software_pace(world: Path) -> None:
    meta = _meta(world)
    pros = {p["account_id"]: p["profession"] for p in _read(world, "professionals").to_pylist()}
    care = {(c["account_id"], c["nir"]) for c in _read(world, "care").to_pylist()}
    legit = _legit(world)
    usual: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    for a, ip, ua, ch in zip(
        legit["account_id"].to_pylist(),
        legit["ip"].to_pylist(),
        legit["user_agent"].to_pylist(),
        legit["channel"].to_pylist(),
        strict=True,
    ):
        if ch == "software":
            usual[a][(ip, ua)] += 1
    batches = _batch_sessions(world)
    window = datetime.fromisoformat(meta["window_start"])
    first_window_days = {b[0]["ts"].date() for b in batches if b[0]["ts"] >= window}
    assert min(first_window_days) - window.date() <= timedelta(days=3)
    for batch in batches:
        account = batch[0]["account_id"]
        assert pros[account] in {
            "generaliste", "specialiste", "infirmier", "kinesitherapeute", "dentiste",
            "sage_femme",
        }  # fmt: skip
        assert 10 <= len(batch) <= 40
        assert all((account, r["nir"]) in care for r in batch)  # the practice's own patients
        assert {r["channel"] for r in batch} == {"software"}
        assert {r["auth"] for r in batch} <= {"cps", "psc"}
        gaps = np.diff([r["ts"].timestamp() for r in batch])
        assert (gaps >= 0.5).all()
        assert (gaps <= 1.7).all()
        local = batch[0]["ts"].astimezone(ZoneInfo("Europe/Paris"))
        assert 6 <= local.hour <= 9  # the start of the day
        # The practice's usual network and software: what its other software lookups use.
        (where,) = {(r["ip"], r["user_agent"]) for r in batch}
        assert usual[account][where] > len(batch), (account, where)


def test_batch_checks_start_on_day_one_of_a_fresh_deployment(tmp_path: Path) -> None:
    """No history at all: the window opens on the world's first day, and so do batch checks."""
    generate_world(tmp_path, insured=3_000, professionals=80, days=5, seed=2, history_days=0)
    meta = _meta(tmp_path)
    assert meta["history_days"] == 0
    first = datetime.fromisoformat(meta["start"]).date()
    days = {date.fromisoformat(d) for _, d in meta["oddity_days"]["batch_check"]}
    assert first in days  # 2025-03-26, a Wednesday: the first morning already
    assert _batch_sessions(tmp_path)
    assert meta["oddity_days"]["seasonal_surge"]


def test_claims_heavy_world_bills_three_quarters_of_a_claim_per_lookup(tmp_path: Path) -> None:
    generate_world(
        tmp_path,
        insured=4_000,
        professionals=100,
        days=14,
        seed=4,
        traffic=TrafficParams(claims_per_lookup=0.75),
    )
    assert _meta(tmp_path)["traffic"]["claims_per_lookup"] == 0.75
    legit = _legit(tmp_path)
    claims = _read(tmp_path, "claims")
    assert 0.7 <= claims.num_rows / legit.num_rows <= 0.78
    assert (np.diff(claims["ts"].cast(pa.int64()).to_numpy()) >= 0).all()
    # Several claims for one visit (account, person, day), and care billed without a lookup.
    per_visit = Counter(
        (a, n, t.date())
        for a, n, t in zip(
            claims["account_id"].to_pylist(),
            claims["nir"].to_pylist(),
            claims["ts"].to_pylist(),
            strict=True,
        )
    )
    assert sum(c > 1 for c in per_visit.values()) > 0.05 * len(per_visit)
    looked_up = set(zip(legit["account_id"].to_pylist(), legit["nir"].to_pylist(), strict=True))
    # A pharmacy's, laboratory's or hospital's patients are the whole organisation's.
    pros = _read(tmp_path, "professionals").to_pylist()
    unit = {p["account_id"]: p["organization_id"] or p["account_id"] for p in pros}
    members = defaultdict(set)
    for p in pros:
        members[unit[p["account_id"]]].add(p["account_id"])
    care = {
        (colleague, c["nir"])
        for c in _read(tmp_path, "care").to_pylist()
        for colleague in members[unit[c["account_id"]]]
    }
    pairs = set(zip(claims["account_id"].to_pylist(), claims["nir"].to_pylist(), strict=True))
    assert pairs <= looked_up | care
    assert pairs - looked_up  # some care is billed without a lookup
    # Attackers still never produce a claim: what only they looked up is never billed.
    attacked = _labelled(tmp_path).filter(pc.is_valid(_labelled(tmp_path)["attack"]))
    only_attack = (
        set(zip(attacked["account_id"].to_pylist(), attacked["nir"].to_pylist(), strict=True))
        - looked_up
        - care
    )
    assert only_attack
    assert not (only_attack & pairs)


# --------------------------------------------------------------------------- attack families


def _not_found(world: Path, table: pa.Table) -> np.ndarray[Any, Any]:
    insured = _read(world, "insured")
    births = dict(
        zip(
            insured["nir"].to_pylist(),
            (d.isoformat() for d in insured["birth_date"].to_pylist()),
            strict=True,
        )
    )
    return np.array(
        [
            births.get(n) != b
            for n, b in zip(table["nir"].to_pylist(), table["birth_date"].to_pylist(), strict=True)
        ]
    )


def _legit_ips(world: Path) -> dict[str, set[str]]:
    legit = _legit(world)
    out: dict[str, set[str]] = defaultdict(set)
    for a, ip in zip(legit["account_id"].to_pylist(), legit["ip"].to_pylist(), strict=True):
        out[a].add(ip)
    return out


def test_2022_pattern_reads_thousands_at_machine_speed(world: Path) -> None:
    attack = _attack(world, "scrape_2022")
    pros = _read(world, "professionals")
    profession = dict(
        zip(pros["account_id"].to_pylist(), pros["profession"].to_pylist(), strict=True)
    )
    accounts = set(attack["account_id"].to_pylist())
    assert len(accounts) == 3
    assert sum(profession[a] == "pharmacie" for a in accounts) >= 2
    for account in accounts:
        mine = attack.filter(pc.equal(attack["account_id"], account))
        assert len(set(mine["nir"].to_pylist())) >= 4_000
        gaps = np.diff(mine["ts"].cast(pa.int64()).to_numpy()) / 1e6
        assert np.median(gaps) < 1.0
    assert _not_found(world, attack).mean() < 0.05


def test_slow_scrape_stays_near_normal_volume(world: Path) -> None:
    attack = _attack(world, "slow_scrape")
    legit = _legit(world)
    ips = _legit_ips(world)
    for account in set(attack["account_id"].to_pylist()):
        mine = attack.filter(pc.equal(attack["account_id"], account))
        own = legit.filter(pc.equal(legit["account_id"], account))
        days_attack = len({t.date() for t in mine["ts"].to_pylist()})
        days_own = len({t.date() for t in own["ts"].to_pylist()})
        ratio = (mine.num_rows / max(1, days_attack)) / (own.num_rows / max(1, days_own))
        assert ratio < 1.5  # no more than about the account's own daily volume
        gaps = np.diff(mine["ts"].cast(pa.int64()).to_numpy()) / 1e6
        assert np.median(gaps) > 30  # human pace, spread over working hours
        assert not set(mine["ip"].to_pylist()) & ips[account]
    assert _not_found(world, attack).mean() < 0.05


def test_campaign_shares_infrastructure_across_many_accounts(world: Path) -> None:
    attack = _attack(world, "campaign")
    accounts = set(attack["account_id"].to_pylist())
    addresses = set(attack["ip"].to_pylist())
    assert len(accounts) >= 10
    assert len(addresses) <= 3
    assert len({ip.rsplit(".", 1)[0] for ip in addresses}) == 1  # one /24
    assert len(set(attack["user_agent"].to_pylist())) == 1
    legit_addresses = set().union(*_legit_ips(world).values())
    assert not addresses & legit_addresses
    per_account = attack.group_by("account_id").aggregate([("event_id", "count")])
    assert max(per_account["event_id_count"].to_pylist()) < 400  # each account used a little


def test_enumeration_is_mostly_not_found(world: Path) -> None:
    attack = _attack(world, "enumeration")
    assert attack.num_rows == 3_000
    assert _not_found(world, attack).mean() > 0.98
    valid = np.mean([stdnum_nir.is_valid(n) for n in attack["nir"].to_pylist()])
    assert 0.8 < valid < 0.97


def test_off_hours_at_night(world: Path) -> None:
    attack = _attack(world, "off_hours")
    pros = _read(world, "professionals")
    dept = dict(zip(pros["account_id"].to_pylist(), pros["department"].to_pylist(), strict=True))
    hours = _local_hour(
        attack["ts"].to_pylist(), [dept[a] for a in attack["account_id"].to_pylist()]
    )
    assert len(set(attack["account_id"].to_pylist())) == 2
    assert (hours < 6).all()


def test_stolen_session_reuses_a_session_from_a_new_network(world: Path) -> None:
    attack = _attack(world, "stolen_session")
    legit = _legit(world)
    assert len(set(attack["account_id"].to_pylist())) == 3
    for session in set(attack["session_id"].to_pylist()):
        mine = attack.filter(pc.equal(attack["session_id"], session))
        own = legit.filter(pc.equal(legit["session_id"], session))
        assert own.num_rows > 0  # a real session of the professional
        assert set(own["account_id"].to_pylist()) == set(mine["account_id"].to_pylist())
        assert not set(mine["ip"].to_pylist()) & set(own["ip"].to_pylist())
        assert set(mine["user_agent"].to_pylist()) == set(own["user_agent"].to_pylist())
        gap = pc.min(mine["ts"]).as_py() - pc.max(own["ts"]).as_py()
        assert 0 < gap.total_seconds() <= 3600


def test_world_json_records_traffic_and_attack_knobs(world: Path, quiet_world: Path) -> None:
    meta = _meta(world)
    assert meta["history_days"] + meta["window_days"] == WORLD["days"]
    assert meta["traffic"] == dataclasses.asdict(TrafficParams())
    assert meta["traffic"]["typo_rate"] == 0.01
    assert [a["family"] for a in meta["attacks"]] == list(FAMILIES)
    scrape = meta["attacks"][0]
    assert scrape["lookups_per_account"] == 20_000
    assert scrape["compromised_accounts"] == 3
    assert scrape["lookups"] == 60_000
    # The legitimate oddities' account-days do not depend on the attacks (an honest
    # account may be both), so they say nothing of who was attacked.
    assert meta["oddity_days"] == _meta(quiet_world)["oddity_days"]
    dumped = json.dumps({k: v for k, v in meta.items() if k != "oddity_days"})
    victims = set(
        _labelled(world).filter(pc.is_valid(_labelled(world)["attack"]))["account_id"].to_pylist()
    )
    assert not any(v in dumped for v in victims)  # ground truth stays in labels.parquet
    assert meta["counts"]["lookups"] == _read(world, "lookups").num_rows


# --------------------------------------------------------------------------- knobs


def test_knobs_change_the_attack(tmp_path: Path) -> None:
    scenarios = [
        Scrape2022(
            accounts=1,
            lookups_per_account=500,
            rate_per_second=10.0,
            start_hour=2.0,
            pharmacy_share=1.0,
            stagger_hours=0.0,
        ),
        Enumeration(
            name="enum-seq", lookups_per_account=200, mode="sequential", valid_key_share=1.0
        ),
        Campaign(accounts=4, per_account_per_day=20, days=1, ips=("203.0.113.7",)),
    ]
    generate_world(
        tmp_path,
        insured=2_000,
        professionals=60,
        days=14,
        history_days=10,
        seed=1,
        attacks=scenarios,
    )
    meta = _meta(tmp_path)
    assert (meta["history_days"], meta["window_days"]) == (10, 4)
    scrape = _attack(tmp_path, "scrape_2022")
    assert scrape.num_rows == 500
    assert set(
        pc.unique(
            _read(tmp_path, "professionals").filter(
                pc.is_in(
                    _read(tmp_path, "professionals")["account_id"], scrape["account_id"].unique()
                )
            )["profession"]
        ).to_pylist()
    ) == {"pharmacie"}
    ts = scrape["ts"].cast(pa.int64()).to_numpy()
    assert 5 < 500 / ((ts[-1] - ts[0]) / 1e6) < 20  # about ten a second
    start = datetime.fromisoformat(meta["window_start"])
    assert abs((pc.min(scrape["ts"]).as_py() - start).total_seconds() - 7200) < 60
    enum = _attack(tmp_path, "enum-seq")
    assert enum.num_rows == 200
    assert all(stdnum_nir.is_valid(n) for n in enum["nir"].to_pylist())
    assert len({n[:10] for n in enum["nir"].to_pylist()}) == 1  # one birth group, walked
    campaign = _attack(tmp_path, "campaign")
    assert set(campaign["ip"].to_pylist()) == {"203.0.113.7"}
    assert len(set(campaign["account_id"].to_pylist())) == 4
    assert set(_read(tmp_path, "labels")["attack"].unique().to_pylist()) == {
        None,
        "scrape_2022",
        "enum-seq",
        "campaign",
    }


def test_scenario_specs_parse_and_refuse_nonsense() -> None:
    parsed = parse_scenarios("scrape_2022:accounts=5:rate_per_second=3,off_hours:nights=2")
    assert isinstance(parsed[0], Scrape2022)
    assert (parsed[0].accounts, parsed[0].rate_per_second) == (5, 3.0)
    assert parsed[1].name == "off_hours"
    assert [s.family for s in default_scenarios()] == list(FAMILIES)
    assert parse_scenarios("campaign:ips=1.2.3.4+1.2.3.5")[0].ips == ("1.2.3.4", "1.2.3.5")
    for bad in (
        "nonsense",
        "campaign:colour=red",
        "campaign:accounts",
        "enumeration:mode=guess",
        "off_hours:network=moon",
        "scrape_2022:auth=magic",
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - each message names its own problem
            parse_scenarios(bad)


def test_bad_traffic_parameters_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="typo_rate"):
        TrafficParams(typo_rate=2.0)
    with pytest.raises(ValueError, match="claims_per_lookup"):
        TrafficParams(claims_per_lookup=0.0)
    with pytest.raises(ValueError, match="batch_check_share"):
        TrafficParams(batch_check_share=1.5)
    with pytest.raises(ValueError, match="seasonal_surge"):
        TrafficParams(seasonal_surge=-1.0)
    with pytest.raises(ValueError, match="history_days"):
        generate_world(tmp_path, insured=100, professionals=5, days=7, history_days=7)
    with pytest.raises(ValueError, match="distinct names"):
        generate_world(
            tmp_path, insured=100, professionals=5, days=7, attacks=[Campaign(), Campaign()]
        )
    assert not (tmp_path / "world.json").exists()


def test_tiny_worlds_still_generate(tmp_path: Path) -> None:
    summary = generate_world(tmp_path, insured=50, professionals=3, days=2, seed=3)
    assert summary.counts["lookups"] > 0
    labels = _read(tmp_path, "labels")
    lookups = _read(tmp_path, "lookups")
    assert (
        labels.num_rows
        == lookups.filter(pc.greater_equal(lookups["ts"], pa.scalar(summary.window_start))).num_rows
    )
    assert datetime(2025, 3, 31, tzinfo=UTC) == summary.end


def test_cli_options(tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["world", "generate", "--insured", "400", "--professionals", "30", "--days", "8"]
    quiet = runner.invoke(app, [*base, "--out", str(tmp_path / "q"), "--no-attacks"])
    assert quiet.exit_code == 0, quiet.output
    assert (
        _read(tmp_path / "q", "labels")["attack"].null_count
        == _read(tmp_path / "q", "labels").num_rows
    )
    spec = "enumeration:lookups_per_account=50,off_hours:accounts=1:nights=1"
    chosen = runner.invoke(
        app, [*base, "--out", str(tmp_path / "c"), "--history-days", "6", "--attacks", spec]
    )
    assert chosen.exit_code == 0, chosen.output
    meta = _meta(tmp_path / "c")
    assert meta["window_days"] == 2
    assert [(a["name"], a["lookups"]) for a in meta["attacks"]] == [
        ("enumeration", 50),
        ("off_hours", 150),
    ]
    bad = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--attacks", "teleport"])
    assert bad.exit_code == 2
    assert not (tmp_path / "b" / "world.json").exists()
    heavy = runner.invoke(
        app,
        [*base, "--out", str(tmp_path / "h"), "--no-attacks", "--claims-per-lookup", "0.75",
         "--seasonal-surge", "0", "--batch-check-share", "0"],
    )  # fmt: skip
    assert heavy.exit_code == 0, heavy.output
    meta = _meta(tmp_path / "h")
    assert meta["traffic"]["claims_per_lookup"] == 0.75
    assert meta["oddity_days"] == {"seasonal_surge": [], "batch_check": []}
    assert meta["counts"]["claims"] >= 0.7 * meta["counts"]["lookups"]
