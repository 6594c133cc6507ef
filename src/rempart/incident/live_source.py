"""Scoping from the live audit trail (``audit_events``, SQLite or PostgreSQL).

The definition becomes one exact SQL condition; the trail's indexes narrow it where
they can — ``(account_id, ts_us)`` for accounts and alerts with an account, ``ts_us``
for networks' windows —, while sessions (and alerts known only by their session) have
no index of their own and are found by scanning the lookups; the matching lookups are
copied once into a temporary table and aggregated there by the database (per
person, per outcome, per account and hour), so that Python handles one row per
exposed person rather than one per lookup. Networks are matched as the reference
predicate (``reading.Matcher``) does, with ``ipaddress``, over the distinct
addresses of their window: no database needs an address type, and an address the
trail holds that does not parse matches no network.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterator

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    false,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.orm import InstrumentedAttribute

from rempart.audit.chain import CATEGORIES
from rempart.audit.models import AuditEvent
from rempart.incident.definition import Definition, NetworkElement
from rempart.incident.reading import HOUR_US, SubjectExposure, TrailReading

__all__ = ["LiveSource", "condition"]

_IN_CHUNK = 5_000

_rows = Table(
    "scope_rows",
    MetaData(),
    Column("subject", String(64)),
    Column("ts_us", BigInteger),
    Column("account_id", String(64)),
    Column("outcome", String(40)),
    Column("categories", String(80)),
    Column("exposed", Integer),
    prefixes=["TEMPORARY"],
)
"""The definition's lookups, copied once per scoping (per connection, dropped after)."""


def _bounded(
    column: ColumnElement[bool], since_us: int | None, until_us: int | None
) -> ColumnElement[bool]:
    conditions = [column]
    if since_us is not None:
        conditions.append(AuditEvent.ts_us >= since_us)
    if until_us is not None:
        conditions.append(AuditEvent.ts_us < until_us)
    return and_(*conditions)


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def _in(column: InstrumentedAttribute[str], values: list[str]) -> ColumnElement[bool]:
    return or_(*(column.in_(chunk) for chunk in _chunks(values))) if values else false()


def _network_addresses(connection: Connection, network: NetworkElement) -> list[str]:
    """The addresses of the network's window that belong to it, matched in Python."""
    query = (
        select(AuditEvent.client_ip)
        .distinct()
        .where(_bounded(AuditEvent.event == "lookup", network.since_us, network.until_us))
    )
    net = ipaddress.ip_network(network.cidr)
    found = []
    for (raw,) in connection.execute(query):
        try:
            if ipaddress.ip_address(raw) in net:
                found.append(raw)
        except ValueError:
            continue
    return found


def condition(definition: Definition, connection: Connection) -> ColumnElement[bool]:
    """Exactly the definition's entries (``reading.matches``), as SQL."""
    parts: list[ColumnElement[bool]] = []
    by_range: dict[tuple[int | None, int | None], list[str]] = {}
    for account_id, since, until in definition.account_filters():
        by_range.setdefault((since, until), []).append(account_id)
    for (since, until), accounts in sorted(
        by_range.items(), key=lambda kv: (kv[0][0] or -1, kv[0][1] or -1)
    ):
        parts.append(_bounded(_in(AuditEvent.account_id, sorted(set(accounts))), since, until))
    sessions = sorted({s for s, _, _ in definition.session_filters()})
    if sessions:
        parts.append(_in(AuditEvent.session_id, sessions))
    for network in definition.networks:
        addresses = _network_addresses(connection, network)
        if addresses:
            parts.append(
                _bounded(_in(AuditEvent.client_ip, addresses), network.since_us, network.until_us)
            )
    return and_(AuditEvent.event == "lookup", or_(*parts)) if parts else false()


_EXPOSED = and_(AuditEvent.outcome == "ok", AuditEvent.found == 1, AuditEvent.categories != "")
"""``reading.is_exposure`` in SQL (the event is already ``lookup``)."""


