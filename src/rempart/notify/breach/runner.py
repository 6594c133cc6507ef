"""The campaign's workers: e-mails to the SMTP server, letters into print batches.

Exactly once, whatever stops the worker (a crash, ``kill -9``, a second ``run``):

**E-mails.** A worker claims up to ``claim`` planned messages. On PostgreSQL it keeps
them locked in an open transaction (``FOR NO KEY UPDATE SKIP LOCKED``: other workers
skip them; a killed worker's connection drops and the locks go with it). It hands them
to the SMTP server one at a time, and right after the server accepted one it commits a
``notice_sent`` row from a *second* connection, before handing over the next. The claim
transaction then records the states. After a crash, the messages in ``notice_sent``
are never claimed again, so the only message that can reach the server twice is the one
in flight when the worker died (accepted, not yet recorded): it goes again with the
same ``Message-ID`` (and the same verification code), which receiving systems use to
spot the duplicate. On SQLite a single worker runs a campaign at a time (a lock file),
which gives the same guarantee without row locks.

A refused e-mail (5xx, an address that became unusable) or one still failing after
``max_attempts`` temporary failures (4xx) is ``failed`` and a letter is planned instead
— unless the person has no usable postal address: they are then unreachable with the
reason. When the SMTP server goes away the worker pauses (growing waits) and resumes;
after ``max_pause`` seconds without a server it stops with ``mail_server_unavailable``
(run again later: nothing is lost).

**Letters.** A worker fixes a batch's members in one transaction (``print_batches`` row
in state ``writing``, its messages ``rendered``), then writes the batch's PDF and
manifest atomically and records it ``written`` (messages ``printed``). A batch left in
``writing`` by a crash is written again with the same name and the same letters — or,
if its files are complete, recorded as they are — so no letter is in two batches.
"""

from __future__ import annotations

import dataclasses
import email
import fcntl
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.orm import Session

from rempart.notify.breach.campaign import (
    CampaignContext,
    CampaignError,
    CampaignService,
    Person,
)
from rempart.notify.breach.channels import usable_email
from rempart.notify.breach.codes import derive_code, message_id
from rempart.notify.breach.content import NoticeContent
from rempart.notify.breach.dkim import DkimSigner
from rempart.notify.breach.letters import discard_temporaries, existing_batch, write_batch
from rempart.notify.breach.mime import SIGNABLE, notice_mail
from rempart.notify.breach.render import NoticeRenderer
from rempart.notify.mail import (
    BatchingSender,
    MailDeliveryError,
    MailSender,
    PreparedMail,
    PreparedSender,
    mail_domain,
)
from rempart.store.models import (
    NoticeMessage,
    NoticeSent,
    PrintBatch,
)

__all__ = ["CampaignRunner", "RunReport"]

log = structlog.get_logger("rempart.notify")

ProgressFn = Callable[[str, int, int], None]
_RECORD_SENT = insert(NoticeSent)
_ERROR_LENGTH = 256


@dataclass
class RunReport:
    emailed: int = 0
    printed: int = 0
    batches: int = 0
    failed_emails: int = 0
    """E-mails given up (refused, or failing too long): turned into letters or
    unreachable persons."""
    letters_planned: int = 0
    """Letters planned by this run for e-mails that failed."""
    pauses: int = 0
    """Times the SMTP server was away and the worker waited for it."""
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "emailed": self.emailed,
            "printed": self.printed,
            "batches": self.batches,
            "failed_emails": self.failed_emails,
            "letters_planned": self.letters_planned,
            "pauses": self.pauses,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


