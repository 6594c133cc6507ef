"""Appending to the audit trail: durably, before any data leaves.

The trail is a small set of hash chains ("shards"). An append locks one
shard's head row, chains the new entries after it and commits; on PostgreSQL
a writer takes any shard that no other transaction holds (``SKIP LOCKED``),
so concurrent workers append in parallel without ever forking a chain, and
the commit's disk flush is not one global bottleneck. SQLite has one writer
at a time anyway and uses one shard. Every ``checkpoint_every`` entries of a
shard, a checkpoint signed with Ed25519 is written in the same transaction.

On PostgreSQL a single entry is appended by one statement: it locks a free
head, moves it, hashes the entry and inserts it, so that on an AUTOCOMMIT
connection the append and its commit are one round trip. The hash is
therefore computed in SQL, since the sequence number is only known there:
Python encodes everything around that number (:func:`canonical_parts`, the
text fields cleaned first), PostgreSQL's ``sha256`` hashes the previous hash,
those bytes and the number's digits. Only the digits are encoded by the
database, so the bytes are those of :func:`canonical`, which ``rempart audit
verify`` recomputes; a property test over arbitrary field values (separators,
NUL, astral characters, lengths past the limits) holds the two to agreement.
A checkpoint due after that entry is one more statement; on an AUTOCOMMIT
connection it commits apart, and failing, it is logged, not fatal: the entry
is committed already, and the next checkpoint covers the gap.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from sqlalchemy import (
    Connection,
    Engine,
    String,
    TextClause,
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from rempart.audit.chain import (
    FIELD_NAMES,
    AuditEntry,
    CheckpointSigner,
    canonical_parts,
    clean,
    entry_hash,
)
from rempart.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from rempart.errors import RempartError
from rempart.ops.metrics import audit_append_timer
from rempart.store.direct import DirectStatement

__all__ = ["AuditTrail", "AuditUnavailable", "DisabledAuditTrail", "SqlAuditTrail"]

log = structlog.get_logger("rempart.audit")

_FIELDS = FIELD_NAMES
# Each text field bounded by its column: a longer value would make PostgreSQL refuse the
# entry (and the request it records), where SQLite would have stored it whole.
_LIMITS = {
    column.name: column.type.length
    for column in AuditEvent.__table__.columns
    if isinstance(column.type, String) and column.type.length is not None
}


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


def _append_one(head: str) -> TextClause:
    """The single-entry append on PostgreSQL, taking the head that ``head`` selects and
    locks; it returns the new head (shard, seq, hash), or no row if none was taken.

    The values all come from the locked row: under READ COMMITTED, ``FOR UPDATE``
    returns the row's latest committed version, and the lock keeps it until commit,
    so the UPDATE (which rechecks that version itself) moves the head it was given.
    """
    from_head = {"shard", "seq", "prev_hash", "hash"}
    values = ", ".join(c if c in from_head else f":{c}" for c in _EVENT_COLUMNS)
    return text(
        f"WITH old AS MATERIALIZED ({head}),"  # noqa: S608 - no value is spliced in  # nosec B608
        " moved AS (UPDATE audit_head AS h SET seq = old.seq + 1,"
        " hash = sha256(old.hash || CAST(:before AS bytea)"
        " || convert_to(CAST(old.seq + 1 AS text), 'UTF8') || CAST(:after AS bytea))"
        " FROM old WHERE h.shard = old.shard"
        " RETURNING h.shard, h.seq, h.hash, old.hash AS prev_hash),"
        " entry AS (INSERT INTO audit_events (" + ", ".join(_EVENT_COLUMNS) + ")"
        " SELECT " + values + " FROM moved)"
        " SELECT shard, seq, hash FROM moved"
    )


# Run by the driver itself (rempart.store.direct): this is every lookup's last statement.
_APPEND_ONE_FREE = DirectStatement(
    _append_one(
        "SELECT shard, seq, hash FROM audit_head ORDER BY random() FOR UPDATE SKIP LOCKED LIMIT 1"
    )
)
# Every shard busy: wait for a given one (the lock wait ends on the latest version).
_APPEND_ONE_WAITING = DirectStatement(
    _append_one("SELECT shard, seq, hash FROM audit_head WHERE shard = :s FOR UPDATE")
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
        self,
        entries: Sequence[AuditEntry],
        *,
        session: Session | None = None,
    ) -> list[Appended]:
        """Commit the entries (their ``seq`` is assigned here) or raise AuditUnavailable.

        With ``session``, and the trail in the same database, the entries join that
        session's transaction and commit with the change they record (atomically);
        without, they commit on their own, at once: how a refusal is recorded, since
        the refused request's own transaction is rolled back. On a session whose
        connection is in AUTOCOMMIT, a single entry on PostgreSQL is one statement,
        committed as it returns.
        """


def _autocommit(connection: Connection) -> bool:
    """Whether each statement on ``connection`` commits on its own (AUTOCOMMIT)."""
    dbapi = connection.connection.dbapi_connection
    if connection.dialect.name == "sqlite":
        return getattr(dbapi, "isolation_level", "") is None
    return getattr(dbapi, "autocommit", False) is True


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
        self,
        entries: Sequence[AuditEntry],
        *,
        session: Session | None = None,
    ) -> list[Appended]:
        try:
            with audit_append_timer():
                return self._append_entries(entries, session)
        except SQLAlchemyError as exc:
            # The type only: a traceback could carry the statement's values.
            log.error("audit_write_failed", error_type=type(exc).__name__)  # noqa: TRY400
            raise AuditUnavailable() from None

    def _append_entries(
        self, entries: Sequence[AuditEntry], session: Session | None
    ) -> list[Appended]:
        self.ensure_heads()  # normally done once at start (Services.audit)
        connection = None
        if session is not None:
            bind = session.get_bind()
            # The same pool: the same database, whatever execution options the bind has.
            if bind.engine.pool is self.engine.pool:
                connection = session.connection()
        one_statement = self.postgres and len(entries) == 1
        if connection is not None and (one_statement or not _autocommit(connection)):
            return self._append(entries, connection)
        # Several statements on an AUTOCOMMIT connection would each commit: a head
        # moved without its entries. They get a transaction of their own.
        with self.engine.begin() as own:
            return self._append(entries, own)

    def _append(self, entries: Sequence[AuditEntry], connection: Connection) -> list[Appended]:
        if self.postgres and len(entries) == 1:
            return [self._append_one(entries[0], connection)]
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
        connection.execute(insert(AuditEvent), rows)
        connection.execute(update(AuditHead).where(AuditHead.shard == shard).values(hash=previous))
        if checkpoints:
            connection.execute(insert(AuditCheckpoint), checkpoints)
        return appended

    def _append_one(self, entry: AuditEntry, connection: Connection) -> Appended:
        """One entry, one statement (see the module's docstring); ``seq`` is the database's."""
        row = dict(zip(_FIELDS, _stored_row(entry, 0), strict=True))
        before, after = canonical_parts(tuple(row.values()))
        del row["seq"]
        values = {**row, "before": before, "after": after}
        head = _APPEND_ONE_FREE.first_on(connection, values)
        if head is None:  # every shard busy: wait for one of them
            values["s"] = int(time.monotonic_ns()) % self.shards
            head = _APPEND_ONE_WAITING.first_on(connection, values)
            assert head is not None  # the wait ends with the head taken
        shard, seq, digest = int(head[0]), int(head[1]), bytes(head[2])
        if seq % self.checkpoint_every == 0:
            # One more statement, once every `checkpoint_every` entries of a shard.
            self._write_checkpoint(connection, shard, seq, digest)
        return Appended(shard=shard, seq=seq)

    def _write_checkpoint(
        self, connection: Connection, shard: int, seq: int, digest: bytes
    ) -> None:
        checkpoint = [self._checkpoint(shard, seq, digest)]
        if not _autocommit(connection):
            # In the entry's transaction: both commit, or neither.
            connection.execute(insert(AuditCheckpoint), checkpoint)
            return
        # The entry is already committed, and whatever it recorded may already be served:
        # a missing checkpoint is only a gap that the next one (or `rempart audit
        # checkpoint`) covers, so it is reported, not turned into a failed request.
        try:
            connection.execute(insert(AuditCheckpoint), checkpoint)
        except SQLAlchemyError as exc:
            log.error(  # noqa: TRY400 - the type only, as for a failed write
                "audit_checkpoint_failed", shard=shard, seq=seq, error_type=type(exc).__name__
            )

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
        self,
        entries: Sequence[AuditEntry],
        *,
        session: Session | None = None,
    ) -> list[Appended]:
        del session  # nothing is written, in any transaction
        return [Appended(shard=0, seq=0) for _ in entries]
