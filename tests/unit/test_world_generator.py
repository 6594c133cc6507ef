"""The generator as a whole: reproducible files, world.json, progress, and reference data."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from stdnum.fr import nir as stdnum_nir

from rempart.world.generator import FORMAT_VERSION, WorldSummary, generate_world
from rempart.world.geography import (
    DEPARTMENT_CODES,
    OVERSEAS_CODES,
    neighbour_indices,
    population_weights,
    raw_neighbours,
)
from rempart.world.population import _order_numbers
from rempart.world.professionals import allocate
from rempart.world.timeline import REFERENCE_END, WorldCalendar, step_rng

FILES = ("insured.parquet", "professionals.parquet", "care.parquet", "world.json")


def _hashes(world: Path) -> dict[str, str]:
    return {name: hashlib.sha256((world / name).read_bytes()).hexdigest() for name in FILES}


def _generate(out: Path, seed: int) -> WorldSummary:
    return generate_world(out, insured=1_500, professionals=60, days=14, seed=seed)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    _generate(tmp_path / "a", seed=3)
    _generate(tmp_path / "b", seed=3)
    _generate(tmp_path / "c", seed=4)
    first, again, other = (_hashes(tmp_path / x) for x in "abc")
    assert first == again
    for name in ("insured.parquet", "professionals.parquet", "care.parquet"):
        assert first[name] != other[name]


def test_world_json_and_summary(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    summary = generate_world(
        tmp_path, insured=300, professionals=25, days=20, seed=9,
        progress=lambda step, done, total: calls.append((step, done, total)),
    )  # fmt: skip
    meta = json.loads((tmp_path / "world.json").read_text(encoding="utf-8"))
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["seed"] == 9
    assert meta["params"] == {"insured": 300, "professionals": 25, "days": 20, "seed": 9}
    assert meta["counts"]["insured"] == 300
    assert meta["counts"]["professionals"] == 25
    assert meta["counts"]["care"] == summary.counts["care"] > 0
    start, window, end = (datetime.fromisoformat(meta[k]) for k in ("start", "window_start", "end"))
    assert (start, window, end) == (summary.start, summary.window_start, summary.end)
    assert end == REFERENCE_END  # fixed, never today's date
    assert (end - start).days == 20
    assert (window - start).days == 15
    assert set(summary.paths) == {
        "insured", "professionals", "care", "claims", "lookups", "labels", "world",
    }  # fmt: skip
    assert all(p.is_file() for p in summary.paths.values())
    # A handful of calls per step, ending complete.
    steps = {step for step, _, _ in calls}
    assert steps == {"professionals", "insured", "care", "traffic", "attacks", "write"}
    assert len(calls) < 40
    for step in steps:
        done, total = next((d, t) for s, d, t in reversed(calls) if s == step)
        assert done == total


@pytest.mark.parametrize(
    "kwargs",
    [{"insured": 0}, {"professionals": 0}, {"days": 0}, {"seed": -1}],
)
def test_bad_parameters_are_refused(tmp_path: Path, kwargs: dict[str, int]) -> None:
    params = {"insured": 10, "professionals": 5, "days": 2, "seed": 0} | kwargs
    with pytest.raises(ValueError, match="must be"):
        generate_world(
            tmp_path,
            insured=params["insured"],
            professionals=params["professionals"],
            days=params["days"],
            seed=params["seed"],
        )
    assert not (tmp_path / "world.json").exists()


def test_calendar_splits_history_and_window() -> None:
    for days in (1, 2, 7, 28, 365):
        cal = WorldCalendar.from_days(days)
        assert cal.end == REFERENCE_END
        assert cal.start < cal.end
        assert cal.start <= cal.window_start < cal.end
        assert cal.history_days + cal.window_days == days
        assert cal.window_days >= 1


def test_step_streams_are_independent_and_reproducible() -> None:
    a = step_rng(1, "insured").integers(0, 10**9, 4)
    assert (a == step_rng(1, "insured").integers(0, 10**9, 4)).all()
    assert not (a == step_rng(1, "traffic").integers(0, 10**9, 4)).all()
    assert not (a == step_rng(2, "insured").integers(0, 10**9, 4)).all()


def test_neighbours_are_symmetric_and_cover_the_mainland() -> None:
    table = raw_neighbours()
    assert set(table) == set(DEPARTMENT_CODES)
    for code, others in table.items():
        for other in others:
            assert code in table[other], (code, other)
    assert all(table[c] for c in DEPARTMENT_CODES if c not in OVERSEAS_CODES)
    assert all(not table[c] for c in OVERSEAS_CODES)
    assert len(neighbour_indices()) == len(DEPARTMENT_CODES) == 101
    assert population_weights().sum() == pytest.approx(1.0)


def test_order_numbers_stay_distinct_in_a_crowded_group() -> None:
    keys = np.array([5] * 999 + [6] * 3, dtype=np.int64)
    numbers = _order_numbers(keys, step_rng(0, "test"))
    assert sorted(numbers[:999].tolist()) == list(range(1, 1000))
    assert len(set(numbers[999:].tolist())) == 3
    with pytest.raises(ValueError, match="999"):
        _order_numbers(np.zeros(1000, dtype=np.int64), step_rng(0, "test"))


def test_allocation_is_exact() -> None:
    for total in (1, 7, 150, 10_000):
        assert sum(allocate(total, [0.16, 0.13, 0.15, 0.22, 0.16, 0.08, 0.03, 0.03, 0.04])) == total


def test_stdnum_key_is_the_one_in_the_files(tmp_path: Path) -> None:
    generate_world(tmp_path, insured=200, professionals=10, seed=5)
    for nir in pq.read_table(tmp_path / "insured.parquet", columns=["nir"])["nir"].to_pylist():
        assert stdnum_nir.calc_check_digits(nir) == nir[13:]
