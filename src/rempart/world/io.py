"""Reading and writing world tables, refusing anything that does not match the format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rempart.world.schema import TABLES

__all__ = ["WorldFormatError", "read_table", "table_path", "write_table"]


@dataclass
class WorldFormatError(Exception):
    """A world directory that does not follow the format; names the file and column."""

    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


def table_path(world_dir: Path, name: str) -> Path:
    return world_dir / f"{name}.parquet"


def write_table(world_dir: Path, name: str, table: pa.Table) -> Path:
    """Write one table with its contract schema, atomically (temp file, then rename)."""
    schema = TABLES[name]
    path = table_path(world_dir, name)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table.select(schema.names).cast(schema), tmp, compression="zstd")
    tmp.replace(path)
    return path


def read_table(world_dir: Path, name: str, columns: list[str] | None = None) -> pa.Table:
    """Read one table, checking that the file and every contract column are there.

    Column types are cast to the contract; a value that cannot be cast is an error
    naming the column, never a silent change.
    """
    schema = TABLES[name]
    path = table_path(world_dir, name)
    if not path.is_file():
        raise WorldFormatError("world_missing_file", f"{path.name} is missing from {world_dir}")
    try:
        present = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise WorldFormatError("world_unreadable_file", f"{path.name} is not Parquet") from exc
    wanted = columns if columns is not None else schema.names
    missing = [c for c in wanted if c not in present.names]
    if missing:
        raise WorldFormatError(
            "world_missing_column", f"{path.name} lacks column(s): {', '.join(missing)}"
        )
    table = pq.read_table(path, columns=wanted)
    fields = []
    for column in wanted:
        field = schema.field(column)
        if table.schema.field(column).type != field.type:
            try:
                casted = table.column(column).cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise WorldFormatError(
                    "world_bad_column_type",
                    f"{path.name} column {column} is {table.schema.field(column).type}, "
                    f"expected {field.type}",
                ) from exc
            table = table.set_column(table.schema.get_field_index(column), field.name, casted)
        if not field.nullable and table.column(column).null_count:
            raise WorldFormatError(
                "world_null_value", f"{path.name} column {column} holds empty values"
            )
        fields.append(field)
    return table.cast(pa.schema(fields))
