"""The insured population and its care links, vectorised for a million people.

Each person gets an age from an INSEE-like pyramid (0-100, more women at
old ages), a residence department weighted by population, a place of birth
(mostly at home or next door, some elsewhere in France, overseas or abroad),
and a NIR consistent with all of it: sex, year and month of birth, birth
department (``2A``/``2B`` for Corsica from 1976, ``20`` before; ``75``/``78``
for the Paris suburbs before their 1968 split; ``99`` and the INSEE country
code abroad), an order number unique among people sharing those, and the
python-stdnum key. People under AME have a temporary number (``7``/``8``).

Rights follow simple, explainable rules: C2S about 10% (more among the young
and in poorer departments; it does not exist in Mayotte), AME about 1%
(adults born abroad, mostly in Ile-de-France and Guyane), ALD growing with
age, and a declared treating doctor for about 85% of adults: a general
practitioner of the home department, or of a neighbouring one when home has
none. Care links tie everyone to a few professionals near home.

Strings are assembled with Arrow compute kernels from small vocabularies
(:mod:`rempart.world.names`); only the NIR key is computed per row, by
python-stdnum.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from stdnum.fr.nir import calc_check_digits

from rempart.world.geography import (
    COUNTRIES,
    DEPARTMENT_CODES,
    DEPARTMENTS,
    OVERSEAS_BIRTH_COUNTRIES,
    OVERSEAS_CODES,
    neighbour_indices,
    population_weights,
    postcode_prefix,
)
from rempart.world.names import EMAIL_DOMAINS, STREET_KINDS, NamePools, name_pools
from rempart.world.professionals import Professionals, generate_professionals
from rempart.world.schema import CARE, INSURED, PROFESSIONS
from rempart.world.timeline import WorldCalendar, step_rng

__all__ = [
    "BIRTH_CODES",
    "Population",
    "Progress",
    "build_population",
    "generate_care",
    "generate_insured",
]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Progress = Callable[[str, int, int], None]

_N_DEPT = len(DEPARTMENT_CODES)
_DAYS_PER_YEAR = 365.2425

# Codes that may appear as a place of birth: the departments, Corsica before
# 1976, and abroad.
BIRTH_CODES: tuple[str, ...] = (*DEPARTMENT_CODES, "20", "99")
_CORSICA_OLD = len(DEPARTMENT_CODES)
_ABROAD = len(DEPARTMENT_CODES) + 1

# (first age, last age, people in thousands, share of women): INSEE-like, 2024.
_PYRAMID: tuple[tuple[int, int, int, float], ...] = (
    (0, 4, 3500, 0.488),
    (5, 9, 3900, 0.488),
    (10, 14, 4150, 0.488),
    (15, 19, 4200, 0.488),
    (20, 24, 3900, 0.495),
    (25, 29, 3750, 0.505),
    (30, 34, 4000, 0.510),
    (35, 39, 4250, 0.510),
    (40, 44, 4200, 0.505),
    (45, 49, 4400, 0.505),
    (50, 54, 4400, 0.510),
    (55, 59, 4400, 0.515),
    (60, 64, 4200, 0.520),
    (65, 69, 3900, 0.530),
    (70, 74, 3700, 0.545),
    (75, 79, 2900, 0.570),
    (80, 84, 2000, 0.600),
    (85, 89, 1300, 0.650),
    (90, 94, 620, 0.720),
    (95, 99, 160, 0.790),
    (100, 100, 30, 0.850),
)

# Relative AME and C2S intensity per department (1.0 when not listed).
_AME_FACTOR: dict[str, float] = {
    "75": 4.0, "93": 5.0, "94": 3.0, "92": 2.0, "95": 3.0, "91": 2.0, "77": 1.5, "78": 1.5,
    "13": 2.0, "69": 1.5, "06": 1.5, "31": 1.2, "973": 8.0, "971": 1.0, "972": 1.0,
    "974": 0.3, "976": 0.0,
}  # fmt: skip
_AME_DEFAULT = 0.5
_C2S_FACTOR: dict[str, float] = {
    "93": 2.2, "971": 2.5, "972": 2.5, "973": 2.5, "974": 2.5, "976": 0.0,
    "59": 1.4, "62": 1.4, "02": 1.4, "08": 1.4, "11": 1.4, "66": 1.4, "13": 1.4, "30": 1.3,
    "78": 0.6, "92": 0.7, "74": 0.6, "01": 0.7, "35": 0.8, "44": 0.8,
}  # fmt: skip

# Highest INSEE commune number used for births, per department (default 400).
_COMMUNE_MAX: dict[str, int] = {
    "92": 78, "93": 80, "94": 81, "90": 125, "2A": 366, "2B": 366, "20": 366,
    "971": 34, "972": 34, "973": 62, "974": 24, "976": 17,
}  # fmt: skip
_COMMUNE_DEFAULT_MAX = 400

# Share of the department living in its prefecture (big cities hold more).
_PREFECTURE_SHARE: dict[str, float] = {
    "31": 0.35, "06": 0.31, "44": 0.22, "67": 0.25, "34": 0.25, "33": 0.16,
    "35": 0.20, "974": 0.18, "2A": 0.45, "2B": 0.25, "973": 0.22, "972": 0.21, "976": 0.28,
}  # fmt: skip
_PREFECTURE_DEFAULT = 0.12
# Cities whose postcodes follow arrondissements: (first postcode, count, share of department).
_ARRONDISSEMENTS: dict[str, tuple[int, int, float]] = {
    "75": (75001, 20, 1.0),
    "69": (69001, 9, 0.28),
    "13": (13001, 16, 0.43),
}
_TOWNS_PER_DEPARTMENT = 40

# Street names French towns share, besides those built from Faker surnames.
_COMMON_STREETS: tuple[str, ...] = (
    "de la République", "de la Gare", "de l'Église", "du Moulin", "des Écoles",
    "Victor Hugo", "Jean Jaurès", "Pasteur", "de la Mairie", "du Château", "de la Paix",
    "du Général de Gaulle", "de la Libération", "des Lilas", "du Stade", "de la Fontaine",
)  # fmt: skip

_NUMBERS = pa.array([str(i) for i in range(1000)], pa.string())
_TWO_DIGITS = pa.array([f"{i:02d}" for i in range(100)], pa.string())
_THREE_DIGITS = pa.array([f"{i:03d}" for i in range(1000)], pa.string())


@dataclass(frozen=True)
class Insured:
    """The insured table and the arrays other steps reuse (row-aligned with the table)."""

    table: pa.Table
    department: IntArray
    """Residence department index (into ``DEPARTMENT_CODES``)."""
    age: IntArray
    """Age in whole years at the world's start."""
    birth_day: IntArray
    """Birth date as days since 1970-01-01."""
    sex: IntArray
    """1 for a man, 2 for a woman."""
    ald: BoolArray
    treating_doctor: IntArray
    """Row of the treating doctor in the professionals table, -1 when none."""


