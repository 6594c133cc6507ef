"""New recovery codes, carried from the form that mints them to the one page that shows them.

The codes may travel neither in a URL nor in a page answering a POST (a reload would
post again and mint new ones, silently voiding the sheet just printed). They wait
server-side, sealed, under a random handle the browser holds in an HttpOnly cookie:
taken once, bound to the session that minted them, gone after five minutes.
The database never holds them readable (a recovery code resets the password).
"""

from __future__ import annotations

import base64

from sqlalchemy.orm import Session

from rempart.auth.challenges import ChallengeStore
from rempart.auth.secretbox import SecretBox
from rempart.auth.service import Principal

__all__ = ["TTL_SECONDS", "keep_codes", "take_codes"]

PURPOSE = "portal_recovery_codes"
TTL_SECONDS = 300


def _context(principal: Principal) -> str:
    return f"recovery-codes:{principal.account_id}:{principal.session_id}"


def keep_codes(
    challenges: ChallengeStore,
    box: SecretBox,
    session: Session,
    principal: Principal,
    codes: list[str],
) -> str:
    """Keeps ``codes`` for one showing; returns the handle."""
    sealed = box.seal("\n".join(codes), context=_context(principal))
    return challenges.put(
        session,
        purpose=PURPOSE,
        payload={"sealed": base64.b64encode(sealed).decode()},
        ttl_seconds=TTL_SECONDS,
        account_id=principal.account_id,
    )


def take_codes(
    challenges: ChallengeStore,
    box: SecretBox,
    session: Session,
    principal: Principal,
    handle: str,
) -> list[str] | None:
    """The codes kept under ``handle`` for this session, once; None if already shown,
    expired, or kept for another session."""
    if not handle or len(handle) > 128:
        return None
    kept = challenges.take(session, handle=handle, purpose=PURPOSE)
    if kept is None or kept.account_id != principal.account_id:
        return None
    sealed = kept.payload.get("sealed")
    if not isinstance(sealed, str):
        return None
    try:
        return box.open(base64.b64decode(sealed), context=_context(principal)).split("\n")
    except ValueError:  # another session's codes: the context does not open them
        return None
