"""Verification of the audit trail: every chain, every checkpoint signature.

A shard's chain is checked from its anchor (the genesis, the end of an
archive, or, incrementally, the last checkpoint a previous verification found
intact) to its head. The first entry that does not link, does not hash to
what it says, or breaks the sequence is named: that is where an entry was
altered, deleted, inserted or reordered. Checkpoints must carry a valid
signature from the configured key and agree with the recomputed chain; a
checkpoint beyond the last entry shows that the tail was cut.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from rempart.audit.chain import FIELD_NAMES, GENESIS, CheckpointVerifier, canonical
from rempart.audit.models import (
    AuditArchive,
    AuditCheckpoint,
    AuditEvent,
    AuditHead,
    AuditVerified,
)
from rempart.audit.trail import now_us
from rempart.store.engine import make_engine

__all__ = [
    "Checkpoint",
    "Encoded",
    "Problem",
    "ShardResult",
    "VerifyReport",
    "load_checkpoints",
    "verify_chain",
    "verify_database",
    "verify_encoded",
]

_COLUMNS = [getattr(AuditEvent, name) for name in FIELD_NAMES] + [
    AuditEvent.prev_hash,
    AuditEvent.hash,
]
_N = len(FIELD_NAMES)


@dataclass(frozen=True)
class Problem:
    shard: int
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"shard {self.shard}, entry {self.seq}: {self.reason}"


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    ts_us: int
    hash: bytes
    signature: bytes


@dataclass
class ShardResult:
    shard: int
    start_seq: int
    last_seq: int = 0
    last_hash: bytes = GENESIS
    entries: int = 0
    checkpoints: int = 0
    last_good_checkpoint: Checkpoint | None = None
    problem: Problem | None = None


@dataclass
class VerifyReport:
    shards: list[ShardResult] = field(default_factory=list)

    @property
    def problems(self) -> list[Problem]:
        return [s.problem for s in self.shards if s.problem is not None]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def entries(self) -> int:
        return sum(s.entries for s in self.shards)

    @property
    def checkpoints(self) -> int:
        return sum(s.checkpoints for s in self.shards)


Encoded = tuple[int, bytes, bytes, bytes]
"""An entry as the chain sees it: sequence number, previous hash, hash, canonical encoding."""


def verify_chain(
    rows: Iterable[tuple[object, ...]],
    *,
    shard: int,
    start_seq: int,
    start_hash: bytes,
    checkpoints: dict[int, Checkpoint],
    verifier: CheckpointVerifier,
) -> ShardResult:
    """Check rows ``(*FIELD_NAMES, prev_hash, hash)`` in sequence order after an anchor."""
    return verify_encoded(
        (
            (int(row[0]), bytes(row[_N]), bytes(row[_N + 1]), canonical(row[:_N]))  # type: ignore[call-overload, arg-type]
            for row in rows
        ),
        shard=shard,
        start_seq=start_seq,
        start_hash=start_hash,
        checkpoints=checkpoints,
        verifier=verifier,
    )


def verify_encoded(
    entries: Iterable[Encoded],
    *,
    shard: int,
    start_seq: int,
    start_hash: bytes,
    checkpoints: dict[int, Checkpoint],
    verifier: CheckpointVerifier,
) -> ShardResult:
    """:func:`verify_chain` over entries already encoded (an export encodes whole batches
    at once, outside Python's per-row loop); the first entry that breaks is named."""
    result = ShardResult(shard=shard, start_seq=start_seq, last_seq=start_seq, last_hash=start_hash)
    previous = start_hash
    expected = start_seq + 1
    problem: Problem | None = None
    sha256 = hashlib.sha256
    for seq, prev_hash, stored, encoded in entries:
        if seq != expected:
            what = "is missing" if seq > expected else "is out of order"
            problem = Problem(shard, expected if seq > expected else seq, f"entry {what}")
            break
        if prev_hash != previous:
            problem = Problem(shard, seq, "does not link to the previous entry")
            break
        digest = sha256(previous + encoded).digest()  # entry_hash, the encoding done
        if digest != stored:
            problem = Problem(shard, seq, "was altered (its content does not match its hash)")
            break
        checkpoint = checkpoints.get(seq)
        if checkpoint is not None:
            if checkpoint.hash != digest:
                problem = Problem(shard, seq, "disagrees with its signed checkpoint")
                break
            if not verifier.valid(seq, digest, checkpoint.ts_us, checkpoint.signature, shard=shard):
                problem = Problem(shard, seq, "checkpoint signature is invalid")
                break
            result.checkpoints += 1
            result.last_good_checkpoint = checkpoint
        previous = digest
        expected = seq + 1
    # Counted once at the end: the loop is the cost of a verification, per entry.
    result.entries = expected - start_seq - 1
    result.last_seq = expected - 1
    if problem is not None:
        result.problem = problem
        return result
    result.last_hash = previous
    beyond = [s for s in checkpoints if s > result.last_seq]
    if beyond:
        result.problem = Problem(
            shard,
            result.last_seq + 1,
            f"is missing: a signed checkpoint covers entry {min(beyond)}",
        )
    return result


def load_checkpoints(connection: Connection, shard: int) -> dict[int, Checkpoint]:
    """A shard's signed checkpoints, by sequence number."""
    return {
        int(c.seq): Checkpoint(int(c.seq), int(c.ts_us), bytes(c.hash), bytes(c.signature))
        for c in connection.execute(
            select(
                AuditCheckpoint.seq,
                AuditCheckpoint.ts_us,
                AuditCheckpoint.hash,
                AuditCheckpoint.signature,
            ).where(AuditCheckpoint.shard == shard)
        )
    }


def _stream(engine: Engine, shard: int, after: int) -> Iterator[tuple[object, ...]]:
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=20_000).execute(
            select(*_COLUMNS)
            .where(AuditEvent.shard == shard, AuditEvent.seq > after)
            .order_by(AuditEvent.seq)
        )
        for row in result:
            yield tuple(row)


