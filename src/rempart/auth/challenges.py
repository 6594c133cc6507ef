"""Single-use, short-lived server-side values: WebAuthn challenges, OIDC state and nonce.

They live in the database so that every worker and host sees them. Taking one
deletes it in the same statement (``DELETE … RETURNING``): two requests racing
with the same handle cannot both get it, and an expired one is never returned.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from rempart.store.engine import as_utc
from rempart.store.models import AuthChallenge

__all__ = ["Challenge", "ChallengeStore"]

_PURGE_ONE_IN = 64


@dataclass(frozen=True)
class Challenge:
    handle: str
    purpose: str
    account_id: str | None
    payload: dict[str, object]


class ChallengeStore:
    def put(
        self,
        session: Session,
        *,
        purpose: str,
        payload: dict[str, object],
        ttl_seconds: int,
        account_id: str | None = None,
        handle: str | None = None,
    ) -> str:
        """Store a value; returns its handle (a fresh random one unless given)."""
        handle = handle or secrets.token_urlsafe(32)
        session.add(
            AuthChallenge(
                handle=handle,
                purpose=purpose,
                account_id=account_id,
                payload=json.dumps(payload, separators=(",", ":")),
                expires_at=datetime.now(UTC) + timedelta(seconds=ttl_seconds),
            )
        )
        if secrets.randbelow(_PURGE_ONE_IN) == 0:
            # Anyone may start a login (and so write a row): expired rows are swept as
            # they come, without a scheduler, at a cost spread over many requests.
            self.purge_expired(session)
        session.flush()
        return handle

    def take(self, session: Session, *, handle: str, purpose: str) -> Challenge | None:
        """Remove and return the value, or None if absent, expired or of another purpose."""
        row = session.execute(
            delete(AuthChallenge)
            .where(AuthChallenge.handle == handle, AuthChallenge.purpose == purpose)
            .returning(AuthChallenge.account_id, AuthChallenge.payload, AuthChallenge.expires_at)
        ).one_or_none()
        if row is None:
            return None
        if as_utc(row.expires_at) <= datetime.now(UTC):
            return None
        payload = json.loads(row.payload)
        if not isinstance(payload, dict):
            return None
        return Challenge(handle=handle, purpose=purpose, account_id=row.account_id, payload=payload)

    def purge_expired(self, session: Session) -> int:
        result = session.execute(
            delete(AuthChallenge).where(AuthChallenge.expires_at <= datetime.now(UTC))
        )
        return int(getattr(result, "rowcount", 0) or 0)
