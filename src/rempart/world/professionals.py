"""Professional accounts: who may look up rights, where they practise, and with whom.

The mix of professions roughly mirrors the accounts of French health
professionals (nurses and physiotherapists are many, midwives and
laboratories few). Pharmacies, laboratories and hospitals
(``etablissement``) are organisations holding several accounts that share an
``organization_id`` (a FINESS-like 9-character number beginning with the
department); some doctors, nurses and others work in group practices, the rest
alone (``organization_id`` null). General practitioners and pharmacies are
placed so that every department has one at home or next door whenever their
number allows it; everything else follows the population.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from stdnum import luhn

from rempart.world.geography import DEPARTMENT_CODES, neighbour_indices, population_weights
from rempart.world.names import EMAIL_DOMAINS, PROFESSIONAL_DOMAINS, name_pools, slug
from rempart.world.schema import PROFESSIONALS, PROFESSIONS

__all__ = [
    "PROFESSION_SHARES",
    "Professionals",
    "allocate",
    "generate_professionals",
]

IntArray = npt.NDArray[np.int64]

PROFESSION_SHARES: dict[str, float] = {
    "generaliste": 0.16,
    "specialiste": 0.13,
    "pharmacie": 0.15,
    "infirmier": 0.22,
    "kinesitherapeute": 0.16,
    "dentiste": 0.08,
    "sage_femme": 0.03,
    "laboratoire": 0.03,
    "etablissement": 0.04,
}

# Accounts per organisation, for professions that always work in one.
_ORGANISATION_SIZES: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "pharmacie": ((1, 2, 3, 4), (0.30, 0.35, 0.22, 0.13)),
    "laboratoire": ((1, 2, 3), (0.50, 0.30, 0.20)),
    "etablissement": ((1, 2, 3, 4, 6, 8), (0.25, 0.20, 0.20, 0.15, 0.12, 0.08)),
}
# Share of practices that are group practices (2-4 accounts), for the others.
_GROUP_PRACTICE: dict[str, float] = {
    "generaliste": 0.30,
    "specialiste": 0.25,
    "infirmier": 0.30,
    "kinesitherapeute": 0.25,
    "dentiste": 0.20,
    "sage_femme": 0.15,
}
# Local services: placed to cover every department (itself or a neighbour) first.
_COVERING = ("generaliste", "pharmacie")
# Share of women, for first names.
_WOMEN: dict[str, float] = {
    "generaliste": 0.52,
    "specialiste": 0.45,
    "pharmacie": 0.68,
    "infirmier": 0.86,
    "kinesitherapeute": 0.50,
    "dentiste": 0.48,
    "sage_femme": 0.97,
    "laboratoire": 0.55,
    "etablissement": 0.62,
}
# Share of accounts without an RPPS number (institutional accounts).
_NO_RPPS: dict[str, float] = {"laboratoire": 0.5, "etablissement": 0.8}
# Organisations whose accounts often share one generic mailbox.
_SHARED_MAILBOX: dict[str, tuple[str, float]] = {
    "pharmacie": ("pharmacie", 0.45),
    "laboratoire": ("labo", 0.5),
}


@dataclass(frozen=True)
class Professionals:
    """The accounts table and the arrays other steps reuse (row-aligned with the table)."""

    table: pa.Table
    department: IntArray
    """Department index (into ``DEPARTMENT_CODES``) of each account."""
    profession: IntArray
    """Profession index (into ``PROFESSIONS``) of each account."""
    organization: IntArray
    """Organisation number of each account, -1 for solo practices."""

    def accounts_by_department(self, profession: str) -> tuple[IntArray, ...]:
        """For each department index, the rows of the accounts of ``profession`` there."""
        code = PROFESSIONS.index(profession)
        rows = np.flatnonzero(self.profession == code)
        depts = self.department[rows]
        return tuple(rows[depts == d] for d in range(len(DEPARTMENT_CODES)))


def allocate(total: int, shares: Sequence[float]) -> list[int]:
    """Split ``total`` in proportion to ``shares`` (largest remainder, ties to the first).

    >>> allocate(10, [0.5, 0.3, 0.2]), allocate(3, [0.4, 0.4, 0.2])
    ([5, 3, 2], [1, 1, 1])
    """
    weights = np.asarray(shares, dtype=np.float64)
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    remainder = exact - counts
    order = np.argsort(-remainder, kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return [int(c) for c in counts]


def _unit_sizes(profession: str, accounts: int, rng: np.random.Generator) -> IntArray:
    """Sizes of the organisations or practices holding ``accounts`` accounts."""
    if accounts == 0:
        return np.zeros(0, dtype=np.int64)
    if profession in _ORGANISATION_SIZES:
        sizes, p = _ORGANISATION_SIZES[profession]
        draws = rng.choice(np.array(sizes, dtype=np.int64), size=accounts, p=np.array(p))
    else:
        group = rng.random(accounts) < _GROUP_PRACTICE[profession]
        draws = np.where(group, rng.integers(2, 5, size=accounts), 1).astype(np.int64)
    ends = np.cumsum(draws)
    last = int(np.searchsorted(ends, accounts))
    units = draws[: last + 1].copy()
    units[-1] -= int(ends[last]) - accounts
    return units


def _covering_departments(count: int, rng: np.random.Generator) -> IntArray:
    """Departments for ``count`` local services: coverage first, then by population.

    With at least two per department, each department gets one of its own;
    otherwise a greedy cover places them where they serve the most people not
    yet served at home or next door.
    """
    weights = population_weights()
    n_dept = len(weights)
    if count >= 2 * n_dept:
        first = np.arange(n_dept, dtype=np.int64)
    else:
        reach = [(d, *nbrs) for d, nbrs in enumerate(neighbour_indices())]
        covered = np.zeros(n_dept, dtype=bool)
        picks: list[int] = []
        while len(picks) < count and not covered.all():
            gains = [float(weights[list(r)][~covered[list(r)]].sum()) for r in reach]
            best = int(np.argmax(gains))
            picks.append(best)
            covered[list(reach[best])] = True
        first = np.array(picks, dtype=np.int64)
    rest = rng.choice(n_dept, size=count - len(first), p=weights).astype(np.int64)
    return np.concatenate([first, rest])


def _organisation_ids(departments: IntArray, rng: np.random.Generator) -> list[str]:
    """Unique FINESS-like identifiers: department code, then digits, 9 characters in all."""
    if len(departments) >= 10**6:
        raise ValueError("too many organisations for 6-digit serial numbers")
    serials = rng.choice(10**6, size=len(departments), replace=False)
    ids = []
    for dept, serial in zip(departments.tolist(), serials.tolist(), strict=True):
        code = DEPARTMENT_CODES[dept]
        ids.append(f"{code}{serial:0{9 - len(code)}d}")
    return ids


def _rpps_numbers(count: int, rng: np.random.Generator) -> list[str]:
    """Unique 11-digit RPPS-like numbers: ``10``, 8 digits, a Luhn check digit."""
    if count > 10**8:
        raise ValueError("too many professionals for 8-digit RPPS serials")
    serials = rng.choice(10**8, size=count, replace=False)
    numbers = []
    for serial in serials.tolist():
        body = f"10{serial:08d}"
        numbers.append(body + str(luhn.calc_check_digit(body)))
    return numbers


@dataclass(frozen=True)
class _Layout:
    """Who works where: one entry per account, plus the organisation identifiers."""

    profession: IntArray
    department: IntArray
    organization: IntArray
    organization_ids: list[str]


def _layout(count: int, rng: np.random.Generator) -> _Layout:
    """Professions, practices and organisations, departments; rows shuffled."""
    per_profession = allocate(count, [PROFESSION_SHARES[p] for p in PROFESSIONS])
    weights = population_weights()
    unit_profession: list[IntArray] = []
    unit_size: list[IntArray] = []
    unit_dept: list[IntArray] = []
    unit_is_org: list[npt.NDArray[np.bool_]] = []
    for code, (name, accounts) in enumerate(zip(PROFESSIONS, per_profession, strict=True)):
        sizes = _unit_sizes(name, accounts, rng)
        if name in _COVERING:
            depts = _covering_departments(len(sizes), rng)
        else:
            depts = rng.choice(len(weights), size=len(sizes), p=weights).astype(np.int64)
        unit_profession.append(np.full(len(sizes), code, dtype=np.int64))
        unit_size.append(sizes)
        unit_dept.append(depts)
        always = name in _ORGANISATION_SIZES
        unit_is_org.append(np.full(len(sizes), always) | (sizes > 1))

    sizes = np.concatenate(unit_size)
    u_dept = np.concatenate(unit_dept)
    u_org = np.concatenate(unit_is_org)
    org_number = np.full(len(sizes), -1, dtype=np.int64)
    org_number[u_org] = np.arange(int(u_org.sum()))
    org_ids = _organisation_ids(u_dept[u_org], rng)
    # One row per account, shuffled so that account ids do not reveal the profession.
    unit_of_row = np.repeat(np.arange(len(sizes)), sizes)
    unit_of_row = unit_of_row[rng.permutation(len(unit_of_row))]
    return _Layout(
        profession=np.concatenate(unit_profession)[unit_of_row],
        department=u_dept[unit_of_row],
        organization=org_number[unit_of_row],
        organization_ids=org_ids,
    )


def _identities(layout: _Layout, rng: np.random.Generator) -> dict[str, list[str | None]]:
    """Names, RPPS numbers and e-mails, as table columns."""
    count = len(layout.profession)
    profession, organization = layout.profession, layout.organization
    n_orgs = max(1, len(layout.organization_ids))
    pools = name_pools()
    women = rng.random(count) < np.array([_WOMEN[p] for p in PROFESSIONS])[profession]
    last_idx = rng.choice(len(pools.last_words), size=count, p=pools.last_weights)
    male_idx = rng.integers(0, len(pools.male_words), size=count)
    female_idx = rng.integers(0, len(pools.female_words), size=count)
    no_rpps_share = np.array([_NO_RPPS.get(p, 0.0) for p in PROFESSIONS])[profession]
    has_rpps = rng.random(count) >= no_rpps_share
    rpps_numbers = iter(_rpps_numbers(int(has_rpps.sum()), rng))
    email_style = rng.integers(0, 4, size=count)
    email_number = rng.integers(1, 100, size=count)
    mailbox_u = rng.random(count)
    org_mailbox_u = rng.random(n_orgs)
    domains = [d for d, _ in EMAIL_DOMAINS]
    domain_p = np.array([w for _, w in EMAIL_DOMAINS])
    personal_domain = rng.choice(len(domains), size=count, p=domain_p / domain_p.sum())
    org_domain = rng.choice(len(domains), size=n_orgs, p=domain_p / domain_p.sum())

    # The first account seen of a shared-mailbox organisation names the mailbox.
    shared_mailbox: dict[int, str] = {}
    rows: dict[str, list[str | None]] = {name: [] for name in PROFESSIONALS.names}
    for i in range(count):
        prof = PROFESSIONS[int(profession[i])]
        first = (
            pools.female_words[int(female_idx[i])]
            if women[i]
            else pools.male_words[int(male_idx[i])]
        )
        last = pools.last_words[int(last_idx[i])]
        org = int(organization[i])
        first_slug, last_slug = slug(first), slug(last)
        local = (
            f"{first_slug}.{last_slug}",
            f"{first_slug[0]}{last_slug}",
            f"{first_slug}.{last_slug}{int(email_number[i])}",
            f"{last_slug}.{first_slug}",
        )[int(email_style[i])]
        if prof in _SHARED_MAILBOX and org >= 0 and org_mailbox_u[org] < _SHARED_MAILBOX[prof][1]:
            if org not in shared_mailbox:
                domain = domains[int(org_domain[org])]
                shared_mailbox[org] = f"{_SHARED_MAILBOX[prof][0]}.{last_slug}@{domain}"
            email = shared_mailbox[org]
        elif mailbox_u[i] < 0.45:
            email = f"{local}@{PROFESSIONAL_DOMAINS[prof]}"
        else:
            email = f"{local}@{domains[int(personal_domain[i])]}"
        rows["account_id"].append(f"PS{i + 1:07d}")
        rows["rpps"].append(next(rpps_numbers) if has_rpps[i] else None)
        rows["profession"].append(prof)
        rows["department"].append(DEPARTMENT_CODES[int(layout.department[i])])
        rows["organization_id"].append(layout.organization_ids[org] if org >= 0 else None)
        rows["last_name"].append(last)
        rows["first_name"].append(first)
        rows["email"].append(email)
    return rows


def generate_professionals(count: int, rng: np.random.Generator) -> Professionals:
    """``count`` professional accounts, rows in random order, ids ``PS0000001``..."""
    if count < 1:
        raise ValueError("a world needs at least one professional account")
    layout = _layout(count, rng)
    table = pa.Table.from_pydict(_identities(layout, rng), schema=PROFESSIONALS)
    return Professionals(
        table=table,
        department=layout.department,
        profession=layout.profession,
        organization=layout.organization,
    )
