"""The audit trail on SQLite and PostgreSQL: no audit no data, tamper evidence, concurrency."""

from __future__ import annotations

import multiprocessing
import re
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, func, insert, select, text, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from rempart.api import create_app
from rempart.audit.chain import AuditEntry, CheckpointSigner, entry_hash
from rempart.audit.export import export_trail, verify_export
from rempart.audit.history import access_history
from rempart.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from rempart.audit.retention import archive_before
from rempart.audit.trail import SqlAuditTrail, now_us
from rempart.audit.verify import verify_database
from rempart.cli import app
from rempart.config import load_settings
from rempart.services import Services
from tests.conftest import FAST_HASHING
from tests.functional.conftest import Login, Person, log_in

SEED = b"test-audit-signing-key-seed-0123456789"


def trail(services: Services, every: int = 5) -> SqlAuditTrail:
    return SqlAuditTrail(
        services.audit_engine, CheckpointSigner(SEED), shards=3, checkpoint_every=every
    )


def append_lookups(audit: SqlAuditTrail, count: int, account: str = "PS1") -> None:
    for i in range(count):
        audit.append(
            [
                AuditEntry(
                    seq=0,
                    ts_us=now_us(),
                    event="lookup",
                    account_id=account,
                    subject=f"pseudonym-{i}",
                    found=1,
                    categories="nir,identity",
                    outcome="ok",
                )
            ]
        )


def verify(services: Services, *, incremental: bool = False) -> list[str]:
    report = verify_database(
        services.audit_engine, CheckpointSigner(SEED).verifier(), incremental=incremental
    )
    return [str(p) for p in report.problems]


def first_shard(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(
                select(AuditEvent.shard)
                .group_by(AuditEvent.shard)
                .order_by(func.count().desc())
                .limit(1)
            )
            or 0
        )


def test_an_intact_trail_verifies(services: Services) -> None:
    audit = trail(services)
    append_lookups(audit, 23)
    report = verify_database(services.audit_engine, CheckpointSigner(SEED).verifier())
    assert report.ok
    assert report.entries == 23
    assert report.checkpoints >= 1


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("alter", "entry 3: was altered"),
        ("delete", "entry 3: entry is missing"),
        ("swap", "entry 2: "),
        ("insert", "entry 4: does not link"),
        ("forge_checkpoint", "entry 5: checkpoint signature is invalid"),
        ("cut_tail", "is missing"),
    ],
)
def test_tampering_is_detected_and_located(services: Services, tamper: str, expected: str) -> None:
    audit = trail(services)
    append_lookups(audit, 30)
    engine = services.audit_engine
    shard = first_shard(engine)
    where = AuditEvent.shard == shard
    with engine.begin() as connection:
        count = connection.scalar(select(func.count()).where(where)) or 0
        assert count >= 6
        if tamper == "alter":
            connection.execute(
                update(AuditEvent).where(where, AuditEvent.seq == 3).values(account_id="PS9")
            )
        elif tamper == "delete":
            connection.execute(delete(AuditEvent).where(where, AuditEvent.seq == 3))
        elif tamper == "swap":
            two, three = (
                connection.execute(
                    select(AuditEvent.subject).where(where, AuditEvent.seq == s)
                ).scalar_one()
                for s in (2, 3)
            )
            connection.execute(
                update(AuditEvent).where(where, AuditEvent.seq == 2).values(subject=three)
            )
            connection.execute(
                update(AuditEvent).where(where, AuditEvent.seq == 3).values(subject=two)
            )
        elif tamper == "insert":
            # Room at 3 for a forged entry linking to 2: entry 4 (the old 3) no longer links.
            for seq in range(count, 2, -1):
                connection.execute(
                    update(AuditEvent).where(where, AuditEvent.seq == seq).values(seq=seq + 1)
                )
            previous = connection.execute(
                select(AuditEvent.hash).where(where, AuditEvent.seq == 2)
            ).scalar_one()
            forged = AuditEntry(seq=3, ts_us=now_us(), event="lookup", account_id="PS1")
            connection.execute(
                insert(AuditEvent).values(
                    **dict(zip(AuditEntry.__dataclass_fields__, forged.row(), strict=True)),
                    shard=shard,
                    prev_hash=previous,
                    hash=entry_hash(previous, forged.row()),
                )
            )
        elif tamper == "forge_checkpoint":
            connection.execute(
                update(AuditCheckpoint)
                .where(AuditCheckpoint.shard == shard, AuditCheckpoint.seq == 5)
                .values(signature=bytes(64))
            )
        elif tamper == "cut_tail":
            connection.execute(delete(AuditEvent).where(where, AuditEvent.seq > 2))
    problems = verify(services)
    assert len(problems) == 1, problems
    assert f"shard {shard}, " in problems[0]
    assert expected in problems[0]


