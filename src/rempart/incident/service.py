"""Incidents: open, grow, scope, report, close — each step audited with its operator.

Framework-free: the CLI (and later the console) are thin over :class:`IncidentService`.
A scoping is one transaction (the exposed persons, the scope's aggregates, the
incident's status and, when the trail shares the database, its audit entry): a
scoping interrupted at any point leaves the previous scope as it was.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, func, or_, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from rempart.audit.chain import CATEGORIES, AuditEntry
from rempart.audit.models import AuditEvent
from rempart.audit.trail import AuditTrail, now_us
from rempart.errors import RempartError
from rempart.incident.definition import (
    ALERT_LOOKBACK_US,
    AccountElement,
    AlertElement,
    Definition,
    InvalidDefinition,
    NetworkElement,
    check_range,
    parse_network,
)
from rempart.incident.persons import Person, resolve, reveals
from rempart.incident.reading import HOUR_US, SubjectExposure, TrailReading, TrailSource
from rempart.incident.severity import check_circumstances
from rempart.incident.summary import (
    REVEALS,
    IncidentFacts,
    Measure,
    Organization,
    ScopeSummary,
    Transition,
)
from rempart.store.engine import as_utc
from rempart.store.models import (
    Account,
    ApiClient,
    AuthSession,
    GuardAlert,
    Incident,
    IncidentExposure,
    IncidentScope,
    IncidentTransition,
    Professional,
)
from rempart.store.pseudonyms import backfill

__all__ = [
    "IncidentError",
    "IncidentService",
    "build_definition",
]

MEASURE_EVENTS = (
    "account_suspended",
    "client_suspended",
    "password_reset",
    "mfa_reset",
    "webauthn_removed",
    "account_restored",
    "client_restored",
    "client_revoked",
)


class IncidentError(RempartError):
    def __init__(self, code: str, detail: str, status: int = 409) -> None:
        super().__init__(detail, code=code, status=status)


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _iso_us(value: int | None) -> str | None:
    return None if value is None else datetime.fromtimestamp(value / 1e6, UTC).isoformat()


def _report_baseline(incident: Incident) -> int:
    """The scope version the next (or current) report completes: persons first found
    after it are that report's new ones (0: the report is the initial notification)."""
    if incident.reported_version == incident.scope_version:
        return incident.report_baseline_version
    return incident.reported_version


def build_definition(
    session: Session,
    *,
    accounts: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    networks: Sequence[str] = (),
    sessions: Sequence[str] = (),
    alert_ids: Sequence[int] = (),
) -> Definition:
    """A definition from what an operator typed, checked against the database: every
    account, session and alert must exist; nothing is stored here."""
    since_us = None if since is None else _us(since)
    until_us = None if until is None else _us(until)
    check_range(since_us, until_us)
    wanted = sorted({a.strip() for a in accounts if a.strip()})
    if wanted:
        known = set(
            session.scalars(select(Account.account_id).where(Account.account_id.in_(wanted)))
        ) | set(
            session.scalars(
                select(Professional.account_id).where(Professional.account_id.in_(wanted))
            )
        )
        unknown = [a for a in wanted if a not in known]
        if unknown:
            raise InvalidDefinition("unknown_account", f"no such account: {', '.join(unknown[:5])}")
    session_ids = sorted({s.strip() for s in sessions if s.strip()})
    for session_id in session_ids:
        if session_id.startswith("client:"):
            exists = session.get(ApiClient, session_id.removeprefix("client:")) is not None
        else:
            exists = session.get(AuthSession, session_id) is not None
        if not exists:
            raise InvalidDefinition("unknown_session", f"no such session: {session_id[:64]}")
    alerts = []
    for alert_id in sorted(set(alert_ids)):
        alert = session.get(GuardAlert, alert_id)
        if alert is None:
            raise InvalidDefinition("unknown_alert", f"no such guard alert: {alert_id}")
        alerted_us = alert.audit_ts_us or _us(as_utc(alert.created_at))
        alerts.append(
            AlertElement(
                alert_id=alert.alert_id,
                account_id=alert.account_id,
                session_id=alert.session_id,
                since_us=None if alert.session_id else alerted_us - ALERT_LOOKBACK_US,
                until_us=None if alert.session_id else alerted_us + 1,
                alerted_us=alerted_us,
            )
        )
    definition = Definition(
        accounts=tuple(AccountElement(a, since_us, until_us) for a in wanted),
        networks=tuple(NetworkElement(parse_network(n), since_us, until_us) for n in networks),
        sessions=tuple(session_ids),
        alerts=tuple(alerts),
    )
    if definition.empty:
        raise InvalidDefinition(
            "empty_definition",
            "an incident needs at least one account, network, session or guard alert",
        )
    return definition


