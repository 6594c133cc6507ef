"""``rempart claims ingest FILE``: a batch of claims from the billing system.

FILE is Parquet (``.parquet``, ``.pq``) or CSV (``.csv``, UTF-8, a header line), by its
suffix. Columns: ``ts`` (Parquet: a timestamp with a time zone, or ISO-8601 text; CSV:
ISO-8601 with a UTC offset), ``account_id``, ``nir``, and optionally ``claim_id`` (the
idempotency key; without it, or empty, the key is :func:`~rempart.claims.records.claim_key`,
a SHA-256 of account, NIR and time). A world's ``claims.parquet`` ingests as it is.

Every row is checked and every problem collected (row, column, stable code); when any
row is wrong nothing is written. Otherwise the claims not already in the table are
inserted in one transaction (in batches); a second run of the same file changes
nothing. A running server then feeds them to its guard (:mod:`rempart.claims.follower`).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine

from rempart.claims.records import (
    ClaimCode,
    ClaimProblem,
    ClaimRecord,
    Problem,
    parse_claim,
)
from rempart.claims.table import known_accounts, lock_for_writing, write_claims
from rempart.errors import RempartError
from rempart.progress import ProgressFn

__all__ = ["COLUMNS", "ClaimsRejected", "IngestReport", "ingest_file", "read_columns"]

COLUMNS = ("ts", "account_id", "nir")
OPTIONAL = ("claim_id",)
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)
PROGRESS_FROM = 10_000
"""Files of at least that many rows report their progress (a bar in the CLI)."""
KEPT_PROBLEMS = 10_000
"""Problems kept to be listed; beyond, they are only counted."""


class ClaimsRejected(RempartError):
    """The file cannot be ingested: nothing was written. :attr:`problems` lists the first
    ones (sorted by row), :attr:`total` counts them all."""

    code = "claims_rejected"
    status = 422

    def __init__(self, problems: Sequence[Problem], total: int) -> None:
        super().__init__(f"{total:,} problem(s): nothing ingested")
        self.problems = list(problems)
        self.total = total


@dataclass(frozen=True)
class IngestReport:
    read: int
    """Rows in the file."""
    new: int
    """Claims written now."""
    known: int
    """Claims the table already had (a file ingested again)."""
    repeated: int
    """Rows identical to an earlier row of the same file (taken once)."""

    def to_json(self) -> dict[str, int]:
        return {"read": self.read, "new": self.new, "known": self.known, "repeated": self.repeated}


@dataclass
class _Problems:
    kept: list[Problem] = field(default_factory=list)
    total: int = 0

    def add(self, problem: Problem) -> None:
        self.total += 1
        if len(self.kept) < KEPT_PROBLEMS:
            self.kept.append(problem)

    def raise_if_any(self) -> None:
        if self.total:
            ordered = sorted(self.kept, key=lambda p: (p.row or 0, p.column or ""))
            raise ClaimsRejected(ordered, self.total)


def _whole_file(code: ClaimCode, detail: str, column: str | None = None) -> ClaimsRejected:
    return ClaimsRejected([Problem(None, column, code, detail)], 1)


def _missing(columns: Sequence[str]) -> ClaimsRejected:
    problems = [
        Problem(None, c, ClaimCode.MISSING_COLUMN, f"the file has no column {c!r}") for c in columns
    ]
    return ClaimsRejected(problems, len(problems))


def _parquet_columns(path: Path) -> dict[str, list[Any]]:
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise _whole_file(
            ClaimCode.UNREADABLE_FILE, f"{path.name} is not a Parquet file ({type(exc).__name__})"
        ) from None
    missing = [c for c in COLUMNS if c not in schema.names]
    if missing:
        raise _missing(missing)
    wanted = [*COLUMNS, *(c for c in OPTIONAL if c in schema.names)]
    table = pq.read_table(path, columns=wanted)
    columns: dict[str, list[Any]] = {}
    for name in wanted:
        column = table.column(name)
        if name == "ts" and pa.types.is_timestamp(column.type):
            if column.type.tz is None:
                # A naive timestamp may be local time: refused rather than guessed.
                raise _whole_file(
                    ClaimCode.BAD_TIMESTAMP, "ts is a timestamp without a time zone", "ts"
                )
            # µs since the epoch, UTC (finer units are truncated to the microsecond).
            column = column.cast(pa.timestamp("us", tz="UTC"), safe=False).cast(pa.int64())
        elif name == "ts" and not pa.types.is_string(column.type):
            raise _whole_file(ClaimCode.BAD_TIMESTAMP, f"ts has type {column.type}", "ts")
        columns[name] = column.to_pylist()
    return columns


def _csv_columns(path: Path) -> dict[str, list[Any]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise _missing(COLUMNS)
            names = [h.strip() for h in header]
            missing = [c for c in COLUMNS if c not in names]
            if missing:
                raise _missing(missing)
            wanted = [*COLUMNS, *(c for c in OPTIONAL if c in names)]
            where = {name: names.index(name) for name in wanted}
            columns: dict[str, list[Any]] = {name: [] for name in wanted}
            for line in reader:
                if not line:
                    continue  # a blank line (a trailing newline too many)
                for name, index in where.items():
                    columns[name].append(line[index] if index < len(line) else None)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _whole_file(
            ClaimCode.UNREADABLE_FILE, f"{path.name} is not UTF-8 CSV ({type(exc).__name__})"
        ) from None
    return columns


def read_columns(path: Path) -> dict[str, list[Any]]:
    """The file's columns (``ts``, ``account_id``, ``nir``, ``claim_id`` when present) as
    Python values, or :class:`ClaimsRejected` for a file that cannot be read as claims."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise _whole_file(ClaimCode.UNREADABLE_FILE, f"{path} is not a file")
    if suffix in PARQUET_SUFFIXES:
        return _parquet_columns(path)
    if suffix in CSV_SUFFIXES:
        return _csv_columns(path)
    raise _whole_file(
        ClaimCode.UNSUPPORTED_FORMAT,
        f"{path.name}: a claims file is Parquet (.parquet, .pq) or CSV (.csv)",
    )