@dataclass(frozen=True)
class Population:
    """Everything the population step made: tables for the files, arrays for later steps.

    The traffic step reuses the arrays (who lives where, who cares for whom)
    rather than re-reading the tables.
    """

    insured: Insured
    professionals: Professionals
    care: pa.Table
    care_insured: IntArray
    """Row in the insured table of each care link."""
    care_account: IntArray
    """Row in the professionals table of each care link."""

    @property
    def tables(self) -> dict[str, pa.Table]:
        return {
            "insured": self.insured.table,
            "professionals": self.professionals.table,
            "care": self.care,
        }


def _no_progress(_step: str, _done: int, _total: int) -> None:
    return None


def build_population(
    *,
    insured: int,
    professionals: int,
    calendar: WorldCalendar,
    seed: int,
    progress: Progress | None = None,
) -> Population:
    """Professionals, then insured persons, then care links; each from its own stream."""
    report = progress or _no_progress
    report("professionals", 0, 1)
    pros = generate_professionals(professionals, step_rng(seed, "professionals"))
    report("professionals", 1, 1)
    people = generate_insured(
        insured, calendar, pros, step_rng(seed, "insured"), lambda d, t: report("insured", d, t)
    )
    care, care_insured, care_account = generate_care(
        people, pros, calendar, step_rng(seed, "care"), lambda d, t: report("care", d, t)
    )
    return Population(
        insured=people,
        professionals=pros,
        care=care,
        care_insured=care_insured,
        care_account=care_account,
    )


