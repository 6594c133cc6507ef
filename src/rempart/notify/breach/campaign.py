"""Campaigns: from a scoped incident to one planned notice per exposed person.

:meth:`CampaignService.plan` decides each person's channel once and writes the durable
outbox (``campaign_recipients`` and ``notice_messages``) in one transaction: e-mail
where the insurer holds a usable address, otherwise a letter where the postal address
can be laid out, otherwise the person is recorded as unreachable *with the reason*
(never silently skipped). A person appears at most once per incident (a unique index),
so a complementary campaign, planned after a re-scope, holds only the persons no
earlier campaign of the incident planned.

:meth:`CampaignService.status` counts what became of each person; the counts always add
up to the plan. Sending and printing are :mod:`rempart.notify.breach.runner`'s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Connection, Engine, case, func, insert, select, text, update
from sqlalchemy.orm import Session

from rempart.audit.chain import AuditEntry
from rempart.audit.trail import AuditTrail, now_us
from rempart.errors import RempartError
from rempart.incident.service import IncidentService
from rempart.incident.summary import Measure
from rempart.notify.breach.channels import usable_email
from rempart.notify.breach.codes import NoticeKeys, code_hash, derive_code, person_reference
from rempart.notify.breach.content import Insurer, NoticeContent, Recipient
from rempart.notify.breach.postal import AddressBlock, AddressError, address_block
from rempart.notify.breach.render import french_date
from rempart.store.engine import as_utc
from rempart.store.models import (
    Campaign,
    CampaignRecipient,
    Incident,
    IncidentExposure,
    Insured,
    NoticeMessage,
    NoticeSent,
    PrintBatch,
)

if TYPE_CHECKING:
    from rempart.config import Settings

__all__ = [
    "CampaignError",
    "CampaignService",
    "CampaignStatus",
    "Person",
    "Plan",
    "insurer_from_settings",
    "measure_sentences",
]

log = structlog.get_logger("rempart.notify")

_CHUNK = 5_000
# What a notice needs of the insured person (their current name and addresses).
_INSURED = (
    Insured.sex,
    Insured.first_name,
    Insured.last_name,
    Insured.birth_date,
    Insured.street,
    Insured.postcode,
    Insured.city,
    Insured.email,
)


class CampaignError(RempartError):
    def __init__(self, code: str, detail: str, status: int = 409) -> None:
        super().__init__(detail, code=code, status=status)


@dataclass(frozen=True)
class Plan:
    campaign_id: int
    incident_id: int
    kind: str
    email: int
    letter: int
    unreachable: dict[str, int]
    """Persons with no channel, by reason (``unknown_person``, ``no_address`` and the
    postal layout's codes such as ``invalid_postcode``)."""
    flagged_addresses: int
    """Letters whose address block had to be abbreviated or cut (see the manifest)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign_id,
            "incident": self.incident_id,
            "kind": self.kind,
            "email": self.email,
            "letter": self.letter,
            "unreachable": sum(self.unreachable.values()),
            "unreachable_reasons": dict(sorted(self.unreachable.items())),
            "flagged_addresses": self.flagged_addresses,
        }


@dataclass(frozen=True)
class CampaignStatus:
    campaign_id: int
    incident_id: int
    kind: str
    status: str
    persons: int
    reached_email: int
    reached_letter: int
    """Reached by letter, including those whose e-mail failed or bounced."""
    pending: int
    unreachable: dict[str, int]
    messages: dict[str, dict[str, int]]
    """Per channel, messages per state."""
    batches: dict[str, int] = field(default_factory=dict)

    @property
    def adds_up(self) -> bool:
        return (
            self.reached_email + self.reached_letter + self.pending + sum(self.unreachable.values())
            == self.persons
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign_id,
            "incident": self.incident_id,
            "kind": self.kind,
            "status": self.status,
            "persons": self.persons,
            "reached": {"email": self.reached_email, "letter": self.reached_letter},
            "pending": self.pending,
            "unreachable": sum(self.unreachable.values()),
            "unreachable_reasons": dict(sorted(self.unreachable.items())),
            "messages": self.messages,
            "batches": self.batches,
        }


@dataclass(frozen=True)
class Person:
    """What a runner needs to render one message: the plan's row and the insured."""

    message_id: int
    recipient_id: int
    pseudonym: str
    reference: str
    channel: str
    categories: tuple[str, ...]
    first_us: int
    last_us: int
    attempts: int
    insured: Recipient | None


def insurer_from_settings(settings: Settings) -> Insurer:
    return Insurer(
        name=settings.organization_name,
        website=settings.organization_website,
        sender_address=parseaddr(settings.mail_from)[1],
        postal_address=settings.organization_address,
        dpo_name=settings.dpo_name,
        dpo_email=settings.dpo_email,
        dpo_phone=settings.dpo_phone,
    )


def measure_sentences(measures: Sequence[Measure], planned: Sequence[str]) -> tuple[str, ...]:
    """What the insurer did, in the plain French a notice uses, from what the trail
    recorded (never invented): one sentence per kind of measure, dated by its first."""
    first: dict[str, str] = {}
    for measure in measures:
        first.setdefault(measure.event, measure.at)
    sentences = []
    wording = {
        "account_suspended": "Le compte professionnel utilisé a été suspendu le {d}.",
        "client_suspended": "Le logiciel professionnel utilisé a été bloqué le {d}.",
        "sessions_revoked": "Les connexions ouvertes sur ce compte ont été fermées le {d}.",
        "password_reset": "Le mot de passe du compte a été réinitialisé le {d}.",
        "mfa_reset": "La double authentification du compte a été réinitialisée le {d}.",
        "webauthn_removed": "Les clés de sécurité du compte ont été retirées le {d}.",
    }
    for event, template in wording.items():
        if event in first:
            moment = datetime.fromisoformat(first[event]) if first[event] else None
            sentences.append(template.format(d=french_date(moment) if moment else "—"))
    sentences.extend(p.strip() for p in planned if p.strip())
    return tuple(sentences)


class CampaignService:
    def __init__(
        self,
        engine: Engine,
        audit: AuditTrail,
        incidents: IncidentService,
        *,
        keys: NoticeKeys,
        insurer: Insurer,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.incidents = incidents
        self.keys = keys
        self.insurer = insurer

    # -- planning ----------------------------------------------------------------------

    def plan(
        self,
        incident_id: int,
        *,
        operator: str,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> Plan:
        """Create the campaign of a scoped incident; see the module documentation."""
        if not operator.strip():
            raise CampaignError("operator_required", "name the operator", 422)
        with Session(self.engine) as session, session.begin():
            incident = session.get(Incident, incident_id)
            if incident is None:
                raise CampaignError("unknown_incident", f"no such incident: {incident_id}", 404)
            if incident.status == "closed":
                raise CampaignError("incident_closed", f"incident {incident_id} is closed")
            if incident.scope_version == 0:
                raise CampaignError("not_scoped", "scope the incident before notifying")
            if incident.definition_changed:
                raise CampaignError(
                    "scope_outdated", "the definition grew since the last scoping: scope again"
                )
            earlier = session.scalar(
                select(func.count())
                .select_from(Campaign)
                .where(Campaign.incident_id == incident_id)
            )
            campaign = Campaign(
                incident_id=incident_id,
                kind="complementary" if earlier else "initial",
                scope_version=incident.scope_version,
                status="planned",
                created_at=datetime.now(UTC),
                created_by=operator,
                persons=0,
            )
            session.add(campaign)
            session.flush()
            counts = self._plan_persons(session, campaign, progress)
            if not (counts.email or counts.letter or counts.unreachable):
                raise CampaignError(
                    "nothing_to_notify",
                    "every exposed person is already in a campaign of this incident",
                )
            campaign.persons = counts.email + counts.letter + sum(counts.unreachable.values())
            self._audit(
                session,
                campaign,
                "campaign_planned",
                operator,
                f"{campaign.kind}; email={counts.email}; letter={counts.letter}; "
                f"unreachable={sum(counts.unreachable.values())}",
            )
            plan = Plan(
                campaign_id=campaign.campaign_id,
                incident_id=incident_id,
                kind=campaign.kind,
                email=counts.email,
                letter=counts.letter,
                unreachable=dict(counts.unreachable),
                flagged_addresses=counts.flagged,
            )
        log.info("campaign_planned", **plan.to_json())
        return plan

    def _plan_persons(
        self,
        session: Session,
        campaign: Campaign,
        progress: Callable[[str, int, int], None] | None,
    ) -> _Counts:
        incident_id = campaign.incident_id
        already = select(CampaignRecipient.pseudonym).where(
            CampaignRecipient.incident_id == incident_id
        )
        total = (
            session.scalar(
                select(func.count())
                .select_from(IncidentExposure)
                .where(
                    IncidentExposure.incident_id == incident_id,
                    IncidentExposure.pseudonym.not_in(already),
                )
            )
            or 0
        )
        query = (
            select(
                IncidentExposure.pseudonym,
                IncidentExposure.categories,
                IncidentExposure.first_us,
                IncidentExposure.last_us,
                *_INSURED,
            )
            .outerjoin(Insured, Insured.pseudonym == IncidentExposure.pseudonym)
            .where(
                IncidentExposure.incident_id == incident_id,
                IncidentExposure.pseudonym.not_in(already),
            )
            .order_by(IncidentExposure.pseudonym)
        )
        counts = _Counts()
        done = 0
        rows = session.execute(query.execution_options(yield_per=_CHUNK))
        for chunk in _chunks(rows, _CHUNK):
            recipients: list[dict[str, Any]] = []
            channels: list[tuple[str, ...]] = []
            for row in chunk:
                reason, planned, flags = self._channels(row)
                recipients.append(
                    {
                        "campaign_id": campaign.campaign_id,
                        "incident_id": incident_id,
                        "pseudonym": row.pseudonym,
                        "reference": person_reference(
                            self.keys, campaign.campaign_id, row.pseudonym
                        ),
                        "categories": row.categories,
                        "first_us": row.first_us,
                        "last_us": row.last_us,
                        "unreachable": reason,
                    }
                )
                channels.append(planned)
                if reason:
                    counts.unreachable[reason] += 1
                elif planned[0] == "email":
                    counts.email += 1
                else:
                    counts.letter += 1
                    counts.flagged += bool(flags)
            ids = _new_ids(session, len(recipients))
            for recipient_id, person in zip(ids, recipients, strict=True):
                person["recipient_id"] = recipient_id
            # Ids drawn first, then a plain executemany (pipelined by psycopg): a
            # RETURNING over thousands of rows costs more than the rows themselves.
            session.execute(insert(CampaignRecipient), recipients)
            messages = [
                {
                    "recipient_id": recipient_id,
                    "campaign_id": campaign.campaign_id,
                    "channel": planned[0],
                    "state": "planned",
                    "attempts": 0,
                    "code_hash": self._hash(campaign.campaign_id, person["pseudonym"], planned[0]),
                    "address_flags": "",
                }
                for recipient_id, person, planned in zip(ids, recipients, channels, strict=True)
                if planned
            ]
            if messages:
                session.execute(insert(NoticeMessage), messages)
            done += len(chunk)
            if progress is not None:
                progress("plan", done, total)
        return counts

    def _channels(self, row: Any) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """(unreachable reason or "", the first channel (or none), the address flags)."""
        if row.last_name is None:
            return "unknown_person", (), ()
        if usable_email(row.email) is not None:
            return "", ("email",), ()
        try:
            block = self.address(row)
        except AddressError as exc:
            return exc.code, (), ()
        return "", ("letter",), block.flags

    @staticmethod
    def address(row: Any, *, minor: bool = False) -> AddressBlock:
        if not (row.street or "").strip() and not (row.city or "").strip():
            raise AddressError("no address on record", code="no_address")
        return address_block(
            sex=row.sex,
            first_name=row.first_name,
            last_name=row.last_name,
            street=row.street or "",
            postcode=row.postcode or "",
            city=row.city or "",
            minor=minor,
        )

    def _hash(self, campaign_id: int, pseudonym: str, channel: str) -> str:
        return code_hash(self.keys, derive_code(self.keys, campaign_id, pseudonym, channel))

    def plan_letter(
        self, connection: Connection, campaign_id: int, person: Person, *, reason: str
    ) -> int:
        """Plan a letter for a person whose e-mail failed (1), or record them as
        unreachable when they have no usable postal address (0)."""
        exists = connection.scalar(
            select(NoticeMessage.message_id).where(
                NoticeMessage.recipient_id == person.recipient_id,
                NoticeMessage.channel == "letter",
            )
        )
        if exists is not None:
            return 0
        problem = "unknown_person" if person.insured is None else None
        if person.insured is not None:
            try:
                self.address(person.insured)
            except AddressError as exc:
                problem = exc.code
        if problem is not None:
            connection.execute(
                update(CampaignRecipient)
                .where(CampaignRecipient.recipient_id == person.recipient_id)
                .values(unreachable=f"{reason}_{problem}"[:32])
            )
            return 0
        connection.execute(
            insert(NoticeMessage).values(
                recipient_id=person.recipient_id,
                campaign_id=campaign_id,
                channel="letter",
                state="planned",
                attempts=0,
                code_hash=code_hash(
                    self.keys,
                    derive_code(self.keys, campaign_id, person.pseudonym, "letter"),
                ),
                address_flags="",
            )
        )
        return 1

    # -- reading -----------------------------------------------------------------------

    def get(self, session: Session, campaign_id: int) -> Campaign:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise CampaignError("unknown_campaign", f"no such campaign: {campaign_id}", 404)
        return campaign

    def status(self, campaign_id: int) -> CampaignStatus:
        with Session(self.engine) as session:
            campaign = self.get(session, campaign_id)
            sent_ids = select(NoticeSent.message_id).where(NoticeSent.campaign_id == campaign_id)
            # A message in notice_sent was accepted by the SMTP server even if the runner
            # that sent it died before updating its state; a bounce later fails it.
            state = case(
                (NoticeMessage.state == "failed", "failed"),
                (NoticeMessage.message_id.in_(sent_ids), "sent"),
                else_=NoticeMessage.state,
            )
            messages: dict[str, dict[str, int]] = {"email": {}, "letter": {}}
            for channel, message_state, count in session.execute(
                select(NoticeMessage.channel, state, func.count())
                .where(NoticeMessage.campaign_id == campaign_id)
                .group_by(NoticeMessage.channel, state)
            ):
                messages.setdefault(channel, {})[str(message_state)] = int(count)
            reached_email = messages["email"].get("sent", 0)
            reached_letter = _count(
                session,
                select(func.count()).where(
                    NoticeMessage.campaign_id == campaign_id,
                    NoticeMessage.channel == "letter",
                    NoticeMessage.state == "printed",
                ),
            )
            unreachable = Counter[str]()
            for reason, count in session.execute(
                select(CampaignRecipient.unreachable, func.count())
                .where(
                    CampaignRecipient.campaign_id == campaign_id,
                    CampaignRecipient.unreachable != "",
                )
                .group_by(CampaignRecipient.unreachable)
            ):
                unreachable[str(reason)] = int(count)
            batches = {
                str(s): int(n)
                for s, n in session.execute(
                    select(PrintBatch.state, func.count())
                    .where(PrintBatch.campaign_id == campaign_id)
                    .group_by(PrintBatch.state)
                )
            }
            persons = campaign.persons
            pending = persons - reached_email - reached_letter - sum(unreachable.values())
            return CampaignStatus(
                campaign_id=campaign_id,
                incident_id=campaign.incident_id,
                kind=campaign.kind,
                status=campaign.status,
                persons=persons,
                reached_email=reached_email,
                reached_letter=reached_letter,
                pending=pending,
                unreachable=dict(unreachable),
                messages=messages,
                batches=batches,
            )

    @staticmethod
    def persons(session: Session, message_ids: Sequence[int]) -> list[Person]:
        """The rows a runner renders, with the insured's current name and addresses."""
        rows = session.execute(
            select(
                NoticeMessage.message_id,
                NoticeMessage.recipient_id,
                NoticeMessage.channel,
                NoticeMessage.attempts,
                CampaignRecipient.pseudonym,
                CampaignRecipient.reference,
                CampaignRecipient.categories,
                CampaignRecipient.first_us,
                CampaignRecipient.last_us,
                *_INSURED,
            )
            .join(CampaignRecipient, CampaignRecipient.recipient_id == NoticeMessage.recipient_id)
            .outerjoin(Insured, Insured.pseudonym == CampaignRecipient.pseudonym)
            .where(NoticeMessage.message_id.in_(list(message_ids)))
            .order_by(NoticeMessage.message_id)
        )
        return [
            Person(
                message_id=row.message_id,
                recipient_id=row.recipient_id,
                pseudonym=row.pseudonym,
                reference=row.reference,
                channel=row.channel,
                categories=tuple(c for c in row.categories.split(",") if c),
                first_us=row.first_us,
                last_us=row.last_us,
                attempts=row.attempts,
                insured=None
                if row.last_name is None
                else Recipient(
                    sex=row.sex,
                    first_name=row.first_name,
                    last_name=row.last_name,
                    birth_date=row.birth_date,
                    street=row.street,
                    postcode=row.postcode,
                    city=row.city,
                    email=row.email,
                ),
            )
            for row in rows
        ]

    def context(self, campaign_id: int) -> CampaignContext:
        """What every notice of the campaign shares (the incident's period, the measures)."""
        with Session(self.engine) as session:
            campaign = self.get(session, campaign_id)
            facts = self.incidents.facts(session, campaign.incident_id)
            start = facts.scope.first_us
            end = facts.scope.last_us
            return CampaignContext(
                campaign_id=campaign_id,
                incident_id=campaign.incident_id,
                kind=campaign.kind,
                incident_start=_from_us(start) if start else as_utc(campaign.created_at),
                incident_end=_from_us(end) if end else as_utc(campaign.created_at),
                measures=measure_sentences(facts.measures, facts.planned_measures),
                sent_on=datetime.now(UTC).date(),
            )

    def content(self, context: CampaignContext, person: Person, code: str) -> NoticeContent:
        assert person.insured is not None
        first = _from_us(person.first_us)
        return NoticeContent(
            recipient=person.insured,
            reference=person.reference,
            code=code,
            channel=person.channel,
            categories=person.categories,
            first_read=first,
            last_read=_from_us(person.last_us),
            incident_start=context.incident_start,
            incident_end=context.incident_end,
            measures=context.measures,
            insurer=self.insurer,
            sent_on=context.sent_on,
            minor=_age(person.insured.birth_date, first.date()) < 18,
            complementary=context.kind == "complementary",
        )

    # -- lifecycle ---------------------------------------------------------------------

    def mark_running(self, campaign_id: int, *, operator: str) -> None:
        """The first run starts the people's information: the incident becomes
        ``notified`` (its report's communication date)."""
        with Session(self.engine) as session, session.begin():
            campaign = self.get(session, campaign_id)
            if campaign.status != "planned":
                return
            campaign.status = "running"
            self._audit(session, campaign, "campaign_started", operator)
            self.incidents.mark_notified(
                session,
                campaign.incident_id,
                operator=operator,
                note=f"campaign {campaign_id} ({campaign.kind}) started",
            )

    def finish_if_done(self, campaign_id: int, *, operator: str) -> bool:
        with Session(self.engine) as session, session.begin():
            campaign = self.get(session, campaign_id)
            open_messages = _count(
                session,
                select(func.count()).where(
                    NoticeMessage.campaign_id == campaign_id,
                    NoticeMessage.state.in_(("planned", "rendered")),
                    NoticeMessage.message_id.not_in(
                        select(NoticeSent.message_id).where(NoticeSent.campaign_id == campaign_id)
                    ),
                ),
            )
            if open_messages or campaign.status == "done":
                return campaign.status == "done"
            campaign.status = "done"
            self._audit(session, campaign, "campaign_done", operator)
        return True

    def _audit(
        self, session: Session, campaign: Campaign, event: str, operator: str, note: str = ""
    ) -> None:
        session.flush()
        self.audit.append(
            [
                AuditEntry(
                    seq=0,
                    ts_us=now_us(),
                    event=event,
                    session_id=f"campaign:{campaign.campaign_id}",
                    reasons=f"operator:{operator}; incident:{campaign.incident_id}"
                    + (f"; {note}" if note else ""),
                    outcome="ok",
                )
            ],
            session=session,
        )


@dataclass(frozen=True)
class CampaignContext:
    campaign_id: int
    incident_id: int
    kind: str
    incident_start: datetime
    incident_end: datetime
    measures: tuple[str, ...]
    sent_on: date


@dataclass
class _Counts:
    email: int = 0
    letter: int = 0
    flagged: int = 0
    unreachable: Counter[str] = field(default_factory=Counter)


def _new_ids(session: Session, count: int) -> list[int]:
    """``count`` recipient ids no other writer can take: from the sequence on
    PostgreSQL; on SQLite past the largest (the plan's transaction holds the one write
    lock)."""
    if session.get_bind().dialect.name == "postgresql":
        return list(
            session.scalars(
                text(
                    "SELECT nextval(pg_get_serial_sequence('campaign_recipients', "
                    "'recipient_id')) FROM generate_series(1, :n)"
                ),
                {"n": count},
            )
        )
    first = (session.scalar(select(func.max(CampaignRecipient.recipient_id))) or 0) + 1
    return list(range(first, first + count))


def _chunks(rows: Any, size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _count(session: Session, query: Any) -> int:
    return int(session.scalar(query) or 0)


def _from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1e6, UTC)


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