def test_incremental_verification_starts_at_the_last_good_checkpoint(services: Services) -> None:
    audit = trail(services)
    append_lookups(audit, 20)
    assert verify(services) == []
    engine = services.audit_engine
    shard = first_shard(engine)
    with engine.begin() as connection:
        # Damage before the verified checkpoint: an incremental check does not re-read it...
        connection.execute(
            update(AuditEvent)
            .where(AuditEvent.shard == shard, AuditEvent.seq == 1)
            .values(outcome="x")
        )
    append_lookups(audit, 10)
    assert verify(services, incremental=True) == []
    # ...a full verification does.
    assert any("entry 1: was altered" in p for p in verify(services))


def test_lookups_are_audited_without_raw_nir(
    client: TestClient, services: Services, people: list[Person], pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    auth = {"Authorization": f"Bearer {token}", "User-Agent": "LGC-Test/1.0"}
    person = people[0]
    found = client.post(
        "/api/v1/rights/lookup",
        json={"nir": person.nir.value, "birth_date": person.birth_date.isoformat()},
        headers=auth,
    )
    assert found.status_code == 200
    client.post(
        "/api/v1/rights/lookup",
        json={"nir": person.nir.value, "birth_date": "1900-01-01"},
        headers=auth,
    )
    client.post(
        "/api/v1/rights/lookup", json={"nir": "123", "birth_date": "1900-01-01"}, headers=auth
    )
    with Session(services.audit_engine) as session:
        rows = (
            session.execute(
                select(AuditEvent).where(AuditEvent.event == "lookup").order_by(AuditEvent.ts_us)
            )
            .scalars()
            .all()
        )
    with services.audit_engine.connect() as connection:
        dump = " ".join(
            str(r) for r in connection.execute(text("SELECT * FROM audit_events")).all()
        )
    assert [(r.found, r.outcome) for r in rows] == [
        (1, "ok"),
        (0, "not_found"),
        (-1, "invalid_nir"),
    ]
    first = rows[0]
    assert first.account_id == pharmacist.account_id
    assert first.categories == "nir,identity,treating_doctor,c2s,ame,ald"
    assert first.user_agent == "LGC-Test/1.0"
    assert first.acr == "password+totp"
    assert rows[0].subject == rows[1].subject != ""
    assert person.nir.value not in dump
    assert person.nir.value[:13] not in dump


def test_no_audit_no_data(
    client: TestClient, services: Services, people: list[Person], pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    # The same service, but its audit database (named apart) cannot be reached.
    settings = load_settings(
        database_url=services.settings.database_url,
        audit_database_url="postgresql://postgres@127.0.0.1:1/nowhere",
        data_dir=services.settings.resolved_data_dir,
        **FAST_HASHING,
    )
    person = people[0]
    with TestClient(create_app(services=Services(settings))) as broken:
        lookup = broken.post(
            "/api/v1/rights/lookup",
            json={"nir": person.nir.value, "birth_date": person.birth_date.isoformat()},
            headers={"Authorization": f"Bearer {token}"},
        )
        login = broken.post(
            "/api/v1/auth/login", json={"login": pharmacist.login, "password": pharmacist.password}
        )
    assert lookup.status_code == 503
    assert lookup.json()["error"] == "audit_unavailable"
    assert person.last_name not in lookup.text
    # No audit record, no login either.
    assert login.status_code == 503
    assert login.json()["error"] == "audit_unavailable"


def _writer(url: str, data_dir: str, account: str, count: int) -> None:
    services = Services(load_settings(database_url=url, data_dir=Path(data_dir)))
    audit = SqlAuditTrail(
        services.audit_engine, CheckpointSigner(SEED), shards=3, checkpoint_every=7
    )
    append_lookups(audit, count, account=account)
    services.close()


def test_concurrent_writer_processes_never_fork_a_chain(services: Services, tmp_path: Path) -> None:
    trail(services).ensure_heads()
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(
            target=_writer,
            args=(services.settings.database_url, str(tmp_path / "data"), f"PS{i}", 40),
        )
        for i in range(4)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    with services.audit_engine.connect() as connection:
        total = connection.scalar(select(func.count()).select_from(AuditEvent))
        heads = connection.execute(select(AuditHead.shard, AuditHead.seq)).all()
    assert total == 160
    assert sum(seq for _, seq in heads) == 160
    assert verify(services) == []


def test_authentication_events_go_through_the_same_trail(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    client.post("/api/v1/auth/login", json={"login": "nobody.here", "password": "wrong one 123"})
    client.post("/api/v1/auth/login", json={"login": pharmacist.login, "password": "wrong one 123"})
    log_in(client, pharmacist)
    with services.audit_engine.connect() as connection:
        events = connection.execute(
            select(AuditEvent.event, AuditEvent.reasons, AuditEvent.account_id, AuditEvent.subject)
            .where(AuditEvent.event != "lookup")
            .order_by(AuditEvent.ts_us)
        ).all()
    assert [(e.event, e.reasons) for e in events] == [
        ("account_created", ""),
        ("login_failed", "unknown_login"),
        ("login_failed", "wrong_password"),
        ("login_password_ok", ""),
        ("login_succeeded", "totp"),
    ]
    assert events[2].account_id == pharmacist.account_id
    assert events[2].subject == events[3].subject != ""
    assert pharmacist.login not in str(events)
    assert verify(services) == []


def test_an_export_verifies_on_its_own_and_tampering_shows(
    services: Services, tmp_path: Path
) -> None:
    audit = trail(services)
    append_lookups(audit, 25)
    verifier = CheckpointSigner(SEED).verifier()
    out = tmp_path / "export"
    summary = export_trail(services.audit_engine, out, verifier)
    assert summary.entries == 25
    assert (out / "manifest.json").exists()
    assert list(out.glob("day=*/part-*.parquet"))
    report = verify_export(out, verifier)
    assert report.ok
    assert report.entries == 25
    assert report.unanchored == []
    # Alter one value in the Parquet copy: the export alone shows where.
    part = next(out.glob("day=*/part-*.parquet"))
    table = pq.read_table(part)
    subjects = table.column("subject").to_pylist()
    subjects[4] = "someone-else"
    pq.write_table(
        table.set_column(table.schema.get_field_index("subject"), "subject", pa.array(subjects)),
        part,
    )
    broken = verify_export(out, verifier)
    assert not broken.ok
    assert "was altered" in str(broken.problems[0])


def test_an_empty_range_exports_a_valid_empty_export(services: Services, tmp_path: Path) -> None:
    append_lookups(trail(services), 3)
    verifier = CheckpointSigner(SEED).verifier()
    out = tmp_path / "empty"
    summary = export_trail(
        services.audit_engine,
        out,
        verifier,
        since=datetime(2001, 1, 1, tzinfo=UTC),
        until=datetime(2001, 1, 2, tzinfo=UTC),
    )
    assert summary.entries == 0
    report = verify_export(out, verifier)
    assert report.ok
    assert report.entries == 0


def test_cli_export_and_verify(services: Services, tmp_path: Path) -> None:
    services.audit.append(
        [AuditEntry(seq=0, ts_us=now_us(), event="lookup", account_id="PS1", outcome="ok")]
    )
    env = {
        "REMPART_DATABASE_URL": services.settings.database_url,
        "REMPART_DATA_DIR": str(services.settings.resolved_data_dir),
    }
    runner = CliRunner()
    verified = runner.invoke(app, ["audit", "verify", "--jobs", "1"], env=env)
    assert verified.exit_code == 0, verified.output
    assert "audit trail intact" in verified.output
    assert runner.invoke(app, ["audit", "checkpoint"], env=env).exit_code == 0
    out = tmp_path / "export"
    exported = runner.invoke(app, ["audit", "export", "--out", str(out)], env=env)
    assert exported.exit_code == 0, exported.output
    again = runner.invoke(app, ["audit", "verify", "--export", str(out)], env=env)
    assert again.exit_code == 0, again.output
    with services.audit_engine.begin() as connection:
        connection.execute(update(AuditEvent).values(outcome="forged"))
    broken = runner.invoke(app, ["audit", "verify", "--jobs", "1"], env=env)
    assert broken.exit_code == 1
    assert re.search(r"BROKEN shard \d+, entry 1: was altered", broken.output)


def test_access_history_lists_who_read_a_person_and_is_itself_audited(
    client: TestClient, services: Services, people: list[Person], pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    person = people[0]
    for birth_date in (person.birth_date.isoformat(), "1900-01-01"):
        client.post(
            "/api/v1/rights/lookup",
            json={"nir": person.nir.value, "birth_date": birth_date},
            headers={"Authorization": f"Bearer {token}"},
        )
    accesses = access_history(
        nir=person.nir,
        audit_engine=services.audit_engine,
        data_engine=services.engine,
        audit=services.audit,
        pseudonym_key=services.settings.keys.pseudonym_key,
        operator="dpo",
    )
    assert [(a.account_id, a.found, a.outcome) for a in accesses] == [
        (pharmacist.account_id, True, "ok"),
        (pharmacist.account_id, False, "not_found"),
    ]
    assert accesses[0].categories == ("nir", "identity", "treating_doctor", "c2s", "ame", "ald")
    with services.audit_engine.connect() as connection:
        recorded = connection.scalar(
            select(func.count()).where(
                AuditEvent.event == "access_history", AuditEvent.account_id == "operator:dpo"
            )
        )
    assert recorded == 1
    env = {
        "REMPART_DATABASE_URL": services.settings.database_url,
        "REMPART_DATA_DIR": str(services.settings.resolved_data_dir),
    }
    shown = CliRunner().invoke(
        app, ["audit", "history", "--nir-stdin", "--json"], input=person.nir.value + "\n", env=env
    )
    assert shown.exit_code == 0, shown.output
    assert pharmacist.account_id in shown.stdout
    assert person.nir.value not in shown.stdout


def test_retention_archives_old_entries_and_the_chain_still_verifies(
    services: Services, tmp_path: Path
) -> None:
    audit = trail(services, every=1000)
    append_lookups(audit, 12)
    cutoff = datetime.now(UTC)
    append_lookups(audit, 5)
    signer = CheckpointSigner(SEED)
    archived = archive_before(services.audit_engine, cutoff, tmp_path / "archive", signer)
    assert archived.entries == 12
    with services.audit_engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(AuditEvent)) == 5
    assert verify(services) == []
    assert verify_export(tmp_path / "archive", signer.verifier()).ok
    # A second archive joins the first one; the live chain still verifies.
    append_lookups(audit, 3)
    archive_before(services.audit_engine, datetime.now(UTC), tmp_path / "archive2", signer)
    assert verify(services) == []
    second = verify_export(tmp_path / "archive2", signer.verifier())
    assert second.ok
    assert second.unanchored == []
    assert second.entries == 8


def test_a_first_append_that_rolls_back_leaves_the_trail_usable(services: Services) -> None:
    """The shard heads are made in a transaction of their own: a first writer whose own
    transaction rolls back cannot take them with it (and leave every later append failing)."""
    fresh = trail(services)
    with services.sessions() as session:
        entry = AuditEntry(seq=0, ts_us=now_us(), event="lookup", account_id="PS1")
        fresh.append([entry], session=session)
        session.rollback()
    later = AuditEntry(seq=0, ts_us=now_us(), event="lookup", account_id="PS2")
    [appended] = fresh.append([later])
    assert appended.seq == 1
    assert verify(services) == []
