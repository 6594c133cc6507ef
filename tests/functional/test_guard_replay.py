"""``rempart guard replay`` on small hand-built worlds: decisions, invariants, bad input."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from rempart.cli import app
from rempart.guard.config import default_config
from rempart.guard.directory import MemoryDirectory
from rempart.guard.engine import Guard
from rempart.guard.events import ClaimEvent, LookupEvent, to_micros
from rempart.guard.replay import load_window_start
from rempart.guard.scoring import score_decisions
from rempart.guard.state import MemoryState
from tests.guard_world import WINDOW_START, add_robot, tiny_world

runner = CliRunner()
ROBOT_DAY = WINDOW_START + timedelta(days=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    w = tiny_world()
    add_robot(w, "ph1b", ROBOT_DAY + timedelta(hours=2), 2_000)
    add_robot(
        w,
        "gp2",
        ROBOT_DAY + timedelta(days=1, hours=10),
        200,
        every=timedelta(minutes=3),
        attack="slow_scraping",
        ip="203.0.113.99",
        agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0",
    )
    return w.write(tmp_path_factory.mktemp("world"))


def replay(world_dir: Path, out: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["guard", "replay", str(world_dir), "--out", str(out)])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def decisions(world: Path, tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    out = tmp_path_factory.mktemp("out") / "decisions.parquet"
    code, output = replay(world, out)
    assert code == 0, output
    return pq.read_table(out)


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_one_decision_per_lookup_in_input_order(world: Path, decisions: pa.Table) -> None:
    lookups = pq.read_table(world / "lookups.parquet")
    assert decisions.column("event_id").to_pylist() == lookups.column("event_id").to_pylist()
    assert set(decisions.column("decision").to_pylist()) <= {"allow", "step_up", "deny"}
    assert decisions.schema.field("score").type == pa.float64()
    assert decisions.schema.field("reasons").type == pa.string()


def test_robots_are_contained_and_honest_professionals_left_alone(
    world: Path, decisions: pa.Table, tmp_path: Path
) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(decisions, path)
    score = score_decisions(world, path)
    assert set(score.families) == {"robot_2022", "slow_scraping"}
    assert score.exposures[("robot_2022", "ph1b")] <= 10
    assert score.exposures[("slow_scraping", "gp2")] <= 10
    assert score.contained == 1.0
    assert score.friction_uncompromised == 0.0
    assert score.blocks_uncompromised == 0.0
    # An honest general practitioner's window days: every lookup allowed.
    lookups = pq.read_table(world / "lookups.parquet")
    gp1 = pc.and_(
        pc.equal(lookups.column("account_id"), "gp1"),
        pc.greater_equal(lookups.column("ts"), pa.scalar(WINDOW_START, pa.timestamp("us", "UTC"))),
    )
    gp1_decisions = decisions.filter(gp1).column("decision").to_pylist()
    assert len(gp1_decisions) > 50
    assert set(gp1_decisions) == {"allow"}


def test_input_untouched_and_same_input_same_decisions(
    world: Path, decisions: pa.Table, tmp_path: Path
) -> None:
    before = digest(world)
    out = tmp_path / "again.parquet"
    assert replay(world, out)[0] == 0
    assert digest(world) == before
    assert pq.read_table(out).equals(decisions)


def test_labels_are_never_read(world: Path, decisions: pa.Table, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(world, bare)
    (bare / "labels.parquet").unlink()
    assert replay(bare, tmp_path / "d.parquet")[0] == 0
    assert pq.read_table(tmp_path / "d.parquet").equals(decisions)


def test_a_prefix_of_the_world_gets_the_same_decisions(
    world: Path, decisions: pa.Table, tmp_path: Path
) -> None:
    cut = pa.scalar(ROBOT_DAY + timedelta(hours=2, minutes=5), pa.timestamp("us", "UTC"))
    prefix = tmp_path / "prefix"
    shutil.copytree(world, prefix)
    for name in ("lookups", "claims"):
        table = pq.read_table(world / f"{name}.parquet")
        pq.write_table(table.filter(pc.less(table.column("ts"), cut)), prefix / f"{name}.parquet")
    out = tmp_path / "prefix.parquet"
    assert replay(prefix, out)[0] == 0
    mine = pq.read_table(out)
    assert 0 < mine.num_rows < decisions.num_rows
    assert mine.equals(decisions.slice(0, mine.num_rows))


def test_the_replay_decides_as_the_engine_does_event_by_event(
    world: Path, decisions: pa.Table
) -> None:
    """The replay's fast path (distinct values resolved once, decide_resolved) gives
    exactly what Guard.decide gives for each LookupEvent, claims fed in time order."""
    guard = Guard(
        MemoryDirectory.from_world(world),
        MemoryState(),
        default_config(),
        history_until=load_window_start(world),
    )
    claims = pq.read_table(world / "claims.parquet").sort_by("ts")
    pending = [
        ClaimEvent(to_micros(row["ts"]), row["account_id"], row["nir"])
        for row in claims.to_pylist()
    ]
    mine = []
    c = 0
    for row in pq.read_table(world / "lookups.parquet").to_pylist():
        ts = to_micros(row["ts"])
        while c < len(pending) and pending[c].ts < ts:
            guard.observe_claim(pending[c])
            c += 1
        d = guard.decide(
            LookupEvent(
                row["event_id"],
                ts,
                row["account_id"],
                row["nir"],
                row["birth_date"],
                row["ip"],
                row["user_agent"],
                row["session_id"],
                row["auth"],
                row["channel"],
            )
        )
        mine.append((d.event_id, d.decision, d.score, ",".join(d.reasons)))
    assert {kind for _, kind, _, _ in mine} == {"allow", "step_up", "deny"}
    assert mine == list(
        zip(
            decisions.column("event_id").to_pylist(),
            decisions.column("decision").to_pylist(),
            decisions.column("score").to_pylist(),
            decisions.column("reasons").to_pylist(),
            strict=True,
        )
    )


Change = Callable[[pa.Table], pa.Table]


def broken(world: Path, tmp_path: Path, name: str, change: Change) -> Path:
    bad = tmp_path / "bad"
    shutil.copytree(world, bad)
    table = pq.read_table(world / f"{name}.parquet")
    pq.write_table(change(table), bad / f"{name}.parquet")
    return bad


def set_column(table: pa.Table, name: str, values: list[object] | pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def swap_rows(table: pa.Table, i: int, j: int) -> pa.Table:
    order = list(range(table.num_rows))
    order[i], order[j] = order[j], order[i]
    return table.take(order)


def rename_account(table: pa.Table) -> pa.Table:
    accounts = table.column("account_id").to_pylist()
    accounts[7] = "intruder"
    return set_column(table, "account_id", pa.array(accounts))


def bad_auth(table: pa.Table) -> pa.Table:
    values = table.column("auth").to_pylist()
    values[3] = "magic"
    return set_column(table, "auth", pa.array(values))


@pytest.mark.parametrize(
    ("name", "change", "expected"),
    [
        (
            "lookups",
            lambda t: t.drop_columns(["user_agent"]),
            "lookups.parquet lacks column(s): user_agent",
        ),
        (
            "lookups",
            lambda t: set_column(t, "ts", pa.array(["soon"] * t.num_rows)),
            "lookups.parquet column ts is string",
        ),
        ("lookups", lambda t: swap_rows(t, 10, 20), "lookups.parquet row 11: ts goes back"),
        (
            "lookups",
            rename_account,
            "lookups.parquet row 7: column account_id names an unknown account ('intruder')",
        ),
        ("lookups", bad_auth, "lookups.parquet row 3: column auth is 'magic'"),
        (
            "claims",
            rename_account,
            "claims.parquet row 7: column account_id names an unknown account",
        ),
        ("care", lambda t: t.drop_columns(["nir"]), "care.parquet lacks column(s): nir"),
    ],
)
def test_bad_input_is_named_and_nothing_is_written(
    world: Path,
    tmp_path: Path,
    name: str,
    change: Change,
    expected: str,
) -> None:
    bad = broken(world, tmp_path, name, change)
    out = tmp_path / "out" / "decisions.parquet"
    code, output = replay(bad, out)
    assert code != 0
    assert expected in " ".join(output.split())
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_a_world_without_its_metadata_is_refused(world: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(world, bad)
    (bad / "world.json").unlink()
    code, output = replay(bad, tmp_path / "d.parquet")
    assert code != 0
    assert "world.json is missing" in output
    (bad / "world.json").write_text('{"window_start": "tuesday"}', encoding="utf-8")
    code, output = replay(bad, tmp_path / "d.parquet")
    assert code != 0
    assert "window_start" in output
    assert not (tmp_path / "d.parquet").exists()