def _no_progress(_step: str, _done: int, _total: int) -> None:
    return None


def ingest_file(
    engine: Engine,
    path: Path,
    *,
    now_us: int | None = None,
    progress: ProgressFn | None = None,
    batch: int = 2_000,
) -> IngestReport:
    """Validate every row of ``path``, then write its claims in one transaction; raises
    :class:`ClaimsRejected` (nothing written) when anything is wrong."""
    now = time.time_ns() // 1_000 if now_us is None else now_us
    columns = read_columns(path)
    rows = len(columns["ts"])
    report = progress if progress is not None and rows >= PROGRESS_FROM else _no_progress
    ids = columns.get("claim_id")
    problems = _Problems()
    taken: dict[str, tuple[int, ClaimRecord]] = {}
    repeated = 0
    for index in range(rows):
        row = index + 1
        try:
            record = parse_claim(
                ts=columns["ts"][index],
                account_id=columns["account_id"][index],
                nir=columns["nir"][index],
                claim_id=None if ids is None else ids[index],
                now_us=now,
            )
        except ClaimProblem as exc:
            problems.add(Problem(row, exc.column, exc.code, exc.detail))
            continue
        earlier = taken.get(record.claim_id)
        if earlier is None:
            taken[record.claim_id] = (row, record)
        elif earlier[1] == record:
            repeated += 1  # the same claim twice in one export: taken once
        else:
            problems.add(
                Problem(
                    row,
                    "claim_id",
                    ClaimCode.DUPLICATE_IN_FILE,
                    f"the same claim_id as row {earlier[0]:,}, with another time, account or NIR",
                )
            )
        if row % 10_000 == 0:
            report("check", row, rows)
    report("check", rows, rows)
    records = list(taken.values())
    with engine.connect() as connection:
        known = known_accounts(connection, (r.account_id for _, r in records))
    for row, record in records:
        if record.account_id not in known:
            problems.add(
                Problem(
                    row,
                    "account_id",
                    ClaimCode.UNKNOWN_ACCOUNT,
                    f"no professional or account {record.account_id!r}",
                )
            )
    problems.raise_if_any()

    new = already = 0
    received_at = datetime.now(UTC)
    with engine.begin() as connection:
        lock_for_writing(connection)
        for start in range(0, len(records), batch):
            chunk = records[start : start + batch]
            result = write_claims(
                connection, [r for _, r in chunk], source="file", received_at=received_at
            )
            for index in result.conflicts:
                problems.add(
                    Problem(
                        chunk[index][0],
                        "claim_id",
                        ClaimCode.CONFLICTS_WITH_KNOWN,
                        "this claim_id is already known with another time, account or NIR",
                    )
                )
            new += result.new
            already += result.known
            report("write", start + len(chunk), len(records))
        problems.raise_if_any()  # inside the transaction: rolled back, nothing written
    return IngestReport(read=rows, new=new, known=already, repeated=repeated)
