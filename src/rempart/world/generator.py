"""Writes a synthetic world: orchestrates the generator steps, then the files.

Steps run in order, each from its own random stream (:func:`step_rng`), and
hand their in-memory results to the next: today the population (accounts,
insured persons, care links); the traffic step (claims, lookups, labels)
slots in after it and reuses :class:`~rempart.world.population.Population`.
The same parameters always give byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from rempart.world.io import write_table
from rempart.world.population import Population, build_population
from rempart.world.timeline import WorldCalendar

__all__ = [
    "FORMAT_VERSION",
    "WORLD_JSON",
    "WorldParams",
    "WorldSummary",
    "generate_world",
]

FORMAT_VERSION = 1
WORLD_JSON = "world.json"

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
    params: WorldParams, calendar: WorldCalendar, counts: Mapping[str, int]
) -> dict[str, Any]:
    """The content of ``world.json``."""
    return {
        "format_version": FORMAT_VERSION,
        "seed": params.seed,
        "start": calendar.start.isoformat(),
        "window_start": calendar.window_start.isoformat(),
        "end": calendar.end.isoformat(),
        "counts": dict(counts),
        "params": asdict(params),
    }


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
    progress: Progress | None = None,
) -> WorldSummary:
    """Generate a world into ``out`` (created if needed) and describe what was written.

    ``progress(step, done, total)`` is called a few times per step (steps:
    ``professionals``, ``insured``, ``care``, ``write``), never per row.
    ``world.json`` is written last: its presence marks a complete world.
    """
    params = WorldParams(insured=insured, professionals=professionals, days=days, seed=seed)
    calendar = WorldCalendar.from_days(params.days)
    report = progress or _no_progress

    population: Population = build_population(
        insured=params.insured,
        professionals=params.professionals,
        calendar=calendar,
        seed=params.seed,
        progress=report,
    )
    tables: dict[str, pa.Table] = dict(population.tables)
    # The traffic step (claims, lookups, labels) goes here, reusing `population`:
    # tables |= build_traffic(population, calendar, seed=params.seed, progress=report)

    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    counts: dict[str, int] = {}
    report("write", 0, len(tables) + 1)
    for done, (name, table) in enumerate(tables.items(), start=1):
        paths[name] = write_table(out, name, table)
        counts[name] = table.num_rows
        report("write", done, len(tables) + 1)
    paths["world"] = out / WORLD_JSON
    _write_json(paths["world"], world_metadata(params, calendar, counts))
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
