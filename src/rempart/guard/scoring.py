"""Scores a decisions file against a world's ground truth, as DESIGN.md defines it.

Window rows only (the lookups that ``labels.parquet`` lists):

* **exposure** of an attacked account (one ``attack`` scenario on one account):
  distinct existing insured persons (NIR and birth date match) its lookups read
  with ``allow``;
* **contained**: the guard stepped up or denied at least one of its lookups and
  its exposure stayed at most ``contained_max`` (25 by default: the 2022 family's
  ceiling). This definition is Rempart's; DESIGN.md does not spell one out;
* **legitimate friction** / **blocks**: share of legitimate account-days (UTC
  days with at least one legitimate lookup of the account) with at least one
  ``step_up`` / ``deny`` on a legitimate lookup;
* the same shares **outside compromise** (``*_uncompromised``): without an
  attacked account's days from the day its attack began. From then on the
  owner's own lookups meet what the attacker set off: a denied account stays
  suspended until an operator restores it (after resetting the credentials),
  which a replay never does, so every later day of the owner counts as blocked
  in the plain figure. Rempart judges its false-alarm targets on this share,
  and reports both.
* **honest accounts suspended**: accounts with a ``deny`` on a legitimate
  lookup outside compromise (a deny suspends the account until an operator
  restores it), listed;
* per **recorded oddity** (``world.json``'s ``oddity_days``: the seasonal
  surge, the software batch check): its account-days in the window outside
  compromise, the share of them with a ``step_up`` and the number with a
  ``deny``, and the accounts suspended among those it touched.

Families are the ``attack`` values as written in the labels.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rempart.guard.events import DAY_US
from rempart.world.io import WorldFormatError, read_table

__all__ = [
    "FamilyScore",
    "OddityScore",
    "ReplayScore",
    "read_oddity_days",
    "score_decisions",
    "score_tables",
]

_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class FamilyScore:
    family: str
    accounts: int
    median_exposure: float
    max_exposure: int
    contained: float
    """Share of the family's attacked accounts that were contained."""


@dataclass(frozen=True)
class OddityScore:
    """How the guard treated the account-days of one recorded legitimate oddity."""

    oddity: str
    account_days: int
    """Its account-days in the window with a legitimate lookup, outside compromise."""
    accounts: int
    friction: float
    """Share of those account-days with at least one ``step_up``."""
    denied_days: int
    """Those account-days with at least one ``deny`` (each suspends the account)."""
    suspended: tuple[str, ...]
    """Its accounts suspended (a ``deny`` on a legitimate lookup outside compromise), any day."""


@dataclass(frozen=True)
class ReplayScore:
    families: dict[str, FamilyScore]
    attacked_accounts: int
    median_exposure: float
    contained: float
    legit_account_days: int
    friction: float
    blocks: float
    exposures: dict[tuple[str, str], int]
    """Exposure per (family, account)."""
    uncompromised_days: int
    friction_uncompromised: float
    blocks_uncompromised: float
    """The same shares without an attacked account's days from its attack's first day."""
    honest_suspended: tuple[str, ...] = ()
    """Accounts with a ``deny`` on a legitimate lookup outside compromise, sorted."""
    oddities: dict[str, OddityScore] = field(default_factory=dict)
    """Per oddity recorded in ``world.json`` (none when it records none)."""


def score_decisions(
    world_dir: Path, decisions_path: Path, *, contained_max: int = 25
) -> ReplayScore:
    decisions = pq.read_table(decisions_path, columns=["event_id", "decision"])
    return score_tables(
        read_table(world_dir, "lookups", ["event_id", "ts", "account_id", "nir", "birth_date"]),
        read_table(world_dir, "labels"),
        read_table(world_dir, "insured", ["nir", "birth_date"]),
        decisions,
        contained_max=contained_max,
        oddity_days=read_oddity_days(world_dir),
    )


def read_oddity_days(world_dir: Path) -> dict[str, list[tuple[str, int]]]:
    """``world.json``'s ``oddity_days`` as (account, UTC day since the epoch) pairs.

    A world without them (an insurer's export, an older world) has none.
    """
    path = world_dir / "world.json"
    if not path.is_file():
        return {}
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")).get("oddity_days") or {}
        return {
            str(name): [(str(a), (date.fromisoformat(d) - _EPOCH).days) for a, d in cells]
            for name, cells in recorded.items()
        }
    except (ValueError, TypeError, AttributeError) as exc:
        raise WorldFormatError(
            "world_bad_metadata",
            f"world.json oddity_days must map names to [account_id, YYYY-MM-DD] pairs ({exc})",
        ) from None


