"""``rempart claims ingest FILE``: Parquet (the world format as it is) and CSV, on SQLite
and PostgreSQL; twice changes nothing; one bad row and nothing is written, every
problem listed with its row, column and code."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from rempart.claims.ingest import ClaimsRejected, ingest_file
from rempart.claims.records import ClaimCode, claim_key, timestamp_us
from rempart.cli import app
from rempart.config import Settings
from rempart.nir import make_nir
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Claim, Professional
from rempart.world.schema import CLAIMS

runner = CliRunner()
BASE = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
NIRS = [
    make_nir(sex=1 + i % 2, year=70 + i, month=1 + i, department="75", commune="056", order=i + 1)
    for i in range(6)
]


@pytest.fixture
def accounts(services: Services) -> list[str]:
    ids = ["ph-port-1", "ph-port-2"]
    with session_scope(services.sessions) as session:
        for account_id in ids:
            session.add(
                Professional(
                    account_id=account_id,
                    rpps=None,
                    profession="pharmacie",
                    department="83",
                    organization_id="org-port",
                    last_name="Port",
                    first_name="Pharmacie",
                    email=f"{account_id}@officine.example",
                )
            )
    return ids


def _env(settings: Settings) -> dict[str, str]:
    return {
        "REMPART_DATABASE_URL": settings.database_url,
        "REMPART_DATA_DIR": str(settings.data_dir),
    }


def world_claims(path: Path, accounts: list[str], rows: int = 6) -> Path:
    """A world's ``claims.parquet``: ts (timestamp UTC), account_id, nir; no claim_id."""
    table = pa.Table.from_pydict(
        {
            "ts": [BASE + timedelta(hours=i) for i in range(rows)],
            "account_id": [accounts[i % 2] for i in range(rows)],
            "nir": [NIRS[i % len(NIRS)].value for i in range(rows)],
        },
        schema=CLAIMS,
    )
    pq.write_table(table, path)
    return path


