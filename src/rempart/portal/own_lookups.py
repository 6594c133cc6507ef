"""« Mes consultations »: a professional's own recent lookups, read from the audit trail.

One query through the trail's ``(account_id, ts_us)`` index, newest first, bounded by
the window (:data:`WINDOW_DAYS`) and the page (:data:`PAGE`); then one batched query
for the names, through the unique index on ``insured.pseudonym`` — the page costs the
same for a quiet account and a busy one.

A person is named only for a lookup that returned their record: the owner saw that
name on the answer card already. A lookup that was refused, stepped up or found no one
keeps its person unnamed, even when the pseudonym matches somebody (a NIR typed with a
wrong birth date, a NIR the guard refused to read): naming them here would let anyone
holding a session learn whose NIR it is without the birth date. No NIR is ever shown.

Nor are names to every session: a password and one relayed code open a session, and
the page would hand its holder, past the guard, the names of everyone the practice read
this week. A session that is not phishing-resistant (see
:func:`rempart.auth.levels.passes_step_up`) sees the names of its own lookups only
(``named_session``); the others' times, networks, devices and outcomes — what tells a
robot apart — stay visible, their names masked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, tuple_

from rempart.audit.models import AuditEvent
from rempart.audit.trail import now_us
from rempart.portal.device_names import device_name
from rempart.store.models import Insured

__all__ = [
    "PAGE",
    "WINDOW_DAYS",
    "OwnLookup",
    "OwnLookups",
    "lookup_refs",
    "own_lookups",
    "parse_ref",
]

WINDOW_DAYS = 7
PAGE = 200
DAY_US = 86_400_000_000

# The trail's outcome codes as the professional reads them, with a kind for the page's
# styling and the tests: read (data left), step_up, refused, not_found, malformed.
_OUTCOMES: dict[str, tuple[str, str]] = {
    "ok": ("read", "données lues"),
    "insufficient_user_authentication": (
        "step_up",
        "vérification demandée (clé de sécurité ou carte CPS)",
    ),
    "account_suspended": ("refused", "refusée : compte suspendu"),
    "client_suspended": ("refused", "refusée : logiciel métier suspendu"),
    "guard_unavailable": ("refused", "refusée : service momentanément indisponible"),
    "not_found": ("not_found", "aucun assuré trouvé"),
    "invalid_nir": ("malformed", "NIR mal formé"),
    "invalid_birth_date": ("malformed", "date de naissance mal formée"),
}
_REFUSED = ("refused", "refusée")


@dataclass(frozen=True, slots=True)
class OwnLookup:
    ref: str
    """The entry's place in the trail (``shard-seq``): what the report form sends back."""
    at: datetime
    client_ip: str
    device: str
    kind: str
    outcome: str
    """In French."""
    person: str
    """« Camille DUPONT, née en 1985 » for a lookup that returned data, else empty."""
    masked: bool = False
    """The lookup returned data, but its name is withheld from this session."""


@dataclass(frozen=True, slots=True)
class OwnLookups:
    lookups: tuple[OwnLookup, ...]
    since: datetime
    """The window's start."""
    next_before: int | None
    """The cursor of the next page (``ts_us``), None on the last one."""


def _outcome(outcome: str, found: int) -> tuple[str, str]:
    if outcome == "ok" and found != 1:
        return _REFUSED  # not expected: an "ok" entry always carries the record
    return _OUTCOMES.get(outcome, _REFUSED)


def _person(first_name: str, last_name: str, sex: int, born: int) -> str:
    return f"{first_name} {last_name.upper()}, {'née' if sex == 2 else 'né'} en {born}"


def _names(data_engine: Engine, pseudonyms: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(pseudonyms))
    if not wanted:
        return {}
    with data_engine.connect() as connection:
        rows = connection.execute(
            select(
                Insured.pseudonym,
                Insured.first_name,
                Insured.last_name,
                Insured.sex,
                Insured.birth_date,
            ).where(Insured.pseudonym.in_(wanted))
        ).all()
    return {
        str(row.pseudonym): _person(row.first_name, row.last_name, row.sex, row.birth_date.year)
        for row in rows
    }