def score_tables(
    lookups: pa.Table,
    labels: pa.Table,
    insured: pa.Table,
    decisions: pa.Table,
    *,
    contained_max: int = 25,
    oddity_days: Mapping[str, Sequence[tuple[str, int]]] | None = None,
) -> ReplayScore:
    rows = labels.join(lookups, "event_id", join_type="inner")
    if rows.num_rows != labels.num_rows:
        raise WorldFormatError("world_bad_labels", "labels.parquet names lookups that do not exist")
    rows = rows.join(decisions.select(["event_id", "decision"]), "event_id", join_type="inner")
    if rows.num_rows != labels.num_rows:
        raise WorldFormatError("decisions_incomplete", "the decisions file misses window lookups")
    people = insured.select(["nir", "birth_date"]).set_column(
        1, "known_birth", pc.strftime(insured.column("birth_date"), format="%Y-%m-%d")
    )
    rows = rows.join(people, "nir", join_type="left outer")
    exists = pc.fill_null(pc.equal(rows.column("birth_date"), rows.column("known_birth")), False)
    allowed = pc.equal(rows.column("decision"), "allow")
    attack = rows.column("attack")
    is_attack = pc.is_valid(attack)

    # Attacked accounts, their exposure and containment.
    attacks = rows.filter(is_attack)
    a_allowed = pc.equal(attacks.column("decision"), "allow")
    pairs = {
        (f, a)
        for f, a in zip(
            attacks.column("attack").to_pylist(),
            attacks.column("account_id").to_pylist(),
            strict=True,
        )
    }
    stopped = {
        (f, a)
        for f, a in zip(
            attacks.filter(pc.invert(a_allowed)).column("attack").to_pylist(),
            attacks.filter(pc.invert(a_allowed)).column("account_id").to_pylist(),
            strict=True,
        )
    }
    first_attack = attacks.group_by("account_id").aggregate([("ts", "min")])
    compromised_from = dict(
        zip(
            first_attack.column("account_id").to_pylist(),
            (pc.cast(first_attack.column("ts_min"), pa.int64()).to_numpy() // DAY_US).tolist(),
            strict=True,
        )
    )
    exposed_rows = rows.filter(pc.and_(pc.and_(is_attack, allowed), exists))
    exposed: dict[tuple[str, str], set[str]] = {}
    for f, a, n in zip(
        exposed_rows.column("attack").to_pylist(),
        exposed_rows.column("account_id").to_pylist(),
        exposed_rows.column("nir").to_pylist(),
        strict=True,
    ):
        exposed.setdefault((f, a), set()).add(n)
    exposures = {pair: len(exposed.get(pair, ())) for pair in sorted(pairs)}
    contained = {pair: pair in stopped and exposures[pair] <= contained_max for pair in pairs}
    families: dict[str, FamilyScore] = {}
    for family in sorted({f for f, _ in pairs}):
        members = [p for p in pairs if p[0] == family]
        values = [exposures[p] for p in members]
        families[family] = FamilyScore(
            family=family,
            accounts=len(members),
            median_exposure=float(statistics.median(values)),
            max_exposure=max(values),
            contained=sum(contained[p] for p in members) / len(members),
        )

    # Legitimate account-days.
    legit = rows.filter(pc.invert(is_attack))
    days = np.asarray(
        pc.cast(legit.column("ts"), pa.int64()).to_numpy(zero_copy_only=False) // DAY_US
    )
    accounts = legit.column("account_id").to_pylist()
    kinds = legit.column("decision").to_pylist()
    all_days: set[tuple[str, int]] = set()
    friction: set[tuple[str, int]] = set()
    blocks: set[tuple[str, int]] = set()
    for account, day, kind in zip(accounts, days.tolist(), kinds, strict=True):
        key = (account, day)
        all_days.add(key)
        if kind == "step_up":
            friction.add(key)
        elif kind == "deny":
            blocks.add(key)
    total_days = len(all_days)
    values = list(exposures.values())
    clean_days = {k for k in all_days if k[1] < compromised_from.get(k[0], k[1] + 1)}
    suspended = tuple(sorted({a for a, _ in blocks & clean_days}))
    oddities: dict[str, OddityScore] = {}
    for name, cells in (oddity_days or {}).items():
        mine = {(a, d) for a, d in cells} & clean_days
        touched = {a for a, _ in mine}
        oddities[name] = OddityScore(
            oddity=name,
            account_days=len(mine),
            accounts=len(touched),
            friction=_share(friction, mine),
            denied_days=len(blocks & mine),
            suspended=tuple(a for a in suspended if a in touched),
        )
    return ReplayScore(
        families=families,
        attacked_accounts=len(pairs),
        median_exposure=float(statistics.median(values)) if values else 0.0,
        contained=sum(contained.values()) / len(pairs) if pairs else 1.0,
        legit_account_days=total_days,
        friction=len(friction) / total_days if total_days else 0.0,
        blocks=len(blocks) / total_days if total_days else 0.0,
        exposures=exposures,
        uncompromised_days=len(clean_days),
        friction_uncompromised=_share(friction, clean_days),
        blocks_uncompromised=_share(blocks, clean_days),
        honest_suspended=suspended,
        oddities=oddities,
    )


def _share(flagged: set[tuple[str, int]], days: set[tuple[str, int]]) -> float:
    return len(flagged & days) / len(days) if days else 0.0
