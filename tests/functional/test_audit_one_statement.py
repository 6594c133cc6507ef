"""The single-entry append on PostgreSQL, one statement hashing in SQL: its hash is the
canonical encoding's (``rempart audit verify`` agrees) for any field values, it waits
for a busy head and chains after it, and its checkpoints follow it."""

from __future__ import annotations

import operator
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, String, func, select, text
from sqlalchemy.orm import Session
from structlog.testing import capture_logs

from rempart.audit.chain import FIELD_NAMES, AuditEntry, CheckpointSigner, clean, entry_hash
from rempart.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from rempart.audit.trail import Appended, AuditUnavailable, SqlAuditTrail, now_us
from rempart.audit.verify import verify_database
from rempart.store.engine import make_engine
from rempart.store.migrate import upgrade
from tests.pg_wire import traced

pytestmark = pytest.mark.postgres

SIGNER = CheckpointSigner(b"test-audit-one-statement-seed-0123456789")
_INTS = {"seq", "ts_us", "found"}
_TEXT_FIELDS = [name for name in FIELD_NAMES if name not in _INTS]
_COLUMN_LENGTH = {
    c.name: c.type.length or 0 for c in AuditEvent.__table__.columns if isinstance(c.type, String)
}
_STORED = [getattr(AuditEvent, name) for name in FIELD_NAMES]


@contextmanager
def fresh_schema(url: str) -> Iterator[Engine]:
    """The audit tables, migrated, in a schema of their own (first on the search path)."""
    name = f"audit_one_{secrets.token_hex(4)}"
    admin = make_engine(url, pool_size=1)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    engine = make_engine(url, pool_size=6, connect_args={"options": f"-c search_path={name}"})
    try:
        upgrade(engine, schema="audit")
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="module")
def shared_audit(pg_database: str) -> Iterator[Engine]:
    with fresh_schema(pg_database) as engine:
        yield engine


@pytest.fixture
def audit_engine(pg_database: str) -> Iterator[Engine]:
    with fresh_schema(pg_database) as engine:
        yield engine


@contextmanager
def autocommit(engine: Engine) -> Iterator[Connection]:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        yield connection


@contextmanager
def statements_on(connection: Connection) -> Iterator[list[str]]:
    """The statements sent on ``connection``, as libpq saw them go (by SQLAlchemy or by
    psycopg directly); the list is filled when the block ends."""
    sent: list[str] = []
    driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
    with traced(driver) as trace:
        yield sent
    sent.extend(m for m in trace.messages if m in ("F Execute", "F Query"))


def entry(n: int = 0, event_name: str = "lookup") -> AuditEntry:
    return AuditEntry(
        seq=0, ts_us=now_us(), event=event_name, account_id=f"PS{n}", subject=f"pseudonym-{n}"
    )


def verified(engine: Engine) -> list[str]:
    return [str(p) for p in verify_database(engine, SIGNER.verifier()).problems]


def stored(connection: Connection, appended: Appended) -> tuple[tuple[object, ...], bytes, bytes]:
    row = connection.execute(
        select(*_STORED, AuditEvent.prev_hash, AuditEvent.hash).where(
            AuditEvent.shard == appended.shard, AuditEvent.seq == appended.seq
        )
    ).one()
    values = tuple(row)
    return values[: len(FIELD_NAMES)], bytes(row.prev_hash), bytes(row.hash)


# -- the hash computed in SQL is the canonical encoding's, for any values -------------

_CHARS = st.one_of(
    st.characters(),  # every plane, astral ones included, but no lone surrogate
    st.integers(0xD800, 0xDFFF).map(chr),
    st.sampled_from("\x1f\x00\U0001f600\U0010ffff\ufffd\\'\":,;%\n\r\t "),
)
_FIELD_TEXT = st.one_of(
    st.text(_CHARS, max_size=24),
    # Past every column's length (the longest is 256): stored cut, hashed as stored.
    st.builds(operator.mul, st.text(_CHARS, min_size=1, max_size=4), st.integers(60, 300)),
)
_BIGINT = st.integers(-(2**63), 2**63 - 1)


