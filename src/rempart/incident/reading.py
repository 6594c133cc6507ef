"""What a trail source reads for a definition: the exposures, and the intent apart.

A lookup **exposed** its subject when its audit entry says data was returned:
``event = 'lookup'``, ``outcome = 'ok'``, ``found = 1`` and categories present.
Every other lookup matching the definition (refused by the guard, stepped up,
malformed, not found) is **intent**: counted by outcome, never as exposure.

Two sources give the same reading: the live trail (SQL, ``live_source.py``) and
a Parquet export read with DuckDB (``export_source.py``).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from rempart.audit.chain import CATEGORIES
from rempart.incident.definition import Definition

__all__ = [
    "HOUR_US",
    "Matcher",
    "ReadingBuilder",
    "SubjectExposure",
    "TrailReading",
    "TrailSource",
    "is_exposure",
    "matches",
]

HOUR_US = 3600 * 1_000_000


@dataclass(frozen=True, slots=True)
class SubjectExposure:
    """One pseudonym's answered lookups under the definition."""

    subject: str
    records: int
    first_us: int
    last_us: int
    accounts: tuple[str, ...]
    """Sorted, distinct."""
    categories: tuple[str, ...]
    """Distinct categories returned, in ``rempart.audit.chain.CATEGORIES`` order."""


@dataclass
class TrailReading:
    exposures: dict[str, SubjectExposure] = field(default_factory=dict)
    """Per pseudonym."""
    refused: Counter[str] = field(default_factory=Counter)
    """Matching lookups that returned nothing, per outcome (``not_found`` included)."""
    intent_subjects: int = 0
    """Distinct pseudonyms looked up without being exposed (refused or not found)."""
    series: dict[tuple[str, int], int] = field(default_factory=dict)
    """Answered lookups per (account, hour start in µs): the exposures-over-time chart."""
    rows_scanned: int = 0
    """Trail rows the source examined (its cost)."""
    source: str = "live"
    """``live``, or ``export:<directory>``."""
    verified: bool = True
    """False only for an export read although its verification failed (operator's flag)."""
    verification_problems: tuple[str, ...] = ()

    @property
    def records(self) -> int:
        return sum(e.records for e in self.exposures.values())


class TrailSource(Protocol):
    name: str

    def read(self, definition: Definition) -> TrailReading: ...


def is_exposure(event: str, outcome: str, found: int, categories: str) -> bool:
    return event == "lookup" and outcome == "ok" and found == 1 and bool(categories)


class Matcher:
    """Whether one trail entry belongs to a definition: the reference every source agrees
    with. Built once per scoping: the per-entry test is a dictionary lookup or two."""

    def __init__(self, definition: Definition) -> None:
        self.sessions: dict[str, list[tuple[int | None, int | None]]] = {}
        for s, since, until in definition.session_filters():
            self.sessions.setdefault(s, []).append((since, until))
        self.accounts: dict[str, list[tuple[int | None, int | None]]] = {}
        for a, since, until in definition.account_filters():
            self.accounts.setdefault(a, []).append((since, until))
        self.networks = [
            (ipaddress.ip_network(n.cidr), n.since_us, n.until_us) for n in definition.networks
        ]

    def __call__(self, account_id: str, session_id: str, client_ip: str, ts_us: int) -> bool:
        for since, until in self.sessions.get(session_id, ()):
            if _within(ts_us, since, until):
                return True
        for since, until in self.accounts.get(account_id, ()):
            if _within(ts_us, since, until):
                return True
        if self.networks:
            try:
                address = ipaddress.ip_address(client_ip)
            except ValueError:
                return False
            for network, since, until in self.networks:
                if address in network and _within(ts_us, since, until):
                    return True
        return False


def _within(ts_us: int, since_us: int | None, until_us: int | None) -> bool:
    return (since_us is None or ts_us >= since_us) and (until_us is None or ts_us < until_us)


def matches(
    definition: Definition, *, account_id: str, session_id: str, client_ip: str, ts_us: int
) -> bool:
    """Whether one trail entry belongs to the definition (see :class:`Matcher`)."""
    return Matcher(definition)(account_id, session_id, client_ip, ts_us)


class ReadingBuilder:
    """Accumulates matching trail entries into a :class:`TrailReading` (a source that
    streams rows rather than aggregating in SQL uses it)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._records: dict[str, list[int]] = {}
        self._accounts: dict[str, set[str]] = {}
        self._categories: dict[str, set[str]] = {}
        self._looked_up: set[str] = set()
        self.refused: Counter[str] = Counter()
        self.series: Counter[tuple[str, int]] = Counter()
        self.rows = 0

    def add(
        self,
        *,
        subject: str,
        ts_us: int,
        account_id: str,
        outcome: str,
        found: int,
        categories: str,
    ) -> None:
        self.rows += 1
        if not is_exposure("lookup", outcome, found, categories):
            self.refused[outcome] += 1
            self._looked_up.add(subject)
            return
        entry = self._records.get(subject)
        if entry is None:
            self._records[subject] = [1, ts_us, ts_us]
            self._accounts[subject] = {account_id}
            self._categories[subject] = set(categories.split(","))
        else:
            entry[0] += 1
            entry[1] = min(entry[1], ts_us)
            entry[2] = max(entry[2], ts_us)
            self._accounts[subject].add(account_id)
            self._categories[subject].update(categories.split(","))
        self.series[(account_id, ts_us - ts_us % HOUR_US)] += 1

    def build(self) -> TrailReading:
        exposures = {
            subject: SubjectExposure(
                subject=subject,
                records=records,
                first_us=first,
                last_us=last,
                accounts=tuple(sorted(self._accounts[subject])),
                categories=tuple(c for c in CATEGORIES if c in self._categories[subject]),
            )
            for subject, (records, first, last) in self._records.items()
        }
        return TrailReading(
            exposures=exposures,
            refused=self.refused,
            intent_subjects=len(self._looked_up - exposures.keys()),
            series=dict(self.series),
            rows_scanned=self.rows,
            source=self.source,
        )
