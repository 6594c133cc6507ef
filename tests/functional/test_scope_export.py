"""Scoping from a Parquet audit export: the DuckDB reading equals the reference predicate.

A real trail (``SqlAuditTrail``, chained and checkpointed) of lookups answered,
refused and not found, by several accounts, sessions and IPv4 / IPv6 addresses over
three days, is exported with ``export_trail``; each definition's reading from the
export is compared with a brute-force reading of the same entries made with
``reading.matches`` and ``is_exposure``, entry by entry in Python.
"""

from __future__ import annotations

import random
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from rempart.audit.chain import CATEGORIES, AuditEntry, CheckpointSigner
from rempart.audit.export import export_trail
from rempart.audit.models import AuditEvent
from rempart.audit.trail import SqlAuditTrail
from rempart.incident.definition import (
    AccountElement,
    AlertElement,
    Definition,
    NetworkElement,
)
from rempart.incident.export_source import (
    ExportSource,
    ExportUnreadable,
    ExportUnverified,
    read_export,
)
from rempart.incident.live_source import LiveSource
from rempart.incident.reading import HOUR_US, SubjectExposure, TrailReading, is_exposure, matches
from rempart.services import Services

SEED = b"test-scope-export-signing-key-seed-0123"
DAY_US = 86_400_000_000
START_US = 1_772_323_200_000_000  # 2026-03-01 00:00 UTC
ACCOUNTS = ("pharma-1", "pharma-2", "doctor-3", "nurse-4", "lab-5")
IPS = {
    "pharma-1": ("192.0.2.10", "192.0.2.77"),
    "pharma-2": ("198.51.100.4", "2001:db8:aa::5"),
    "doctor-3": ("203.0.113.9",),
    "nurse-4": ("2001:db8:bb::1", "2001:db8:aa:ff::9"),
    "lab-5": ("192.0.2.200", "not-an-address"),
}
OUTCOMES = (
    # (found, categories, outcome, decision): answered, and the ways of being refused
    (1, ",".join(CATEGORIES), "ok", "allow"),
    (1, "nir,identity", "ok", "allow"),
    (1, "nir,identity,ald", "ok", "allow"),
    (0, "", "not_found", "allow"),
    (-1, "", "invalid_nir", "allow"),
    (-1, "", "step_up_required", "step_up"),
    (-1, "", "denied", "deny"),
)


@dataclass(frozen=True)
class Stored:
    ts_us: int
    event: str
    account_id: str
    session_id: str
    client_ip: str
    subject: str
    found: int
    categories: str
    outcome: str


def build_trail(services: Services, *, count: int = 600, seed: int = 7) -> list[Stored]:
    """Lookups and login events over three days, appended as the service does, read back."""
    rng = random.Random(seed)
    trail = SqlAuditTrail(
        services.audit_engine, CheckpointSigner(SEED), shards=3, checkpoint_every=40
    )
    subjects = [f"{rng.getrandbits(128):032x}" for _ in range(90)]
    times = sorted(START_US + rng.randrange(3 * DAY_US) for _ in range(count))
    batch: list[AuditEntry] = []
    for ts_us in times:
        account = rng.choice(ACCOUNTS)
        day = (ts_us - START_US) // DAY_US
        session = f"s-{account}-{day}-{rng.randrange(2)}"
        ip = rng.choice(IPS[account])
        if rng.random() < 0.1:
            entry = AuditEntry(
                seq=0,
                ts_us=ts_us,
                event="login_succeeded",
                account_id=account,
                session_id=session,
                client_ip=ip,
                subject=f"login-{account}",
                outcome="ok",
            )
        else:
            found, categories, outcome, decision = rng.choice(OUTCOMES)
            entry = AuditEntry(
                seq=0,
                ts_us=ts_us,
                event="lookup",
                account_id=account,
                session_id=session,
                client_ip=ip,
                user_agent="Mozilla/5.0 test",
                channel="portal",
                subject=rng.choice(subjects),
                found=found,
                categories=categories,
                decision=decision,
                outcome=outcome,
            )
        batch.append(entry)
        if len(batch) >= rng.randrange(1, 6):
            trail.append(batch)
            batch = []
    if batch:
        trail.append(batch)
    columns = [getattr(AuditEvent, name) for name in Stored.__dataclass_fields__]
    with services.audit_engine.connect() as connection:
        return [Stored(*row) for row in connection.execute(select(*columns))]


