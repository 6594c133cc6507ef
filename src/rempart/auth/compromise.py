"""When did an account's compromise begin: the default of ``rempart accounts restore``.

Restoring an account removes what was added to it since the compromise began (keys,
recovery codes, networks). Too late a start leaves the attacker's key in place; too
early a start only costs the owner a key or codes to enrol again (the password and the
TOTP seed are replaced whatever the start). So the default is the *earliest* sound
evidence, looked for after the account was last known clean (its last restore or
second-factor reset, else its creation):

- the guard's alerts on the account, and the login time of the sessions they name;
- lookups the guard refused or challenged (``step_up``, ``deny``), and the login time of
  their sessions (an attacker's session begins before its first refused lookup);
- logins from a network new to the account (the audit's ``login_new_origin`` events and
  the sessions recorded as such), the usual first trace of a stolen password.

With none of these, the start is the moment the account was last known clean: nothing
tells the attacker's additions apart, so all of them go. An operator who knows better
passes ``--compromised-since``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rempart.audit.models import AuditEvent
from rempart.store.engine import as_utc
from rempart.store.models import Account, AuthSession, GuardAlert

__all__ = ["CompromiseStart", "compromise_start"]

_CLEAN_EVENTS = ("account_restored", "mfa_reset")
_CHALLENGED = ("step_up", "deny")


@dataclass(frozen=True)
class CompromiseStart:
    at: datetime
    evidence: str  # what set it, in English, for the operator and the trail


def _from_us(ts_us: int) -> datetime:
    return datetime.fromtimestamp(ts_us / 1_000_000, UTC)


def _us(moment: datetime) -> int:
    return int(as_utc(moment).timestamp() * 1_000_000)


def _clean_since(session: Session, audit: Session, account_id: str) -> tuple[datetime, str]:
    last = audit.scalar(
        select(func.max(AuditEvent.ts_us)).where(
            AuditEvent.account_id == account_id, AuditEvent.event.in_(_CLEAN_EVENTS)
        )
    )
    if last is not None:
        return _from_us(int(last)), "the account's last restore or second-factor reset"
    created = session.scalar(select(Account.created_at).where(Account.account_id == account_id))
    if created is None:
        return datetime.fromtimestamp(0, UTC), "no record of the account's creation"
    return as_utc(created), "the account's creation"


def _session_starts(session: Session, session_ids: Iterable[str]) -> list[datetime]:
    ids = sorted({sid for sid in session_ids if sid})
    if not ids:
        return []
    rows = session.scalars(select(AuthSession.auth_time).where(AuthSession.session_id.in_(ids)))
    return [as_utc(moment) for moment in rows]


def compromise_start(session: Session, audit: Session, account_id: str) -> CompromiseStart:
    """The earliest sound evidence of the current compromise (see the module docstring).

    ``session`` reads the rights database, ``audit`` the audit trail's (they may be one)."""
    clean, clean_why = _clean_since(session, audit, account_id)
    floor_us = _us(clean)
    found: list[tuple[datetime, str]] = []

    alerts = session.execute(
        select(GuardAlert.created_at, GuardAlert.session_id).where(
            GuardAlert.account_id == account_id, GuardAlert.created_at >= clean
        )
    ).all()
    found += [(as_utc(row.created_at), "a guard alert") for row in alerts]
    found += [
        (t, "the login of a session the guard alerted on")
        for t in _session_starts(session, (row.session_id for row in alerts))
    ]

    challenged = audit.execute(
        select(AuditEvent.ts_us, AuditEvent.session_id).where(
            AuditEvent.account_id == account_id,
            AuditEvent.ts_us >= floor_us,
            AuditEvent.event == "lookup",
            AuditEvent.decision.in_(_CHALLENGED),
        )
    ).all()
    found += [(_from_us(row.ts_us), "a lookup the guard challenged") for row in challenged]
    found += [
        (t, "the login of a session whose lookups the guard challenged")
        for t in _session_starts(session, (row.session_id for row in challenged))
    ]

    new_origin = audit.scalar(
        select(func.min(AuditEvent.ts_us)).where(
            AuditEvent.account_id == account_id,
            AuditEvent.ts_us >= floor_us,
            AuditEvent.event == "login_new_origin",
        )
    )
    if new_origin is not None:
        found.append((_from_us(int(new_origin)), "a login from a new network or device"))
    new_network = session.scalar(
        select(func.min(AuthSession.auth_time)).where(
            AuthSession.account_id == account_id,
            AuthSession.new_network.is_(True),
            AuthSession.auth_time >= clean,
        )
    )
    if new_network is not None:
        found.append((as_utc(new_network), "a login from a new network"))

    found = [(moment, why) for moment, why in found if moment >= clean]
    if not found:
        return CompromiseStart(clean, f"no evidence found: since {clean_why}")
    moment, why = min(found, key=lambda item: item[0])
    return CompromiseStart(moment, why)
