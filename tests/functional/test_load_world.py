"""Bulk loading a generated world, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select, text

from rempart.nir import pseudonymize
from rempart.services import Services
from rempart.store.load_world import load_world
from rempart.store.models import CareLink, Insured, Professional
from rempart.world.generator import generate_world
from rempart.world.io import WorldFormatError

KEY = b"load-world-test-pseudonym-key"


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    generate_world(out, insured=2_000, professionals=80, days=14, seed=7)
    return out


def counts(services: Services) -> dict[str, int]:
    with services.sessions() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Professional, Insured, CareLink)
        }


def fingerprint(services: Services) -> list[tuple[object, ...]]:
    with services.sessions() as session:
        return [
            tuple(row)
            for row in session.execute(
                text(
                    "SELECT nir, birth_date, sex, last_name, treating_doctor, c2s, ame, ald, email,"
                    " postcode FROM insured ORDER BY nir"
                )
            )
        ]


def test_load_world_loads_every_row(services: Services, small_world: Path) -> None:
    summary = load_world(services.engine, small_world, pseudonym_key=KEY)
    world_rows = {
        "professionals": pq.read_metadata(small_world / "professionals.parquet").num_rows,
        "insured": pq.read_metadata(small_world / "insured.parquet").num_rows,
        "care_links": pq.read_metadata(small_world / "care.parquet").num_rows,
    }
    assert summary.rows == world_rows
    assert summary.changed == world_rows
    assert counts(services) == world_rows
    # Every person carries the keyed pseudonym the trail and the incidents use.
    with services.sessions() as session:
        stored = session.execute(select(Insured.nir, Insured.pseudonym)).all()
    assert stored
    assert all(pseudonym == pseudonymize(nir, KEY) for nir, pseudonym in stored)


def test_loading_the_same_world_twice_changes_nothing(
    services: Services, small_world: Path
) -> None:
    load_world(services.engine, small_world, pseudonym_key=KEY)
    before = fingerprint(services)
    again = load_world(services.engine, small_world, pseudonym_key=KEY)
    assert again.changed == {"professionals": 0, "insured": 0, "care_links": 0}
    assert fingerprint(services) == before


def test_a_changed_row_is_updated_and_only_it(
    services: Services, small_world: Path, tmp_path: Path
) -> None:
    load_world(services.engine, small_world, pseudonym_key=KEY)
    changed_world = tmp_path / "changed"
    shutil.copytree(small_world, changed_world)
    insured = pq.read_table(changed_world / "insured.parquet")
    flipped = pc.if_else(
        pa.array([i == 0 for i in range(insured.num_rows)]),
        pc.invert(insured.column("c2s")),
        insured.column("c2s"),
    )
    insured = insured.set_column(insured.schema.get_field_index("c2s"), "c2s", flipped)
    pq.write_table(insured, changed_world / "insured.parquet")
    summary = load_world(services.engine, changed_world, pseudonym_key=KEY)
    assert summary.changed == {"professionals": 0, "insured": 1, "care_links": 0}


@pytest.mark.parametrize(
    ("damage", "code", "named"),
    [
        ("remove_care", "world_missing_file", "care.parquet"),
        ("drop_ald", "world_missing_column", "ald"),
        ("bad_nir", "world_bad_value", "nir"),
        ("dangling_doctor", "world_dangling_reference", "treating_doctor"),
    ],
)
def test_a_damaged_world_is_refused_and_nothing_is_loaded(
    services: Services, small_world: Path, tmp_path: Path, damage: str, code: str, named: str
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(small_world, broken)
    insured_path = broken / "insured.parquet"
    insured = pq.read_table(insured_path)
    if damage == "remove_care":
        (broken / "care.parquet").unlink()
    elif damage == "drop_ald":
        pq.write_table(insured.drop_columns(["ald"]), insured_path)
    elif damage == "bad_nir":
        nirs = insured.column("nir").to_pylist()
        nirs[-1] = "12345"
        index = insured.schema.get_field_index("nir")
        pq.write_table(insured.set_column(index, "nir", pa.array(nirs)), insured_path)
    elif damage == "dangling_doctor":
        doctors = insured.column("treating_doctor").to_pylist()
        doctors[0] = "no-such-account"
        index = insured.schema.get_field_index("treating_doctor")
        pq.write_table(
            insured.set_column(index, "treating_doctor", pa.array(doctors)), insured_path
        )
    with pytest.raises(WorldFormatError) as caught:
        load_world(services.engine, broken, pseudonym_key=KEY)
    assert caught.value.code == code
    assert named in caught.value.detail
    assert counts(services) == {"professionals": 0, "insured": 0, "care_links": 0}


def test_a_crash_during_the_load_leaves_nothing_behind(
    services: Services, small_world: Path
) -> None:
    class Crash(Exception):
        pass

    def crash_in_last_table(step: str, done: int, total: int) -> None:
        if step == "care_links":
            raise Crash

    with pytest.raises(Crash):
        load_world(services.engine, small_world, pseudonym_key=KEY, progress=crash_in_last_table)
    assert counts(services) == {"professionals": 0, "insured": 0, "care_links": 0}


def test_a_missing_directory_is_refused(services: Services, tmp_path: Path) -> None:
    with pytest.raises(WorldFormatError) as caught:
        load_world(services.engine, tmp_path / "nowhere", pseudonym_key=KEY)
    assert caught.value.code == "world_not_found"


@pytest.fixture(scope="session")
def medium_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("medium-world")
    generate_world(out, insured=60_000, professionals=600, days=7, seed=11)
    return out


@pytest.mark.parametrize("delay", [0.8, 1.6, 2.4])
def test_a_killed_load_leaves_all_or_nothing(
    services: Services, medium_world: Path, tmp_path: Path, delay: float
) -> None:
    """SIGKILL ``rempart db load-world`` part-way: the tables hold the whole world or nothing."""
    env = {
        **os.environ,
        "REMPART_DATABASE_URL": services.settings.database_url,
        "REMPART_DATA_DIR": str(tmp_path / "data"),
    }
    loader = subprocess.Popen(
        [sys.executable, "-m", "rempart", "db", "load-world", str(medium_world)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    loader.send_signal(signal.SIGKILL)
    loader.wait(timeout=30)
    world_rows = {
        "professionals": pq.read_metadata(medium_world / "professionals.parquet").num_rows,
        "insured": pq.read_metadata(medium_world / "insured.parquet").num_rows,
        "care_links": pq.read_metadata(medium_world / "care.parquet").num_rows,
    }
    assert counts(services) in (world_rows, dict.fromkeys(world_rows, 0))