def stored(services: Services) -> list[tuple[str, int, str, str, str]]:
    with session_scope(services.sessions) as session:
        rows = session.execute(
            select(Claim.claim_id, Claim.ts_us, Claim.account_id, Claim.nir, Claim.source).order_by(
                Claim.seq
            )
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_a_worlds_claims_file_ingests_as_it_is_and_twice_changes_nothing(
    settings: Settings, services: Services, accounts: list[str], tmp_path: Path
) -> None:
    path = world_claims(tmp_path / "claims.parquet", accounts)
    first = runner.invoke(app, ["claims", "ingest", str(path), "--json"], env=_env(settings))
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {"read": 6, "new": 6, "known": 0, "repeated": 0}
    rows = stored(services)
    assert len(rows) == 6
    # Without a claim_id column the key is the documented SHA-256 of account, NIR and time.
    ts0 = timestamp_us(BASE)
    assert rows[0] == (
        claim_key(accounts[0], NIRS[0].value, ts0),
        ts0,
        accounts[0],
        NIRS[0].value,
        "file",
    )

    again = runner.invoke(app, ["claims", "ingest", str(path)], env=_env(settings))
    assert again.exit_code == 0, again.output
    assert "6 read, 0 new, 6 already known" in again.stdout
    assert stored(services) == rows


def test_csv_with_claim_ids_and_offsets(
    services: Services, accounts: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "factures.csv"
    path.write_text(
        "claim_id,ts,account_id,nir\n"
        f"F-1,2025-03-10T10:15:00+01:00,{accounts[0]},{NIRS[0].value}\n"
        f"F-2,2025-03-10T09:20:00Z,{accounts[1]},{NIRS[1].value}\n"
        # The same claim twice in one export (a retried extraction): taken once.
        f"F-2,2025-03-10T09:20:00Z,{accounts[1]},{NIRS[1].value}\n"
        # No id in this row: the derived key.
        f",2025-03-10T11:00:00+00:00,{accounts[0]},{NIRS[2].value}\n",
        encoding="utf-8",
    )
    report = ingest_file(services.engine, path)
    assert report.to_json() == {"read": 4, "new": 3, "known": 0, "repeated": 1}
    rows = stored(services)
    assert [r[0] for r in rows[:2]] == ["F-1", "F-2"]
    assert rows[0][1] == timestamp_us(datetime(2025, 3, 10, 9, 15, tzinfo=UTC))
    assert rows[2][0] == claim_key(accounts[0], NIRS[2].value, rows[2][1])
    assert ingest_file(services.engine, path).to_json() == {
        "read": 4,
        "new": 0,
        "known": 3,
        "repeated": 1,
    }


def test_one_bad_row_and_nothing_is_ingested_every_problem_listed(
    settings: Settings, services: Services, accounts: list[str], tmp_path: Path
) -> None:
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    bad_key = NIRS[3].value[:13] + ("00" if NIRS[3].value[13:] != "00" else "01")
    path = tmp_path / "factures.csv"
    path.write_text(
        "claim_id,ts,account_id,nir\n"
        f"F-1,2025-03-10T10:15:00+01:00,{accounts[0]},{NIRS[0].value}\n"  # row 1: good
        f"F-2,2025-03-10 10:15,{accounts[0]},{NIRS[1].value}\n"  # row 2: no offset
        f"F-3,2025-03-10T10:15:00+01:00,{accounts[0]},{bad_key}\n"  # row 3: bad NIR key
        f"F-4,2025-03-10T10:15:00+01:00,ph-nowhere,{NIRS[2].value}\n"  # row 4: unknown
        f"F-1,2025-03-11T10:15:00+01:00,{accounts[0]},{NIRS[0].value}\n"  # row 5: same id
        f"F-6,{future},{accounts[1]},{NIRS[4].value}\n"  # row 6: in the future
        f"F-7,,{accounts[1]},{NIRS[5].value}\n",  # row 7: empty ts
        encoding="utf-8",
    )
    with pytest.raises(ClaimsRejected) as caught:
        ingest_file(services.engine, path)
    found = [(p.row, p.column, p.code) for p in caught.value.problems]
    assert found == [
        (2, "ts", ClaimCode.BAD_TIMESTAMP),
        (3, "nir", ClaimCode.BAD_NIR),
        (4, "account_id", ClaimCode.UNKNOWN_ACCOUNT),
        (5, "claim_id", ClaimCode.DUPLICATE_IN_FILE),
        (6, "ts", ClaimCode.FUTURE),
        (7, "ts", ClaimCode.MISSING_VALUE),
    ]
    assert caught.value.total == 6
    assert stored(services) == []
    # The NIR is never quoted back (problems may be mailed, pasted, logged).
    assert all(bad_key not in p.detail for p in caught.value.problems)

    result = runner.invoke(app, ["claims", "ingest", str(path), "--show", "3"], env=_env(settings))
    assert result.exit_code == 1
    assert "row 2, ts: [claims_bad_timestamp]" in result.stderr
    assert "row 3, nir: [claims_bad_nir] nir_key" in result.stderr
    assert "… and 3 more problem(s)" in result.stderr
    assert "[claims_rejected] 6 problem(s): nothing ingested" in result.stderr
    assert bad_key not in result.output
    assert stored(services) == []


def test_a_claim_id_known_with_other_content_rejects_the_whole_file(
    services: Services, accounts: list[str], tmp_path: Path
) -> None:
    first = tmp_path / "a.csv"
    first.write_text(
        f"claim_id,ts,account_id,nir\nF-1,2025-03-10T10:15:00Z,{accounts[0]},{NIRS[0].value}\n"
    )
    ingest_file(services.engine, first)
    second = tmp_path / "b.csv"
    second.write_text(
        "claim_id,ts,account_id,nir\n"
        f"F-9,2025-03-10T10:15:00Z,{accounts[0]},{NIRS[1].value}\n"
        f"F-1,2025-03-12T10:15:00Z,{accounts[0]},{NIRS[0].value}\n"
    )
    with pytest.raises(ClaimsRejected) as caught:
        ingest_file(services.engine, second)
    assert [(p.row, p.code) for p in caught.value.problems] == [(2, ClaimCode.CONFLICTS_WITH_KNOWN)]
    assert [r[0] for r in stored(services)] == ["F-1"]  # F-9 rolled back with the rest


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("claims.json", b"{}", "claims_unsupported_format"),
        ("claims.parquet", b"not parquet", "claims_unreadable_file"),
        ("claims.csv", b"ts,nir\n", "claims_missing_column"),
        ("claims.csv", b"\xff\xfe\x00bad", "claims_unreadable_file"),
    ],
)
def test_files_that_are_not_claims(
    settings: Settings, services: Services, tmp_path: Path, name: str, content: bytes, code: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = runner.invoke(app, ["claims", "ingest", str(path), "--json"], env=_env(settings))
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["error"] == "claims_rejected"
    assert body["problems"][0]["code"] == code
    assert body["problems"][0]["row"] is None


def test_naive_parquet_timestamps_are_refused(
    services: Services, accounts: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "claims.parquet"
    pq.write_table(
        pa.table(
            {
                "ts": pa.array([1_741_597_200_000_000], pa.timestamp("us")),  # no zone
                "account_id": [accounts[0]],
                "nir": [NIRS[0].value],
            }
        ),
        path,
    )
    with pytest.raises(ClaimsRejected) as caught:
        ingest_file(services.engine, path)
    assert caught.value.problems[0].code == ClaimCode.BAD_TIMESTAMP
    with services.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Claim)).scalar() == 0