@dataclass(frozen=True)
class _Stored:
    """An exposure row as stored (merged over every scoping)."""

    pseudonym: str
    version: int
    records: int
    first_us: int
    last_us: int
    accounts: str
    categories: str
    reveals: str
    department: str | None
    resolved: bool
    has_email: bool

    def row(self, incident_id: int) -> dict[str, Any]:
        return {"incident_id": incident_id, **self.__dict__}


def _unchanged(old: _Stored, new: SubjectExposure) -> bool:
    """Whether a re-scoping adds nothing to a stored person (the common case)."""
    return (
        new.records <= old.records
        and new.first_us >= old.first_us
        and new.last_us <= old.last_us
        and all(a in old.accounts.split(",") for a in new.accounts)
        and all(c in old.categories.split(",") for c in new.categories)
    )


def _merge(
    old: _Stored | None, new: SubjectExposure, person: Person | None, version: int
) -> _Stored:
    """Re-scoping never shrinks what an earlier scoping found (the trail may have been
    archived since): counts and times widen, accounts and categories add up; what the
    person's record reveals is kept when they can no longer be resolved."""
    if old is None:
        return _Stored(
            pseudonym=new.subject,
            version=version,
            records=new.records,
            first_us=new.first_us,
            last_us=new.last_us,
            accounts=",".join(new.accounts),
            categories=",".join(new.categories),
            reveals=",".join(reveals(new, person)),
            department=person.department if person else None,
            resolved=person is not None,
            has_email=person.has_email if person else False,
        )
    accounts = set(new.accounts) | set(filter(None, old.accounts.split(",")))
    categories = set(new.categories) | set(filter(None, old.categories.split(",")))
    ordered = tuple(c for c in CATEGORIES if c in categories)
    merged = SubjectExposure(
        new.subject,
        max(new.records, old.records),
        min(new.first_us, old.first_us),
        max(new.last_us, old.last_us),
        tuple(sorted(accounts)),
        ordered,
    )
    return _Stored(
        pseudonym=new.subject,
        version=old.version,
        records=merged.records,
        first_us=merged.first_us,
        last_us=merged.last_us,
        accounts=",".join(merged.accounts),
        categories=",".join(ordered),
        reveals=",".join(reveals(merged, person)) if person else old.reveals,
        department=person.department if person else old.department,
        resolved=person is not None or old.resolved,
        has_email=person.has_email if person else old.has_email,
    )


