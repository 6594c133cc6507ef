"""A notice's e-mail assembled as bytes reads back, through the standard parser, as the
message the standard library would have built: same headers, same parts, same text."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default

import pytest

from rempart.notify.breach.mime import SIGNABLE, notice_mail
from rempart.notify.breach.render import NoticeRenderer, variants

WHEN = datetime(2026, 12, 3, 10, 41, 7, tzinfo=UTC)


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def content(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


@pytest.mark.parametrize("index", range(6))
def test_every_variant_reads_back_whole(index: int) -> None:
    sample = [v for v in variants() if v.channel == "email"][index]
    rendered = NoticeRenderer().render_email(sample)
    mail = notice_mail(
        mail_from="Caisse d'assurance maladie (démonstration) <securite@rempart.example>",
        recipient="louise.lefevre@orange.example",
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id="<notice.c1-0123456789ab@rempart.example>",
        date=WHEN,
    )
    message = parsed(mail.data)
    assert message["Subject"] == rendered.subject
    assert message["From"].addresses[0].display_name == (
        "Caisse d'assurance maladie (démonstration)"
    )
    assert message["From"].addresses[0].addr_spec == "securite@rempart.example"
    assert message["To"] == "louise.lefevre@orange.example"
    assert message["Message-ID"] == "<notice.c1-0123456789ab@rempart.example>"
    assert message["Date"].datetime == WHEN
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    assert content(message, "plain") == rendered.text
    # A part ends with a line break (as email.contentmanager writes them too).
    assert content(message, "html") == rendered.html.rstrip("\n") + "\n"
    assert {name.lower() for name in message} == SIGNABLE
    assert not message.defects
    assert all(not part.defects for part in message.walk())
    # 7-bit on the wire, lines within SMTP's limit, CRLF only.
    assert mail.data.isascii()
    assert max(len(line) for line in mail.data.split(b"\r\n")) <= 998
    assert b"\n" not in mail.data.replace(b"\r\n", b"")


def test_the_same_notice_is_the_same_bytes_but_its_date() -> None:
    def build(when: datetime) -> bytes:
        return notice_mail(
            mail_from="Rempart <securite@rempart.example>",
            recipient="a@example.org",
            subject="Information",
            text="Bonjour,\nCode de vérification : K7QM-4XPD-9TRW\n",
            html="<p>Bonjour</p>",
            message_id="<notice.c1-aaaaaaaaaaaa@rempart.example>",
            date=when,
        ).data

    first, again = build(WHEN), build(WHEN.replace(hour=11))
    assert first != again
    assert first.replace(b"10:41:07", b"11:41:07") == again