@st.composite
def entries(draw: st.DrawFn) -> AuditEntry:
    texts = {name: draw(_FIELD_TEXT) for name in _TEXT_FIELDS}
    return AuditEntry(
        seq=draw(_BIGINT),  # assigned by the trail: whatever the caller put is ignored
        ts_us=draw(_BIGINT),
        found=draw(st.sampled_from((-1, 0, 1))),
        **texts,
    )


def expected_row(given: AuditEntry, seq: int) -> tuple[object, ...]:
    return tuple(
        seq
        if name == "seq"
        else value
        if name in _INTS
        else clean(str(value), _COLUMN_LENGTH[name])
        for name, value in zip(FIELD_NAMES, given.row(), strict=True)
    )


@settings(max_examples=150, deadline=None)
@given(batch=st.lists(entries(), min_size=1, max_size=2), on_autocommit=st.booleans())
def test_any_entry_is_stored_as_hashed_and_the_trail_verifies(
    shared_audit: Engine, batch: list[AuditEntry], on_autocommit: bool
) -> None:
    """One entry goes through the one-statement append (hashed by PostgreSQL), two through
    the batch path (hashed in Python); both must give what the verifier recomputes."""
    trail = SqlAuditTrail(shared_audit, SIGNER, shards=3, checkpoint_every=5)
    if on_autocommit:
        with autocommit(shared_audit) as connection:
            appended = trail.append(batch, session=Session(bind=connection))
    else:
        appended = trail.append(batch)
    with shared_audit.connect() as connection:
        for given_entry, done in zip(batch, appended, strict=True):
            row, previous, digest = stored(connection, done)
            assert row == expected_row(given_entry, done.seq)
            assert digest == entry_hash(previous, row)  # type: ignore[arg-type]
    assert verified(shared_audit) == []


# -- one statement, its checkpoint, its session -----------------------------------------


def test_on_an_autocommit_connection_an_entry_is_one_statement(audit_engine: Engine) -> None:
    trail = SqlAuditTrail(audit_engine, SIGNER, shards=1, checkpoint_every=5)
    trail.ensure_heads()
    with autocommit(audit_engine) as connection, statements_on(connection) as sent:
        for n in range(10):
            trail.append([entry(n)], session=Session(bind=connection))
    # One statement per entry, and the checkpoint's right after entries 5 and 10.
    assert len(sent) == 12
    with audit_engine.connect() as connection:
        checkpoints = connection.scalars(select(AuditCheckpoint.seq).order_by("seq")).all()
        head = connection.execute(select(AuditHead.seq, AuditHead.hash)).one()
        last = connection.scalar(select(AuditEvent.hash).where(AuditEvent.seq == 10))
    assert checkpoints == [5, 10]
    assert (head.seq, bytes(head.hash)) == (10, last)
    assert verified(audit_engine) == []


def test_a_session_on_an_autocommit_connection_appends_on_it(audit_engine: Engine) -> None:
    trail = SqlAuditTrail(audit_engine, SIGNER, shards=2)
    trail.ensure_heads()
    with autocommit(audit_engine) as connection, statements_on(connection) as sent:
        session = Session(bind=connection)
        [done] = trail.append([entry()], session=session)
        session.rollback()  # too late: the statement committed as it returned
        session.close()
    assert len(sent) == 1
    with audit_engine.connect() as connection:
        assert stored(connection, done)[0][FIELD_NAMES.index("account_id")] == "PS0"
    assert verified(audit_engine) == []


