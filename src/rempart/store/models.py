"""Tables of the rights service. Audit tables (``audit*``) come with the audit trail."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Professional(Base):
    """A professional account as the insurer knows it (world ``professionals`` table)."""

    __tablename__ = "professionals"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rpps: Mapped[str | None] = mapped_column(String(11))
    profession: Mapped[str] = mapped_column(String(32))
    department: Mapped[str] = mapped_column(String(3))
    organization_id: Mapped[str | None] = mapped_column(String(64), index=True)
    last_name: Mapped[str] = mapped_column(String(128))
    first_name: Mapped[str] = mapped_column(String(128))
    email: Mapped[str] = mapped_column(String(256))


class Insured(Base):
    """An insured person and their rights (world ``insured`` table)."""

    __tablename__ = "insured"

    nir: Mapped[str] = mapped_column(String(15), primary_key=True)
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[int] = mapped_column(SmallInteger)
    last_name: Mapped[str] = mapped_column(String(128))
    first_name: Mapped[str] = mapped_column(String(128))
    department: Mapped[str] = mapped_column(String(3))
    treating_doctor: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("professionals.account_id")
    )
    c2s: Mapped[bool] = mapped_column(Boolean)
    ame: Mapped[bool] = mapped_column(Boolean)
    ald: Mapped[bool] = mapped_column(Boolean)
    email: Mapped[str | None] = mapped_column(String(256))
    street: Mapped[str] = mapped_column(String(256))
    postcode: Mapped[str] = mapped_column(String(10))
    city: Mapped[str] = mapped_column(String(128))


class CareLink(Base):
    """A care relationship known before the data starts (world ``care`` table)."""

    __tablename__ = "care_links"
    __table_args__ = (Index("ix_care_links_nir", "nir"),)

    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("professionals.account_id"), primary_key=True
    )
    nir: Mapped[str] = mapped_column(String(15), ForeignKey("insured.nir"), primary_key=True)
    since: Mapped[date] = mapped_column(Date)


class Account(Base):
    """Login credentials of a professional account.

    ``account_id`` matches ``professionals.account_id`` when the insurer knows
    the professional; an account may be created before its world is loaded, so
    there is no foreign key. ``token_epoch`` is part of every token: bumping it
    revokes them all at once.
    """

    __tablename__ = "accounts"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    login: Mapped[str] = mapped_column(String(128), unique=True)
    profession: Mapped[str | None] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(256))
    totp_secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="active")
    token_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    password_changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
