"""Export of the audit trail to Parquet, verifiable on its own.

Layout of an export directory::

    day=YYYY-MM-DD/part-0.parquet   one row per event, chain fields included
    checkpoints.parquet             the signed checkpoints within the exported range
    manifest.json                   range, counts, the public key that signs checkpoints

Per shard, the exported entries are a contiguous run of sequence numbers, so
that ``rempart audit verify --export DIR`` can re-chain them; the first entry
is anchored when it follows the genesis or a signed checkpoint in the export.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from sqlalchemy import Engine, and_, func, select

from rempart.audit.chain import FIELD_NAMES, GENESIS, CheckpointVerifier
from rempart.audit.export_read import BATCH_ROWS, encoded_entries, plan_shards, shard_batches
from rempart.audit.models import AuditCheckpoint, AuditEvent
from rempart.audit.verify import Checkpoint, VerifyReport, verify_encoded

__all__ = ["ExportSummary", "ExportVerification", "export_trail", "verify_export"]

FORMAT_VERSION = 1
_BATCH = 50_000

EVENT_SCHEMA = pa.schema(
    [
        pa.field("shard", pa.int16(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("ts_us", pa.int64(), nullable=False),
        *[
            pa.field(name, pa.int8() if name == "found" else pa.string(), nullable=False)
            for name in FIELD_NAMES
            if name not in ("seq", "ts_us")
        ],
        pa.field("prev_hash", pa.binary(32), nullable=False),
        pa.field("hash", pa.binary(32), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("day", pa.string(), nullable=False),
    ]
)
CHECKPOINT_SCHEMA = pa.schema(
    [
        pa.field("shard", pa.int16(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("ts_us", pa.int64(), nullable=False),
        pa.field("hash", pa.binary(32), nullable=False),
        pa.field("key_id", pa.string(), nullable=False),
        pa.field("signature", pa.binary(64), nullable=False),
    ]
)
_DB_COLUMNS = ["shard", *FIELD_NAMES, "prev_hash", "hash"]


@dataclass
class ExportSummary:
    entries: int = 0
    shards: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Per shard, the first and last sequence number exported."""
    checkpoints: int = 0


def _to_us(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.astimezone(UTC).timestamp() * 1_000_000)


def _ranges(
    engine: Engine, since_us: int | None, until_us: int | None
) -> dict[int, tuple[int, int]]:
    """Per shard, the contiguous run of sequence numbers whose times fall in the range."""
    conditions = []
    if since_us is not None:
        conditions.append(AuditEvent.ts_us >= since_us)
    if until_us is not None:
        conditions.append(AuditEvent.ts_us < until_us)
    query = select(AuditEvent.shard, func.min(AuditEvent.seq), func.max(AuditEvent.seq)).group_by(
        AuditEvent.shard
    )
    if conditions:
        query = query.where(and_(*conditions))
    with engine.connect() as connection:
        return {int(s): (int(lo), int(hi)) for s, lo, hi in connection.execute(query)}