def own_lookups(
    audit_engine: Engine,
    data_engine: Engine,
    account_id: str,
    *,
    named_session: str | None,
    before_us: int | None = None,
    now: int | None = None,
    limit: int = PAGE,
) -> OwnLookups:
    """The account's lookups of the last :data:`WINDOW_DAYS` days, newest first, at most
    ``limit`` before ``before_us`` (a later page starts at the previous one's cursor).
    Persons are named for every lookup when ``named_session`` is None, else only for
    that session's own lookups.

    Entries sharing the cursor's microsecond with the last row shown would be skipped by
    the next page: one account's lookups do not collide at that resolution."""
    current = now_us() if now is None else now
    since = current - WINDOW_DAYS * DAY_US
    query = (
        select(
            AuditEvent.shard,
            AuditEvent.seq,
            AuditEvent.ts_us,
            AuditEvent.client_ip,
            AuditEvent.user_agent,
            AuditEvent.session_id,
            AuditEvent.subject,
            AuditEvent.found,
            AuditEvent.outcome,
        )
        .where(
            AuditEvent.account_id == account_id,
            AuditEvent.ts_us >= since,
            AuditEvent.event == "lookup",
        )
        .order_by(AuditEvent.ts_us.desc(), AuditEvent.shard.desc(), AuditEvent.seq.desc())
        .limit(limit + 1)
    )
    if before_us is not None:
        query = query.where(AuditEvent.ts_us < before_us)
    with audit_engine.connect() as connection:
        rows = connection.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]

    def nameable(row: Any) -> bool:
        return named_session is None or row.session_id == named_session

    names = _names(
        data_engine,
        (r.subject for r in rows if r.outcome == "ok" and r.found == 1 and nameable(r)),
    )
    lookups = []
    for row in rows:
        kind, outcome = _outcome(row.outcome, row.found)
        shown = kind == "read" and nameable(row)
        lookups.append(
            OwnLookup(
                ref=f"{row.shard}-{row.seq}",
                at=datetime.fromtimestamp(row.ts_us / 1_000_000, UTC),
                client_ip=row.client_ip,
                device=device_name(row.user_agent),
                kind=kind,
                outcome=outcome,
                person=names.get(row.subject, "") if shown else "",
                masked=kind == "read" and not shown,
            )
        )
    return OwnLookups(
        lookups=tuple(lookups),
        since=datetime.fromtimestamp(since / 1_000_000, UTC),
        next_before=int(rows[-1].ts_us) if more and rows else None,
    )


def parse_ref(ref: str) -> tuple[int, int] | None:
    """``shard-seq`` as the page wrote it; None for anything else."""
    shard, dash, seq = ref.strip().partition("-")
    if not dash or not shard.isdigit() or not seq.isdigit() or len(shard) > 5 or len(seq) > 19:
        return None
    return int(shard), int(seq)


def lookup_refs(
    audit_engine: Engine, account_id: str, refs: Sequence[str], *, now: int | None = None
) -> list[int]:
    """The times (``ts_us``) of the account's own lookups among ``refs`` that are still
    in the window; a reference to another account's entry, or to anything but a lookup,
    is ignored."""
    places = [p for p in (parse_ref(r) for r in refs[:PAGE]) if p is not None]
    if not places:
        return []
    since = (now_us() if now is None else now) - WINDOW_DAYS * DAY_US
    with audit_engine.connect() as connection:
        times = connection.scalars(
            select(AuditEvent.ts_us).where(
                tuple_(AuditEvent.shard, AuditEvent.seq).in_(places),
                AuditEvent.account_id == account_id,
                AuditEvent.event == "lookup",
                AuditEvent.ts_us >= since,
            )
        ).all()
    return sorted(int(t) for t in times)
