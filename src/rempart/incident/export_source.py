"""Scoping from a Parquet audit export (``rempart audit export``), read with DuckDB.

An export is evidence only when it is intact: ``ExportSource.read`` re-chains it with
``rempart.audit.export.verify_export`` first (every shard intact and anchored) and
refuses it otherwise (``export_unverified``), unless the operator explicitly accepts
an unverified export; the reading then says so (``verified`` False, the problems
named) and so does the report made from it.

The reading itself (``read_export``) is one DuckDB query per aggregate over a
temporary table of the matching entries, in an in-memory connection of its own,
with every value of the definition bound as a parameter:

- **which files**: the files are chosen by the ``ts_us`` statistics of their own
  footers, not by their ``day=`` folder names: a part file moved into another day's
  folder still verifies (the chain does not cover folder names) and must still be
  read when its entries fall in the definition's span.
- **accounts and sessions**: ``IN`` lists grouped by time bounds, plus the
  definition's overall span as a conjunct that DuckDB can push to row groups.
- **networks**: DuckDB's ``inet`` extension cannot be installed offline, and
  re-implementing IPv6 parsing (``::`` compression, embedded IPv4) in SQL would be a
  second, subtly different parser. Instead the distinct client addresses of the span
  are read once, matched in Python with ``ipaddress`` exactly as
  ``rempart.incident.reading.matches`` does, and the matching addresses are joined
  back (``client_ip IN (SELECT ...)``). The Python part grows with the distinct
  addresses, not with the rows.

The result equals the reference predicate (``matches`` and ``is_exposure``): the
tests check it on real exports against a brute-force reading.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from collections import Counter
from itertools import groupby
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from rempart.audit.chain import CATEGORIES, CheckpointVerifier
from rempart.audit.export import verify_export
from rempart.errors import RempartError
from rempart.incident.definition import Definition
from rempart.incident.reading import HOUR_US, SubjectExposure, TrailReading

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "ExportSource",
    "ExportUnreadable",
    "ExportUnverified",
    "export_problems",
    "read_export",
]

DEFAULT_MEMORY_LIMIT = "2GB"
"""DuckDB's own default is 80 % of the machine's memory; a scope shares the machine."""

_EXPOSED = "event = 'lookup' AND outcome = 'ok' AND found = 1 AND categories <> ''"
"""``rempart.incident.reading.is_exposure`` in SQL."""

_MATCHED_COLUMNS = "ts_us, event, account_id, subject, found, categories, outcome"


class ExportUnreadable(RempartError):
    """Not an audit export, or files that cannot be read (the code ``rempart audit
    verify --export`` already uses for the same condition)."""

    code = "audit_export_unreadable"
    status = 422


class ExportUnverified(RempartError):
    """The export failed its verification and the operator did not accept that."""

    code = "export_unverified"
    status = 422

    def __init__(self, directory: Path, problems: tuple[str, ...]) -> None:
        self.problems = problems
        shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
        super().__init__(
            f"the export {directory} is not intact ({len(problems)} problem(s): {shown}); "
            "scoping from it needs the operator's explicit acceptance"
        )


def _require_export(directory: Path) -> None:
    # The same mark verify_export looks for: every export and archive writes it.
    if not (directory / "checkpoints.parquet").is_file():
        raise ExportUnreadable(f"{directory} is not an audit export (no checkpoints.parquet)")


def export_problems(directory: Path, verifier: CheckpointVerifier) -> tuple[str, ...]:
    """Everything that keeps the export from being evidence: broken chains, unanchored
    shards. Empty when intact."""
    _require_export(directory)
    try:
        report = verify_export(directory, verifier)
    except (OSError, pa.ArrowException) as exc:
        raise ExportUnreadable(f"{directory} cannot be read: {exc}") from None
    problems = [str(p) for p in report.problems]
    problems += [
        f"shard {shard}: its first entry follows neither the genesis nor a signed "
        "checkpoint of the export (no anchor)"
        for shard in report.unanchored
    ]
    return tuple(problems)


class ExportSource:
    """A ``TrailSource`` over an export directory, verified before every read."""

    def __init__(
        self,
        directory: Path,
        verifier: CheckpointVerifier,
        *,
        accept_unverified: bool = False,
        threads: int | None = None,
        memory_limit: str = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        self.directory = Path(directory)
        self.verifier = verifier
        self.accept_unverified = accept_unverified
        self.threads = threads
        """DuckDB threads; the usable cores when unset."""
        self.memory_limit = memory_limit
        self.name = f"export:{self.directory}"

    def read(self, definition: Definition) -> TrailReading:
        problems = export_problems(self.directory, self.verifier)
        if problems and not self.accept_unverified:
            raise ExportUnverified(self.directory, problems)
        reading = read_export(
            self.directory, definition, threads=self.threads, memory_limit=self.memory_limit
        )
        reading.verified = not problems
        reading.verification_problems = problems
        return reading


# --------------------------------------------------------------------------- reading


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _files_in_span(
    directory: Path, since_us: int | None, until_us: int | None
) -> tuple[list[Path], int]:
    """The part files that may hold entries in ``[since, until)``, and their rows."""
    chosen: list[Path] = []
    rows = 0
    for path in sorted(directory.glob("day=*/*.parquet")):
        metadata = pq.read_metadata(path)
        if metadata.num_rows == 0:
            continue
        bounds = _ts_bounds(metadata)
        if bounds is not None:
            low, high = bounds
            if (since_us is not None and high < since_us) or (
                until_us is not None and low >= until_us
            ):
                continue
        chosen.append(path)
        rows += metadata.num_rows
    return chosen, rows


def _ts_bounds(metadata: pq.FileMetaData) -> tuple[int, int] | None:
    """The file's min and max ``ts_us`` from its row groups' statistics; None (read it)
    when any row group has none."""
    index = metadata.schema.to_arrow_schema().get_field_index("ts_us")
    if index < 0:
        return None
    lows: list[int] = []
    highs: list[int] = []
    for group in range(metadata.num_row_groups):
        statistics = metadata.row_group(group).column(index).statistics
        if statistics is None or not statistics.has_min_max:
            return None
        lows.append(int(statistics.min))
        highs.append(int(statistics.max))
    return min(lows), max(highs)


def _bounds_sql(since_us: int | None, until_us: int | None, params: list[Any]) -> str:
    sql = ""
    if since_us is not None:
        sql += " AND ts_us >= ?"
        params.append(since_us)
    if until_us is not None:
        sql += " AND ts_us < ?"
        params.append(until_us)
    return sql


def _grouped(
    filters: list[tuple[str, int | None, int | None]],
) -> list[tuple[tuple[int | None, int | None], list[str]]]:
    """Values sharing the same time bounds, so that each group is one ``IN`` list."""

    def key(f: tuple[str, int | None, int | None]) -> tuple[int, int, int, int]:
        return (f[1] is None, f[1] or 0, f[2] is None, f[2] or 0)

    out = []
    for _, members in groupby(sorted(set(filters), key=key), key=key):
        group = list(members)
        out.append(((group[0][1], group[0][2]), sorted({f[0] for f in group})))
    return out


def _network_addresses(
    connection: duckdb.DuckDBPyConnection, definition: Definition, span_sql: str, span: list[Any]
) -> pa.Table:
    """(element, client_ip) for every distinct address of the span inside a network of the
    definition: matched with ``ipaddress`` as the reference predicate does."""
    networks = [ipaddress.ip_network(n.cidr) for n in definition.networks]
    elements: list[int] = []
    addresses: list[str] = []
    # S608: the statement is built from our own constant fragments; values are bound.
    query = f"SELECT DISTINCT client_ip FROM trail WHERE true{span_sql}"  # noqa: S608  # nosec B608
    for (raw,) in connection.execute(query, span).fetchall():
        try:
            address = ipaddress.ip_address(raw)
        except ValueError:
            continue  # as matches(): an address that does not parse is in no network
        for index, network in enumerate(networks):
            if address in network:
                elements.append(index)
                addresses.append(raw)
    return pa.table(
        {"element": pa.array(elements, pa.int32()), "client_ip": pa.array(addresses, pa.string())}
    )


def _where(
    connection: duckdb.DuckDBPyConnection, definition: Definition, span_sql: str, span: list[Any]
) -> tuple[str, list[Any]]:
    """The definition as one SQL condition over ``trail``, and its bound parameters."""
    alternatives: list[str] = []
    params: list[Any] = []
    for column, filters in (
        ("session_id", definition.session_filters()),
        ("account_id", definition.account_filters()),
    ):
        for (since_us, until_us), values in _grouped(filters):
            placeholders = ", ".join("?" * len(values))
            params += values
            bounds = _bounds_sql(since_us, until_us, params)
            alternatives.append(f"({column} IN ({placeholders}){bounds})")
    if definition.networks:
        connection.register(
            "scope_networks", _network_addresses(connection, definition, span_sql, span)
        )
        for index, network in enumerate(definition.networks):
            params.append(index)
            bounds = _bounds_sql(network.since_us, network.until_us, params)
            in_network = "client_ip IN (SELECT client_ip FROM scope_networks WHERE element = ?)"
            alternatives.append(f"({in_network}{bounds})")
    # The span is implied by the alternatives; stated apart, DuckDB prunes row groups by it.
    return f"({' OR '.join(alternatives)}){span_sql}", params + span


def read_export(
    directory: Path,
    definition: Definition,
    *,
    threads: int | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> TrailReading:
    """Read an export for a definition WITHOUT verifying it.

    ``ExportSource.read`` is the way to scope from an export (it verifies first); this
    is its reading half, public so that the benchmark can time reading and verification
    apart.
    """
    directory = Path(directory)
    _require_export(directory)
    reading = TrailReading(source=f"export:{directory}")
    if definition.empty:
        return reading
    since_us, until_us = definition.span()
    files, reading.rows_scanned = _files_in_span(directory, since_us, until_us)
    if not files:
        return reading
    span: list[Any] = []
    span_sql = _bounds_sql(since_us, until_us, span)
    with (
        tempfile.TemporaryDirectory(prefix="rempart-scope-") as spill,
        duckdb.connect(
            config={
                "threads": threads or _usable_cores(),
                "memory_limit": memory_limit,
                "temp_directory": spill,
            }
        ) as connection,
    ):
        try:
            connection.read_parquet([str(f) for f in files], hive_partitioning=False).create_view(
                "trail"
            )
            where, params = _where(connection, definition, span_sql, span)
            connection.execute(
                f"CREATE TEMP TABLE matched AS SELECT {_MATCHED_COLUMNS}, "  # noqa: S608  # nosec B608
                f"({_EXPOSED}) AS exposed FROM trail WHERE {where}",
                params,
            )
            _aggregate(connection, reading)
        except duckdb.Error as exc:
            raise ExportUnreadable(f"{directory} cannot be read: {exc}") from None
    return reading


def _arrow(connection: duckdb.DuckDBPyConnection, query: str, params: list[Any]) -> pa.Table:
    table = connection.sql(query, params=params).to_arrow_table()
    assert table is not None  # a SELECT always has a result
    return table


def _aggregate(connection: duckdb.DuckDBPyConnection, reading: TrailReading) -> None:
    # Categories as one bit each, OR-ed per subject: one integer per subject to decode
    # (through a table of at most 64 masks) instead of a list per subject.
    mask = " + ".join(
        "CASE WHEN list_contains(string_split(categories, ','), ?) THEN ? ELSE 0 END"
        for _ in CATEGORIES
    )
    mask_params: list[Any] = [x for i, c in enumerate(CATEGORIES) for x in (c, 1 << i)]
    # Fetched as Arrow columns: half a million subjects (the 2022 breach) convert to Python
    # several times faster than row tuples.
    table = _arrow(
        connection,
        "SELECT subject, count(*) AS records, min(ts_us) AS first_us, max(ts_us) AS last_us, "  # noqa: S608 - constant fragments  # nosec B608
        "list(DISTINCT account_id ORDER BY account_id) AS accounts, "
        f"bit_or({mask}) AS categories FROM matched WHERE exposed GROUP BY subject",
        mask_params,
    )
    decoded = {
        m: tuple(c for i, c in enumerate(CATEGORIES) if m & (1 << i))
        for m in range(1 << len(CATEGORIES))
    }
    columns = [table.column(name).to_pylist() for name in table.column_names]
    reading.exposures = {
        subject: SubjectExposure(
            subject=subject,
            records=records,
            first_us=first_us,
            last_us=last_us,
            accounts=tuple(accounts),
            categories=decoded[categories],
        )
        for subject, records, first_us, last_us, accounts, categories in zip(*columns, strict=True)
    }
    reading.refused = Counter(
        {
            str(outcome): int(count)
            for outcome, count in connection.execute(
                "SELECT outcome, count(*) FROM matched "
                "WHERE event = 'lookup' AND NOT exposed GROUP BY outcome"
            ).fetchall()
        }
    )
    intent = connection.execute(
        "SELECT count(DISTINCT subject) FROM matched "
        "WHERE event = 'lookup' AND NOT exposed "
        "AND subject NOT IN (SELECT subject FROM matched WHERE exposed)"
    ).fetchone()
    reading.intent_subjects = int(intent[0]) if intent else 0
    reading.series = {
        (str(account), int(hour)): int(count)
        for account, hour, count in connection.execute(
            "SELECT account_id, (ts_us // ?) * ? AS hour, count(*) FROM matched "
            "WHERE exposed GROUP BY account_id, hour",
            [HOUR_US, HOUR_US],
        ).fetchall()
    }
