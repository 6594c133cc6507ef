"""Verifying an export streamed from its Parquet files: batches, layouts, and the checks.

The exports here are written directly (genuine chains, signed checkpoints, the export's
own schema) so that each test chooses its layout: one big row group, shards side by
side in one row group, rows shuffled, a shard's entries spread over files that
interleave. ``export_trail`` on a real trail is tested in ``tests/functional``.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rempart.audit.chain import GENESIS, AuditEntry, CheckpointSigner, canonical, entry_hash
from rempart.audit.export import CHECKPOINT_SCHEMA, EVENT_SCHEMA, verify_export
from rempart.audit.export_read import encode, plan_shards, shard_batches

SIGNER = CheckpointSigner(b"test-export-read-signing-key-seed-0123")
START_US = 1_772_323_200_000_000  # 2026-03-01 00:00 UTC
Rows = list[dict[str, object]]
FILE_SCHEMA = pa.schema([f for f in EVENT_SCHEMA if f.name != "day"])  # the folder holds it


def chained(shards: dict[int, int], every: int = 100) -> tuple[Rows, pa.Table]:
    """Rows of genuine chains (``count`` entries per shard) and their signed checkpoints."""
    rows: Rows = []
    checkpoints: list[dict[str, object]] = []
    for shard, count in shards.items():
        previous = GENESIS
        for seq in range(1, count + 1):
            entry = AuditEntry(
                seq=seq,
                ts_us=START_US + 1_000 * seq + shard,
                event="lookup",
                account_id=f"acct-{seq % 7}",
                client_ip="2001:db8::1" if seq % 3 else "192.0.2.4",
                subject=f"pseudonyme-{shard}-{seq}-é",
                found=seq % 3 - 1,
                categories="nir,identity",
                outcome="ok",
            )
            digest = entry_hash(previous, entry.row())
            row: dict[str, object] = {f: getattr(entry, f) for f in entry.__dataclass_fields__}
            row.update(shard=shard, prev_hash=previous, hash=digest, ts=entry.ts_us)
            rows.append(row)
            if seq % every == 0:
                ts_us = entry.ts_us + 5
                signature = SIGNER.sign(seq, digest, ts_us, shard=shard)
                checkpoints.append(
                    {
                        "shard": shard,
                        "seq": seq,
                        "ts_us": ts_us,
                        "hash": digest,
                        "key_id": SIGNER.key_id,
                        "signature": signature,
                    }
                )
            previous = digest
    return rows, pa.Table.from_pylist(checkpoints, schema=CHECKPOINT_SCHEMA)


def write(
    directory: Path, checkpoints: pa.Table, files: dict[str, list[dict[str, object]]]
) -> None:
    """Write an export: each file one row group (unless it holds more than a million rows)."""
    for name, rows in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=FILE_SCHEMA), path)
    pq.write_table(checkpoints, directory / "checkpoints.parquet")


def problems(directory: Path, batch_rows: int = 300) -> list[str]:
    report = verify_export(directory, SIGNER.verifier(), batch_rows=batch_rows)
    assert report.unanchored == []
    return [str(p) for p in report.problems]


def test_a_file_larger_than_a_batch_is_read_one_batch_at_a_time(tmp_path: Path) -> None:
    rows, checkpoints = chained({0: 1_000})
    write(tmp_path, checkpoints, {"day=2026-03-01/part-0.parquet": rows})
    [piece] = plan_shards(sorted(tmp_path.glob("day=*/*.parquet")))[0]
    assert pq.ParquetFile(piece.path).metadata.num_row_groups == 1
    batches = list(shard_batches([piece], 0, batch_rows=300))
    assert [b.num_rows for b in batches] == [300, 300, 300, 100]
    assert pa.concat_arrays([b.column("seq") for b in batches]).to_pylist() == list(range(1, 1_001))
    report = verify_export(tmp_path, SIGNER.verifier(), batch_rows=300)
    assert report.ok
    assert (report.entries, report.checkpoints) == (1_000, 10)


def test_an_entry_altered_in_the_middle_of_the_second_batch_is_named(tmp_path: Path) -> None:
    rows, checkpoints = chained({0: 1_000})
    rows[449]["client_ip"] = "203.0.113.66"  # entry 450: batches of 300 read 301-600 second
    write(tmp_path, checkpoints, {"day=2026-03-01/part-0.parquet": rows})
    report = verify_export(tmp_path, SIGNER.verifier(), batch_rows=300)
    assert [str(p) for p in report.problems] == [
        "shard 0, entry 450: was altered (its content does not match its hash)"
    ]
    assert report.entries == 449
    assert report.checkpoints == 4


def test_shards_side_by_side_in_one_row_group_are_each_read_alone(tmp_path: Path) -> None:
    rows, checkpoints = chained({0: 400, 1: 350, 5: 420})
    mixed = sorted(rows, key=lambda r: (r["ts_us"], r["shard"]))  # as the writers interleave
    write(tmp_path, checkpoints, {"day=2026-03-01/part-0.parquet": mixed})
    plan = plan_shards(sorted(tmp_path.glob("day=*/*.parquet")))
    assert sorted(plan) == [0, 1, 5]
    assert all(not piece.alone for pieces in plan.values() for piece in pieces)
    for shard, count in ((0, 400), (1, 350), (5, 420)):
        batches = list(shard_batches(plan[shard], shard, batch_rows=128))
        assert max(b.num_rows for b in batches) <= 128
        assert sum(b.num_rows for b in batches) == count
    assert problems(tmp_path, batch_rows=128) == []


def test_rows_out_of_order_in_a_file_are_put_back_in_order(tmp_path: Path) -> None:
    rows, checkpoints = chained({0: 500, 1: 500})
    random.Random(7).shuffle(rows)
    write(tmp_path, checkpoints, {"day=2026-03-01/part-0.parquet": rows})
    [piece, _] = [
        p
        for pieces in plan_shards([tmp_path / "day=2026-03-01/part-0.parquet"]).values()
        for p in pieces
    ]
    assert not piece.ordered
    assert problems(tmp_path) == []


def test_a_row_group_read_in_order_batch_by_batch_but_not_across_them_is_sorted(
    tmp_path: Path,
) -> None:
    """Each batch of keys in order, the second starting before the first ends: the row
    group is out of order, and read sorted."""
    rows, checkpoints = chained({0: 600})
    write(tmp_path, checkpoints, {"day=2026-03-01/part-0.parquet": rows[300:] + rows[:300]})
    [piece] = plan_shards(sorted(tmp_path.glob("day=*/*.parquet")), keys_rows=300)[0]
    assert not piece.ordered
    assert (piece.low, piece.high) == (1, 600)
    seqs = [b.column("seq").to_pylist() for b in shard_batches([piece], 0, batch_rows=250)]
    assert [len(s) for s in seqs] == [250, 250, 100]
    assert [q for s in seqs for q in s] == list(range(1, 601))


def test_the_folder_names_and_the_files_order_are_not_trusted(tmp_path: Path) -> None:
    """A shard's entries in three files whose names and folders say the opposite of their
    order, and two of which interleave: still one chain, in sequence order."""
    rows, checkpoints = chained({0: 900})
    write(
        tmp_path,
        checkpoints,
        {
            "day=2026-03-09/part-0.parquet": rows[:300],
            "day=2026-03-01/part-0.parquet": rows[300:900:2],
            "day=2020-01-01/part-7.parquet": rows[301:900:2],
        },
    )
    assert problems(tmp_path) == []


def test_a_duplicated_entry_and_a_missing_entry_are_named(tmp_path: Path) -> None:
    rows, checkpoints = chained({0: 600, 1: 600})
    shard0 = [r for r in rows if r["shard"] == 0]
    shard1 = [r for r in rows if r["shard"] == 1]
    write(
        tmp_path,
        checkpoints,
        {
            "day=2026-03-01/part-0.parquet": shard0,
            "day=2026-03-02/part-0.parquet": [shard0[349], *shard1[:99], *shard1[100:]],
        },
    )
    assert problems(tmp_path) == [
        "shard 0, entry 350: entry is out of order",
        "shard 1, entry 100: entry is missing",
    ]


def test_a_cut_tail_shows_through_the_checkpoints(tmp_path: Path) -> None:
    rows, checkpoints = chained({3: 700})
    write(tmp_path, checkpoints, {"day=2026-03-01/part-0.parquet": rows[:650]})
    assert problems(tmp_path) == [
        "shard 3, entry 651: is missing: a signed checkpoint covers entry 700"
    ]


def test_an_export_that_starts_after_an_unsigned_entry_is_unanchored(tmp_path: Path) -> None:
    rows, checkpoints = chained({0: 500})
    write(tmp_path, checkpoints, {"day=2026-03-01/part-0.parquet": rows[150:]})
    report = verify_export(tmp_path, SIGNER.verifier(), batch_rows=100)
    assert report.ok
    assert report.unanchored == [0]
    write(tmp_path, checkpoints, {"day=2026-03-01/part-0.parquet": rows[200:]})
    anchored = verify_export(tmp_path, SIGNER.verifier(), batch_rows=100)
    assert anchored.ok
    assert anchored.unanchored == []
    assert anchored.entries == 300


def test_rows_without_a_sequence_number_are_refused(tmp_path: Path) -> None:
    rows, checkpoints = chained({0: 10})
    table = pa.Table.from_pylist(rows, schema=FILE_SCHEMA)
    seq = table.schema.get_field_index("seq")
    forged = table.set_column(seq, pa.field("seq", pa.int64()), pa.array([*range(1, 10), None]))
    (tmp_path / "day=2026-03-01").mkdir()
    pq.write_table(forged, tmp_path / "day=2026-03-01" / "part-0.parquet")
    pq.write_table(checkpoints, tmp_path / "checkpoints.parquet")
    with pytest.raises(pa.ArrowInvalid, match="without a shard or a sequence number"):
        verify_export(tmp_path, SIGNER.verifier())


texts = st.text(st.characters(codec="utf-8"), max_size=40)


@given(
    st.lists(
        st.builds(
            AuditEntry,
            seq=st.integers(1, 2**62),
            ts_us=st.integers(0, 2**62),
            event=texts,
            account_id=texts,
            client_ip=texts,
            user_agent=texts,
            subject=texts,
            found=st.sampled_from([-1, 0, 1]),
            categories=texts,
            outcome=texts,
        ),
        min_size=1,
        max_size=20,
    )
)
def test_arrow_encodes_every_entry_as_the_chain_does(entries: list[AuditEntry]) -> None:
    fields = list(entries[0].__dataclass_fields__)
    batch = pa.RecordBatch.from_pylist(
        [{f: getattr(e, f) for f in fields} for e in entries],
        schema=pa.schema([FILE_SCHEMA.field(f) for f in fields]),
    )
    assert encode(batch).cast(pa.binary()).to_pylist() == [canonical(e.row()) for e in entries]