def summarize(
    connection: Connection,
    incident_id: int,
    version: int,
    reading: TrailReading,
    *,
    new_persons: int,
    seconds: float,
) -> ScopeSummary:
    """The aggregates of every person stored for the incident (the union of its scopings),
    counted by the database over the few distinct combinations, not person by person."""
    exposures = IncidentExposure.__table__.c
    mine = exposures.incident_id == incident_id
    by_category: Counter[str] = Counter()
    by_reveal: Counter[str] = Counter()
    by_combination: Counter[str] = Counter()
    by_department: Counter[str] = Counter()
    persons = records = email = unresolved = 0
    first_us: int | None = None
    last_us: int | None = None
    for (
        categories,
        person_reveals,
        department,
        has_email,
        resolved,
        count,
        total,
        first,
        last,
    ) in connection.execute(
        select(
            exposures.categories,
            exposures.reveals,
            exposures.department,
            exposures.has_email,
            exposures.resolved,
            func.count(),
            func.sum(exposures.records),
            func.min(exposures.first_us),
            func.max(exposures.last_us),
        )
        .where(mine)
        .group_by(
            exposures.categories,
            exposures.reveals,
            exposures.department,
            exposures.has_email,
            exposures.resolved,
        )
    ).all():
        n = int(count)
        persons += n
        records += int(total)
        email += n if has_email else 0
        unresolved += 0 if resolved else n
        first_us = int(first) if first_us is None else min(first_us, int(first))
        last_us = int(last) if last_us is None else max(last_us, int(last))
        for category in filter(None, categories.split(",")):
            by_category[category] += n
        kinds = [r for r in person_reveals.split(",") if r]
        for kind in kinds:
            by_reveal[kind] += n
        by_combination["+".join(sorted(kinds))] += n
        by_department[department or "inconnu"] += n
    account_persons: Counter[str] = Counter()
    for accounts, n in connection.execute(
        select(exposures.accounts, func.count()).where(mine).group_by(exposures.accounts)
    ).all():
        for account in filter(None, accounts.split(",")):
            account_persons[account] += int(n)
    # Per account: records and times from this reading's series (times to the hour),
    # persons from the stored union.
    per_account: dict[str, dict[str, int]] = {}
    for (account, hour), count in reading.series.items():
        entry = per_account.setdefault(
            account, {"records": 0, "persons": 0, "first_us": hour, "last_us": hour}
        )
        entry["records"] += count
        entry["first_us"] = min(entry["first_us"], hour)
        entry["last_us"] = max(entry["last_us"], hour + HOUR_US - 1)
    for account, n in account_persons.items():
        per_account.setdefault(account, {"records": 0, "persons": 0, "first_us": 0, "last_us": 0})
        per_account[account]["persons"] = n
    return ScopeSummary(
        incident_id=incident_id,
        version=version,
        scoped_at=datetime.now(UTC).isoformat(),
        source=reading.source,
        verified=reading.verified,
        verification_problems=list(reading.verification_problems),
        persons=persons,
        records=records,
        new_persons=new_persons,
        unresolved=unresolved,
        by_category={c: by_category[c] for c in CATEGORIES if by_category[c]},
        by_reveal={r: by_reveal[r] for r in REVEALS if by_reveal[r]},
        by_combination=dict(sorted(by_combination.items(), key=lambda kv: (-kv[1], kv[0]))),
        by_department=dict(sorted(by_department.items(), key=lambda kv: (-kv[1], kv[0]))),
        by_account=dict(sorted(per_account.items())),
        refused=dict(sorted(reading.refused.items())),
        intent_subjects=reading.intent_subjects,
        first_us=first_us,
        last_us=last_us,
        series=sorted((a, h, c) for (a, h), c in reading.series.items()),
        reachable={"email": email, "letter": persons - email},
        rows_scanned=reading.rows_scanned,
        seconds=round(seconds, 3),
    )