# --------------------------------------------------------------------------- helpers


def _by_department(departments: IntArray) -> list[IntArray]:
    """Row indices grouped by department index, each group in row order."""
    order = np.argsort(departments, kind="stable")
    counts = np.bincount(departments, minlength=_N_DEPT)
    return np.split(order, np.cumsum(counts)[:-1])


def _scaled(weights: npt.NDArray[np.float64], mean: float) -> npt.NDArray[np.float64]:
    """Probabilities proportional to ``weights`` whose average is ``mean``."""
    total = float(weights.mean())
    if total == 0.0:
        return weights
    return np.clip(weights * (mean / total), 0.0, 0.95)


def _factor(table: dict[str, float], default: float) -> npt.NDArray[np.float64]:
    return np.array([table.get(code, default) for code in DEPARTMENT_CODES])


class _Nearby:
    """Accounts of one profession near each department: at home, and next door."""

    def __init__(self, by_department: tuple[IntArray, ...]) -> None:
        self.home = by_department
        self.next_door = tuple(
            np.concatenate([by_department[n] for n in nbrs]).astype(np.int64)
            if nbrs
            else np.zeros(0, dtype=np.int64)
            for nbrs in neighbour_indices()
        )

    def pick(
        self,
        departments: IntArray,
        rng: np.random.Generator,
        cross_border: float = 0.08,
    ) -> IntArray:
        """An account for each row: at home, else next door (and sometimes next door anyway).

        -1 where neither home nor any neighbour has one.
        """
        out = np.full(len(departments), -1, dtype=np.int64)
        for dept, rows in enumerate(_by_department(departments)):
            if len(rows) == 0:
                continue
            home, next_door = self.home[dept], self.next_door[dept]
            if len(home):
                out[rows] = home[rng.integers(0, len(home), size=len(rows))]
                if len(next_door):
                    crossing = rows[rng.random(len(rows)) < cross_border]
                    out[crossing] = next_door[rng.integers(0, len(next_door), size=len(crossing))]
            elif len(next_door):
                out[rows] = next_door[rng.integers(0, len(next_door), size=len(rows))]
        return out


# --------------------------------------------------------------------------- insured


