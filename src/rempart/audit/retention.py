"""Retention: entries older than the retention period leave the live database for an
archive that keeps the chain.

Per shard, the oldest live entries up to the cut-off are exported (the export
format, verifiable on its own), the files flushed to disk and fingerprinted,
a signed checkpoint is set at the boundary, and only then are the entries
deleted, in the same transaction that records the archive. Verification of
the live trail then starts at the boundary's signed hash.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, delete, func, insert, select

from rempart.audit.chain import CheckpointSigner
from rempart.audit.export import export_trail
from rempart.audit.models import AuditArchive, AuditCheckpoint, AuditEvent
from rempart.audit.trail import now_us

__all__ = ["ArchiveSummary", "archive_before"]


@dataclass(frozen=True)
class ArchiveSummary:
    entries: int
    ranges: dict[int, tuple[int, int]]
    location: Path
    sha256: str


def _fingerprint(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
                digest.update(path.relative_to(directory).as_posix().encode())
                digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()


def archive_before(
    engine: Engine, cutoff: datetime, out: Path, signer: CheckpointSigner
) -> ArchiveSummary:
    cutoff_us = int(cutoff.timestamp() * 1_000_000)
    with engine.connect() as connection:
        ranges = {
            int(shard): (int(low), int(high))
            for shard, low, high in connection.execute(
                select(AuditEvent.shard, func.min(AuditEvent.seq), func.max(AuditEvent.seq))
                .where(AuditEvent.ts_us < cutoff_us)
                .group_by(AuditEvent.shard)
            )
        }
        # From the first live entry, so that the archive joins the previous one.
        for shard in list(ranges):
            first = connection.scalar(
                select(func.min(AuditEvent.seq)).where(AuditEvent.shard == shard)
            )
            ranges[shard] = (int(first or ranges[shard][0]), ranges[shard][1])
    summary = export_trail(engine, out, signer.verifier(), ranges=ranges)
    fingerprint = _fingerprint(out)
    with engine.begin() as connection:
        for shard, (_, high) in ranges.items():
            boundary = connection.scalar(
                select(AuditEvent.hash).where(AuditEvent.shard == shard, AuditEvent.seq == high)
            )
            if boundary is None:
                continue
            signed = connection.scalar(
                select(AuditCheckpoint.seq).where(
                    AuditCheckpoint.shard == shard, AuditCheckpoint.seq == high
                )
            )
            ts_us = now_us()
            if signed is None:
                connection.execute(
                    insert(AuditCheckpoint).values(
                        shard=shard,
                        seq=high,
                        ts_us=ts_us,
                        hash=bytes(boundary),
                        key_id=signer.key_id,
                        signature=signer.sign(high, bytes(boundary), ts_us, shard=shard),
                    )
                )
            connection.execute(
                insert(AuditArchive).values(
                    shard=shard,
                    up_to_seq=high,
                    hash=bytes(boundary),
                    ts_us=ts_us,
                    location=str(out.resolve()),
                    sha256=fingerprint,
                )
            )
            connection.execute(
                delete(AuditEvent).where(AuditEvent.shard == shard, AuditEvent.seq <= high)
            )
    return ArchiveSummary(entries=summary.entries, ranges=ranges, location=out, sha256=fingerprint)
