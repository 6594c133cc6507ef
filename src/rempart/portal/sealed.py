"""Short-lived, single-use values a portal page hands to the next one without the
browser carrying them: an answer card, a lookup waiting for a step-up, new recovery
codes. Kept in the challenge store (every worker sees them), sealed with the service's
secret box (a copy of the database does not show them), bound to the account and the
session that made them, taken once; the browser holds only the random handle.
"""

from __future__ import annotations

import base64
import json

from sqlalchemy.orm import Session

from rempart.auth.challenges import ChallengeStore
from rempart.auth.secretbox import SecretBox

__all__ = ["keep_sealed", "take_sealed"]

_store = ChallengeStore()


def _context(purpose: str, account_id: str) -> str:
    return f"{purpose}:{account_id}"


def keep_sealed(
    box: SecretBox,
    session: Session,
    *,
    purpose: str,
    account_id: str,
    session_id: str,
    content: dict[str, str],
    ttl_seconds: int,
    handle: str | None = None,
) -> str:
    """Keeps ``content`` sealed for ``session_id`` of ``account_id``; returns the handle
    (a fresh random one unless given)."""
    sealed = box.seal(
        json.dumps(content, separators=(",", ":")), context=_context(purpose, account_id)
    )
    return _store.put(
        session,
        purpose=purpose,
        account_id=account_id,
        payload={"session_id": session_id, "sealed": base64.b64encode(sealed).decode("ascii")},
        ttl_seconds=ttl_seconds,
        handle=handle,
    )


def take_sealed(
    box: SecretBox,
    session: Session,
    *,
    purpose: str,
    handle: str,
    account_id: str,
    session_id: str,
) -> dict[str, str] | None:
    """The kept content, removed, if it is this account's and was kept for ``session_id``;
    else None (and it is removed all the same: a handle serves once)."""
    if not handle:
        return None
    kept = _store.take(session, handle=handle[:128], purpose=purpose)
    if (
        kept is None
        or kept.account_id != account_id
        or kept.payload.get("session_id") != session_id
    ):
        return None
    sealed = kept.payload.get("sealed")
    if not isinstance(sealed, str):
        return None
    try:
        content = json.loads(
            box.open(base64.b64decode(sealed), context=_context(purpose, account_id))
        )
    except ValueError:
        return None
    if not isinstance(content, dict) or not all(isinstance(v, str) for v in content.values()):
        return None
    return content