def _ages_and_sex(n: int, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    counts = np.array([row[2] for row in _PYRAMID], dtype=np.float64)
    group = rng.choice(len(_PYRAMID), size=n, p=counts / counts.sum())
    low = np.array([row[0] for row in _PYRAMID], dtype=np.int64)[group]
    span = np.array([row[1] - row[0] + 1 for row in _PYRAMID], dtype=np.int64)[group]
    age = low + (rng.random(n) * span).astype(np.int64)
    women = np.array([row[3] for row in _PYRAMID])[group]
    sex = np.where(rng.random(n) < women, 2, 1).astype(np.int64)
    return age, sex


def _birth_places(
    department: IntArray,
    age: IntArray,
    ame: BoolArray,
    rng: np.random.Generator,
) -> tuple[IntArray, IntArray]:
    """Birth department index (into the departments, or ``_ABROAD``) and country row."""
    n = len(department)
    overseas = np.isin(department, [DEPARTMENT_CODES.index(c) for c in OVERSEAS_CODES])
    minor = age < 18
    has_neighbour = np.array([len(nb) > 0 for nb in neighbour_indices()])[department]
    abroad_share = np.where(minor, 0.03, 0.12)
    abroad_share = np.where(overseas, 0.10, abroad_share)
    abroad_share[department == DEPARTMENT_CODES.index("973")] = 0.30
    abroad_share[department == DEPARTMENT_CODES.index("976")] = 0.35
    overseas_share = np.where(overseas, 0.0, 0.02)
    other_share = np.where(overseas, 0.08, 0.17)
    neighbour_share = np.where(has_neighbour, np.where(minor, 0.14, 0.16), 0.0)
    u = rng.random(n)
    # Cumulative thresholds: abroad, overseas, elsewhere in France, next door, at home.
    t_abroad = abroad_share
    t_overseas = t_abroad + overseas_share
    t_other = t_overseas + other_share
    t_neighbour = t_other + neighbour_share
    birth = department.copy()
    abroad = ame | (u < t_abroad)
    to_overseas = ~abroad & (u < t_overseas)
    to_other = ~abroad & ~to_overseas & (u < t_other)
    to_neighbour = ~abroad & ~to_overseas & ~to_other & (u < t_neighbour)

    overseas_idx = np.array([DEPARTMENT_CODES.index(c) for c in OVERSEAS_CODES])
    overseas_pop = np.array([DEPARTMENTS[i].population for i in overseas_idx], dtype=np.float64)
    birth[to_overseas] = rng.choice(
        overseas_idx, size=int(to_overseas.sum()), p=overseas_pop / overseas_pop.sum()
    )
    metro_w = population_weights()
    metro_w[overseas_idx] = 0.0
    birth[to_other] = rng.choice(_N_DEPT, size=int(to_other.sum()), p=metro_w / metro_w.sum())
    nbrs = neighbour_indices()
    for dept, rows in enumerate(_by_department(department)):
        chosen = rows[to_neighbour[rows]]
        if len(chosen):
            birth[chosen] = np.array(nbrs[dept])[rng.integers(0, len(nbrs[dept]), len(chosen))]
    birth[abroad] = _ABROAD

    country = np.full(n, -1, dtype=np.int64)
    country_codes = [c.code for c in COUNTRIES]
    weights = np.array([c.weight for c in COUNTRIES])
    metro_abroad = abroad & ~overseas
    country[metro_abroad] = rng.choice(
        len(COUNTRIES), size=int(metro_abroad.sum()), p=weights / weights.sum()
    )
    for code, mix in OVERSEAS_BIRTH_COUNTRIES.items():
        rows = abroad & (department == DEPARTMENT_CODES.index(code))
        rows_idx = np.flatnonzero(rows)
        choices = np.array([country_codes.index(c) for c, _ in mix])
        p = np.array([w for _, w in mix])
        country[rows_idx] = rng.choice(choices, size=len(rows_idx), p=p / p.sum())
    return birth, country


def _birth_codes(birth: IntArray, year: IntArray) -> IntArray:
    """Index into ``BIRTH_CODES`` as written in the NIR, with the historical codes."""
    code = birth.copy()
    corsica = np.isin(birth, [DEPARTMENT_CODES.index("2A"), DEPARTMENT_CODES.index("2B")])
    code[corsica & (year < 1976)] = _CORSICA_OLD
    # Seine and Seine-et-Oise were split into 91-95 in 1968.
    before = year < 1968
    for new, old in (("92", "75"), ("93", "75"), ("94", "75"), ("91", "78"), ("95", "78")):
        code[before & (birth == DEPARTMENT_CODES.index(new))] = DEPARTMENT_CODES.index(old)
    return code


def _communes(code: IntArray, rng: np.random.Generator) -> IntArray:
    """INSEE commune number within the birth code (Paris: arrondissements 101-120)."""
    maxima = np.array(
        [_COMMUNE_MAX.get(c, _COMMUNE_DEFAULT_MAX) for c in BIRTH_CODES], dtype=np.int64
    )
    commune = 1 + (rng.random(len(code)) * maxima[code]).astype(np.int64)
    paris = code == DEPARTMENT_CODES.index("75")
    commune[paris] = 101 + rng.integers(0, 20, size=int(paris.sum()))
    return commune


def _order_numbers(group_key: IntArray, rng: np.random.Generator) -> IntArray:
    """Order numbers 001-999, distinct within each group of equal ``group_key``."""
    n = len(group_key)
    order = np.argsort(group_key, kind="stable")
    sorted_keys = group_key[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, n])
    if len(sizes) and int(sizes.max()) > 999:
        raise ValueError("more than 999 people share a birth month and place: world too large")
    group_of_sorted = np.repeat(np.arange(len(starts)), sizes)
    rank = np.arange(n) - starts[group_of_sorted]
    offset = rng.integers(0, 999, size=len(starts))
    numbers = np.empty(n, dtype=np.int64)
    numbers[order] = 1 + (offset[group_of_sorted] + rank) % 999
    return numbers