def _verify_shard(url: str, public_hex: str, shard: int, incremental: bool) -> ShardResult:
    engine = make_engine(url)
    try:
        return _verify_shard_with(
            engine, CheckpointVerifier.from_hex(public_hex), shard, incremental
        )
    finally:
        engine.dispose()


def _verify_shard_with(
    engine: Engine, verifier: CheckpointVerifier, shard: int, incremental: bool
) -> ShardResult:
    with engine.connect() as connection:
        checkpoints = load_checkpoints(connection, shard)
        archive = connection.execute(
            select(AuditArchive.up_to_seq, AuditArchive.hash)
            .where(AuditArchive.shard == shard)
            .order_by(AuditArchive.up_to_seq.desc())
            .limit(1)
        ).one_or_none()
        verified = (
            connection.execute(
                select(AuditVerified.seq, AuditVerified.hash).where(AuditVerified.shard == shard)
            ).one_or_none()
            if incremental
            else None
        )
        head = connection.execute(
            select(AuditHead.seq, AuditHead.hash).where(AuditHead.shard == shard)
        ).one()
    start_seq, start_hash = 0, GENESIS
    if archive is not None:
        start_seq, start_hash = int(archive.up_to_seq), bytes(archive.hash)
        boundary = checkpoints.get(start_seq)
        # The live chain resumes where the archive ends; that point must be signed.
        if (
            boundary is None
            or boundary.hash != start_hash
            or not verifier.valid(
                start_seq, start_hash, boundary.ts_us, boundary.signature, shard=shard
            )
        ):
            return ShardResult(
                shard=shard,
                start_seq=start_seq,
                problem=Problem(
                    shard, start_seq, "archive boundary has no valid signed checkpoint"
                ),
            )
    if verified is not None and verified.seq > start_seq:
        anchor = checkpoints.get(int(verified.seq))
        # The anchor is trusted only if its checkpoint still stands, signed, unchanged.
        if (
            anchor is not None
            and anchor.hash == verified.hash
            and verifier.valid(anchor.seq, anchor.hash, anchor.ts_us, anchor.signature, shard=shard)
        ):
            start_seq, start_hash = anchor.seq, anchor.hash
    result = verify_chain(
        _stream(engine, shard, start_seq),
        shard=shard,
        start_seq=start_seq,
        start_hash=start_hash,
        checkpoints={s: c for s, c in checkpoints.items() if s > start_seq},
        verifier=verifier,
    )
    if result.problem is None and (
        int(head.seq) != result.last_seq or bytes(head.hash) != result.last_hash
    ):
        result.problem = Problem(
            shard, result.last_seq + 1, "is missing: the chain ends before its recorded head"
        )
    return result


def verify_database(
    engine: Engine,
    verifier: CheckpointVerifier,
    *,
    incremental: bool = False,
    jobs: int = 1,
    url: str | None = None,
) -> VerifyReport:
    """Verify every shard; with ``jobs`` > 1 (and the database ``url``), in parallel processes.

    After an intact verification, each shard's last good checkpoint is recorded so that
    the next incremental verification starts there.
    """
    with engine.connect() as connection:
        shards = sorted(int(s) for s in connection.scalars(select(AuditHead.shard)))
    if jobs > 1 and url is not None and len(shards) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [
                pool.submit(_verify_shard, url, verifier.public_hex(), shard, incremental)
                for shard in shards
            ]
            results = [f.result() for f in futures]
    else:
        results = [_verify_shard_with(engine, verifier, s, incremental) for s in shards]
    report = VerifyReport(shards=results)
    if report.ok:
        _remember(engine, results)
    return report


def _remember(engine: Engine, results: list[ShardResult]) -> None:
    rows = [
        {
            "shard": r.shard,
            "seq": r.last_good_checkpoint.seq,
            "hash": r.last_good_checkpoint.hash,
            "ts_us": now_us(),
        }
        for r in results
        if r.last_good_checkpoint is not None
    ]
    if not rows:
        return
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    statement = insert(AuditVerified).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=["shard"],
        set_={
            "seq": statement.excluded.seq,
            "hash": statement.excluded.hash,
            "ts_us": statement.excluded.ts_us,
        },
    )
    with engine.begin() as connection:
        connection.execute(statement)