def _batches(engine: Engine, ranges: dict[int, tuple[int, int]]) -> Iterator[pa.RecordBatch]:
    columns = [getattr(AuditEvent, name) for name in _DB_COLUMNS]
    with engine.connect() as connection:
        for shard, (low, high) in sorted(ranges.items()):
            result = connection.execution_options(stream_results=True, yield_per=_BATCH).execute(
                select(*columns)
                .where(AuditEvent.shard == shard, AuditEvent.seq.between(low, high))
                .order_by(AuditEvent.seq)
            )
            for partition in result.partitions():
                data = {name: [row[i] for row in partition] for i, name in enumerate(_DB_COLUMNS)}
                data["prev_hash"] = [bytes(v) for v in data["prev_hash"]]
                data["hash"] = [bytes(v) for v in data["hash"]]
                ts = pa.array(data["ts_us"], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
                data["ts"] = ts
                data["day"] = pc.strftime(ts, format="%Y-%m-%d")
                yield pa.RecordBatch.from_pydict(data, schema=EVENT_SCHEMA)


def export_trail(
    engine: Engine,
    out: Path,
    verifier: CheckpointVerifier,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    ranges: dict[int, tuple[int, int]] | None = None,
) -> ExportSummary:
    """Write the events of ``[since, until)`` (all when unset), or of explicit per-shard
    sequence ``ranges``, under ``out``, partitioned by day."""
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; an export goes into a new directory")
    if ranges is None:
        ranges = _ranges(engine, _to_us(since), _to_us(until))
    summary = ExportSummary(shards=ranges)
    counted: list[int] = []

    def counting() -> Iterator[pa.RecordBatch]:
        for batch in _batches(engine, ranges):
            counted.append(batch.num_rows)
            yield batch

    ds.write_dataset(
        counting(),
        out,
        schema=EVENT_SCHEMA,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([pa.field("day", pa.string())]), flavor="hive"),
        basename_template="part-{i}.parquet",
        existing_data_behavior="overwrite_or_ignore",
    )
    summary.entries = sum(counted)
    with engine.connect() as connection:
        rows = [
            (int(c.shard), int(c.seq), int(c.ts_us), bytes(c.hash), c.key_id, bytes(c.signature))
            for c in connection.execute(
                select(
                    AuditCheckpoint.shard,
                    AuditCheckpoint.seq,
                    AuditCheckpoint.ts_us,
                    AuditCheckpoint.hash,
                    AuditCheckpoint.key_id,
                    AuditCheckpoint.signature,
                )
            )
            if int(c.shard) in ranges
            and ranges[int(c.shard)][0] - 1 <= int(c.seq) <= ranges[int(c.shard)][1]
        ]
    summary.checkpoints = len(rows)
    pq.write_table(
        pa.table(
            {
                f.name: pa.array([row[i] for row in rows], f.type)
                for i, f in enumerate(CHECKPOINT_SCHEMA)
            },
            schema=CHECKPOINT_SCHEMA,
        ),
        out / "checkpoints.parquet",
    )
    manifest = {
        "format_version": FORMAT_VERSION,
        "exported_at": datetime.now(UTC).isoformat(),
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "entries": summary.entries,
        "shards": {str(s): {"first_seq": lo, "last_seq": hi} for s, (lo, hi) in ranges.items()},
        "checkpoints": summary.checkpoints,
        "checkpoint_public_key": verifier.public_hex(),
        "checkpoint_key_id": verifier.key_id,
        "hash": "sha256(prev_hash || 'rempart-audit-v1' US fields joined by US), US = 0x1f",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return summary


@dataclass
class ExportVerification(VerifyReport):
    unanchored: list[int] = field(default_factory=list)
    """Shards whose first exported entry follows neither the genesis nor a signed checkpoint."""


def _checkpoints(path: Path, shard: int) -> dict[int, Checkpoint]:
    """One shard's signed checkpoints (one every thousand entries or so): never the whole
    file's as Python values."""
    table = pq.read_table(path, filters=[("shard", "=", shard)])
    return {
        int(seq): Checkpoint(int(seq), int(ts_us), bytes(digest), bytes(signature))
        for seq, ts_us, digest, signature in zip(
            *(table.column(name).to_pylist() for name in ("seq", "ts_us", "hash", "signature")),
            strict=True,
        )
    }


def verify_export(
    directory: Path, verifier: CheckpointVerifier, *, batch_rows: int = BATCH_ROWS
) -> ExportVerification:
    """Re-chain every shard of an export and check its checkpoints, using only its files.

    Streamed shard by shard, row group by row group, ``batch_rows`` entries at a time
    (``export_read``), so that an export of any size verifies in bounded memory."""
    report = ExportVerification()
    if not (directory / "checkpoints.parquet").exists():
        raise FileNotFoundError(f"{directory} is not an audit export (no checkpoints.parquet)")
    plan = plan_shards(sorted(directory.glob("day=*/*.parquet")))
    for shard, pieces in sorted(plan.items()):
        entries = encoded_entries(shard_batches(pieces, shard, batch_rows))
        first = next(entries)
        first_seq, first_prev = first[0], first[1]
        signed = _checkpoints(directory / "checkpoints.parquet", shard)
        anchor = signed.get(first_seq - 1)
        anchored = (first_seq == 1 and first_prev == GENESIS) or (
            anchor is not None
            and anchor.hash == first_prev
            and verifier.valid(anchor.seq, anchor.hash, anchor.ts_us, anchor.signature, shard=shard)
        )
        if not anchored:
            report.unanchored.append(shard)
        report.shards.append(
            verify_encoded(
                itertools.chain([first], entries),
                shard=shard,
                start_seq=first_seq - 1,
                start_hash=first_prev,
                checkpoints={s: c for s, c in signed.items() if s >= first_seq},
                verifier=verifier,
            )
        )
    return report
