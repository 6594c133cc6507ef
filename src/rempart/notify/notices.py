"""Security notices kept for the account, so that they do not rely on the mailbox alone.

In 2022 the professionals' mailboxes were what the attackers held: an e-mail saying
"a key was added to your account" went to the attacker, who deleted it. Every notice
:meth:`~rempart.auth.service.AuthService.notify_professional` sends is therefore also
written here, in the same transaction, rendered from the same templates (subject and
body, French), and shown once at the professional's next *strong* login (the CPS card,
Pro Santé Connect, an established key): logins a mailbox thief with a relayed code
cannot make. Any kind the e-mail templates know works here with no code of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rempart.notify.render import MailRenderer
from rempart.store.models import AccountNotice

__all__ = ["Notice", "NoticeBoard"]

_SUBJECT_LENGTH = 256
_LISTED = 50


@dataclass(frozen=True, slots=True)
class Notice:
    kind: str
    at: datetime
    subject: str
    text: str
    seen: bool = False


def _notice(row: AccountNotice) -> Notice:
    at = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return Notice(
        kind=row.kind, at=at, subject=row.subject, text=row.text, seen=row.seen_at is not None
    )


class NoticeBoard:
    def __init__(self, renderer: MailRenderer | None = None) -> None:
        self.renderer = renderer or MailRenderer()

    def add(self, session: Session, account_id: str, kind: str, context: dict[str, object]) -> None:
        """Keeps a notice for the account, in the caller's transaction."""
        subject, text = self.renderer.render_notice(kind, context)
        session.add(
            AccountNotice(
                account_id=account_id,
                kind=kind[:32],
                created_at=datetime.now(UTC),
                subject=subject[:_SUBJECT_LENGTH],
                text=text,
            )
        )
        session.flush()

    def deliver(self, session: Session, account_id: str) -> list[Notice]:
        """The notices not shown yet, oldest first, now marked seen (shown once)."""
        rows = list(
            session.scalars(
                select(AccountNotice)
                .where(AccountNotice.account_id == account_id, AccountNotice.seen_at.is_(None))
                .order_by(AccountNotice.notice_id)
            )
        )
        if not rows:
            return []
        now = datetime.now(UTC)
        claimed = []
        for row in rows:
            # Conditional on still unseen: two strong logins racing show each notice once.
            result = session.execute(
                update(AccountNotice)
                .where(AccountNotice.notice_id == row.notice_id, AccountNotice.seen_at.is_(None))
                .values(seen_at=now)
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) == 1:
                claimed.append(row)
        return [_notice(row) for row in claimed]

    def recent(self, session: Session, account_id: str, limit: int = _LISTED) -> list[Notice]:
        """The account's latest notices, newest first, seen or not."""
        rows = session.scalars(
            select(AccountNotice)
            .where(AccountNotice.account_id == account_id)
            .order_by(AccountNotice.notice_id.desc())
            .limit(limit)
        )
        return [_notice(row) for row in rows]