def reference(entries: list[Stored], definition: Definition) -> TrailReading:
    """The reading by brute force: the reference predicate over every entry."""
    reading = TrailReading()
    rows: dict[str, list[Stored]] = {}
    looked_up: set[str] = set()
    for e in entries:
        if not matches(
            definition,
            account_id=e.account_id,
            session_id=e.session_id,
            client_ip=e.client_ip,
            ts_us=e.ts_us,
        ):
            continue
        if is_exposure(e.event, e.outcome, e.found, e.categories):
            rows.setdefault(e.subject, []).append(e)
            hour = (e.account_id, e.ts_us // HOUR_US * HOUR_US)
            reading.series[hour] = reading.series.get(hour, 0) + 1
        elif e.event == "lookup":
            reading.refused[e.outcome] += 1
            looked_up.add(e.subject)
    for subject, mine in rows.items():
        returned = {c for e in mine for c in e.categories.split(",")}
        reading.exposures[subject] = SubjectExposure(
            subject=subject,
            records=len(mine),
            first_us=min(e.ts_us for e in mine),
            last_us=max(e.ts_us for e in mine),
            accounts=tuple(sorted({e.account_id for e in mine})),
            categories=tuple(c for c in CATEGORIES if c in returned),
        )
    reading.intent_subjects = len(looked_up - set(rows))
    return reading


def assert_same(got: TrailReading, expected: TrailReading) -> None:
    assert got.exposures == expected.exposures
    assert got.refused == expected.refused
    assert got.intent_subjects == expected.intent_subjects
    assert got.series == expected.series


@pytest.fixture
def exported(services: Services, tmp_path: Path) -> tuple[list[Stored], Path]:
    entries = build_trail(services)
    out = tmp_path / "export"
    summary = export_trail(services.audit_engine, out, CheckpointSigner(SEED).verifier())
    assert summary.entries == len(entries)
    assert len(list(out.glob("day=*"))) == 3
    return entries, out


def source(directory: Path, *, accept_unverified: bool = False) -> ExportSource:
    return ExportSource(
        directory, CheckpointSigner(SEED).verifier(), accept_unverified=accept_unverified
    )


DAY2 = START_US + DAY_US
DEFINITIONS = {
    "one account": Definition(accounts=(AccountElement("pharma-1"),)),
    "two accounts, one bounded": Definition(
        accounts=(
            AccountElement("pharma-2"),
            AccountElement("doctor-3", DAY2 + 3 * HOUR_US, DAY2 + 20 * HOUR_US),
        )
    ),
    "same account, two ranges": Definition(
        accounts=(
            AccountElement("nurse-4", START_US, START_US + 6 * HOUR_US),
            AccountElement("nurse-4", DAY2, DAY2 + DAY_US),
        )
    ),
    "IPv4 network": Definition(networks=(NetworkElement("192.0.2.0/24"),)),
    "IPv6 network, bounded": Definition(
        networks=(NetworkElement("2001:db8:aa::/48", START_US + 10 * HOUR_US, DAY2 + DAY_US),)
    ),
    "a single address": Definition(networks=(NetworkElement("198.51.100.4/32"),)),
    "sessions": Definition(sessions=("s-lab-5-0-1", "s-pharma-1-2-0", "no-such-session")),
    "alerts": Definition(
        alerts=(
            AlertElement(1, "doctor-3", "s-doctor-3-1-0", alerted_us=DAY2 + 5),
            AlertElement(2, "lab-5", "", DAY2, DAY2 + DAY_US, alerted_us=DAY2 + DAY_US),
        )
    ),
    "a mix of every kind": Definition(
        accounts=(AccountElement("pharma-2", DAY2, None),),
        networks=(
            NetworkElement("2001:db8:bb::/48", None, DAY2 + 12 * HOUR_US),
            NetworkElement("203.0.113.0/24", DAY2, DAY2 + DAY_US),
        ),
        sessions=("s-nurse-4-0-0",),
        alerts=(AlertElement(3, "pharma-1", "", START_US, DAY2, alerted_us=DAY2),),
    ),
    "nothing matches": Definition(accounts=(AccountElement("nobody"),)),
}


@pytest.mark.parametrize("name", list(DEFINITIONS))
def test_the_export_reading_equals_the_reference(
    exported: tuple[list[Stored], Path], name: str
) -> None:
    entries, directory = exported
    definition = DEFINITIONS[name]
    got = source(directory).read(definition)
    expected = reference(entries, definition)
    assert_same(got, expected)
    assert got.verified
    assert got.verification_problems == ()
    assert got.source == f"export:{directory}"
    assert got.rows_scanned > 0
    if name != "nothing matches":
        # The trail is varied enough that every definition exposes and refuses someone.
        assert expected.exposures
        assert expected.refused


def test_the_live_trail_and_its_export_give_the_identical_reading(
    services: Services, exported: tuple[list[Stored], Path]
) -> None:
    """Two sources, one result: every definition, on the trail's own database (SQLite and
    PostgreSQL) and on the export of it."""
    _, directory = exported
    live = LiveSource(services.audit_engine)
    for name, definition in DEFINITIONS.items():
        from_export = source(directory).read(definition)
        from_live = live.read(definition)
        assert from_live.exposures == from_export.exposures, name
        assert from_live.refused == from_export.refused, name
        assert from_live.intent_subjects == from_export.intent_subjects, name
        assert from_live.series == from_export.series, name
        assert from_live.records == from_export.records, name


def test_a_bounded_definition_reads_only_the_files_of_its_span(
    exported: tuple[list[Stored], Path],
) -> None:
    entries, directory = exported
    definition = Definition(accounts=(AccountElement("pharma-1", DAY2, DAY2 + 2 * HOUR_US),))
    unbounded = source(directory).read(Definition(accounts=(AccountElement("pharma-1"),)))
    bounded = source(directory).read(definition)
    assert_same(bounded, reference(entries, definition))
    day2 = sum(1 for e in entries if DAY2 <= e.ts_us < DAY2 + DAY_US)
    assert unbounded.rows_scanned == len(entries)
    assert bounded.rows_scanned == day2


def test_a_file_moved_to_another_day_folder_is_still_read(
    exported: tuple[list[Stored], Path],
) -> None:
    """Folder names are not covered by the chain (the moved export still verifies):
    which files to read is decided from the files' own statistics."""
    entries, directory = exported
    [day2_folder] = directory.glob("day=2026-03-02")
    moved = directory / "day=2020-01-01"
    shutil.move(day2_folder, moved)
    definition = Definition(accounts=(AccountElement("pharma-2", DAY2, DAY2 + DAY_US),))
    got = source(directory).read(definition)
    assert got.verified
    assert got.exposures
    assert_same(got, reference(entries, definition))


def test_an_empty_definition_reads_nothing(exported: tuple[list[Stored], Path]) -> None:
    _, directory = exported
    got = source(directory).read(Definition())
    assert got.exposures == {}
    assert got.rows_scanned == 0


def tamper(directory: Path) -> None:
    """Give one answered lookup to another person, in place, as an intruder would."""
    part = sorted(directory.glob("day=*/part-*.parquet"))[1]
    table = pq.read_table(part)
    subjects = table.column("subject").to_pylist()
    outcomes = table.column("outcome").to_pylist()
    index = outcomes.index("ok")
    subjects[index] = "f" * 32
    column = table.schema.get_field_index("subject")
    pq.write_table(table.set_column(column, "subject", pa.array(subjects)), part)


def test_a_tampered_export_is_refused_unless_accepted(
    exported: tuple[list[Stored], Path],
) -> None:
    entries, directory = exported
    tamper(directory)
    definition = Definition(accounts=tuple(AccountElement(a) for a in ACCOUNTS))
    with pytest.raises(ExportUnverified) as refused:
        source(directory).read(definition)
    assert refused.value.code == "export_unverified"
    assert refused.value.status == 422
    assert "was altered" in refused.value.detail
    accepted = source(directory, accept_unverified=True).read(definition)
    assert not accepted.verified
    assert any("was altered" in p for p in accepted.verification_problems)
    # What the accepted reading shows is the export as it is, tampering included.
    assert "f" * 32 in accepted.exposures
    assert "f" * 32 not in reference(entries, definition).exposures


def test_an_unanchored_export_is_refused(exported: tuple[list[Stored], Path]) -> None:
    """Entries cut from the head of a shard, whose first remaining entry no signed
    checkpoint vouches for: the chain links, but nothing anchors it."""
    _, directory = exported
    parts = sorted(directory.glob("day=*/part-*.parquet"))
    first = pq.read_table(parts[0])
    shard = first.column("shard")[0].as_py()
    mask = pa.array(
        [
            s != shard or q > 1
            for s, q in zip(
                first.column("shard").to_pylist(), first.column("seq").to_pylist(), strict=True
            )
        ]
    )
    pq.write_table(first.filter(mask), parts[0])
    with pytest.raises(ExportUnverified) as refused:
        source(directory).read(Definition(accounts=(AccountElement("pharma-1"),)))
    assert f"shard {shard}" in refused.value.detail


def test_a_directory_that_is_not_an_export_is_refused(tmp_path: Path) -> None:
    (tmp_path / "day=2026-03-01").mkdir()
    definition = Definition(accounts=(AccountElement("pharma-1"),))
    with pytest.raises(ExportUnreadable) as refused:
        source(tmp_path).read(definition)
    assert refused.value.code == "audit_export_unreadable"
    with pytest.raises(ExportUnreadable):
        read_export(tmp_path / "missing", definition)


def test_refused_counts_are_per_outcome(exported: tuple[list[Stored], Path]) -> None:
    entries, directory = exported
    definition = Definition(accounts=tuple(AccountElement(a) for a in ACCOUNTS))
    got = source(directory).read(definition)
    lookups = [e for e in entries if e.event == "lookup"]
    assert got.refused == Counter(e.outcome for e in lookups if e.outcome != "ok")
    assert got.records == sum(1 for e in lookups if e.outcome == "ok")
