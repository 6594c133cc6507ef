"""A notice's e-mail as the bytes SMTP carries, assembled once per message.

A campaign sends hundreds of thousands of notices; building each through
:class:`email.message.EmailMessage` (header objects parsed, refolded and serialized
line by line) cost more than rendering, signing and sending it together. Notices all
have one shape — a ``multipart/alternative`` of UTF-8 text and HTML, quoted-printable
— so this module lays that shape out directly, with the standard library's own
encoders for every encoded piece (``email.quoprimime`` for the bodies,
``email.header`` for the subject, ``email.utils`` for the sender and the date). The
tests parse the result back with the standard parser and compare every part.

The boundary derives from the Message-ID: the same notice sent again after a crash is
the same bytes but for its ``Date``. It starts with ``=_``, which quoted-printable
never leaves in a body (``=`` is always encoded), so it cannot occur in a part.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from email import quoprimime
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache

from rempart.notify.mail import PreparedMail

__all__ = ["SIGNABLE", "notice_mail"]

SIGNABLE = frozenset(
    {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "auto-submitted",
        "content-language",
        "mime-version",
        "content-type",
    }
)
"""The header fields every notice carries (what the DKIM signer may sign)."""

_CRLF = "\r\n"


def notice_mail(
    *,
    mail_from: str,
    recipient: str,
    subject: str,
    text: str,
    html: str,
    message_id: str,
    date: datetime,
) -> PreparedMail:
    """The notice's bytes (CRLF), ready to be signed and handed to the SMTP server."""
    sender, address = _sender(mail_from)
    boundary = "=_rempart_" + hashlib.sha256(message_id.encode()).hexdigest()[:32]
    headers = [
        f"From: {sender}",
        f"To: {recipient}",
        f"Subject: {_subject(subject)}",
        f"Date: {format_datetime(date)}",
        f"Message-ID: {message_id}",
        "Auto-Submitted: auto-generated",
        "Content-Language: fr",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
    ]
    parts = [_part("plain", text), _part("html", html)]
    body = "".join(f"--{boundary}{_CRLF}{part}{_CRLF}" for part in parts)
    data = _CRLF.join(headers) + _CRLF + _CRLF + body + f"--{boundary}--{_CRLF}"
    return PreparedMail(
        envelope_from=address,
        recipient=recipient,
        message_id=message_id,
        date=date,
        data=data.encode("utf-8"),
    )


# A campaign's notices share their sender and, nearly always, their subject: encoded once.
@lru_cache(maxsize=64)
def _sender(mail_from: str) -> tuple[str, str]:
    name, address = parseaddr(mail_from)
    return formataddr((name, address), charset="utf-8"), address


@lru_cache(maxsize=64)
def _subject(subject: str) -> str:
    if subject.isascii() and len(subject) < 900:
        return subject
    return Header(subject, "utf-8", header_name="Subject").encode(linesep=_CRLF)


def _part(subtype: str, content: str) -> str:
    lines = content.replace("\r\n", "\n").replace("\r", "\n")
    if not lines.endswith("\n"):
        lines += "\n"
    # As email.contentmanager does: the UTF-8 bytes, seen as latin-1, quoted-printable.
    encoded = quoprimime.body_encode(lines.encode("utf-8").decode("latin-1"), 76, eol=_CRLF)
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"{_CRLF}'
        f"Content-Transfer-Encoding: quoted-printable{_CRLF}{_CRLF}{encoded}"
    )