def _nirs(
    *,
    first_digit: IntArray,
    year: IntArray,
    month: IntArray,
    code: IntArray,
    commune: IntArray,
    country: IntArray,
    rng: np.random.Generator,
) -> pa.Array:
    yy = year % 100
    abroad = code == _ABROAD
    overseas = np.isin(code, [BIRTH_CODES.index(c) for c in OVERSEAS_CODES])
    place_number = np.where(
        abroad, np.array([int(c.code) for c in COUNTRIES])[np.maximum(country, 0)], commune
    )
    group_key = (((first_digit * 100 + yy) * 13 + month) * 200 + code) * 1000 + place_number
    order = _order_numbers(group_key, rng)

    place_digits = pc.if_else(
        pa.array(overseas), _TWO_DIGITS.take(place_number % 100), _THREE_DIGITS.take(place_number)
    )
    body = pc.binary_join_element_wise(
        _NUMBERS.take(first_digit),
        _TWO_DIGITS.take(yy),
        _TWO_DIGITS.take(month),
        pa.array(BIRTH_CODES).take(code),
        place_digits,
        _THREE_DIGITS.take(order),
        "",
    )
    keys = pa.array([calc_check_digits(b) for b in body.to_pylist()], pa.string())
    return pc.binary_join_element_wise(body, keys, "")


def _rights(
    department: IntArray,
    age: IntArray,
    rng: np.random.Generator,
) -> tuple[BoolArray, BoolArray, BoolArray]:
    """AME, C2S and ALD flags."""
    n = len(department)
    age_f = age.astype(np.float64)
    ame_w = _factor(_AME_FACTOR, _AME_DEFAULT)[department] * np.select(
        [age < 18, age < 60], [0.3, 1.0], 0.15
    )
    ame = rng.random(n) < _scaled(ame_w, 0.01)
    c2s_w = _factor(_C2S_FACTOR, 1.0)[department] * np.select(
        [age < 18, age < 25, age < 60, age < 75], [1.6, 1.4, 1.0, 0.5], 0.45
    )
    c2s_w[ame] = 0.0  # AME and C2S exclude each other
    c2s = rng.random(n) < _scaled(c2s_w, 0.10)
    ald_p = np.interp(
        age_f, [0, 18, 40, 60, 75, 90, 100], [0.02, 0.04, 0.09, 0.23, 0.40, 0.50, 0.52]
    )
    ald = (rng.random(n) < ald_p) & ~ame  # AME already covers everything at 100%
    return ame, c2s, ald


def _emails(
    first_slug: pa.Array,
    last_slug: pa.Array,
    yy: IntArray,
    has_email: BoolArray,
    rng: np.random.Generator,
) -> pa.Array:
    n = len(yy)
    number = _NUMBERS.take(rng.integers(1, 100, size=n))
    initial = pc.utf8_slice_codeunits(first_slug, 0, 1)
    yy_str = _TWO_DIGITS.take(yy)
    local = pc.choose(
        pa.array(rng.choice(6, size=n, p=[0.30, 0.22, 0.14, 0.12, 0.12, 0.10]).astype(np.int8)),
        pc.binary_join_element_wise(first_slug, last_slug, "."),
        pc.binary_join_element_wise(first_slug, last_slug, number, ""),
        pc.binary_join_element_wise(initial, last_slug, ""),
        pc.binary_join_element_wise(first_slug, last_slug, ""),
        pc.binary_join_element_wise(first_slug, "_", last_slug, yy_str, ""),
        pc.binary_join_element_wise(last_slug, first_slug, "."),
    )
    p = np.array([w for _, w in EMAIL_DOMAINS])
    domain = pa.array([d for d, _ in EMAIL_DOMAINS]).take(
        rng.choice(len(EMAIL_DOMAINS), size=n, p=p / p.sum())
    )
    email = pc.binary_join_element_wise(local, domain, "@")
    return pc.if_else(pa.array(has_email), email, pa.nulls(n, pa.string()))