def test_with_every_head_busy_an_append_waits_and_chains_after_the_committed_one(
    audit_engine: Engine,
) -> None:
    trail = SqlAuditTrail(audit_engine, SIGNER, shards=2)
    trail.ensure_heads()
    holders = [audit_engine.connect(), audit_engine.connect()]
    try:
        held = []
        for n, holder in enumerate(holders):
            holder.begin()
            held.extend(trail.append([entry(n)], session=Session(bind=holder)))
        assert {a.shard for a in held} == {0, 1}  # SKIP LOCKED: each took a free head

        waited: list[Appended] = []
        writer = threading.Thread(target=lambda: waited.extend(trail.append([entry(2)])))
        writer.start()
        # Autocommit: pg_stat_activity is read once per transaction.
        with autocommit(audit_engine) as observer:
            deadline = time.monotonic() + 30
            while not observer.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ):
                assert time.monotonic() < deadline, "the third append never waited for a head"
                time.sleep(0.02)
        for holder in holders:
            holder.commit()
        writer.join(timeout=30)
    finally:
        for holder in holders:
            holder.close()
    # After the wait, the locked row is the committed one: the entry chains after it.
    [after] = waited
    assert after.seq == 2
    with audit_engine.connect() as connection:
        _row, previous, _digest = stored(connection, after)
        before = stored(connection, Appended(shard=after.shard, seq=1))[2]
    assert previous == before
    assert verified(audit_engine) == []


# -- what a failure leaves -------------------------------------------------------------


def refuse_inserts(engine: Engine, table: str, when: str = "true") -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
                f" $$ BEGIN IF {when} THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$"
            )
        )
        connection.execute(
            text(
                f"CREATE TRIGGER refuse BEFORE INSERT ON {table}"
                " FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        )


def allow_inserts(engine: Engine, table: str) -> None:
    with engine.begin() as connection:
        connection.execute(text(f"DROP TRIGGER refuse ON {table}"))


def test_a_checkpoint_that_fails_after_a_committed_entry_is_logged_not_raised(
    audit_engine: Engine,
) -> None:
    trail = SqlAuditTrail(audit_engine, SIGNER, shards=1, checkpoint_every=2)
    trail.ensure_heads()
    refuse_inserts(audit_engine, "audit_checkpoints")
    with autocommit(audit_engine) as connection, capture_logs() as logs:
        appended = [trail.append([entry(n)], session=Session(bind=connection))[0] for n in range(3)]
    assert [a.seq for a in appended] == [1, 2, 3]
    failed = [line for line in logs if line["event"] == "audit_checkpoint_failed"]
    # Where, and the error's type: no hash, no signature, no statement.
    assert [(line["shard"], line["seq"], line["log_level"]) for line in failed] == [(0, 2, "error")]
    assert set(failed[0]) == {"event", "shard", "seq", "error_type", "log_level"}
    allow_inserts(audit_engine, "audit_checkpoints")
    assert verified(audit_engine) == []
    assert trail.checkpoint_heads() == 1  # the gap is covered by signing the head
    assert verified(audit_engine) == []


def test_in_a_transaction_a_failing_checkpoint_takes_its_entry_with_it(
    audit_engine: Engine,
) -> None:
    trail = SqlAuditTrail(audit_engine, SIGNER, shards=1, checkpoint_every=2)
    trail.append([entry(1)])
    refuse_inserts(audit_engine, "audit_checkpoints")
    with pytest.raises(AuditUnavailable):
        trail.append([entry(2)])
    with audit_engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(AuditEvent)) == 1
        assert connection.scalar(select(AuditHead.seq)) == 1
    allow_inserts(audit_engine, "audit_checkpoints")
    assert [a.seq for a in trail.append([entry(2)])] == [2]
    assert verified(audit_engine) == []


def test_a_batch_on_an_autocommit_connection_is_still_all_or_nothing(
    audit_engine: Engine,
) -> None:
    """A batch takes several statements: on an AUTOCOMMIT connection each would commit on
    its own, and a failed insert would leave the head moved past entries never written."""
    trail = SqlAuditTrail(audit_engine, SIGNER, shards=1)
    refuse_inserts(audit_engine, "audit_events", when="NEW.event = 'boom'")
    with autocommit(audit_engine) as connection:
        session = Session(bind=connection)
        with pytest.raises(AuditUnavailable):
            trail.append([entry(1), entry(2, event_name="boom")], session=session)
        with audit_engine.connect() as reader:
            assert reader.scalar(select(AuditHead.seq)) == 0
        assert [a.seq for a in trail.append([entry(3), entry(4)], session=session)] == [1, 2]
    assert verified(audit_engine) == []
