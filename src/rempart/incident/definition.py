"""What an incident covers: its definition, checked before anything is stored.

A definition is a union of elements; a lookup belongs to the incident when it
matches any one of them:

- an **account**, optionally within ``[since, until)``: every lookup it made then;
- a **network** (CIDR), optionally within a time range: every lookup from it;
- a **session** (``session_id`` of the trail): every lookup made in it;
- a **guard alert**: the lookups behind it, i.e. its session, or, for an alert
  without a session, its account over the day before the alert.

A definition only grows (``merged``): re-scoping after ``incident add`` then gives
the union of what was scoped before and what the new elements add.
Times are microseconds since the Unix epoch (UTC), as in the audit trail.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rempart.errors import RempartError

__all__ = [
    "AccountElement",
    "AlertElement",
    "Definition",
    "InvalidDefinition",
    "NetworkElement",
    "check_range",
    "parse_network",
]

ALERT_LOOKBACK_US = 24 * 3600 * 1_000_000
"""For an alert without a session: the account's lookups over the day before it."""


class InvalidDefinition(RempartError):
    """A definition that cannot be scoped; ``code`` says which part is wrong."""

    status = 422

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail, code=code)


def check_range(since_us: int | None, until_us: int | None) -> None:
    if since_us is not None and until_us is not None and until_us <= since_us:
        raise InvalidDefinition(
            "invalid_time_range", "the time range is empty or inverted (until must follow since)"
        )


def parse_network(raw: str) -> str:
    """The network as stored (normalised CIDR); host bits set are refused, not masked."""
    try:
        return str(ipaddress.ip_network(raw.strip(), strict=True))
    except ValueError:
        raise InvalidDefinition(
            "invalid_network", f"not a network in CIDR notation: {raw[:64]!r}"
        ) from None


@dataclass(frozen=True, slots=True)
class AccountElement:
    account_id: str
    since_us: int | None = None
    until_us: int | None = None


@dataclass(frozen=True, slots=True)
class NetworkElement:
    cidr: str
    since_us: int | None = None
    until_us: int | None = None


@dataclass(frozen=True, slots=True)
class AlertElement:
    """A guard alert, resolved when it joins the definition (alerts are not rewritten)."""

    alert_id: int
    account_id: str
    session_id: str
    """The alert's session: its lookups are the incident's. Empty: the account's lookups
    within ``[since_us, until_us)``."""
    since_us: int | None = None
    until_us: int | None = None
    alerted_us: int = 0


@dataclass(frozen=True)
class Definition:
    accounts: tuple[AccountElement, ...] = ()
    networks: tuple[NetworkElement, ...] = ()
    sessions: tuple[str, ...] = ()
    alerts: tuple[AlertElement, ...] = field(default=())

    def __post_init__(self) -> None:
        elements: list[AccountElement | NetworkElement | AlertElement] = [
            *self.accounts,
            *self.networks,
            *self.alerts,
        ]
        for element in elements:
            check_range(element.since_us, element.until_us)

    @property
    def empty(self) -> bool:
        return not (self.accounts or self.networks or self.sessions or self.alerts)

    def account_ids(self) -> set[str]:
        return {a.account_id for a in self.accounts} | {a.account_id for a in self.alerts}

    def merged(self, other: Definition) -> Definition:
        """This definition grown by ``other``'s elements (each element kept once)."""

        def union(mine: tuple[Any, ...], theirs: tuple[Any, ...]) -> tuple[Any, ...]:
            return mine + tuple(e for e in theirs if e not in mine)

        return Definition(
            accounts=union(self.accounts, other.accounts),
            networks=union(self.networks, other.networks),
            sessions=union(self.sessions, other.sessions),
            alerts=union(self.alerts, other.alerts),
        )

    def session_filters(self) -> list[tuple[str, int | None, int | None]]:
        """Sessions whose lookups count, each with its time bounds (none for sessions)."""
        out: list[tuple[str, int | None, int | None]] = [(s, None, None) for s in self.sessions]
        out += [(a.session_id, None, None) for a in self.alerts if a.session_id]
        return out

    def account_filters(self) -> list[tuple[str, int | None, int | None]]:
        """Accounts whose lookups count, each with its time bounds."""
        out = [(a.account_id, a.since_us, a.until_us) for a in self.accounts]
        out += [(a.account_id, a.since_us, a.until_us) for a in self.alerts if not a.session_id]
        return out

    def span(self) -> tuple[int | None, int | None]:
        """The earliest ``since`` and latest ``until`` of the time-bounded elements, ``None``
        where any element is open on that side (or for sessions, which have no bound)."""
        bounded: list[AccountElement | NetworkElement | AlertElement] = [
            *self.accounts,
            *self.networks,
        ]
        bounded += [a for a in self.alerts if not a.session_id]
        if not bounded or self.sessions or any(a.session_id for a in self.alerts):
            return None, None
        sinces = [e.since_us for e in bounded]
        untils = [e.until_us for e in bounded]
        return (
            None if None in sinces else min(s for s in sinces if s is not None),
            None if None in untils else max(u for u in untils if u is not None),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Definition:
        data = json.loads(raw)
        return cls(
            accounts=tuple(AccountElement(**e) for e in data.get("accounts", ())),
            networks=tuple(NetworkElement(**e) for e in data.get("networks", ())),
            sessions=tuple(data.get("sessions", ())),
            alerts=tuple(AlertElement(**e) for e in data.get("alerts", ())),
        )
