"""Reading an export's entries back, shard by shard, in sequence order, in bounded memory.

Verifying an export re-chains each shard from its first entry to its last, so it needs
every shard's entries in sequence order; the files give them by day, the shards side
by side. Nothing in the folder names is trusted (the chain does not cover them), nor
the order of the rows in a file: a file rewritten by another tool may hold them in any
order, and today's verification sorts them.

Memory holds one record batch of one row group at a time, whatever the export's size:

1. **plan** (:func:`plan_shards`): each row group's ``shard`` and ``seq`` columns
   alone are read (a few bytes an entry), to know, per shard, which row groups hold
   its entries, their first and last sequence numbers, and whether they are in order;
2. **read** (:func:`shard_batches`): a shard's row groups in order of their first
   sequence number, each one streamed batch by batch. Only where row groups overlap
   (two row groups of the shard interleave, or one holds its entries out of order)
   are the overlapping ones read together and sorted: memory then holds that shard's
   share of them. An export written by ``export_trail`` never overlaps: each of its
   row groups is one shard's run of consecutive entries.

Each batch is then encoded whole by Arrow (:func:`encode`), so that Python's per-entry
work is the SHA-256 of the chain and little else.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rempart.audit.chain import FIELD_NAMES, LABEL, SEPARATOR
from rempart.audit.verify import Encoded

__all__ = [
    "BATCH_ROWS",
    "KEYS_BATCH_ROWS",
    "Piece",
    "encode",
    "encoded_entries",
    "plan_shards",
    "shard_batches",
]

BATCH_ROWS = 65_536
"""Entries decoded at a time: a few tens of MB with their Python values."""

ROW_COLUMNS = [*FIELD_NAMES, "prev_hash", "hash"]
KEYS_BATCH_ROWS = 1 << 20
"""Keys (shard, seq) decoded at a time while planning: 10 MB."""
_READ_BUFFER = 1 << 20
"""Column chunks are read through a buffer of this size, page by page, rather than whole
(pre-buffering would hold a whole row group's column chunks)."""


@dataclass(frozen=True)
class Piece:
    """One row group's share of one shard."""

    path: Path
    row_group: int
    low: int
    """Its smallest sequence number of the shard."""
    high: int
    ordered: bool
    """The shard's entries are in sequence order within the row group."""
    alone: bool
    """The row group holds no other shard's entries."""


def _open(path: Path) -> pq.ParquetFile:
    return pq.ParquetFile(path, buffer_size=_READ_BUFFER, pre_buffer=False)


def _ordered(seq: pa.Array) -> bool:
    return len(seq) < 2 or bool(pc.all(pc.greater_equal(seq[1:], seq[:-1])).as_py())


def _pieces(
    parquet: pq.ParquetFile, path: Path, row_group: int, keys_rows: int
) -> Iterator[tuple[int, Piece]]:
    # Per shard: lowest, highest and last sequence number seen, and in order so far.
    spans: dict[int, tuple[int, int, int, bool]] = {}
    for keys in parquet.iter_batches(
        batch_size=keys_rows, row_groups=[row_group], columns=["shard", "seq"]
    ):
        if keys.column("shard").null_count or keys.column("seq").null_count:
            raise pa.ArrowInvalid(
                f"{path}, row group {row_group}: rows without a shard or a sequence number"
            )
        shards = pc.unique(keys.column("shard")).to_pylist()
        for shard in shards:
            seq = keys.column("seq")
            if len(shards) > 1:
                seq = seq.filter(pc.equal(keys.column("shard"), shard))
            bounds = pc.min_max(seq)
            low, high = int(bounds["min"].as_py()), int(bounds["max"].as_py())
            first, last = int(seq[0].as_py()), int(seq[-1].as_py())
            ordered = _ordered(seq)
            if shard in spans:
                was_low, was_high, was_last, was_ordered = spans[shard]
                low, high = min(low, was_low), max(high, was_high)
                ordered = ordered and was_ordered and was_last <= first
            spans[shard] = (low, high, last, ordered)
    for shard, (low, high, _, ordered) in spans.items():
        yield shard, Piece(path, row_group, low, high, ordered, alone=len(spans) == 1)


def plan_shards(
    parts: Iterable[Path], *, keys_rows: int = KEYS_BATCH_ROWS
) -> dict[int, list[Piece]]:
    """For each shard, the row groups that hold its entries, from their keys alone
    (``keys_rows`` of them decoded at a time)."""
    plan: dict[int, list[Piece]] = {}
    for path in parts:
        parquet = _open(path)
        for row_group in range(parquet.num_row_groups):
            for shard, piece in _pieces(parquet, path, row_group, keys_rows):
                plan.setdefault(shard, []).append(piece)
    return plan


def _runs(pieces: list[Piece]) -> Iterator[list[Piece]]:
    """The pieces in sequence order, those whose ranges overlap grouped together."""
    run: list[Piece] = []
    high = 0
    for piece in sorted(pieces, key=lambda p: (p.low, p.high, str(p.path), p.row_group)):
        if run and piece.low > high:
            yield run
            run = []
        high = max(high, piece.high) if run else piece.high
        run.append(piece)
    if run:
        yield run


def _of_shard(batch: pa.RecordBatch, shard: int, piece: Piece) -> pa.RecordBatch:
    if piece.alone:
        return batch.select(ROW_COLUMNS)
    return batch.filter(pc.equal(batch.column("shard"), shard)).select(ROW_COLUMNS)


def shard_batches(
    pieces: list[Piece], shard: int, batch_rows: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """A shard's entries in sequence order, columns ``(*FIELD_NAMES, prev_hash, hash)``,
    in batches of at most ``batch_rows``."""
    columns = ["shard", *ROW_COLUMNS]
    for run in _runs(pieces):
        if len(run) == 1 and run[0].ordered:
            piece = run[0]
            for batch in _open(piece.path).iter_batches(
                batch_size=batch_rows, row_groups=[piece.row_group], columns=columns
            ):
                yield _of_shard(batch, shard, piece)
            continue
        # Overlapping or unordered: these row groups' share of the shard, sorted.
        share = pa.Table.from_batches(
            [
                _of_shard(batch, shard, piece)
                for piece in run
                for batch in _open(piece.path).iter_batches(
                    batch_size=batch_rows, row_groups=[piece.row_group], columns=columns
                )
            ]
        )
        yield from share.sort_by("seq").to_batches(max_chunksize=batch_rows)


def encode(batch: pa.RecordBatch) -> pa.Array:
    """``chain.canonical`` of every row of the batch, computed by Arrow.

    Integers are written in decimal as Python's ``str`` writes them; a null (which an
    export never holds, but a forged file may) as ``None``, as ``str(None)`` did."""
    fields = [
        column if column.type == pa.string() else pc.cast(column, pa.string())
        for column in (batch.column(name) for name in FIELD_NAMES)
    ]
    return pc.binary_join_element_wise(
        LABEL, *fields, SEPARATOR, null_handling="replace", null_replacement="None"
    )


def _entries(batch: pa.RecordBatch) -> Iterator[Encoded]:
    return zip(
        batch.column("seq").to_pylist(),
        batch.column("prev_hash").cast(pa.binary()).to_pylist(),
        batch.column("hash").cast(pa.binary()).to_pylist(),
        encode(batch).cast(pa.binary()).to_pylist(),
        strict=True,
    )


def encoded_entries(batches: Iterable[pa.RecordBatch]) -> Iterator[Encoded]:
    """The entries of the batches as ``verify_encoded`` takes them, one batch decoded at
    a time."""
    return itertools.chain.from_iterable(_entries(batch) for batch in batches)
