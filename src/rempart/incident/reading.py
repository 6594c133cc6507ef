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

from rempart.incident.definition import Definition

__all__ = [
    "HOUR_US",
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


def _within(ts_us: int, since_us: int | None, until_us: int | None) -> bool:
    return (since_us is None or ts_us >= since_us) and (until_us is None or ts_us < until_us)


def matches(
    definition: Definition, *, account_id: str, session_id: str, client_ip: str, ts_us: int
) -> bool:
    """Whether one trail entry belongs to the definition: the reference every source agrees
    with (the sources filter in SQL; the tests check them against this)."""
    for s, since, until in definition.session_filters():
        if session_id == s and _within(ts_us, since, until):
            return True
    for a, since, until in definition.account_filters():
        if account_id == a and _within(ts_us, since, until):
            return True
    if definition.networks:
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            return False
        for n in definition.networks:
            if address in ipaddress.ip_network(n.cidr) and _within(ts_us, n.since_us, n.until_us):
                return True
    return False
