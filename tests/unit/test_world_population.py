"""The generated population: valid, consistent and realistic, on a small world."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faker.providers.person.fr_FR import Provider as PersonProvider
from stdnum import luhn
from stdnum.fr import nir as stdnum_nir

from rempart.nir import parse_nir
from rempart.world.generator import generate_world
from rempart.world.geography import (
    COUNTRIES,
    DEPARTMENT_CODES,
    DEPARTMENTS,
    neighbours,
    postcode_prefix,
)
from rempart.world.io import read_table
from rempart.world.schema import CARE, INSURED, PROFESSIONALS, PROFESSIONS

INSURED_N = 5_000
PROFESSIONALS_N = 150
START = date(2025, 3, 3)

Rows = dict[str, list[Any]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    generate_world(out, insured=INSURED_N, professionals=PROFESSIONALS_N, days=28, seed=11)
    return out


@pytest.fixture(scope="module")
def insured(world: Path) -> Rows:
    rows: Rows = read_table(world, "insured").to_pydict()
    return rows


@pytest.fixture(scope="module")
def professionals(world: Path) -> Rows:
    rows: Rows = read_table(world, "professionals").to_pydict()
    return rows


@pytest.fixture(scope="module")
def care(world: Path) -> Rows:
    rows: Rows = read_table(world, "care").to_pydict()
    return rows


def _ages(insured: Rows) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.array([(START - b).days / 365.2425 for b in insured["birth_date"]])


def test_files_follow_the_contract_schemas(world: Path) -> None:
    for name, schema in (("insured", INSURED), ("professionals", PROFESSIONALS), ("care", CARE)):
        table = read_table(world, name)
        assert table.schema == schema
    assert read_table(world, "insured").num_rows == INSURED_N
    assert read_table(world, "professionals").num_rows == PROFESSIONALS_N


def test_every_nir_is_valid_unique_and_matches_the_person(insured: Rows) -> None:
    assert len(set(insured["nir"])) == INSURED_N
    residence_codes = set(DEPARTMENT_CODES)
    country_codes = {c.code for c in COUNTRIES}
    for raw, born, sex, ame in zip(
        insured["nir"], insured["birth_date"], insured["sex"], insured["ame"], strict=True
    ):
        nir = parse_nir(raw)  # raises on any malformed number or wrong key
        assert stdnum_nir.is_valid(raw)
        assert nir.sex == sex
        assert nir.temporary == ame  # AME beneficiaries hold temporary numbers
        assert nir.birth_year_2d == born.year % 100
        assert nir.birth_month == born.month
        assert 1 <= nir.order_number <= 999
        place = nir.birth_place
        if place.abroad:
            assert place.commune in country_codes
        elif place.department == "20":
            assert born.year < 1976
        elif place.department in ("2A", "2B"):
            assert born.year >= 1976
        elif place.department in ("91", "92", "93", "94", "95"):
            assert born.year >= 1968
        else:
            assert place.department in residence_codes
        if ame:
            assert place.abroad


def test_births_are_mostly_at_or_near_home_with_some_abroad_and_overseas(insured: Rows) -> None:
    places = [parse_nir(n).birth_place for n in insured["nir"]]
    home_or_next = sum(
        p.department == d or p.department in neighbours(d)
        for p, d in zip(places, insured["department"], strict=True)
    )
    abroad = sum(p.abroad for p in places)
    overseas = sum(p.overseas for p in places)
    assert home_or_next / INSURED_N > 0.55
    assert 0.05 < abroad / INSURED_N < 0.2
    assert overseas > 0
    corsica = [p.department for p in places if p.department in ("20", "2A", "2B")]
    assert corsica  # Corsica is ~0.5% of the population, about 25 people here


def test_order_numbers_are_unique_per_sex_month_and_place(insured: Rows) -> None:
    prefixes = Counter(n[:13] for n in insured["nir"])
    assert max(prefixes.values()) == 1
    groups = Counter(n[:10] for n in insured["nir"])
    assert sum(groups.values()) == INSURED_N


def test_residence_follows_population(insured: Rows) -> None:
    counts = Counter(insured["department"])
    assert set(counts) <= set(DEPARTMENT_CODES)
    assert "20" not in counts
    populations = np.array([d.population for d in DEPARTMENTS], dtype=np.float64)
    observed = np.array([counts.get(d.code, 0) for d in DEPARTMENTS], dtype=np.float64)
    assert np.corrcoef(populations, observed)[0, 1] > 0.9


def test_age_pyramid_and_sexes(insured: Rows) -> None:
    ages = _ages(insured)
    assert ages.min() >= 0
    assert ages.max() < 101.5
    assert all(b < START for b in insured["birth_date"])
    assert 0.18 < (ages < 18).mean() < 0.24
    assert 0.07 < (ages >= 75).mean() < 0.13
    sexes = np.array(insured["sex"])
    assert set(sexes.tolist()) == {1, 2}
    assert (sexes[ages >= 80] == 2).mean() > 0.55  # women live longer


def test_first_names_match_sex_and_come_from_faker(insured: Rows) -> None:
    male, female = set(PersonProvider.first_names_male), set(PersonProvider.first_names_female)
    for first, sex in zip(insured["first_name"], insured["sex"], strict=True):
        assert first in (male if sex == 1 else female)
    assert set(insured["last_name"]) <= set(PersonProvider.last_names)
    common = Counter(insured["last_name"]).most_common(1)[0][0]
    assert common in PersonProvider.last_names[:20]  # Faker lists them by frequency


def test_rights_shares(insured: Rows) -> None:
    ages = _ages(insured)
    c2s, ame, ald = (np.array(insured[k]) for k in ("c2s", "ame", "ald"))
    assert 0.08 < c2s.mean() < 0.12
    assert 0.004 < ame.mean() < 0.02
    assert not (c2s & ame).any()
    assert 0.10 < ald.mean() < 0.22
    assert ald[ages < 18].mean() < 0.06
    assert ald[ages >= 75].mean() > 0.3
    departments = np.array(insured["department"])
    assert not c2s[departments == "976"].any()  # no C2S in Mayotte


def test_treating_doctors_are_nearby_generalistes(insured: Rows, professionals: Rows) -> None:
    ages = _ages(insured)
    account = dict(
        zip(
            professionals["account_id"],
            zip(professionals["profession"], professionals["department"], strict=True),
            strict=True,
        )
    )
    has_doctor = np.array([d is not None for d in insured["treating_doctor"]])
    assert 0.78 < has_doctor[ages >= 18].mean() < 0.92
    assert has_doctor[ages < 16].mean() < has_doctor[ages >= 18].mean()
    for doctor, home, ame in zip(
        insured["treating_doctor"], insured["department"], insured["ame"], strict=True
    ):
        if doctor is None:
            continue
        assert not ame
        profession, department = account[doctor]
        assert profession == "generaliste"
        assert department == home or department in neighbours(home)


def test_emails_and_addresses(insured: Rows) -> None:
    emails = [e for e in insured["email"] if e is not None]
    assert 0.5 < len(emails) / INSURED_N < 0.8
    assert all(e.count("@") == 1 and e.endswith(".example") and e.isascii() for e in emails)
    for department, postcode, street, city in zip(
        insured["department"], insured["postcode"], insured["street"], insured["city"], strict=True
    ):
        assert len(postcode) == 5
        assert postcode.isdigit()
        assert postcode.startswith(postcode_prefix(department))
        assert street.split(" ")[0].isdigit()
        assert city
    paris = [
        p for d, p in zip(insured["department"], insured["postcode"], strict=True) if d == "75"
    ]
    assert paris
    assert all(p.startswith("750") and 1 <= int(p[3:]) <= 20 for p in paris)  # arrondissements


def test_professionals_mix_identifiers_and_organisations(professionals: Rows) -> None:
    professions = Counter(professionals["profession"])
    assert set(professions) == set(PROFESSIONS)
    assert professions["infirmier"] > professions["sage_femme"]
    assert len(set(professionals["account_id"])) == PROFESSIONALS_N
    rpps = [r for r in professionals["rpps"] if r is not None]
    assert len(set(rpps)) == len(rpps)
    assert all(len(r) == 11 and r.isdigit() and luhn.is_valid(r) for r in rpps)
    for number, profession in zip(professionals["rpps"], professionals["profession"], strict=True):
        if number is None:
            assert profession in ("laboratoire", "etablissement")
    members: dict[str, set[tuple[str, str]]] = {}
    for org, profession, department in zip(
        professionals["organization_id"],
        professionals["profession"],
        professionals["department"],
        strict=True,
    ):
        if profession in ("pharmacie", "laboratoire", "etablissement"):
            assert org is not None
        if org is not None:
            assert len(org) == 9
            assert org.startswith(department)
            members.setdefault(org, set()).add((profession, department))
    sizes = Counter(o for o in professionals["organization_id"] if o is not None)
    assert max(sizes.values()) >= 2  # several accounts of one pharmacy or hospital
    assert all(len(m) == 1 for m in members.values())  # one profession, one place
    assert None in professionals["organization_id"]  # solo practices
    assert all("@" in e for e in professionals["email"])
    assert set(professionals["department"]) <= set(DEPARTMENT_CODES)


def test_care_links_point_at_existing_people_and_accounts(
    insured: Rows, professionals: Rows, care: Rows
) -> None:
    born = dict(zip(insured["nir"], insured["birth_date"], strict=True))
    home = dict(zip(insured["nir"], insured["department"], strict=True))
    where = dict(zip(professionals["account_id"], professionals["department"], strict=True))
    pairs = list(zip(care["account_id"], care["nir"], strict=True))
    assert len(set(pairs)) == len(pairs)
    for (account, nir), since in zip(pairs, care["since"], strict=True):
        assert account in where
        assert nir in born
        assert born[nir] <= since < START
        assert where[account] == home[nir] or where[account] in neighbours(home[nir])
    linked = set(pairs)
    for nir, doctor in zip(insured["nir"], insured["treating_doctor"], strict=True):
        if doctor is not None:
            assert (doctor, nir) in linked
    per_person = Counter(care["nir"])
    assert len(per_person) > 0.9 * INSURED_N
    assert 1.5 < len(pairs) / INSURED_N < 4
