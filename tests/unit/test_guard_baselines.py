"""The benchmark's comparison baselines: causal, deterministic, blind to labels, and
each doing what its docstring says on a tiny hand-built world."""

from __future__ import annotations

import math
import shutil
from collections import Counter
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from bench.baselines import (
    BASELINES,
    THRESHOLD_FACTOR,
    THRESHOLD_MARGIN,
    load_traffic,
    run_baseline,
)

from rempart.guard.scoring import score_decisions
from rempart.world.io import read_table, write_table
from tests.guard_world import ACCOUNTS, WINDOW_START, add_robot, tiny_world

ROBOT_START = WINDOW_START + timedelta(days=1, hours=10)  # a Tuesday morning


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    w = tiny_world()
    add_robot(w, "ph2", ROBOT_START, 400)
    return w.write(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def runs(world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pa.Table]:
    out = tmp_path_factory.mktemp("decisions")
    tables = {}
    for name in BASELINES:
        path = out / f"{name}.parquet"
        run = run_baseline(name, world, path)
        assert run.lookups == pq.read_metadata(world / "lookups.parquet").num_rows
        tables[name] = pq.read_table(path)
    return tables


def _prefix_world(world: Path, out: Path, cut: pa.Scalar) -> Path:
    """The same world with the lookups and claims strictly before ``cut`` only."""
    out.mkdir()
    for name in ("professionals", "insured", "care"):
        shutil.copy(world / f"{name}.parquet", out / f"{name}.parquet")
    shutil.copy(world / "world.json", out / "world.json")
    for name in ("lookups", "claims"):
        table = read_table(world, name)
        write_table(out, name, table.filter(pc.less(table.column("ts"), cut)))
    return out


@pytest.mark.parametrize("name", list(BASELINES))
def test_decisions_file_has_one_row_per_lookup_in_input_order(
    world: Path, runs: dict[str, pa.Table], name: str
) -> None:
    lookups = read_table(world, "lookups", ["event_id", "ts"])
    table = runs[name]
    assert table.column_names == ["event_id", "decision", "score", "reasons"]
    assert table.column("event_id").to_pylist() == lookups.column("event_id").to_pylist()
    assert set(table.column("decision").to_pylist()) <= {"allow", "step_up", "deny"}
    history = pc.less(lookups.column("ts"), pa.scalar(WINDOW_START, lookups.column("ts").type))
    assert set(table.filter(history).column("decision").to_pylist()) == {"allow"}


@pytest.mark.parametrize("name", list(BASELINES))
def test_prefix_of_a_world_gets_the_full_runs_decisions(
    world: Path, runs: dict[str, pa.Table], name: str, tmp_path: Path
) -> None:
    # Cut in the middle of the robot's run: the prefix holds part of an attacked day.
    cut = pa.scalar(ROBOT_START + timedelta(seconds=150), pa.timestamp("us", tz="UTC"))
    prefix = _prefix_world(world, tmp_path / "prefix", cut)
    out = tmp_path / "prefix.parquet"
    run_baseline(name, prefix, out)
    mine = pq.read_table(out)
    assert mine.num_rows > 0
    full = runs[name].slice(0, mine.num_rows)
    assert mine.column("event_id").equals(full.column("event_id"))
    assert mine.column("decision").to_pylist() == full.column("decision").to_pylist()
    assert mine.column("reasons").to_pylist() == full.column("reasons").to_pylist()
    assert np.allclose(mine.column("score").to_numpy(), full.column("score").to_numpy())


@pytest.mark.parametrize("name", list(BASELINES))
def test_same_world_same_decisions_and_labels_never_read(
    world: Path, runs: dict[str, pa.Table], name: str, tmp_path: Path
) -> None:
    blind = tmp_path / "blind"
    shutil.copytree(world, blind)
    (blind / "labels.parquet").unlink()
    out = tmp_path / "again.parquet"
    run_baseline(name, blind, out)
    assert pq.read_table(out).equals(runs[name])


def _history_day_counts(world: Path) -> tuple[Counter[tuple[str, object]], dict[str, str]]:
    lookups = read_table(world, "lookups", ["ts", "account_id"])
    history = lookups.filter(
        pc.less(lookups.column("ts"), pa.scalar(WINDOW_START, lookups.column("ts").type))
    )
    days = Counter(
        (a, t.date())
        for a, t in zip(
            history.column("account_id").to_pylist(), history.column("ts").to_pylist(), strict=True
        )
    )
    return days, {a[0]: a[1] for a in ACCOUNTS}


def test_daily_cap_denies_exactly_beyond_the_professions_cap(
    world: Path, runs: dict[str, pa.Table]
) -> None:
    days, profession = _history_day_counts(world)
    caps = {
        p: math.ceil(np.percentile([n for (a, _), n in days.items() if profession[a] == p], 99.9))
        for p in set(profession.values())
    }
    lookups = read_table(world, "lookups", ["ts", "account_id"])
    decisions = runs["daily_cap"].column("decision").to_pylist()
    seen: Counter[tuple[str, object]] = Counter()
    denied = 0
    for a, t, d in zip(
        lookups.column("account_id").to_pylist(),
        lookups.column("ts").to_pylist(),
        decisions,
        strict=True,
    ):
        seen[(a, t.date())] += 1
        if t < WINDOW_START:
            continue
        expected = "deny" if seen[(a, t.date())] > caps[profession[a]] else "allow"
        assert d == expected, (a, t, seen[(a, t.date())], caps[profession[a]])
        denied += d == "deny"
    assert denied > 0  # the robot's day went over the pharmacy cap


def test_unexplained_threshold_steps_up_after_the_accounts_own_threshold(
    world: Path, runs: dict[str, pa.Table]
) -> None:
    traffic = load_traffic(world)
    ph2 = traffic.accounts.index("ph2")
    history = ~traffic.in_window & (traffic.account == ph2)
    daily: Counter[int] = Counter()
    for day, explained in zip(
        traffic.day[history].tolist(), traffic.explained[history].tolist(), strict=True
    ):
        daily[day] += not explained
    threshold = math.ceil(THRESHOLD_FACTOR * max(daily.values())) + THRESHOLD_MARGIN
    robot_day = int(traffic.ts[traffic.ts >= int(ROBOT_START.timestamp() * 1e6)][0]) // (
        86_400 * 10**6
    )
    rows = np.flatnonzero((traffic.account == ph2) & (traffic.day == robot_day))
    decisions = np.array(runs["unexplained_threshold"].column("decision").to_pylist())[rows]
    unexplained = np.cumsum(~traffic.explained[rows])
    assert list(decisions) == ["step_up" if u > threshold else "allow" for u in unexplained]
    assert "step_up" in decisions


def test_the_robot_on_a_pharmacy_is_scored_by_every_baseline(
    world: Path, runs: dict[str, pa.Table], tmp_path: Path
) -> None:
    for name, table in runs.items():
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table, path)
        score = score_decisions(world, path)
        assert score.attacked_accounts == 1
        # Every baseline stops the robot at some point on its day; none leaks all 400.
        assert score.contained > 0 or max(score.exposures.values()) < 400, name


def test_unknown_baseline_is_refused(world: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown baseline"):
        run_baseline("nope", world, tmp_path / "x.parquet")


def test_the_runtime_package_holds_no_baseline() -> None:
    """The baselines are a benchmark's comparison: the service never ships or imports them."""
    import rempart  # noqa: PLC0415 (the package's location, nothing more)

    package = Path(rempart.__file__).parent
    assert not (package / "guard" / "baselines.py").exists()
    for source in package.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert "baselines import" not in text, source
        assert "from bench" not in text, source
        assert "import bench" not in text, source
