"""``record_event``: the one way authentication events reach the audit trail."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy.orm import Session

from rempart.audit.chain import AuditEntry
from rempart.audit.trail import AuditTrail, now_us

__all__ = ["EventRecorder", "Origin", "login_pseudonym"]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an authentication attempt comes from."""

    login: str = ""
    client_ip: str = ""
    user_agent: str = ""


def login_pseudonym(login: str, key: bytes) -> str:
    """Keyed pseudonym of a login as typed (unknown logins too), for the trail."""
    message = b"login:" + login.casefold().encode("utf-8", "replace")
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


class EventRecorder:
    def __init__(self, audit: AuditTrail, pseudonym_key: bytes) -> None:
        self._audit = audit
        self._key = pseudonym_key

    def record_event(
        self,
        event: str,
        *,
        outcome: str,
        origin: Origin | None = None,
        account_id: str = "",
        login: str = "",
        session_id: str = "",
        acr: str = "",
        reasons: str = "",
        session: Session | None = None,
    ) -> None:
        """Commit one authentication event; raises AuditUnavailable if it cannot be.

        Pass ``session`` when the event records a change made in it (an account created,
        a TOTP step consumed): both then commit together. Refusals are recorded without
        it, since the refused request's transaction is rolled back.
        """
        origin = origin or Origin(login=login)
        self._audit.append(
            [
                AuditEntry(
                    seq=0,
                    ts_us=now_us(),
                    event=event,
                    account_id=account_id,
                    session_id=session_id,
                    acr=acr,
                    client_ip=origin.client_ip,
                    user_agent=origin.user_agent,
                    subject=login_pseudonym(origin.login, self._key) if origin.login else "",
                    reasons=reasons,
                    outcome=outcome,
                )
            ],
            session=session,
        )