def _town_name(pools: NamePools, rng: np.random.Generator) -> str:
    last = pools.last_words[int(rng.choice(len(pools.last_words), p=pools.last_weights))]
    last = last.replace(" ", "-")
    style = rng.random()
    if style < 0.30:
        return last
    if style < 0.42:
        return f"Saint-{pools.male_words[int(rng.integers(len(pools.male_words)))]}"
    if style < 0.50:
        return f"Sainte-{pools.female_words[int(rng.integers(len(pools.female_words)))]}"
    if style < 0.62:
        other = pools.last_words[int(rng.integers(len(pools.last_words)))].replace(" ", "-")
        return f"{last}-sur-{other}"
    suffix = pools.city_suffixes[int(rng.integers(len(pools.city_suffixes)))]
    return f"{last}{suffix}" if suffix.startswith("-") else f"{last}{suffix.lower()}"


def _towns(
    pools: NamePools, rng: np.random.Generator
) -> tuple[pa.Array, pa.Array, list[tuple[IntArray, npt.NDArray[np.float64]]]]:
    """Postcodes and town names, and per department the town rows and their weights."""
    postcodes: list[str] = []
    cities: list[str] = []
    per_dept: list[tuple[IntArray, npt.NDArray[np.float64]]] = []
    for dept in DEPARTMENTS:
        first = len(postcodes)
        prefix = postcode_prefix(dept.code)
        weights: list[float] = []
        if dept.code in _ARRONDISSEMENTS:
            base, count, share = _ARRONDISSEMENTS[dept.code]
            for k in range(count):
                postcodes.append(f"{base + k:05d}")
                cities.append(dept.prefecture)
                weights.append(share / count)
            city_share = share
        else:
            city_share = _PREFECTURE_SHARE.get(dept.code, _PREFECTURE_DEFAULT)
            suffix = {"2A": "000", "2B": "200"}.get(dept.code, "0" * (5 - len(prefix)))
            postcodes.append(prefix + suffix)
            cities.append(dept.prefecture)
            weights.append(city_share)
        if city_share < 1.0:
            if len(prefix) == 3:
                suffixes = [f"{k * 10:02d}" for k in range(1, 10)]
            elif dept.code == "2A":
                suffixes = [f"{k:03d}" for k in range(100, 200, 10)]
            elif dept.code == "2B":
                suffixes = [f"{k:03d}" for k in (*range(210, 300, 10), 600, 620)]
            else:
                suffixes = [f"{k:03d}" for k in range(100, 1000, 10)]
            zipf = 1.0 / np.arange(1, _TOWNS_PER_DEPARTMENT + 1) ** 0.6
            zipf = zipf / zipf.sum() * (1.0 - city_share)
            for k in range(_TOWNS_PER_DEPARTMENT):
                postcodes.append(prefix + suffixes[int(rng.integers(len(suffixes)))])
                cities.append(_town_name(pools, rng))
                weights.append(float(zipf[k]))
        w = np.array(weights)
        per_dept.append((np.arange(first, len(postcodes), dtype=np.int64), w / w.sum()))
    return pa.array(postcodes, pa.string()), pa.array(cities, pa.string()), per_dept


def _streets(pools: NamePools, rng: np.random.Generator, count: int = 4000) -> pa.Array:
    names: list[str] = []
    for _ in range(count):
        kind = STREET_KINDS[int(rng.integers(len(STREET_KINDS)))]
        style = rng.random()
        last = pools.last_words[int(rng.choice(len(pools.last_words), p=pools.last_weights))]
        if style < 0.15:
            name = _COMMON_STREETS[int(rng.integers(len(_COMMON_STREETS)))]
        elif style < 0.45:
            name = last
        elif style < 0.80:
            words = pools.male_words if rng.random() < 0.7 else pools.female_words
            name = f"{words[int(rng.integers(len(words)))]} {last}"
        else:
            name = f"d'{last}" if last[0] in "AEIOUÉ" else f"de {last}"
        names.append(f"{kind} {name}")
    return pa.array(names, pa.string())


