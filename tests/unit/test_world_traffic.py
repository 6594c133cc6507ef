"""Traffic and attacks in generated worlds: format, determinism, realism, and each attack family."""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
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


def test_world_json_records_traffic_and_attack_knobs(world: Path) -> None:
    meta = _meta(world)
    assert meta["history_days"] + meta["window_days"] == WORLD["days"]
    assert meta["traffic"] == dataclasses.asdict(TrafficParams())
    assert meta["traffic"]["typo_rate"] == 0.01
    assert [a["family"] for a in meta["attacks"]] == list(FAMILIES)
    scrape = meta["attacks"][0]
    assert scrape["lookups_per_account"] == 20_000
    assert scrape["compromised_accounts"] == 3
    assert scrape["lookups"] == 60_000
    dumped = json.dumps(meta)
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
