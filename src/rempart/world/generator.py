"""Writes a synthetic world: orchestrates the generator steps, then the files.

Steps run in order, each from its own random stream (:func:`step_rng`), and
hand their in-memory results to the next: the population (accounts, insured
persons, care links); the legitimate traffic over the whole world (lookups and
the claims that follow them, :mod:`rempart.world.traffic`); the attacks, in
the evaluation window only (:mod:`rempart.world.attacks`); then the files
(``claims``, ``lookups`` in time order with ``event_id`` from 1, and
``labels`` for every lookup of the window).

The world ends on 2025-03-31; by default the first three quarters of the days
are history and the rest the evaluation window (28 days: 21 days of history,
then 7), or ``history_days`` says how many. Expect about 33 legitimate lookups
per account and calendar day (some 40 on a working day) and, with the default
attacks, about 75,000 attack lookups whatever the world's size (the 2022
pattern's three robots account for 60,000 of them). The same parameters
always give byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from rempart.world.attacks import Scenario, default_scenarios, inject_attacks
from rempart.world.io import write_table
from rempart.world.population import Population, build_population
from rempart.world.timeline import WorldCalendar, step_rng
from rempart.world.traffic import Traffic, TrafficParams, build_traffic, traffic_tables

__all__ = [
    "FORMAT_VERSION",
    "WORLD_JSON",
    "WorldParams",
    "WorldSummary",
    "generate_world",
]

FORMAT_VERSION = 1
WORLD_JSON = "world.json"
_EPOCH = date(1970, 1, 1)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class WorldParams:
    """The generator's parameters, as recorded in ``world.json``."""

    insured: int = 10_000
    professionals: int = 200
    days: int = 28
    seed: int = 0

    def __post_init__(self) -> None:
        if self.insured < 1:
            raise ValueError("insured must be at least 1")
        if self.professionals < 1:
            raise ValueError("professionals must be at least 1")
        if self.days < 1:
            raise ValueError("days must be at least 1")
        if self.seed < 0:
            raise ValueError("seed must be a non-negative integer")


@dataclass(frozen=True)
class WorldSummary:
    """What :func:`generate_world` wrote."""

    out: Path
    paths: Mapping[str, Path]
    """File per table name, plus ``world`` for ``world.json``."""
    counts: Mapping[str, int]
    """Rows per table."""
    seed: int
    start: datetime
    window_start: datetime
    end: datetime


def _no_progress(_step: str, _done: int, _total: int) -> None:
    return None


def world_metadata(
    params: WorldParams,
    calendar: WorldCalendar,
    counts: Mapping[str, int],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of ``world.json``; ``extra`` adds the traffic and attack parameters."""
    return {
        "format_version": FORMAT_VERSION,
        "seed": params.seed,
        "start": calendar.start.isoformat(),
        "window_start": calendar.window_start.isoformat(),
        "end": calendar.end.isoformat(),
        "counts": dict(counts),
        "params": asdict(params),
        **(extra or {}),
    }


def oddity_days(population: Population, traffic: Traffic) -> dict[str, list[list[str]]]:
    """``{oddity: [[account_id, "YYYY-MM-DD"], ...]}``: the account-days (UTC) each
    recorded legitimate oddity touched, sorted, for scoring a guard on them."""
    ids = population.professionals.table.column("account_id").to_pylist()
    out: dict[str, list[list[str]]] = {}
    for name, (accounts, days) in traffic.oddity_cells.items():
        pairs = {
            (str(ids[a]), (_EPOCH + timedelta(days=d)).isoformat())
            for a, d in zip(accounts.tolist(), days.tolist(), strict=True)
        }
        out[name] = [list(p) for p in sorted(pairs)]
    return out


def world_calendar(days: int, history_days: int | None = None) -> WorldCalendar:
    """The default split (three quarters history), or ``history_days`` of history."""
    calendar = WorldCalendar.from_days(days)
    if history_days is None:
        return calendar
    if not 0 <= history_days < days:
        raise ValueError("history_days must be between 0 and days - 1 (the window needs a day)")
    return WorldCalendar(
        start=calendar.start,
        window_start=calendar.start + timedelta(days=history_days),
        end=calendar.end,
    )


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def generate_world(
    out: Path,
    *,
    insured: int = 10_000,
    professionals: int = 200,
    days: int = 28,
    seed: int = 0,
    history_days: int | None = None,
    attacks: Sequence[Scenario] | None = None,
    traffic: TrafficParams | None = None,
    progress: Progress | None = None,
) -> WorldSummary:
    """Generate a world into ``out`` (created if needed) and describe what was written.

    ``attacks`` are the scenarios injected in the window (None: one of each
    family with its default knobs; empty: none); ``traffic`` the knobs of
    legitimate behaviour. ``progress(step, done, total)`` is called a few
    times per step (steps: ``professionals``, ``insured``, ``care``,
    ``traffic``, ``attacks``, ``write``), never per row. ``world.json`` is
    written last: its presence marks a complete world.
    """
    params = WorldParams(insured=insured, professionals=professionals, days=days, seed=seed)
    calendar = world_calendar(params.days, history_days)
    scenarios = default_scenarios() if attacks is None else list(attacks)
    traffic_params = traffic or TrafficParams()
    report = progress or _no_progress

    population: Population = build_population(
        insured=params.insured,
        professionals=params.professionals,
        calendar=calendar,
        seed=params.seed,
        progress=report,
    )
    tables: dict[str, pa.Table] = dict(population.tables)
    legit = build_traffic(
        population,
        calendar,
        params=traffic_params,
        rng=step_rng(params.seed, "traffic"),
        progress=report,
    )
    report("attacks", 0, 1)
    attack_events, attack_record = inject_attacks(
        scenarios, population, calendar, legit, rng=step_rng(params.seed, "attacks")
    )
    report("attacks", 1, 1)
    tables |= traffic_tables(
        population, calendar, legit, attack_events, [s.name for s in scenarios]
    )
    extra = {
        "history_days": calendar.history_days,
        "window_days": calendar.window_days,
        "traffic": asdict(traffic_params),
        "oddities": legit.oddities,
        "oddity_days": oddity_days(population, legit),
        "attacks": attack_record,
    }

    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    counts: dict[str, int] = {}
    report("write", 0, len(tables) + 1)
    for done, (name, table) in enumerate(tables.items(), start=1):
        paths[name] = write_table(out, name, table)
        counts[name] = table.num_rows
        report("write", done, len(tables) + 1)
    paths["world"] = out / WORLD_JSON
    _write_json(paths["world"], world_metadata(params, calendar, counts, extra))
    report("write", len(tables) + 1, len(tables) + 1)

    return WorldSummary(
        out=out,
        paths=paths,
        counts=counts,
        seed=params.seed,
        start=calendar.start,
        window_start=calendar.window_start,
        end=calendar.end,
    )
