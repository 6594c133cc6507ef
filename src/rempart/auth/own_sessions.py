"""A professional ending their own account's sessions: one they do not recognise, or all.

Shared by the API and the portal. Each end is recorded with the session that asked and
told to the professional (e-mail and pending notice): an intruder who ends the owner's
sessions to keep them from looking is heard of too.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from rempart.audit.events import Origin
from rempart.auth.service import AuthService, Principal
from rempart.store.models import AuthSession

__all__ = ["end_all_sessions", "end_session"]


def end_session(
    auth: AuthService,
    session: Session,
    principal: Principal,
    session_id: str,
    origin: Origin,
) -> AuthSession | None:
    """Ends one open session of the caller's own account; None (and nothing recorded)
    when there is no such open session — another account's is not told apart."""
    open_sessions = auth.sessions.list_open(session, principal.account_id)
    row = next((s for s in open_sessions if s.session_id == session_id), None)
    if row is None or not auth.sessions.revoke(session, session_id, reason="user"):
        return None
    auth.record_for(
        "session_revoked", principal, origin, session=session, reasons=f"session:{session_id[:6]}"
    )
    auth.notify_professional(
        session,
        principal.account_id,
        "session_revoked",
        network=f"adresse IP {row.client_ip}" if row.client_ip else "inconnu",
        device=row.user_agent[:120] or "navigateur inconnu",
    )
    return row


def end_all_sessions(
    auth: AuthService, session: Session, principal: Principal, origin: Origin
) -> int:
    """Ends every session and token of the caller's account, the caller's own included."""
    ended = auth.revoke_sessions(session, principal.account_id, reason="user")
    auth.record_for(
        "sessions_revoked", principal, origin, session=session, reasons=f"count:{ended}"
    )
    auth.notify_professional(session, principal.account_id, "sessions_revoked", count=ended)
    return ended
