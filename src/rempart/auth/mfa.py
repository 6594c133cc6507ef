"""A login between its password step and its second factor, kept server-side.

The password step opens a challenge: a random id (carried, signed, in the
``mfa_token``), the account, a keyed hash of the client's address and user agent,
an expiry and a count of attempts. A second factor is then accepted only

- from the client that passed the password step (a token lifted from a log, a proxy
  or a browser and replayed elsewhere is refused),
- at most ``max_attempts`` times (each attempt is claimed, and committed, before the
  factor is checked, so parallel requests cannot share one attempt),
- once: the first success spends the challenge with a conditional update, so a token
  relayed by a phishing page is worth nothing after the owner's login, and of two
  requests racing with one token only one wins.

Fetching a key's options reads the challenge without claiming an attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from rempart.audit.events import Origin
from rempart.auth.levels import PHISHING_RESISTANT, StepUpRequired
from rempart.store.engine import as_utc
from rempart.store.models import MfaChallenge

__all__ = [
    "MAX_ATTEMPTS_PER_TOKEN",
    "ChallengeRefusal",
    "MfaChallengeStore",
    "SecondFactorLocked",
    "SecondFactorRequired",
]

# A mistyped code or two and a clock one step off, not a guessing budget: past it the
# professional types the password again (which the throttle counts).
MAX_ATTEMPTS_PER_TOKEN = 3
_PURGE_ONE_IN = 64


class SecondFactorLocked(StepUpRequired):
    """Too many wrong second factors on the account: only a phishing-resistant factor
    (or an operator) opens it now, whatever code comes next."""

    code = "mfa_locked"

    def __init__(self) -> None:
        super().__init__(
            tuple(sorted(PHISHING_RESISTANT)),
            detail="too many wrong codes were given for this account: log in with a "
            "security key or the CPS card, or call the insurer",
        )


class SecondFactorRequired(StepUpRequired):
    """A sensitive change needs a fresh second factor: a code, or a recent key or card."""

    code = "second_factor_required"

    def __init__(self, max_age: int) -> None:
        super().__init__(
            tuple(sorted(PHISHING_RESISTANT)),
            max_age=max_age,
            detail="give a code from the authenticator app in 'code', or log in again "
            "with a security key or the CPS card",
        )


class ChallengeRefusal(StrEnum):
    """Why a challenge does not hold (recorded in the trail, never told the client)."""

    UNKNOWN = "unknown"
    EXPIRED = "expired"
    SPENT = "spent"
    EXHAUSTED = "attempts_exhausted"
    OTHER_CLIENT = "other_client"


class MfaChallengeStore:
    def __init__(self, key: bytes, *, ttl_seconds: int, max_attempts: int = MAX_ATTEMPTS_PER_TOKEN):
        if len(key) < 16:
            raise ValueError("the MFA binding key must hold at least 16 bytes")
        self._key = key
        self.ttl = timedelta(seconds=ttl_seconds)
        self.max_attempts = max_attempts

    def client_hash(self, origin: Origin) -> str:
        message = f"{origin.client_ip}\x00{origin.user_agent.strip()}".encode("utf-8", "replace")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def open(self, session: Session, *, account_id: str, origin: Origin) -> str:
        """A new challenge for the client of ``origin``; returns its id."""
        challenge_id = secrets.token_urlsafe(24)
        session.add(
            MfaChallenge(
                challenge_id=challenge_id,
                account_id=account_id,
                client_hash=self.client_hash(origin),
                expires_at=datetime.now(UTC) + self.ttl,
                attempts=0,
            )
        )
        if secrets.randbelow(_PURGE_ONE_IN) == 0:
            # Anyone with a password opens one: expired rows are swept as they come.
            self.purge_expired(session)
        session.flush()
        return challenge_id

    def check(
        self, session: Session, challenge_id: str, *, account_id: str, origin: Origin
    ) -> ChallengeRefusal | None:
        """Why the challenge cannot take a second factor from this client, or None."""
        row = session.get(MfaChallenge, challenge_id, populate_existing=True)
        if row is None or row.account_id != account_id:
            return ChallengeRefusal.UNKNOWN
        if row.spent_at is not None:
            return ChallengeRefusal.SPENT
        if as_utc(row.expires_at) <= datetime.now(UTC):
            return ChallengeRefusal.EXPIRED
        if row.attempts >= self.max_attempts:
            return ChallengeRefusal.EXHAUSTED
        if not hmac.compare_digest(row.client_hash, self.client_hash(origin)):
            return ChallengeRefusal.OTHER_CLIENT
        return None

    def claim_attempt(self, session: Session, challenge_id: str) -> bool:
        """Counts one attempt if one is left (atomic); the caller commits it at once."""
        result = session.execute(
            update(MfaChallenge)
            .where(
                MfaChallenge.challenge_id == challenge_id,
                MfaChallenge.spent_at.is_(None),
                MfaChallenge.attempts < self.max_attempts,
            )
            .values(attempts=MfaChallenge.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        return getattr(result, "rowcount", 0) == 1

    def spend(self, session: Session, challenge_id: str) -> bool:
        """Marks the challenge used; False when another request spent it first."""
        result = session.execute(
            update(MfaChallenge)
            .where(MfaChallenge.challenge_id == challenge_id, MfaChallenge.spent_at.is_(None))
            .values(spent_at=datetime.now(UTC))
            .execution_options(synchronize_session=False)
        )
        return getattr(result, "rowcount", 0) == 1

    def purge_expired(self, session: Session) -> int:
        result = session.execute(
            delete(MfaChallenge).where(MfaChallenge.expires_at <= datetime.now(UTC))
        )
        return int(getattr(result, "rowcount", 0) or 0)