def _addresses(
    department: IntArray, pools: NamePools, rng: np.random.Generator
) -> tuple[pa.Array, pa.Array, pa.Array]:
    n = len(department)
    postcodes, cities, per_dept = _towns(pools, rng)
    town = np.empty(n, dtype=np.int64)
    for dept, rows in enumerate(_by_department(department)):
        towns, weights = per_dept[dept]
        town[rows] = towns[rng.choice(len(towns), size=len(rows), p=weights)]
    streets = _streets(pools, rng)
    number = 1 + np.minimum(rng.geometric(0.04, size=n) - 1, 249)
    numbers = _NUMBERS.take(number)
    bis = rng.random(n) < 0.03
    numbers = pc.if_else(pa.array(bis), pc.binary_join_element_wise(numbers, "bis", " "), numbers)
    street = pc.binary_join_element_wise(
        numbers, streets.take(rng.integers(0, len(streets), size=n)), " "
    )
    return street, postcodes.take(town), cities.take(town)


def generate_insured(
    n: int,
    calendar: WorldCalendar,
    professionals: Professionals,
    rng: np.random.Generator,
    progress: Callable[[int, int], None] | None = None,
) -> Insured:
    """``n`` insured persons living in France on the world's start date."""
    if n < 1:
        raise ValueError("a world needs at least one insured person")
    steps = 6
    report = progress or (lambda _d, _t: None)
    report(0, steps)

    department = rng.choice(_N_DEPT, size=n, p=population_weights()).astype(np.int64)
    age, sex = _ages_and_sex(n, rng)
    # Born on a day that makes them `age` years old at the start, and before it.
    birth_day = (
        calendar.start_day - 1 - ((age + rng.random(n)) * _DAYS_PER_YEAR).astype(np.int64)
    ).astype(np.int64)
    dates = birth_day.astype("datetime64[D]")
    year = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    month = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    ame, c2s, ald = _rights(department, age, rng)
    report(1, steps)

    birth, country = _birth_places(department, age, ame, rng)
    code = _birth_codes(birth, year)
    commune = _communes(code, rng)
    first_digit = sex + np.where(ame, 6, 0)  # temporary numbers (7/8) under AME
    nir = _nirs(
        first_digit=first_digit,
        year=year,
        month=month,
        code=code,
        commune=commune,
        country=country,
        rng=rng,
    )
    report(2, steps)

    # A declared treating doctor: most adults, fewer children, none under AME.
    wants_doctor = (rng.random(n) < np.where(age >= 16, 0.88, 0.45)) & ~ame
    nearby = _Nearby(professionals.accounts_by_department("generaliste"))
    doctor = np.full(n, -1, dtype=np.int64)
    chosen = np.flatnonzero(wants_doctor)
    doctor[chosen] = nearby.pick(department[chosen], rng)
    account_ids = professionals.table.column("account_id").combine_chunks()
    treating = account_ids.take(pa.array(doctor, mask=doctor < 0))
    report(3, steps)

    pools = name_pools()
    last_idx = rng.choice(len(pools.last_words), size=n, p=pools.last_weights)
    male_idx = rng.integers(0, len(pools.male_words), size=n)
    female_idx = rng.integers(0, len(pools.female_words), size=n)
    woman = pa.array(sex == 2)
    first_name = pc.if_else(woman, pools.female.take(female_idx), pools.male.take(male_idx))
    first_slug = pc.if_else(
        woman, pools.female_slug.take(female_idx), pools.male_slug.take(male_idx)
    )
    last_name = pools.last.take(last_idx)
    email_share = np.interp(
        age, [0, 14, 15, 18, 64, 65, 80, 100], [0.03, 0.05, 0.5, 0.82, 0.82, 0.62, 0.35, 0.2]
    )
    has_email = rng.random(n) < email_share
    email = _emails(first_slug, pools.last_slug.take(last_idx), year % 100, has_email, rng)
    report(4, steps)

    street, postcode, city = _addresses(department, pools, rng)
    report(5, steps)

    table = pa.Table.from_arrays(
        [
            nir,
            pa.array(birth_day.astype(np.int32), pa.int32()).cast(pa.date32()),
            pa.array(sex.astype(np.int8), pa.int8()),
            last_name,
            first_name,
            pa.array(DEPARTMENT_CODES).take(department),
            treating,
            pa.array(c2s),
            pa.array(ame),
            pa.array(ald),
            email,
            street,
            postcode,
            city,
        ],
        schema=INSURED,
    )
    report(steps, steps)
    return Insured(
        table=table,
        department=department,
        age=age,
        birth_day=birth_day,
        sex=sex,
        ald=ald,
        treating_doctor=doctor,
    )


