"""Appending to the audit trail: durably, before any data leaves.

The trail is a small set of hash chains ("shards"). An append locks one
shard's head row, chains the new entries after it and commits; on PostgreSQL
a writer takes any shard that no other transaction holds (``SKIP LOCKED``),
so concurrent workers append in parallel without ever forking a chain, and
the commit's disk flush is not one global bottleneck. SQLite has one writer
at a time anyway and uses one shard. Every ``checkpoint_every`` entries of a
shard, a checkpoint signed with Ed25519 is written in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from sqlalchemy import Connection, Engine, bindparam, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from rempart.audit.chain import FIELD_NAMES, AuditEntry, CheckpointSigner, clean, entry_hash
from rempart.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from rempart.errors import RempartError

__all__ = ["AuditTrail", "AuditUnavailable", "DisabledAuditTrail", "SqlAuditTrail"]

log = structlog.get_logger("rempart.audit")

_FIELDS = FIELD_NAMES
_LIMITS = {"user_agent": 256, "reasons": 256, "client_ip": 64, "session_id": 64}


# Statements of the per-lookup append, built once.
_TAKE_FREE_HEAD = text(
    "UPDATE audit_head SET seq = seq + :n WHERE shard = ("
    " SELECT shard FROM audit_head ORDER BY random()"
    " FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING shard, seq, hash"
)
_TAKE_HEAD = text(
    "UPDATE audit_head SET seq = seq + :n WHERE shard = :s RETURNING shard, seq, hash"
)
_TAKE_SQLITE_HEAD = (
    update(AuditHead)
    .where(AuditHead.shard == 0)
    .values(seq=AuditHead.seq + bindparam("n"))
    .returning(AuditHead.shard, AuditHead.seq, AuditHead.hash)
)
_EVENT_COLUMNS = ("shard", *FIELD_NAMES, "prev_hash", "hash")
_INSERT_AND_MOVE_HEAD = text(
    "WITH entry AS (INSERT INTO audit_events ("  # noqa: S608 - column names are ours
    + ", ".join(_EVENT_COLUMNS)
    + ") VALUES ("
    + ", ".join(f":{c}" for c in _EVENT_COLUMNS)
    + ")) UPDATE audit_head SET hash = :head_hash WHERE shard = :shard"
)


class AuditUnavailable(RempartError):
    code = "audit_unavailable"
    status = 503

    def __init__(self) -> None:
        super().__init__("the audit trail cannot be written; no data is served without it")


@dataclass(frozen=True)
class Appended:
    shard: int
    seq: int


class AuditTrail(Protocol):
    def append(
        self, entries: Sequence[AuditEntry], *, session: Session | None = None
    ) -> list[Appended]:
        """Commit the entries (their ``seq`` is assigned here) or raise AuditUnavailable.

        With ``session``, and the trail in the same database, the entries join that
        session's transaction and commit with the change they record (atomically);
        without, they commit on their own, at once: how a refusal is recorded, since
        the refused request's own transaction is rolled back.
        """


def now_us() -> int:
    return time.time_ns() // 1000


def _stored_row(entry: AuditEntry, seq: int) -> tuple[int | str, ...]:
    """The entry as stored and hashed: its sequence number, text fields cleaned and bounded."""
    return tuple(
        seq
        if name == "seq"
        else (clean(value, _LIMITS.get(name, 512)) if isinstance(value, str) else value)
        for name, value in zip(_FIELDS, entry.row(), strict=True)
    )


class SqlAuditTrail:
    def __init__(
        self,
        engine: Engine,
        signer: CheckpointSigner,
        *,
        shards: int = 8,
        checkpoint_every: int = 1000,
    ) -> None:
        self.engine = engine
        self.signer = signer
        self.postgres = engine.dialect.name == "postgresql"
        self.shards = shards if self.postgres else 1
        self.checkpoint_every = checkpoint_every
        self._ready = False

    def ensure_heads(self) -> None:
        """Create the head row of every shard that has none (idempotent), in a transaction
        of its own: the trail counts as ready only once that has committed, so no writer
        ever looks for a head that another transaction has not yet made visible."""
        if self._ready:
            return
        with self.engine.begin() as connection:
            present = set(connection.scalars(select(AuditHead.shard)))
            missing = [s for s in range(self.shards) if s not in present]
            if missing:
                # Several workers may start together: whoever comes second inserts nothing.
                dialect_insert = pg_insert if self.postgres else sqlite_insert
                connection.execute(
                    dialect_insert(AuditHead)
                    .values([{"shard": s, "seq": 0, "hash": bytes(32)} for s in missing])
                    .on_conflict_do_nothing(index_elements=["shard"])
                )
        self._ready = True

    def append(
        self, entries: Sequence[AuditEntry], *, session: Session | None = None
    ) -> list[Appended]:
        try:
            self.ensure_heads()  # normally done once at start (Services.audit)
            if session is not None and session.get_bind() is self.engine:
                return self._append(entries, session.connection())
            with self.engine.begin() as connection:
                return self._append(entries, connection)
        except SQLAlchemyError as exc:
            # The type only: a traceback could carry the statement's values.
            log.error("audit_write_failed", error_type=type(exc).__name__)  # noqa: TRY400
            raise AuditUnavailable() from None

    def _append(self, entries: Sequence[AuditEntry], connection: Connection) -> list[Appended]:
        count = len(entries)
        if self.postgres:
            head = connection.execute(_TAKE_FREE_HEAD, {"n": count}).one_or_none()
            if head is None:  # every shard busy: wait for any one of them
                head = connection.execute(
                    _TAKE_HEAD, {"n": count, "s": int(time.monotonic_ns()) % self.shards}
                ).one()
        else:
            # An UPDATE first: SQLite takes its write lock before anything is read.
            head = connection.execute(_TAKE_SQLITE_HEAD, {"n": count}).one()
        shard, last, previous = int(head.shard), int(head.seq), bytes(head.hash)
        rows: list[dict[str, object]] = []
        checkpoints = []
        appended = []
        for offset, entry in enumerate(entries):
            seq = last - count + 1 + offset
            row = _stored_row(entry, seq)
            digest = entry_hash(previous, row)
            rows.append(
                {
                    **dict(zip(_FIELDS, row, strict=True)),
                    "shard": shard,
                    "prev_hash": previous,
                    "hash": digest,
                }
            )
            appended.append(Appended(shard=shard, seq=seq))
            if seq % self.checkpoint_every == 0:
                checkpoints.append(self._checkpoint(shard, seq, digest))
            previous = digest
        if self.postgres and count == 1:
            # One round trip for the entry and the head: the lookup's latency is mostly these.
            connection.execute(_INSERT_AND_MOVE_HEAD, {**rows[0], "head_hash": previous})
        else:
            connection.execute(insert(AuditEvent), rows)
            connection.execute(
                update(AuditHead).where(AuditHead.shard == shard).values(hash=previous)
            )
        if checkpoints:
            connection.execute(insert(AuditCheckpoint), checkpoints)
        return appended

    def _checkpoint(self, shard: int, seq: int, digest: bytes) -> dict[str, object]:
        ts_us = now_us()
        return {
            "shard": shard,
            "seq": seq,
            "ts_us": ts_us,
            "hash": digest,
            "key_id": self.signer.key_id,
            "signature": self.signer.sign(seq, digest, ts_us, shard=shard),
        }

    def checkpoint_heads(self) -> int:
        """Sign the current head of every shard (e.g. before an export); returns how many."""
        written = 0
        with self.engine.begin() as connection:
            heads = connection.execute(
                select(AuditHead.shard, AuditHead.seq, AuditHead.hash).where(AuditHead.seq > 0)
            ).all()
            for head in heads:
                exists = connection.scalar(
                    select(AuditCheckpoint.seq).where(
                        AuditCheckpoint.shard == head.shard, AuditCheckpoint.seq == head.seq
                    )
                )
                if exists is None:
                    connection.execute(
                        insert(AuditCheckpoint),
                        [self._checkpoint(int(head.shard), int(head.seq), bytes(head.hash))],
                    )
                    written += 1
        return written


class DisabledAuditTrail:
    """Writes nothing. Only for the benchmark that measures what the audit costs."""

    def append(
        self, entries: Sequence[AuditEntry], *, session: Session | None = None
    ) -> list[Appended]:
        del session  # nothing is written, in any transaction
        return [Appended(shard=0, seq=0) for _ in entries]
