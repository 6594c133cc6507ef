"""New recovery codes, carried from the form that mints them to the one page that shows them.

The codes may travel neither in a URL nor in a page answering a POST (a reload would
post again and mint new ones, silently voiding the sheet just printed). They wait
server-side, sealed (:mod:`rempart.portal.sealed`: a recovery code resets the password,
so the database never holds them readable), taken once, bound to the session that
minted them, gone after five minutes.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from rempart.auth.secretbox import SecretBox
from rempart.auth.service import Principal
from rempart.portal.sealed import keep_sealed, take_sealed

__all__ = ["TTL_SECONDS", "keep_codes", "take_codes"]

PURPOSE = "portal_recovery_codes"
TTL_SECONDS = 300


def keep_codes(box: SecretBox, session: Session, principal: Principal, codes: list[str]) -> str:
    """Keeps ``codes`` for one showing; returns the handle."""
    return keep_sealed(
        box,
        session,
        purpose=PURPOSE,
        account_id=principal.account_id,
        session_id=principal.session_id,
        content={"codes": "\n".join(codes)},
        ttl_seconds=TTL_SECONDS,
    )


def take_codes(
    box: SecretBox, session: Session, principal: Principal, handle: str
) -> list[str] | None:
    """The codes kept under ``handle`` for this session, once; None if already shown,
    expired, or kept for another session."""
    content = take_sealed(
        box,
        session,
        purpose=PURPOSE,
        handle=handle,
        account_id=principal.account_id,
        session_id=principal.session_id,
    )
    return content["codes"].split("\n") if content and "codes" in content else None
