"""The facts of an incident that reports and the register are made from.

``ScopeSummary`` is what one scoping stored (aggregates only: no NIR, no
pseudonym); ``IncidentFacts`` adds the incident itself, the measures read from
the trail and the organisation from configuration. Plain data, JSON-able, so
that ``report.json`` is exactly what the HTML and PDF show.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "REVEALS",
    "IncidentFacts",
    "Measure",
    "Organization",
    "ScopeSummary",
    "Transition",
]

REVEALS = ("health", "irregular_residence", "low_income", "nir", "minor", "over_75")
"""What an exposure reveals about a person, beyond identity (DESIGN glossary):
``health`` the ALD status (a long-term illness, GDPR Art. 9), ``irregular_residence``
AME, ``low_income`` C2S, ``nir`` the social security number (its own French regime),
``minor`` under 18 and ``over_75`` vulnerable groups (age at first exposure)."""


@dataclass
class ScopeSummary:
    incident_id: int
    version: int
    """1 for the first scoping; each re-scoping that finds new persons adds one."""
    scoped_at: str
    """ISO 8601, UTC."""
    source: str
    verified: bool
    verification_problems: list[str]
    persons: int
    records: int
    new_persons: int
    """Persons first exposed in this version (all of them in version 1): a complementary
    notification reports these."""
    unresolved: int
    """Exposed pseudonyms no insured person matches any more (counted in ``persons``)."""
    by_category: dict[str, int]
    """Data category returned (``rempart.audit.chain.CATEGORIES``) -> persons."""
    by_reveal: dict[str, int]
    """What the exposure reveals (``REVEALS``) -> persons."""
    by_combination: dict[str, int]
    """Sorted ``+``-joined reveals (``"health+low_income"``, ``""`` = identity only) -> persons."""
    by_department: dict[str, int]
    by_account: dict[str, dict[str, int]]
    """Account -> ``{"records", "persons", "first_us", "last_us"}``: records and times (to
    the hour) from the latest reading, persons from every scoping's union."""
    refused: dict[str, int]
    """Lookups that returned nothing, per outcome: intent, not exposure."""
    intent_subjects: int
    first_us: int | None
    last_us: int | None
    series: list[tuple[str, int, int]]
    """(account, hour start µs, answered lookups), sorted."""
    reachable: dict[str, int]
    """``{"email": persons with an e-mail address, "letter": the others}``."""
    rows_scanned: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScopeSummary:
        data = dict(data)
        data["series"] = [tuple(x) for x in data.get("series", [])]
        return cls(**data)


@dataclass(frozen=True)
class Transition:
    status: str
    at: str
    operator: str
    note: str = ""


@dataclass(frozen=True)
class Measure:
    """A measure taken after the breach, as the trail recorded it."""

    at: str
    event: str
    """``account_suspended``, ``client_suspended``, ``password_reset``, ``mfa_reset``,
    ``webauthn_removed``, ``account_restored``, ``sessions_revoked``..."""
    subject: str
    """The account or client it applied to."""
    by: str
    count: int = 1


@dataclass(frozen=True)
class Organization:
    name: str
    siren: str
    address: str
    dpo_name: str
    dpo_email: str
    dpo_phone: str


@dataclass
class IncidentFacts:
    incident_id: int
    name: str
    status: str
    notification: str
    """``initial`` or ``complementary`` (a report after a re-scoping found new persons)."""
    opened_at: str
    aware_at: str
    discovery: str
    """How it was discovered (e.g. the guard's alerts, named), in French."""
    cause: str
    delay_reason: str
    planned_measures: list[str]
    definition: dict[str, Any]
    transitions: list[Transition]
    scope: ScopeSummary
    measures: list[Measure]
    organization: Organization
    ongoing: bool
    """True while an account or client of the definition is still active."""
    security_before: list[str]
    """Security measures in place before the breach, in French, from configuration."""
    communication: dict[str, Any]
    """The people's information: ``{"status": "planned" | "done" | "none", "date": ISO or
    None, "channels": {"email": persons, "letter": persons}}`` (``notify`` fills it)."""
    extra: dict[str, Any] = field(default_factory=dict)
