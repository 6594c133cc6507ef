"""Audit tables, apart from the rights service's: they may live in another database
(``REMPART_AUDIT_DATABASE_URL``) and have their own migrations and version table."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, LargeBinary, MetaData, SmallInteger, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from rempart.store.models import NAMING


class AuditBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class AuditEvent(AuditBase):
    """One entry of the chain. Append-only: the application never updates or deletes one
    (retention moves old entries to an archive that keeps the chain)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_subject", "subject"),
        Index("ix_audit_events_account_ts", "account_id", "ts_us"),
        Index("ix_audit_events_ts", "ts_us"),
    )

    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts_us: Mapped[int] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(40))
    account_id: Mapped[str] = mapped_column(String(64))
    session_id: Mapped[str] = mapped_column(String(64))
    acr: Mapped[str] = mapped_column(String(32))
    client_ip: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(256))
    channel: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(64))
    found: Mapped[int] = mapped_column(SmallInteger)
    categories: Mapped[str] = mapped_column(String(80))
    decision: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[str] = mapped_column(String(256))
    outcome: Mapped[str] = mapped_column(String(40))
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditHead(AuditBase):
    """One row per shard (chain): its last sequence number and hash. Locking the row
    serialises the appends to that chain; writers take any shard not locked."""

    __tablename__ = "audit_head"

    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditCheckpoint(AuditBase):
    """A signed statement "the chain up to ``seq`` has hash ``hash``"."""

    __tablename__ = "audit_checkpoints"

    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts_us: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    key_id: Mapped[str] = mapped_column(String(32))
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))


class AuditArchive(AuditBase):
    """Entries moved out of the live table by retention: where the live chain resumes."""

    __tablename__ = "audit_archives"

    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    up_to_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    ts_us: Mapped[int] = mapped_column(BigInteger)
    location: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))


class AuditVerified(AuditBase):
    """Per shard, the last checkpoint a full verification found intact: where an
    incremental verification may start (its signature is checked again)."""

    __tablename__ = "audit_verified"

    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    ts_us: Mapped[int] = mapped_column(BigInteger)
