"""What the guard reads (lookups, claims) and what it answers (decisions).

Timestamps are integers: microseconds since 1970-01-01 UTC, as Arrow's
``timestamp("us", tz="UTC")`` stores them. :func:`to_micros` converts an aware
datetime.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

__all__ = [
    "ALLOW",
    "AUTH_METHODS",
    "CHANNELS",
    "DAY_US",
    "DENY",
    "HOUR_US",
    "SECOND_US",
    "STEP_UP",
    "ClaimEvent",
    "Decision",
    "DecisionKind",
    "LookupEvent",
    "to_micros",
]

DecisionKind = Literal["allow", "step_up", "deny"]
ALLOW: Final = "allow"
STEP_UP: Final = "step_up"
DENY: Final = "deny"

AUTH_METHODS: frozenset[str] = frozenset({"password", "totp", "webauthn", "cps", "psc"})
CHANNELS: frozenset[str] = frozenset({"portal", "software"})

SECOND_US: Final = 1_000_000
HOUR_US: Final = 3600 * SECOND_US
DAY_US: Final = 24 * HOUR_US


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (naive ones are refused)."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (UTC)")
    delta = moment - datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    return (delta.days * 86_400 + delta.seconds) * SECOND_US + delta.microseconds


@dataclass(frozen=True, slots=True)
class LookupEvent:
    """One rights lookup, as the service received it (``nir`` and ``birth_date`` untrusted)."""

    event_id: int
    ts: int
    """Microseconds since the epoch, UTC."""
    account_id: str
    nir: str
    birth_date: str | None
    """``YYYY-MM-DD`` as given (may be wrong or missing)."""
    ip: str
    user_agent: str
    session_id: str
    auth: str
    channel: str


@dataclass(frozen=True, slots=True)
class ClaimEvent:
    """Care billed by an account for a person: the proof that a lookup had a reason."""

    ts: int
    account_id: str
    nir: str


@dataclass(frozen=True, slots=True)
class Decision:
    event_id: int
    decision: DecisionKind
    score: float
    """Pressure on the account: about 1 where the rules start to act (see the engine)."""
    reasons: tuple[str, ...]
    """Reason codes (:data:`rempart.guard.signals.REASONS` says what each means)."""