# --------------------------------------------------------------------------- care


def _link_shares(insured: Insured, rng: np.random.Generator) -> dict[str, BoolArray]:
    """Who has a link with which kind of professional, besides the treating doctor."""
    n = insured.table.num_rows
    age = insured.age
    ald = insured.ald
    woman = insured.sex == 2
    old = age >= 75
    no_doctor = insured.treating_doctor < 0

    def draw(p: npt.NDArray[np.floating[Any]] | float) -> BoolArray:
        return np.asarray(rng.random(n) < p)

    return {
        "generaliste": no_doctor & draw(0.4),  # seen without a declared doctor
        "pharmacie": draw(np.where(age >= 18, 0.85, 0.7)),
        "specialiste": draw(0.15 + 0.25 * ald),
        "infirmier": draw(0.03 + 0.25 * old + 0.15 * ald),
        "kinesitherapeute": draw(0.08 + 0.07 * (age >= 60)),
        "dentiste": draw(0.35),
        "sage_femme": woman & draw(np.where((age >= 18) & (age <= 45), 0.12, 0.005)),
        "laboratoire": draw(0.2 + 0.2 * ald),
        "etablissement": draw(0.05 + 0.1 * ald + 0.05 * old),
    }


def generate_care(
    insured: Insured,
    professionals: Professionals,
    calendar: WorldCalendar,
    rng: np.random.Generator,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[pa.Table, IntArray, IntArray]:
    """Care links known before the start: the treating doctor, plus a few nearby others.

    Returns the table, sorted by insured row then profession, and for each
    link the insured row and the professional row.
    """
    report = progress or (lambda _d, _t: None)
    wanted = _link_shares(insured, rng)
    steps = len(wanted) + 2
    report(0, steps)
    people: list[IntArray] = []
    accounts: list[IntArray] = []
    kinds: list[IntArray] = []
    max_back: list[int] = []

    has_doctor = np.flatnonzero(insured.treating_doctor >= 0)
    people.append(has_doctor)
    accounts.append(insured.treating_doctor[has_doctor])
    kinds.append(np.full(len(has_doctor), -1, dtype=np.int64))
    max_back.append(int(15 * _DAYS_PER_YEAR))
    report(1, steps)

    for done, (profession, mask) in enumerate(wanted.items(), start=2):
        rows = np.flatnonzero(mask)
        nearby = _Nearby(professionals.accounts_by_department(profession))
        picked = nearby.pick(insured.department[rows], rng)
        keep = picked >= 0
        people.append(rows[keep])
        accounts.append(picked[keep])
        kinds.append(np.full(int(keep.sum()), PROFESSIONS.index(profession), dtype=np.int64))
        max_back.append(int(6 * _DAYS_PER_YEAR))
        report(done, steps)

    person = np.concatenate(people)
    account = np.concatenate(accounts)
    kind = np.concatenate(kinds)
    back_limit = np.concatenate([np.full(len(p), b) for p, b in zip(people, max_back, strict=True)])
    # Known since a day before the start, and not before the person's birth.
    last_day = calendar.start_day - 1
    lived = last_day - insured.birth_day[person]
    back = (rng.random(len(person)) * (np.minimum(back_limit, lived) + 1)).astype(np.int64)
    since = last_day - np.minimum(back, lived)

    order = np.lexsort((kind, person))
    person, account, since = person[order], account[order], since[order]
    table = pa.Table.from_arrays(
        [
            professionals.table.column("account_id").combine_chunks().take(account),
            insured.table.column("nir").combine_chunks().take(person),
            pa.array(since.astype(np.int32), pa.int32()).cast(pa.date32()),
        ],
        schema=CARE,
    )
    report(steps, steps)
    return table, person, account