class CampaignRunner:
    def __init__(
        self,
        service: CampaignService,
        *,
        renderer: NoticeRenderer,
        sender: MailSender,
        mail_from: str,
        letters_dir: Path,
        lock_dir: Path,
        signer: DkimSigner | None = None,
        claim: int = 100,
        batch_letters: int = 500,
        rate: float = 200.0,
        max_attempts: int = 5,
        retry_wait: float = 30.0,
        max_pause: float = 600.0,
        progress: ProgressFn | None = None,
    ) -> None:
        self.service = service
        self.renderer = renderer
        self.sender = sender
        self.mail_from = mail_from
        self.domain = mail_domain(mail_from)
        self.letters_dir = letters_dir
        self.lock_dir = lock_dir
        self.signer = signer
        self.claim = claim
        self.batch_letters = batch_letters
        self.interval = 1.0 / rate
        self.max_attempts = max_attempts
        self.retry_wait = retry_wait
        self.max_pause = max_pause
        self.progress = progress
        self.engine = service.engine
        self.postgres = self.engine.dialect.name == "postgresql"
        self._next = 0.0

    # -- the run -----------------------------------------------------------------------

    def run(
        self, campaign_id: int, *, operator: str, channels: Sequence[str] = ("email", "letter")
    ) -> RunReport:
        report = RunReport()
        with self._exclusive(campaign_id):
            self.service.mark_running(campaign_id, operator=operator)
            context = self.service.context(campaign_id)
            if "email" in channels:
                started = time.perf_counter()
                self._emails(context, report)
                report.seconds["email"] = time.perf_counter() - started
            if "letter" in channels:
                started = time.perf_counter()
                self._letters(context, report)
                report.seconds["letter"] = time.perf_counter() - started
            self.service.finish_if_done(campaign_id, operator=operator)
        log.info("campaign_run", campaign=campaign_id, **report.to_json())
        return report

    @contextmanager
    def _exclusive(self, campaign_id: int) -> Iterator[None]:
        """SQLite: one worker per campaign at a time (the OS drops a dead one's lock)."""
        if self.postgres:
            yield
            return
        self.lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.lock_dir / f"campaign-{campaign_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CampaignError(
                    "campaign_busy",
                    f"another worker is running campaign {campaign_id} "
                    "(on SQLite one worker runs a campaign at a time)",
                ) from None
            yield
        finally:
            os.close(fd)

    # -- e-mails -----------------------------------------------------------------------

    def _emails(self, context: CampaignContext, report: RunReport) -> None:
        total = self._count(context.campaign_id, "email")
        done = self._count(context.campaign_id, "email", finished=True)
        deferred: set[int] = set()
        waited_since: float | None = None
        pause = 1.0
        retries = 0
        with ExitStack() as stack:
            connection = _Connection(self.sender, stack)
            while True:
                outcome = self._email_round(context, connection, deferred, report)
                if outcome.sent or outcome.failed:
                    done += outcome.sent + outcome.failed
                    if self.progress is not None:
                        self.progress("e-mails", done, total)
                if outcome.down:
                    connection.reset()
                    now = time.monotonic()
                    waited_since = waited_since or now
                    if now - waited_since > self.max_pause:
                        raise CampaignError(
                            "mail_server_unavailable",
                            f"the mail server has been away for {int(now - waited_since)} s; "
                            "run again later (nothing is lost)",
                            503,
                        )
                    report.pauses += 1
                    log.warning("campaign_paused", campaign=context.campaign_id, wait=pause)
                    time.sleep(pause)
                    pause = min(pause * 2, 30.0)
                    continue
                waited_since, pause = None, 1.0
                if outcome.claimed:
                    continue
                if not deferred:
                    return
                # Only temporarily refused messages are left: wait, longer each time
                # (their attempts are counted: past max_attempts they become letters).
                time.sleep(min(self.retry_wait * 2**retries, 600.0))
                retries += 1
                deferred.clear()

    def _email_round(
        self,
        context: CampaignContext,
        connection: _Connection,
        deferred: set[int],
        report: RunReport,
    ) -> _Round:
        outcome = _Round()
        with self.engine.connect() as claim:
            transaction = claim.begin()
            query = (
                select(NoticeMessage.message_id)
                .where(
                    NoticeMessage.campaign_id == context.campaign_id,
                    NoticeMessage.channel == "email",
                    NoticeMessage.state == "planned",
                    NoticeMessage.message_id.not_in(
                        select(NoticeSent.message_id).where(
                            NoticeSent.campaign_id == context.campaign_id
                        )
                    ),
                )
                .order_by(NoticeMessage.message_id)
                .limit(self.claim)
                .with_for_update(skip_locked=True, key_share=True)
            )
            if deferred:
                query = query.where(NoticeMessage.message_id.not_in(sorted(deferred)))
            ids = list(claim.scalars(query))
            if not ids:
                transaction.rollback()
                return outcome
            outcome.claimed = len(ids)
            with Session(bind=claim) as reader:
                persons = self.service.persons(reader, ids)
            if not self.postgres:
                transaction.commit()  # SQLite: the lock file keeps other workers out
            results: dict[int, MailDeliveryError | None] = {}
            # Autocommit: each record is one statement, durable when it returns.
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as record:
                for person in persons:
                    error = self._send(context, person, connection, record)
                    results[person.message_id] = error
                    if error is not None and error.connection:
                        del results[person.message_id]  # not the message's fault
                        outcome.down = True
                        break
            if not self.postgres:
                transaction = claim.begin()
            by_id = {p.message_id: p for p in persons}
            now = datetime.now(UTC)
            sent = [mid for mid, error in results.items() if error is None]
            if sent:
                outcome.sent += len(sent)
                report.emailed += len(sent)
                claim.execute(
                    update(NoticeMessage)
                    .where(NoticeMessage.message_id.in_(sent))
                    .values(state="sent", done_at=now, attempts=NoticeMessage.attempts + 1)
                )
            for mid, error in results.items():
                if error is None:
                    continue
                person = by_id[mid]
                attempts = person.attempts + 1
                if error.permanent or attempts >= self.max_attempts:
                    outcome.failed += 1
                    report.failed_emails += 1
                    claim.execute(
                        update(NoticeMessage)
                        .where(NoticeMessage.message_id == mid)
                        .values(
                            state="failed",
                            attempts=attempts,
                            last_error=str(error)[:_ERROR_LENGTH],
                            done_at=now,
                        )
                    )
                    report.letters_planned += self.service.plan_letter(
                        claim, context.campaign_id, person, reason="email_refused"
                    )
                else:
                    deferred.add(mid)
                    claim.execute(
                        update(NoticeMessage)
                        .where(NoticeMessage.message_id == mid)
                        .values(attempts=attempts, last_error=str(error)[:_ERROR_LENGTH])
                    )
            transaction.commit()
        return outcome

    def _send(
        self,
        context: CampaignContext,
        person: Person,
        connection: _Connection,
        record: Connection,
    ) -> MailDeliveryError | None:
        address = usable_email(person.insured.email if person.insured else None)
        if person.insured is None or address is None:
            return MailDeliveryError(
                "the person's e-mail address is no longer usable",
                code="mail_rejected",
                permanent=True,
            )
        try:
            message = self.email_for(context, person, address)
        except ValueError as exc:
            return MailDeliveryError(
                f"message cannot be built ({type(exc).__name__})",
                code="mail_rejected",
                permanent=True,
            )
        self._pace()
        try:
            connection.send(message)
        except MailDeliveryError as exc:
            log.warning(
                "notice_not_sent",
                campaign=context.campaign_id,
                message=person.message_id,
                error=exc.code,
            )
            return exc
        # Durable before the next message is handed over: a crash after this line
        # never resends this one.
        record.execute(
            _RECORD_SENT,
            {"message_id": person.message_id, "campaign_id": context.campaign_id, "at": _now()},
        )
        return None

    def email_for(self, context: CampaignContext, person: Person, address: str) -> PreparedMail:
        """The e-mail of one message: the same Message-ID and code every time."""
        code = derive_code(self.service.keys, context.campaign_id, person.pseudonym, "email")
        return self.prepare_email(
            self.service.content(context, person, code),
            address,
            message_id(self.service.keys, context.campaign_id, person.pseudonym, self.domain),
        )

    def prepare_email(self, content: NoticeContent, address: str, mid: str) -> PreparedMail:
        """A notice's e-mail as the bytes sent: rendered, assembled once, DKIM-signed (the
        preview writes these very bytes)."""
        rendered = self.renderer.render_email(content)
        mail = notice_mail(
            mail_from=self.mail_from,
            recipient=address,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=mid,
            date=_now(),
        )
        if self.signer is None:
            return mail
        signature = self.signer.signature(mail.data, present=set(SIGNABLE))
        return dataclasses.replace(mail, data=signature + mail.data)

    def _pace(self) -> None:
        now = time.monotonic()
        due = self._next
        if due > now:
            time.sleep(due - now)
        self._next = max(due, now) + self.interval

    # -- letters -----------------------------------------------------------------------

    def _letters(self, context: CampaignContext, report: RunReport) -> None:
        total = self._count(context.campaign_id, "letter")
        done = self._count(context.campaign_id, "letter", finished=True)
        while True:
            self._form_batch(context.campaign_id)
            written = self._write_batch(context)
            if written is None:
                if self._pending_batches(context.campaign_id) == 0:
                    return
                time.sleep(0.5)  # another worker holds the last batches
                continue
            report.batches += 1
            report.printed += written
            done += written
            if self.progress is not None:
                self.progress("letters", done, max(total, done))

    def _form_batch(self, campaign_id: int) -> None:
        with Session(self.engine) as session, session.begin():
            ids = list(
                session.scalars(
                    select(NoticeMessage.message_id)
                    .where(
                        NoticeMessage.campaign_id == campaign_id,
                        NoticeMessage.channel == "letter",
                        NoticeMessage.state == "planned",
                    )
                    .order_by(NoticeMessage.message_id)
                    .limit(self.batch_letters)
                    .with_for_update(skip_locked=True)
                )
            )
            if not ids:
                return
            batch = PrintBatch(
                campaign_id=campaign_id,
                name=f"pending-{os.getpid()}-{time.monotonic_ns()}",
                state="writing",
                letters=len(ids),
                pages=0,
                sha256="",
                created_at=datetime.now(UTC),
            )
            session.add(batch)
            session.flush()
            batch.name = f"campagne-{campaign_id:04d}-lot-{batch.batch_id:06d}"
            session.execute(
                update(NoticeMessage)
                .where(NoticeMessage.message_id.in_(ids))
                .values(state="rendered", batch_id=batch.batch_id)
            )

    def _pending_batches(self, campaign_id: int) -> int:
        with Session(self.engine) as session:
            return len(
                session.scalars(
                    select(PrintBatch.batch_id).where(
                        PrintBatch.campaign_id == campaign_id, PrintBatch.state == "writing"
                    )
                ).all()
            )

    def _write_batch(self, context: CampaignContext) -> int | None:
        """Write one batch left in ``writing`` (this worker's or a dead one's); returns the
        number of letters, or None when there is none free to write."""
        with self.engine.connect() as claim:
            transaction = claim.begin()
            row = claim.execute(
                select(PrintBatch.batch_id, PrintBatch.name)
                .where(
                    PrintBatch.campaign_id == context.campaign_id,
                    PrintBatch.state == "writing",
                )
                .order_by(PrintBatch.batch_id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).one_or_none()
            if row is None:
                transaction.rollback()
                return None
            ids = list(
                claim.scalars(
                    select(NoticeMessage.message_id)
                    .where(NoticeMessage.batch_id == row.batch_id)
                    .order_by(NoticeMessage.message_id)
                )
            )
            with Session(bind=claim) as reader:
                persons = self.service.persons(reader, ids)
            if not self.postgres:
                transaction.commit()
            if self.letters_dir.exists():
                discard_temporaries(self.letters_dir, row.name)
            files = existing_batch(self.letters_dir, row.name)
            flags: list[tuple[str, ...]] = []
            if files is None:
                letters = []
                for person in persons:
                    letter, person_flags = self.letter_for(context, person)
                    letters.append(letter)
                    flags.append(person_flags)
                files = write_batch(
                    self.letters_dir, row.name, letters, self.service.insurer, flags=flags
                )
            if not self.postgres:
                transaction = claim.begin()
            now = datetime.now(UTC)
            claim.execute(
                update(PrintBatch)
                .where(PrintBatch.batch_id == row.batch_id, PrintBatch.state == "writing")
                .values(state="written", pages=files.pages, sha256=files.sha256, written_at=now)
            )
            claim.execute(
                update(NoticeMessage)
                .where(NoticeMessage.batch_id == row.batch_id)
                .values(state="printed", done_at=now)
            )
            for person, person_flags in zip(persons, flags, strict=False):
                if person_flags:
                    claim.execute(
                        update(NoticeMessage)
                        .where(NoticeMessage.message_id == person.message_id)
                        .values(address_flags=",".join(person_flags)[:64])
                    )
            transaction.commit()
        log.info("print_batch_written", batch=row.name, letters=len(ids), pages=files.pages)
        return len(ids)

    def letter_for(self, context: CampaignContext, person: Person) -> tuple[Any, tuple[str, ...]]:
        """One person's letter (``LetterText``) and how their address block was fitted."""
        if person.insured is None:
            raise CampaignError("unknown_person", "a planned letter's person is gone", 409)
        code = derive_code(self.service.keys, context.campaign_id, person.pseudonym, "letter")
        content = self.service.content(context, person, code)
        block = self.service.address(person.insured, minor=content.minor)
        return self.renderer.render_letter(content, block.lines), block.flags

    def _count(self, campaign_id: int, channel: str, *, finished: bool = False) -> int:
        with Session(self.engine) as session:
            query = select(func.count()).where(
                NoticeMessage.campaign_id == campaign_id, NoticeMessage.channel == channel
            )
            if finished:
                query = query.where(NoticeMessage.state.in_(("sent", "printed", "failed")))
            return int(session.scalar(query) or 0)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Round:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    down: bool = False


class _Connection:
    """One SMTP session kept across rounds; opened on the first message, dropped when
    the server goes away."""

    def __init__(self, sender: MailSender, stack: ExitStack) -> None:
        self._sender = sender
        self._stack = stack
        self._inner: ExitStack | None = None
        self._active: MailSender | None = None

    def send(self, mail: PreparedMail) -> None:
        if self._active is None:
            if isinstance(self._sender, BatchingSender):
                self._inner = self._stack.enter_context(ExitStack())
                self._active = self._inner.enter_context(self._sender.batch())
            else:
                self._active = self._sender
        if isinstance(self._active, PreparedSender):
            self._active.send_prepared(mail)
            return
        # Another sender: hand it the message parsed back from the very bytes.
        parsed = email.message_from_bytes(mail.data, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        self._active.send(parsed)

    def reset(self) -> None:
        if self._inner is not None:
            with suppress(MailDeliveryError, OSError):
                self._inner.close()
        self._inner = None
        self._active = None
