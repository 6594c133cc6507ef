"""Bulk load of a world's insured persons, professionals and care links.

All three tables go in one transaction: a crash leaves the database as it was.
Rows are upserted and only rows whose content differs are written, so loading
the same world twice changes nothing (the returned counts say so). PostgreSQL
takes the rows through ``COPY`` into a staging table; SQLite through batched
``executemany``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Engine
from sqlalchemy.schema import AddConstraint, DropConstraint

from rempart.store.models import Base
from rempart.store.pseudonyms import with_pseudonyms
from rempart.world.io import WorldFormatError, read_table

__all__ = ["LoadSummary", "load_world"]

Progress = Callable[[str, int, int], None]

# (world table, database table, primary key columns), in foreign-key order.
_PLAN: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("professionals", "professionals", ("account_id",)),
    ("insured", "insured", ("nir",)),
    ("care", "care_links", ("account_id", "nir")),
)
_SQLITE_BATCH = 20_000
_COPY_CHUNK = 100_000
_NIR_SHAPE = r"^[12378][0-9]{4}(?:[0-9]{2}|2[AB])[0-9]{8}$"


@dataclass
class LoadSummary:
    rows: dict[str, int] = field(default_factory=dict)
    """Rows in the world, per table."""
    changed: dict[str, int] = field(default_factory=dict)
    """Rows inserted or updated, per table: all zero when the world was already loaded."""


def _read_world(world_dir: Path) -> dict[str, pa.Table]:
    """Read and check every table before the database is touched."""
    if not world_dir.is_dir():
        raise WorldFormatError("world_not_found", f"{world_dir} is not a directory")
    tables = {name: read_table(world_dir, name) for name, _, _ in _PLAN}
    _check_unique(tables["professionals"], "professionals", ["account_id"])
    _check_unique(tables["insured"], "insured", ["nir"])
    _check_unique(tables["care"], "care", ["account_id", "nir"])
    for name in ("insured", "care"):
        bad = pc.invert(pc.match_substring_regex(tables[name].column("nir"), _NIR_SHAPE))
        if pc.any(bad).as_py():
            row = pc.index(bad, True).as_py()
            raise WorldFormatError("world_bad_value", f"{name}.parquet row {row}: malformed nir")
    accounts = tables["professionals"].column("account_id")
    _check_reference(tables["insured"], "insured", "treating_doctor", accounts)
    _check_reference(tables["care"], "care", "account_id", accounts)
    _check_reference(tables["care"], "care", "nir", tables["insured"].column("nir"))
    return tables


def _check_unique(table: pa.Table, name: str, columns: list[str]) -> None:
    if table.num_rows and table.group_by(columns).aggregate([]).num_rows != table.num_rows:
        raise WorldFormatError(
            "world_duplicate_key", f"{name}.parquet repeats a key ({', '.join(columns)})"
        )


def _check_reference(table: pa.Table, name: str, column: str, target: pa.ChunkedArray) -> None:
    values = table.column(column)
    dangling = pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=target)))
    if pc.any(dangling).as_py():
        row = pc.index(dangling, True).as_py()
        raise WorldFormatError(
            "world_dangling_reference",
            f"{name}.parquet row {row}: {column} refers to nothing in the world",
        )


def load_world(
    engine: Engine, world_dir: Path, *, pseudonym_key: bytes, progress: Progress | None = None
) -> LoadSummary:
    """Load a world; each person's pseudonym (``pseudonym_key``: the trail's) is stored
    with them, in the same transaction."""
    tables = _read_world(world_dir)
    tables["insured"] = with_pseudonyms(tables["insured"], pseudonym_key)
    summary = LoadSummary()
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            # A large page cache for the load only: the B-trees of a million rows stay in memory.
            connection.exec_driver_sql("PRAGMA cache_size=-524288")
        for world_name, db_table, key in _PLAN:
            # Rows in key order: each B-tree (primary key) grows at its end instead of at random.
            table = tables[world_name].sort_by([(column, "ascending") for column in key])
            summary.rows[db_table] = table.num_rows
            if connection.dialect.name == "postgresql":
                changed = _load_postgresql(connection, db_table, key, table, progress)
            else:
                changed = _load_sqlite(connection, db_table, key, table, progress)
            summary.changed[db_table] = changed
    return summary


def _upsert_tail(table: str, columns: list[str], key: tuple[str, ...], dialect: str) -> str:
    others = [c for c in columns if c not in key]
    assignments = ", ".join(f"{c} = excluded.{c}" for c in others)
    if dialect == "postgresql":
        differs = f"({', '.join(f'{table}.{c}' for c in others)}) IS DISTINCT FROM " + (
            f"({', '.join(f'excluded.{c}' for c in others)})"
        )
    else:
        differs = " OR ".join(f"{table}.{c} IS NOT excluded.{c}" for c in others)
    # Names only (from _PLAN and the contract schema); the values are bound.
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {assignments} WHERE {differs}"  # nosec B608


def _load_postgresql(
    connection: Connection,
    db_table: str,
    key: tuple[str, ...],
    table: pa.Table,
    progress: Progress | None,
) -> int:
    columns = table.column_names
    stage = f"stage_{db_table}"
    # Row-by-row foreign-key triggers cost more than the rest of the load together; inside
    # this transaction the keys are dropped, and re-adding them checks every row in one join.
    foreign_keys = list(Base.metadata.tables[db_table].foreign_key_constraints)
    for constraint in foreign_keys:
        connection.execute(DropConstraint(constraint))
    raw: Any = connection.connection.dbapi_connection
    with raw.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE {stage} (LIKE {db_table} INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        column_list = ", ".join(columns)
        with cursor.copy(f"COPY {stage} ({column_list}) FROM STDIN WITH (FORMAT csv)") as copy:
            done = 0
            for chunk in _slices(table, _COPY_CHUNK):
                buffer = io.BytesIO()
                pacsv.write_csv(chunk, buffer, pacsv.WriteOptions(include_header=False))
                copy.write(buffer.getvalue())
                done += chunk.num_rows
                if progress:
                    progress(db_table, done, table.num_rows)
        cursor.execute(
            f"INSERT INTO {db_table} ({column_list}) SELECT {column_list} FROM {stage} "  # noqa: S608 - names come from _PLAN and the contract schema  # nosec B608
            + _upsert_tail(db_table, columns, key, "postgresql")
        )
        changed = int(cursor.rowcount)
        cursor.execute(f"DROP TABLE {stage}")
    for constraint in foreign_keys:
        connection.execute(AddConstraint(constraint))
    return changed


def _load_sqlite(
    connection: Connection,
    db_table: str,
    key: tuple[str, ...],
    table: pa.Table,
    progress: Progress | None,
) -> int:
    columns = table.column_names
    placeholders = ", ".join("?" for _ in columns)
    statement = (
        f"INSERT INTO {db_table} ({', '.join(columns)}) VALUES ({placeholders}) "  # noqa: S608 - names come from _PLAN and the contract schema  # nosec B608
        + _upsert_tail(db_table, columns, key, "sqlite")
    )
    raw: Any = connection.connection.dbapi_connection
    before = raw.total_changes
    cursor = raw.cursor()
    done = 0
    for chunk in _slices(table, _SQLITE_BATCH):
        cursor.executemany(statement, _sqlite_rows(chunk))
        done += chunk.num_rows
        if progress:
            progress(db_table, done, table.num_rows)
    cursor.close()
    return int(raw.total_changes - before)


def _slices(table: pa.Table, size: int) -> Iterator[pa.Table]:
    for offset in range(0, max(table.num_rows, 1), size):
        chunk = table.slice(offset, size)
        if chunk.num_rows:
            yield chunk


def _sqlite_rows(chunk: pa.Table) -> Iterator[tuple[Any, ...]]:
    """Rows as SQLite stores them through SQLAlchemy: ISO dates, 0/1 booleans."""
    columns = []
    for column in chunk.columns:
        stored = column
        if pa.types.is_date(column.type):
            stored = column.cast(pa.string())
        elif pa.types.is_boolean(column.type):
            stored = column.cast(pa.int8())
        columns.append(stored.to_pylist())
    return zip(*columns, strict=True)
