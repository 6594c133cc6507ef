"""« Ce n'était pas moi »: the owner of an account disowns its recent lookups.

One domain call, one transaction: the account is suspended (every session ends), the
operators get a guard alert (:data:`REASON`) and an incident draft — an incident opened
and not yet scoped — whose definition is the account from the oldest disowned lookup
until now, the trail records the report, and the professional is told by e-mail and by
a notice at their next strong login. Nothing is half done: the alert never exists
without the suspension, nor the suspension without the incident.

Whoever holds the session can press the button, an intruder too: it fails safe (the
account is suspended, the operators look), and the owner calls the insurer.

Two reports racing (a double click) suspend once: the second finds the account no
longer active and changes nothing (:attr:`Disowned.already`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from rempart.audit.events import Origin
from rempart.audit.models import AuditEvent
from rempart.audit.trail import now_us
from rempart.auth.service import AuthService, Principal
from rempart.console.display import when
from rempart.guard.alerts import raise_alert
from rempart.incident.definition import AccountElement, Definition
from rempart.incident.service import IncidentService
from rempart.portal.own_lookups import DAY_US, WINDOW_DAYS, lookup_refs
from rempart.store.models import Account

__all__ = ["EVENT", "NOTICE", "REASON", "Disowned", "disown_lookups"]

REASON = "reported_by_owner"
"""The guard alert's reason code (``console/alert_reasons.py`` says it in French)."""
EVENT = "account_disowned_lookups"
NOTICE = "lookups_disowned"
"""The e-mail (``notify/templates/lookups_disowned``)."""


@dataclass(frozen=True, slots=True)
class Disowned:
    already: bool
    """The account was no longer active: nothing was done (a second submission)."""
    lookups: int = 0
    """How many lookups the owner ticked (0: the whole window, none ticked)."""
    since: datetime | None = None
    alert_id: int | None = None
    incident_id: int | None = None


def _oldest_lookup(audit_engine: Engine, account_id: str, since_us: int) -> int | None:
    with audit_engine.connect() as connection:
        oldest = connection.scalar(
            select(func.min(AuditEvent.ts_us)).where(
                AuditEvent.account_id == account_id,
                AuditEvent.ts_us >= since_us,
                AuditEvent.event == "lookup",
            )
        )
    return None if oldest is None else int(oldest)


def disown_lookups(
    session: Session,
    *,
    auth: AuthService,
    incidents: IncidentService,
    audit_engine: Engine,
    principal: Principal,
    origin: Origin,
    refs: Sequence[str] = (),
) -> Disowned:
    """Report the lookups ``refs`` (``shard-seq`` of the account's own entries; none:
    every lookup of the window) in the caller's transaction, which the caller commits.

    The incident covers the account from the oldest reported lookup (the window's
    start when there is none) until now: lookups the owner did not tick but made in
    between are the operators' to weigh, not the owner's to hide."""
    account_id = principal.account_id
    now = now_us()
    window_start = now - WINDOW_DAYS * DAY_US
    ticked = lookup_refs(audit_engine, account_id, refs, now=now)
    since_us = ticked[0] if ticked else _oldest_lookup(audit_engine, account_id, window_start)
    since_us = window_start if since_us is None else since_us
    # Claim the suspension first: the UPDATE takes the row's lock (the database's write
    # lock on SQLite), so of two reports racing the second sees it done and stops here.
    claimed = session.execute(
        update(Account)
        .where(Account.account_id == account_id, Account.status == "active")
        .values(status="suspended")
    )
    if not getattr(claimed, "rowcount", 0):
        return Disowned(already=True)
    by = f"professional:{account_id}"
    auth.suspend(session, account_id, by=by)
    since = datetime.fromtimestamp(since_us / 1_000_000, UTC)
    reported = len(ticked)
    alert_id = raise_alert(
        session,
        account_id=account_id,
        session_id=principal.session_id,
        decision="deny",
        # The alert's weight, as for a guessed second factor: a count the operator reads.
        score=float(reported),
        reasons=(REASON,),
        audit_ts_us=now,
    )
    what = (
        f"{reported} consultation(s) cochée(s), la plus ancienne le {when(since)}"
        if reported
        else f"aucune cochée : toutes celles du compte depuis le {when(since)}"
    )
    incident_id = incidents.open(
        session,
        name=f"Consultations non reconnues par le titulaire du compte {account_id}",
        # Built here rather than from datetimes (``build_definition``): the bounds stay
        # the trail's exact microseconds, and the account is known to exist (just claimed).
        definition=Definition(accounts=(AccountElement(account_id, since_us, now + 1),)),
        operator=by,
        discovery=(
            "Signalé par le professionnel depuis le portail (« Ce n'était pas moi ») : "
            f"{what} (heure de Paris). "
            f"Compte suspendu, alerte n° {alert_id}."
        ),
    )
    auth.record_for(
        EVENT,
        principal,
        origin,
        session=session,
        reasons=f"alert:{alert_id},incident:{incident_id},lookups:{reported},since_us:{since_us}",
    )
    auth.notify_professional(session, account_id, NOTICE, count=reported, since=since)
    return Disowned(
        already=False,
        lookups=reported,
        since=since,
        alert_id=alert_id,
        incident_id=incident_id,
    )