class IncidentService:
    def __init__(
        self,
        engine: Engine,
        audit: AuditTrail,
        audit_engine: Engine,
        *,
        pseudonym_key: bytes,
        organization: Organization,
        security_before: Sequence[str] = (),
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.audit_engine = audit_engine
        self.pseudonym_key = pseudonym_key
        self.organization = organization
        self.security_before = list(security_before)

    # -- lifecycle ---------------------------------------------------------------------

    def open(
        self,
        session: Session,
        *,
        name: str,
        definition: Definition,
        operator: str,
        aware_at: datetime | None = None,
        discovery: str = "",
        cause: str = "",
    ) -> int:
        name = " ".join(name.split())
        if not name or len(name) > 200:
            raise IncidentError("invalid_name", "an incident needs a name (1-200 characters)", 422)
        now = datetime.now(UTC)
        aware = now if aware_at is None else aware_at.astimezone(UTC)
        if aware > now:
            raise IncidentError("invalid_aware_at", "the awareness time is in the future", 422)
        _require_operator(operator)
        incident = Incident(
            name=name,
            status="open",
            definition=definition.to_json(),
            opened_at=now,
            opened_by=operator,
            aware_at=aware,
            discovery=discovery.strip() or _discovery(definition),
            cause=cause.strip(),
            delay_reason="",
            planned_measures="[]",
            circumstances="{}",
            scope_version=0,
            reported_version=0,
            report_baseline_version=0,
            definition_changed=False,
        )
        session.add(incident)
        session.flush()
        self._transition(session, incident, "open", operator, note="opened", initial=True)
        return incident.incident_id

    def get(self, session: Session, incident_id: int) -> Incident:
        incident = session.get(Incident, incident_id)
        if incident is None:
            raise IncidentError("unknown_incident", f"no such incident: {incident_id}", 404)
        return incident

    def add(
        self, session: Session, incident_id: int, more: Definition, *, operator: str
    ) -> Definition:
        """Grow the definition (the next scoping gives the union)."""
        incident = self._open_for_change(session, incident_id)
        _require_operator(operator)
        grown = Definition.from_json(incident.definition).merged(more)
        if grown.to_json() == incident.definition:
            return grown
        incident.definition = grown.to_json()
        incident.definition_changed = True
        self._audit(session, incident, "incident_definition_grown", operator)
        return grown

    def describe(
        self,
        session: Session,
        incident_id: int,
        *,
        operator: str,
        cause: str | None = None,
        discovery: str | None = None,
        delay_reason: str | None = None,
        planned: Sequence[str] = (),
        circumstances: dict[str, Any] | None = None,
    ) -> None:
        """What the operator states and the trail cannot tell: the cause, how the breach was
        discovered, why a notification comes late, the measures planned, and circumstances
        that differ from what the definition implies (``severity`` checks the values)."""
        incident = self._open_for_change(session, incident_id)
        _require_operator(operator)
        if cause is not None:
            incident.cause = cause.strip()
        if discovery is not None:
            incident.discovery = discovery.strip()
        if delay_reason is not None:
            incident.delay_reason = delay_reason.strip()
        if circumstances:
            merged = {**json.loads(incident.circumstances), **circumstances}
            check_circumstances(merged)
            incident.circumstances = json.dumps(merged, sort_keys=True)
        if planned:
            incident.planned_measures = json.dumps(
                [
                    *json.loads(incident.planned_measures),
                    *(p.strip() for p in planned if p.strip()),
                ],
                ensure_ascii=False,
            )
        self._audit(session, incident, "incident_described", operator)

    def close(self, session: Session, incident_id: int, *, operator: str, note: str = "") -> None:
        incident = self._open_for_change(session, incident_id)
        _require_operator(operator)
        self._transition(session, incident, "closed", operator, note=note.strip())

    def mark_reported(self, session: Session, incident_id: int, *, operator: str) -> str:
        """Record that the CNIL report of the current scope was produced; returns the kind
        of notification it is (``initial`` or ``complementary``)."""
        incident = self.get(session, incident_id)
        kind = self.notification_kind(incident)
        if incident.reported_version != incident.scope_version:
            incident.report_baseline_version = incident.reported_version
            incident.reported_version = incident.scope_version
        self._transition(
            session,
            incident,
            "reported" if incident.status in ("scoped", "reported") else incident.status,
            operator,
            note=f"{kind} notification, scope version {incident.scope_version}",
        )
        return kind

    def mark_notified(
        self, session: Session, incident_id: int, *, operator: str, note: str = ""
    ) -> None:
        """Record that the people's information started (a notification campaign's first
        run): the report's communication date is the first such transition. A later
        campaign of the same incident adds a transition without changing the status."""
        incident = self._open_for_change(session, incident_id)
        _require_operator(operator)
        if incident.status == "open":
            raise IncidentError("not_scoped", "scope the incident before notifying")
        self._transition(session, incident, "notified", operator, note=note)

    @staticmethod
    def notification_kind(incident: Incident) -> str:
        return "initial" if _report_baseline(incident) == 0 else "complementary"

    # -- scoping -----------------------------------------------------------------------

    def scope(self, incident_id: int, source: TrailSource, *, operator: str) -> ScopeSummary:
        _require_operator(operator)
        started = time.perf_counter()
        with Session(self.engine) as session:
            incident = self._open_for_change(session, incident_id)
            definition = Definition.from_json(incident.definition)
        # Persons loaded before insured.pseudonym existed would be missed: complete them
        # first (a no-op answered by the index when there are none).
        backfill(self.engine, self.pseudonym_key)
        reading = source.read(definition)
        with Session(self.engine) as session, session.begin():
            incident = self._open_for_change(session, incident_id)
            if incident.definition != definition.to_json():
                raise IncidentError(
                    "incident_changed", "the definition changed during scoping: scope again"
                )
            connection = session.connection()
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("SET LOCAL jit = off")  # see live_source
            existing = _stored(connection, incident_id)
            # Only what a re-scoping adds needs the persons' records.
            grown = {
                subject: exposure
                for subject, exposure in reading.exposures.items()
                if subject not in existing or not _unchanged(existing[subject], exposure)
            }
            persons = resolve(connection, grown)
            new = [s for s in grown if s not in existing]
            version = (
                incident.scope_version + 1
                if (new or incident.scope_version == 0)
                else (incident.scope_version)
            )
            changed = [
                _merge(existing.get(subject), exposure, persons.get(subject), version)
                for subject, exposure in grown.items()
            ]
            _write_exposures(connection, incident_id, changed, fresh=not existing)
            summary = summarize(
                connection,
                incident_id,
                version,
                reading,
                new_persons=len(new),
                seconds=time.perf_counter() - started,
            )
            summary_json = json.dumps(summary.to_dict(), ensure_ascii=False, sort_keys=True)
            scope_row = session.get(IncidentScope, (incident_id, version))
            if scope_row is None:
                session.add(
                    IncidentScope(
                        incident_id=incident_id,
                        version=version,
                        scoped_at=datetime.now(UTC),
                        operator=operator,
                        source=reading.source[:512],
                        verified=reading.verified,
                        summary=summary_json,
                    )
                )
            else:
                scope_row.scoped_at = datetime.now(UTC)
                scope_row.operator = operator
                scope_row.source = reading.source[:512]
                scope_row.verified = reading.verified
                scope_row.summary = summary_json
            incident.scope_version = version
            incident.definition_changed = False
            status = (
                "scoped"
                if (incident.status == "open" or version > incident.reported_version)
                else incident.status
            )
            self._transition(
                session,
                incident,
                status,
                operator,
                note=f"version {version}: {summary.persons} persons, {len(new)} new, "
                f"source {reading.source}" + ("" if reading.verified else " (NOT VERIFIED)"),
            )
        return summary

    def latest_scope(self, session: Session, incident_id: int) -> ScopeSummary | None:
        incident = self.get(session, incident_id)
        row = session.get(IncidentScope, (incident_id, incident.scope_version))
        return None if row is None else ScopeSummary.from_dict(json.loads(row.summary))

    def exposed_pseudonyms(
        self, session: Session, incident_id: int, *, after_version: int = 0
    ) -> list[str]:
        """The persons to notify: all, or those first found after ``after_version`` (a
        complementary campaign)."""
        return list(
            session.scalars(
                select(IncidentExposure.pseudonym)
                .where(
                    IncidentExposure.incident_id == incident_id,
                    IncidentExposure.version > after_version,
                )
                .order_by(IncidentExposure.pseudonym)
            )
        )

    # -- facts for reports and the register ---------------------------------------------

    def facts(
        self, session: Session, incident_id: int, *, require_scope: bool = True
    ) -> IncidentFacts:
        """The incident's facts for its report (``require_scope``) or the register (an
        incident not scoped yet has an empty scope of version 0)."""
        incident = self.get(session, incident_id)
        scope = self.latest_scope(session, incident_id)
        if scope is None:
            if require_scope:
                raise IncidentError("not_scoped", "scope the incident before reporting it")
            scope = _unscoped(incident_id)
        definition = Definition.from_json(incident.definition)
        kind = self.notification_kind(incident)
        if kind == "complementary":
            baseline = _report_baseline(incident)
            scope.new_persons = (
                session.scalar(
                    select(func.count())
                    .select_from(IncidentExposure)
                    .where(
                        IncidentExposure.incident_id == incident_id,
                        IncidentExposure.version > baseline,
                    )
                )
                or 0
            )
        measures = self.measures(session, definition, scope.first_us)
        status = incident.status
        transitions = [
            Transition(t.status_to, as_utc(t.at).isoformat(), t.operator, t.note)
            for t in session.scalars(
                select(IncidentTransition)
                .where(IncidentTransition.incident_id == incident_id)
                .order_by(IncidentTransition.transition_id)
            )
        ]
        informed = [t.at for t in transitions if t.status == "notified"]
        return IncidentFacts(
            incident_id=incident.incident_id,
            name=incident.name,
            status=status,
            notification=kind,
            opened_at=as_utc(incident.opened_at).isoformat(),
            aware_at=as_utc(incident.aware_at).isoformat(),
            discovery=incident.discovery,
            cause=incident.cause,
            delay_reason=incident.delay_reason,
            planned_measures=list(json.loads(incident.planned_measures)),
            definition=json.loads(incident.definition),
            transitions=transitions,
            scope=scope,
            measures=measures,
            organization=self.organization,
            ongoing=self._ongoing(session, definition, measures),
            security_before=self.security_before,
            communication={
                "status": "done" if informed else ("none" if not scope.persons else "planned"),
                "date": informed[0] if informed else None,
                "channels": dict(scope.reachable),
            },
            extra={"circumstances": json.loads(incident.circumstances)},
        )

    def measures(
        self, session: Session, definition: Definition, since_us: int | None
    ) -> list[Measure]:
        """What was done about the definition's accounts and clients since the first
        exposure, as the trail recorded it (never typed by hand)."""
        accounts = sorted(definition.account_ids())
        clients = sorted(s for s in definition.sessions if s.startswith("client:"))
        if not accounts and not clients:
            return []
        conditions: list[ColumnElement[bool]] = [AuditEvent.event.in_(MEASURE_EVENTS)]
        if since_us is not None:
            conditions.append(AuditEvent.ts_us >= since_us)
        who = []
        if accounts:
            who.append(AuditEvent.account_id.in_(accounts))
        if clients:
            who.append(AuditEvent.session_id.in_(clients))
        out = []
        with self.audit_engine.connect() as connection:
            for ts_us, event, account_id, session_id, reasons in connection.execute(
                select(
                    AuditEvent.ts_us,
                    AuditEvent.event,
                    AuditEvent.account_id,
                    AuditEvent.session_id,
                    AuditEvent.reasons,
                )
                .where(*conditions, or_(*who))
                .order_by(AuditEvent.ts_us)
            ):
                out.append(
                    Measure(
                        at=_iso_us(ts_us) or "",
                        event=event,
                        subject=account_id or session_id,
                        by=reasons,
                    )
                )
        if accounts:
            since = None if since_us is None else datetime.fromtimestamp(since_us / 1e6, UTC)
            query = (
                select(AuthSession.account_id, func.count(), func.max(AuthSession.revoked_at))
                .where(AuthSession.account_id.in_(accounts), AuthSession.revoked_at.is_not(None))
                .group_by(AuthSession.account_id)
            )
            if since is not None:
                query = query.where(AuthSession.revoked_at >= since)
            for account_id, count, last in session.execute(query):
                out.append(
                    Measure(
                        at=as_utc(last).isoformat() if last else "",
                        event="sessions_revoked",
                        subject=account_id,
                        by="",
                        count=int(count),
                    )
                )
        return sorted(out, key=lambda m: m.at)

    def _ongoing(
        self,
        session: Session,
        definition: Definition,
        measures: list[Measure],
    ) -> bool:
        """Still ongoing while an account of the definition is active and nothing was done
        about it since its last exposure."""
        stopped = {m.subject for m in measures if m.event in MEASURE_EVENTS}
        for account_id in definition.account_ids():
            if account_id in stopped:
                continue
            status = session.scalar(select(Account.status).where(Account.account_id == account_id))
            if status == "active":
                return True
        return False

    def register(self, session: Session) -> list[IncidentFacts]:
        """Every incident, notified or not (Art. 33(5)), scoped or not yet."""
        return [
            self.facts(session, incident_id, require_scope=False)
            for incident_id in session.scalars(
                select(Incident.incident_id).order_by(Incident.incident_id)
            )
        ]

    # -- internals ---------------------------------------------------------------------

    def _open_for_change(self, session: Session, incident_id: int) -> Incident:
        incident = self.get(session, incident_id)
        if incident.status == "closed":
            raise IncidentError("incident_closed", f"incident {incident_id} is closed")
        return incident

    def _transition(
        self,
        session: Session,
        incident: Incident,
        status: str,
        operator: str,
        *,
        note: str = "",
        initial: bool = False,
    ) -> None:
        previous = "" if initial else incident.status
        incident.status = status
        session.add(
            IncidentTransition(
                incident_id=incident.incident_id,
                at=datetime.now(UTC),
                status_from=previous,
                status_to=status,
                operator=operator,
                note=note[:2000],
            )
        )
        self._audit(session, incident, f"incident_{status}", operator, reasons=note)

    def _audit(
        self, session: Session, incident: Incident, event: str, operator: str, reasons: str = ""
    ) -> None:
        session.flush()
        self.audit.append(
            [
                AuditEntry(
                    seq=0,
                    ts_us=now_us(),
                    event=event,
                    session_id=f"incident:{incident.incident_id}",
                    reasons=f"operator:{operator}" + (f"; {reasons}" if reasons else ""),
                    outcome="ok",
                )
            ],
            session=session,
        )


def _unscoped(incident_id: int) -> ScopeSummary:
    return ScopeSummary(
        incident_id=incident_id,
        version=0,
        scoped_at="",
        source="",
        verified=True,
        verification_problems=[],
        persons=0,
        records=0,
        new_persons=0,
        unresolved=0,
        by_category={},
        by_reveal={},
        by_combination={},
        by_department={},
        by_account={},
        refused={},
        intent_subjects=0,
        first_us=None,
        last_us=None,
        series=[],
        reachable={"email": 0, "letter": 0},
        rows_scanned=0,
        seconds=0.0,
    )


def _require_operator(operator: str) -> None:
    if not operator.strip():
        raise IncidentError("operator_required", "name the operator", 422)


def _discovery(definition: Definition) -> str:
    if definition.alerts:
        names = ", ".join(f"n° {a.alert_id}" for a in definition.alerts)
        return f"Alerte(s) du garde-fou de Rempart ({names}) sur des consultations de droits."
    return "Constat interne à partir du journal d'audit des consultations."


def _stored(connection: Connection, incident_id: int) -> dict[str, _Stored]:
    columns = list(_Stored.__dataclass_fields__)
    return {
        row[0]: _Stored(*row)
        for row in connection.execute(
            select(*(getattr(IncidentExposure, c) for c in columns)).where(
                IncidentExposure.incident_id == incident_id
            )
        )
    }


def _write_exposures(
    connection: Connection, incident_id: int, rows: list[_Stored], *, fresh: bool
) -> None:
    """Insert or update the rows; ``fresh``: the incident has none yet (its first scoping),
    so no row can conflict."""
    if not rows:
        return
    columns = ["incident_id", *_Stored.__dataclass_fields__]
    raw: Any = connection.connection.dbapi_connection
    if connection.dialect.name == "postgresql" and fresh:
        with raw.cursor() as cursor:
            copy_sql = f"COPY incident_exposures ({', '.join(columns)}) FROM STDIN"
            with cursor.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row([incident_id, *row.__dict__.values()])
        return
    if connection.dialect.name == "postgresql":
        # COPY into a staging table, then one upsert: hundreds of thousands of persons
        # are written in seconds, in the scoping's transaction.
        with raw.cursor() as cursor:
            cursor.execute(
                "CREATE TEMP TABLE stage_exposures (LIKE incident_exposures) ON COMMIT DROP"
            )
            with cursor.copy(f"COPY stage_exposures ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([incident_id, *row.__dict__.values()])
            others = [c for c in columns if c not in ("incident_id", "pseudonym")]
            cursor.execute(
                f"INSERT INTO incident_exposures ({', '.join(columns)}) "  # noqa: S608 - our column names  # nosec B608
                f"SELECT {', '.join(columns)} FROM stage_exposures "
                "ON CONFLICT (incident_id, pseudonym) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in others)
            )
            cursor.execute("DROP TABLE stage_exposures")
        return
    statement = sqlite_insert(IncidentExposure)
    statement = statement.on_conflict_do_update(
        index_elements=["incident_id", "pseudonym"],
        set_={c: statement.excluded[c] for c in columns if c not in ("incident_id", "pseudonym")},
    )
    for start in range(0, len(rows), 5_000):
        connection.execute(statement, [r.row(incident_id) for r in rows[start : start + 5_000]])
