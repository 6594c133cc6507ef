"""Bounces that come back after an e-mail was accepted: each permanent one turns the
person's e-mail into a letter (``notify bounces FILE``; idempotent).

A bounce finds its notice by the ``Message-ID`` the DSN quotes (``<notice.c12-…@…>``
carries the person's campaign reference), or, when the DSN quotes no headers, by the
failed address among the campaign's e-mails. Delays (4.x.x, ``Action: delayed``) are
counted and left alone: the server is still trying.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Connection, func, select, update
from sqlalchemy.orm import Session

from rempart.notify.breach.campaign import CampaignService
from rempart.notify.breach.dsn import Bounce
from rempart.store.models import Campaign, CampaignRecipient, Insured, NoticeMessage

__all__ = ["BounceReport", "ingest_bounces"]

log = structlog.get_logger("rempart.notify")

_REFERENCE = re.compile(r"^<?notice\.(c\d+-[0-9a-f]{12})@", re.IGNORECASE)


@dataclass
class BounceReport:
    read: int = 0
    """Messages read from the files."""
    not_bounces: int = 0
    """Messages that are no delivery report (or could not be parsed)."""
    delayed: int = 0
    unmatched: int = 0
    """Bounces of no notice of ours."""
    already: int = 0
    """Bounces of e-mails already failed (a bounce read twice)."""
    letters_planned: int = 0
    unreachable: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def ingest_bounces(
    service: CampaignService, bounces: Iterable[tuple[str, Bounce | None]]
) -> BounceReport:
    report = BounceReport()
    for _source, bounce in bounces:
        report.read += 1
        if bounce is None:
            report.not_bounces += 1
            continue
        if not bounce.permanent:
            report.delayed += 1
            continue
        with service.engine.connect() as connection, connection.begin():
            message = _find(connection, bounce)
            if message is None:
                report.unmatched += 1
                continue
            state, person = message
            if state == "failed":
                report.already += 1
                continue
            connection.execute(
                update(NoticeMessage)
                .where(NoticeMessage.message_id == person.message_id)
                .values(
                    state="failed",
                    last_error=f"bounced ({bounce.status})"[:256],
                    done_at=datetime.now(UTC),
                )
            )
            campaign_id = _campaign_of(connection, person.recipient_id)
            planned = service.plan_letter(connection, campaign_id, person, reason="email_bounced")
            report.letters_planned += planned
            report.unreachable += 1 - planned
            if planned:  # the campaign has a letter to print again
                connection.execute(
                    update(Campaign)
                    .where(Campaign.campaign_id == campaign_id, Campaign.status == "done")
                    .values(status="running")
                )
    log.info("bounces_ingested", **report.to_json())
    return report


def _campaign_of(connection: Connection, recipient_id: int) -> int:
    campaign_id = connection.scalar(
        select(CampaignRecipient.campaign_id).where(CampaignRecipient.recipient_id == recipient_id)
    )
    assert campaign_id is not None  # the recipient was found by its message
    return int(campaign_id)


def _find(connection: Connection, bounce: Bounce) -> tuple[str, Any] | None:
    """(the e-mail message's state, its Person) for a bounce, or None if not ours."""
    recipient_id: int | None = None
    if bounce.original_message_id:
        match = _REFERENCE.match(bounce.original_message_id.strip())
        if match:
            recipient_id = connection.scalar(
                select(CampaignRecipient.recipient_id).where(
                    CampaignRecipient.reference == match.group(1).upper()
                )
            )
    if recipient_id is None:
        for address in bounce.recipients:
            recipient_id = connection.scalar(
                select(func.max(CampaignRecipient.recipient_id))
                .join(Insured, Insured.pseudonym == CampaignRecipient.pseudonym)
                .join(NoticeMessage, NoticeMessage.recipient_id == CampaignRecipient.recipient_id)
                .where(
                    func.lower(Insured.email) == address.strip().lower(),
                    NoticeMessage.channel == "email",
                )
            )
            if recipient_id is not None:
                break
    if recipient_id is None:
        return None
    row = connection.execute(
        select(NoticeMessage.message_id, NoticeMessage.state).where(
            NoticeMessage.recipient_id == recipient_id, NoticeMessage.channel == "email"
        )
    ).one_or_none()
    if row is None:
        return None
    with Session(bind=connection) as reader:
        people = CampaignService.persons(reader, [row.message_id])
    return str(row.state), people[0]
