"""The ``claims`` table: idempotent writes in commit order, and reads by ``seq``.

Writers (a file's ingestion, the stream's consumer) call :func:`lock_for_writing` first
in their transaction. On PostgreSQL a sequence hands out values in the order they are
asked for, not the order transactions commit: a follower reading ``seq > last`` could
pass over a row committed late with a smaller ``seq``, and never see it. A lock that
writers take for their whole transaction (``SHARE ROW EXCLUSIVE`` conflicts with itself
and with plain inserts, never with readers) makes ``seq`` order the commit order. SQLite
has one writer at a time already.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, Row, func, select, text, union
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from rempart.claims.records import ClaimRecord
from rempart.store.models import Account, Claim, Professional

__all__ = [
    "Source",
    "WriteResult",
    "claims_after",
    "known_accounts",
    "last_seq",
    "lock_for_writing",
    "write_claims",
]

Source = Literal["file", "stream"]

_IN_CHUNK = 500
"""Values per ``IN (…)`` list: well under every database's limit of bound parameters."""


@dataclass
class WriteResult:
    new: int = 0
    known: int = 0
    conflicts: list[int] = field(default_factory=list)
    """Indexes (in the records written) of claims whose ``claim_id`` is already in the
    table with another time, account or NIR: not written."""


def lock_for_writing(connection: Connection) -> None:
    """Serialise the writers of ``claims`` until this transaction ends (see the module)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("LOCK TABLE claims IN SHARE ROW EXCLUSIVE MODE"))


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def known_accounts(connection: Connection, account_ids: Iterable[str]) -> set[str]:
    """Those of ``account_ids`` the guard's directory knows: a professional of the loaded
    world, or an account created on its own (``rempart accounts create``)."""
    wanted = sorted(set(account_ids))
    found: set[str] = set()
    for chunk in _chunks(wanted):
        query = union(
            select(Professional.account_id).where(Professional.account_id.in_(chunk)),
            select(Account.account_id).where(Account.account_id.in_(chunk)),
        )
        found.update(connection.execute(query).scalars())
    return found


def write_claims(
    connection: Connection,
    records: Sequence[ClaimRecord],
    *,
    source: Source,
    received_at: datetime,
) -> WriteResult:
    """Insert the claims not in the table yet (``INSERT … ON CONFLICT DO NOTHING``);
    one already there with the same content is counted as known, one whose
    ``claim_id`` is taken by other content is a conflict, and not written. Call
    :func:`lock_for_writing` first, in the same transaction."""
    result = WriteResult()
    ids = [r.claim_id for r in records]
    existing: dict[str, tuple[int, str, str]] = {}
    for chunk in _chunks(ids):
        rows = connection.execute(
            select(Claim.claim_id, Claim.ts_us, Claim.account_id, Claim.nir).where(
                Claim.claim_id.in_(chunk)
            )
        )
        existing.update({row[0]: (row[1], row[2], row[3]) for row in rows})
    fresh: list[dict[str, object]] = []
    for index, record in enumerate(records):
        there = existing.get(record.claim_id)
        if there is None:
            fresh.append(
                {
                    "claim_id": record.claim_id,
                    "ts_us": record.ts_us,
                    "account_id": record.account_id,
                    "nir": record.nir,
                    "source": source,
                    "received_at": received_at,
                }
            )
        elif record.same_content(*there):
            result.known += 1
        else:
            result.conflicts.append(index)
    if fresh:
        insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
        # The lock keeps other writers out; DO NOTHING still makes a writer that skipped
        # it (or a retried transaction) harmless rather than an error.
        connection.execute(insert(Claim).on_conflict_do_nothing(index_elements=["claim_id"]), fresh)
    result.new = len(fresh)
    return result


def last_seq(connection: Connection) -> int:
    """The largest ``seq`` in the table (0 when empty)."""
    return int(connection.execute(select(func.coalesce(func.max(Claim.seq), 0))).scalar_one())


def claims_after(
    connection: Connection,
    seq: int,
    *,
    limit: int,
    up_to: int | None = None,
    since_us: int | None = None,
) -> Sequence[Row[int, int, str, str]]:
    """Rows ``(seq, ts_us, account_id, nir)`` with ``seq`` after ``seq`` (and at most
    ``up_to``; stamped at or after ``since_us``), in ``seq`` order, ``limit`` at most."""
    query = select(Claim.seq, Claim.ts_us, Claim.account_id, Claim.nir).where(Claim.seq > seq)
    if up_to is not None:
        query = query.where(Claim.seq <= up_to)
    if since_us is not None:
        query = query.where(Claim.ts_us >= since_us)
    return connection.execute(query.order_by(Claim.seq).limit(limit)).all()