class LiveSource:
    name = "live"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def read(self, definition: Definition) -> TrailReading:
        reading = TrailReading(source=self.name)
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # JIT compilation costs PostgreSQL more (0.7 s) than it saves on these
                # one-off scans and aggregates.
                connection.exec_driver_sql("SET LOCAL jit = off")
            # Created and dropped in this transaction: a failure rolls both back, on
            # SQLite and PostgreSQL alike (their DDL is transactional).
            _rows.create(connection)
            connection.execute(
                insert(_rows).from_select(
                    [c.name for c in _rows.columns],
                    select(
                        AuditEvent.subject,
                        AuditEvent.ts_us,
                        AuditEvent.account_id,
                        AuditEvent.outcome,
                        AuditEvent.categories,
                        case((_EXPOSED, 1), else_=0),
                    ).where(condition(definition, connection)),
                )
            )
            _aggregate(connection, reading)
            _rows.drop(connection)
        return reading


def _aggregate(connection: Connection, reading: TrailReading) -> None:
    rows = _rows.c
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("ANALYZE scope_rows")
    # Nearly every person was read by one account, with one list of categories: the
    # smallest and largest values say so without a DISTINCT aggregate (a sort per group);
    # the few others get their distinct values from a second, small query.
    several: dict[str, tuple[set[str], set[str]]] = {}
    per_subject = connection.execute(
        select(
            rows.subject,
            func.count(),
            func.min(rows.ts_us),
            func.max(rows.ts_us),
            func.min(rows.account_id),
            func.max(rows.account_id),
            func.min(rows.categories),
            func.max(rows.categories),
        )
        .where(rows.exposed == 1)
        .group_by(rows.subject)
    ).all()
    if any(r[4] != r[5] or r[6] != r[7] for r in per_subject):
        mixed = (
            select(rows.subject)
            .where(rows.exposed == 1)
            .group_by(rows.subject)
            .having(
                or_(
                    func.min(rows.account_id) != func.max(rows.account_id),
                    func.min(rows.categories) != func.max(rows.categories),
                )
            )
        )
        for subject, account_id, categories in connection.execute(
            select(rows.subject, rows.account_id, rows.categories)
            .distinct()
            .where(rows.exposed == 1, rows.subject.in_(mixed))
        ):
            seen_accounts, seen_kinds = several.setdefault(subject, (set(), set()))
            seen_accounts.add(account_id)
            seen_kinds.update(categories.split(","))
    ordered: dict[str, tuple[str, ...]] = {}  # a few distinct category lists: computed once
    for subject, records, first, last, account_id, _, categories, _ in per_subject:
        if subject in several:
            accounts, present = several[subject]
            account_list = tuple(sorted(accounts))
            kinds = tuple(c for c in CATEGORIES if c in present)
        else:
            account_list = (account_id,)
            kinds = ordered.get(categories) or ordered.setdefault(
                categories, tuple(c for c in CATEGORIES if c in categories.split(","))
            )
        reading.exposures[subject] = SubjectExposure(
            subject=subject,
            records=int(records),
            first_us=int(first),
            last_us=int(last),
            accounts=account_list,
            categories=kinds,
        )
    reading.refused = Counter(
        {
            outcome: int(count)
            for outcome, count in connection.execute(
                select(rows.outcome, func.count()).where(rows.exposed == 0).group_by(rows.outcome)
            )
        }
    )
    looked_up_only = (
        select(rows.subject).group_by(rows.subject).having(func.max(rows.exposed) == 0)
    ).subquery()
    reading.intent_subjects = int(
        connection.scalar(select(func.count()).select_from(looked_up_only)) or 0
    )
    hour = (rows.ts_us - rows.ts_us % HOUR_US).label("hour")
    reading.series = {
        (account, int(start)): int(count)
        for account, start, count in connection.execute(
            select(rows.account_id, hour, func.count())
            .where(rows.exposed == 1)
            .group_by(rows.account_id, hour)
        )
    }
    reading.rows_scanned = reading.records + sum(reading.refused.values())
