"""The transactional outbox: an e-mail exists if and only if the change it reports committed.

:meth:`Outbox.enqueue` renders the French e-mail and adds a ``mail_outbox`` row in the
caller's session, so it commits or rolls back with the login, the password change or
the suspension it reports. :meth:`Outbox.deliver_pending` sends what is due, each row
in its own short transaction:

1. take the oldest due row and lock it (PostgreSQL ``FOR UPDATE SKIP LOCKED``: two
   workers never hold the same row; SQLite: the ``attempts`` update below takes the
   database's single write lock) and count the attempt, guarded by the ``attempts``
   value read (compare and set), so that a row another worker just handled is skipped;
2. hand the message to the sender;
3. set ``sent_at`` (or ``last_error``) and commit, which releases the row.

Exactly once, as far as SMTP allows: the only window for a duplicate is a crash (or a
lost connection) after the server accepted the message and before step 3 committed;
the row is then still unsent and is sent again — at most one extra copy per crash,
carrying the same ``Message-ID`` so that a receiving system can tell. The window is one
message wide (one transaction per row, nothing between the server's answer and the
commit but one ``UPDATE``). :class:`~rempart.notify.mail.DirectorySender` names files
after the ``Message-ID``, so for it a resend replaces the file: exactly once.

Failures: a temporary one (server down, 4xx) leaves the row pending with
``attempts`` and ``last_error`` (a short text with no secret, no server banner); it is
retried on a growing schedule counted from ``created_at`` (there is no "next attempt"
column), and given up after :data:`MAX_ATTEMPTS`. A permanent one (5xx) is given up
at once. When the sender itself is down the pass stops at the first failure instead
of charging an attempt to every waiting row.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import DateTime, and_, case, func, literal, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from rempart.errors import RempartError
from rempart.notify.mail import (
    DEFAULT_MAIL_FROM,
    BatchingSender,
    MailDeliveryError,
    MailSender,
    compose_message,
    mail_domain,
)
from rempart.notify.render import MailRenderer
from rempart.store.models import MailOutbox

if TYPE_CHECKING:
    from rempart.config import Settings

__all__ = ["MAX_ATTEMPTS", "RETRY_AFTER", "DeliveryReport", "Outbox"]

log = structlog.get_logger("rempart.notify")

# After k failed attempts, the next one is due at created_at + RETRY_AFTER[k].
RETRY_AFTER: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=3),
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(hours=24),
    timedelta(hours=48),
)
MAX_ATTEMPTS = len(RETRY_AFTER)
_ERROR_LENGTH = 256
_SUBJECT_LENGTH = 256


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    failed: int
    remaining: int
    """Rows still to send (due now or later)."""
    abandoned: int = 0
    """Rows given up (permanent refusal or too many attempts); kept for inspection."""


@dataclass(frozen=True)
class _Claimed:
    message_id: int
    kind: str
    message: EmailMessage


class Outbox:
    def __init__(
        self,
        renderer: MailRenderer | None = None,
        *,
        mail_from: str = DEFAULT_MAIL_FROM,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.renderer = renderer or MailRenderer()
        self.mail_from = mail_from
        self.domain = mail_domain(mail_from)
        self.max_attempts = max(1, min(max_attempts, MAX_ATTEMPTS))
        # SQLite has one writer: passes of one process take turns instead of waiting
        # on the database lock (PostgreSQL passes run side by side, SKIP LOCKED).
        self._sqlite_turn = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Outbox:
        return cls(
            MailRenderer(security_contact=settings.security_contact),
            mail_from=settings.mail_from,
        )

    # --- writing --------------------------------------------------------------------

    def enqueue(
        self,
        session: Session,
        *,
        kind: str,
        recipient: str,
        account_id: str | None,
        context: dict[str, object],
    ) -> int:
        """Render the e-mail ``kind`` and add it to the outbox in the caller's transaction.

        Returns the outbox id. Nothing is sent here: :meth:`deliver_pending` sends it once
        the caller's transaction committed (a rolled-back change leaves no e-mail).
        """
        try:
            Address(addr_spec=recipient)
        except (ValueError, IndexError) as exc:
            raise RempartError(
                f"not a valid e-mail address ({type(exc).__name__})",
                code="invalid_recipient",
                status=500,
            ) from None
        if len(recipient) > 256:
            raise RempartError("e-mail address too long", code="invalid_recipient", status=500)
        rendered = self.renderer.render(kind, context)
        row = MailOutbox(
            kind=kind,
            account_id=account_id,
            recipient=recipient,
            subject=rendered.subject[:_SUBJECT_LENGTH],
            body_text=rendered.text,
            body_html=rendered.html,
            created_at=datetime.now(UTC),
            attempts=0,
        )
        session.add(row)
        session.flush()
        return row.message_id

    # --- sending --------------------------------------------------------------------

    def deliver_pending(
        self,
        sessions: sessionmaker[Session],
        sender: MailSender,
        *,
        limit: int = 100,
        now: datetime | None = None,
    ) -> DeliveryReport:
        """Send up to ``limit`` due e-mails; see the module documentation for the guarantees.

        ``now`` (UTC) decides which retries are due; it defaults to the current time.
        """
        moment = _utc(now or datetime.now(UTC))
        sent = failed = 0
        tried: list[int] = []
        sqlite = _is_sqlite(sessions)
        with self._sqlite_turn if sqlite else nullcontext(), ExitStack() as stack:
            connection = _LazyConnection(sender, stack)
            while sent + failed < limit:
                outcome = self._deliver_one(sessions, connection, moment, tried)
                if outcome is None:
                    break
                message_id, error = outcome
                tried.append(message_id)
                if error is _SKIPPED:
                    continue
                if error is None:
                    sent += 1
                    continue
                failed += 1
                if isinstance(error, MailDeliveryError) and error.connection:
                    break  # the sender is down: the next rows would fail the same way
        remaining, abandoned = self.counts(sessions)
        return DeliveryReport(sent=sent, failed=failed, remaining=remaining, abandoned=abandoned)

    def counts(self, sessions: sessionmaker[Session]) -> tuple[int, int]:
        """(rows still to send, rows given up)."""
        given_up = MailOutbox.attempts >= self.max_attempts
        with sessions() as session:
            row = session.execute(
                select(
                    func.count().filter(~given_up),
                    func.count().filter(given_up),
                ).where(MailOutbox.sent_at.is_(None))
            ).one()
        return int(row[0]), int(row[1])

    def message_for(
        self,
        *,
        message_id: int,
        recipient: str,
        subject: str,
        body_text: str,
        body_html: str | None,
        created_at: datetime,
    ) -> EmailMessage:
        """The e-mail of one outbox row; the same row always gives the same ``Message-ID``."""
        created = _utc(created_at)
        return compose_message(
            mail_from=self.mail_from,
            recipient=recipient,
            subject=subject,
            text=body_text,
            html=body_html,
            message_id=f"<rempart.{created:%Y%m%d%H%M%S}.{message_id}.outbox@{self.domain}>",
            date=created,
        )

    def _due(self, moment: datetime) -> Any:
        schedule = {
            attempts: literal(moment - RETRY_AFTER[attempts], DateTime(timezone=True))
            for attempts in range(1, self.max_attempts)
        }
        retry_due = (
            MailOutbox.created_at <= case(schedule, value=MailOutbox.attempts)
            if schedule
            else MailOutbox.attempts == 0
        )
        return and_(
            MailOutbox.sent_at.is_(None),
            MailOutbox.attempts < self.max_attempts,
            or_(MailOutbox.attempts == 0, retry_due),
        )

    def _deliver_one(
        self,
        sessions: sessionmaker[Session],
        connection: _LazyConnection,
        moment: datetime,
        tried: list[int],
    ) -> tuple[int, object] | None:
        columns = (
            MailOutbox.message_id,
            MailOutbox.kind,
            MailOutbox.recipient,
            MailOutbox.subject,
            MailOutbox.body_text,
            MailOutbox.body_html,
            MailOutbox.created_at,
            MailOutbox.attempts,
        )
        query = select(*columns).where(self._due(moment))
        if tried:
            query = query.where(MailOutbox.message_id.not_in(tried))
        query = query.order_by(MailOutbox.message_id).limit(1).with_for_update(skip_locked=True)
        with sessions() as session, session.begin():
            row = session.execute(query).one_or_none()
            if row is None:
                return None
            claimed = session.execute(
                update(MailOutbox)
                .where(
                    MailOutbox.message_id == row.message_id,
                    MailOutbox.sent_at.is_(None),
                    MailOutbox.attempts == row.attempts,
                )
                .values(attempts=row.attempts + 1)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                return row.message_id, _SKIPPED  # another worker handled it meanwhile
            try:
                message = self.message_for(
                    message_id=row.message_id,
                    recipient=row.recipient,
                    subject=row.subject,
                    body_text=row.body_text,
                    body_html=row.body_html,
                    created_at=row.created_at,
                )
                connection.send(message)
            except (MailDeliveryError, ValueError) as exc:
                error = (
                    exc
                    if isinstance(exc, MailDeliveryError)
                    else MailDeliveryError(
                        f"message cannot be built ({type(exc).__name__})",
                        code="mail_rejected",
                        permanent=True,
                    )
                )
                attempts = self.max_attempts if error.permanent else row.attempts + 1
                session.execute(
                    update(MailOutbox)
                    .where(MailOutbox.message_id == row.message_id)
                    .values(attempts=attempts, last_error=str(error)[:_ERROR_LENGTH])
                )
                log.warning(
                    "mail_not_sent",
                    outbox_id=row.message_id,
                    kind=row.kind,
                    error=error.code,
                    attempts=attempts,
                    given_up=attempts >= self.max_attempts,
                )
                return row.message_id, error
            session.execute(
                update(MailOutbox)
                .where(MailOutbox.message_id == row.message_id)
                .values(sent_at=datetime.now(UTC), last_error=None)
            )
        log.info("mail_sent", outbox_id=row.message_id, kind=row.kind)
        return row.message_id, None


_SKIPPED = object()


class _LazyConnection:
    """Opens the sender's batch (one SMTP session) on the first message only."""

    def __init__(self, sender: MailSender, stack: ExitStack) -> None:
        self._sender = sender
        self._stack = stack
        self._active: MailSender | None = None

    def send(self, message: EmailMessage) -> None:
        if self._active is None:
            if isinstance(self._sender, BatchingSender):
                self._active = self._stack.enter_context(self._sender.batch())
            else:
                self._active = self._sender
        self._active.send(message)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:  # SQLite returns naive datetimes (stored as UTC)
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _is_sqlite(sessions: sessionmaker[Session]) -> bool:
    bind = sessions.kw.get("bind")
    return bind is not None and bind.dialect.name == "sqlite"
