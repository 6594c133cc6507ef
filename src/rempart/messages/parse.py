"""The raw input, bytes as pasted or uploaded, as a :class:`Message`.

Two shapes arrive: a message's text (an SMS, an e-mail's body copied out), or a whole
e-mail (``.eml``, RFC 5322) with its headers and MIME parts, read with the standard
library's ``email`` package (``policy.default``). Non-UTF-8 text is decoded, not
refused: the declared charset, else UTF-8, else Windows-1252, else Latin-1 (which
decodes any byte). What cannot be a message at all is refused with a stable code.
"""

from __future__ import annotations

import codecs
import mimetypes
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.message import Message as MimeMessage

from rempart.messages.html_text import render_html
from rempart.messages.links import links_in_text
from rempart.messages.model import Channel, InvalidMessage, Link, Message

__all__ = ["DEFAULT_MAX_BYTES", "MAX_SENDER", "MAX_SUBJECT", "read_message"]

DEFAULT_MAX_BYTES = 262_144
MAX_SENDER = 320  # an e-mail address's longest form (RFC 3696), with room for a name
MAX_SUBJECT = 998  # RFC 5322's line limit
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_FIELD_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# A header block: "Name: value" lines (with folded continuations) up to a blank line.
_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]{0,76}:[^\r\n]*\r?$")
_MAIL_HEADERS = frozenset(
    {b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
     b"received", b"return-path", b"reply-to", b"delivered-to"}
)  # fmt: skip


def _invalid(
    code: str, detail: str, status: int = 422, *, field: str | None = None
) -> InvalidMessage:
    error = InvalidMessage(detail, code=code, status=status)
    error.field = field
    return error


_LATIN1_LABELS = frozenset({"iso-8859-1", "latin-1", "latin1", "l1", "us-ascii", "ascii"})


def _decode(data: bytes, declared: str | None = None) -> str:
    """Text from bytes: the declared charset if it is one and fits, else UTF-8 (with
    or without its byte-order mark), else Windows-1252, else Latin-1."""
    for bom, encoding in ((codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                break
    if declared and declared.lower().replace("_", "-") in _LATIN1_LABELS:
        # Mailers label Windows-1252 text as Latin-1 (its quotes and dashes then read as
        # C1 controls): read the label as browsers do (WHATWG Encoding).
        declared = "cp1252"
    for candidate in (declared, "utf-8-sig", "cp1252"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def _looks_binary(text: str) -> bool:
    # Control characters other than tab, line feed, form feed and carriage return
    # do not occur in text people write; a few may slip in, a file is full of them.
    if "\x00" in text:
        return True
    controls = len(_CONTROLS.findall(text))
    return controls > 8 and controls * 20 > len(text)


def _is_email(body: bytes) -> bool:
    """Whether the input starts with an RFC 5322 header block that names at least two
    of the fields every e-mail carries (a pasted SMS may well start with "Objet : …")."""
    head = body.lstrip(b"\r\n")[:65536]
    names: set[bytes] = set()
    for line in head.split(b"\n"):
        if line in (b"", b"\r"):
            break
        if line[:1] in (b" ", b"\t") and names:
            continue
        if not _HEADER_LINE.match(line):
            return False
        names.add(line.split(b":", 1)[0].strip().lower())
    else:
        return False
    return len(names & _MAIL_HEADERS) >= 2 and b"from" in names


def _field(value: str, name: str, limit: int) -> str:
    if len(value) > limit:
        raise _invalid("invalid_field", f"{name}: at most {limit} characters", field=name)
    if _FIELD_CONTROLS.search(value):
        raise _invalid("invalid_field", f"{name}: control characters are not allowed", field=name)
    return value.strip()


def _part_text(part: MimeMessage) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return _decode(payload, part.get_content_charset())


def _attachment_name(part: MimeMessage) -> str | None:
    name = part.get_filename()
    if name:
        return " ".join(str(name).split())[:200]
    if part.get_content_maintype() in ("text", "multipart", "message"):
        return None
    # No name: what it is, with the extension its type implies (application/zip → .zip).
    extension = mimetypes.guess_extension(part.get_content_type()) or ""
    return f"{part.get_content_type()}{extension}"


def _read_email(
    body: bytes,
) -> tuple[str, str | None, str, tuple[Link, ...], tuple[str, ...], bool]:
    mail = message_from_bytes(body, policy=policy.default)
    assert isinstance(mail, EmailMessage)
    sender = " ".join(str(mail.get("From", "")).split())
    subject_header = mail.get("Subject")
    subject = " ".join(str(subject_header).split()) if subject_header is not None else None
    html = plain = None
    attachments: list[str] = []
    for part in mail.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        content_type = part.get_content_type()
        if disposition != "attachment" and content_type == "text/html" and html is None:
            html = _part_text(part)
        elif disposition != "attachment" and content_type == "text/plain" and plain is None:
            plain = _part_text(part)
        else:
            name = _attachment_name(part)
            if name is not None or disposition == "attachment":
                attachments.append(name or content_type)
    links: list[Link] = []
    if html is not None:
        rendered = render_html(html)
        text = rendered.text
        links.extend(rendered.links)
        links.extend(links_in_text(text))
        if plain:
            links.extend(links_in_text(plain))
    else:
        text = plain or ""
        links.extend(links_in_text(text))
    return sender, subject, text, _unique(links), tuple(attachments), html is not None


def _unique(links: list[Link]) -> tuple[Link, ...]:
    seen: dict[tuple[str, str | None, bool], Link] = {}
    for link in links:
        seen.setdefault((link.url, link.text, link.hidden), link)
    return tuple(seen.values())


def _email_message(body: bytes, sender: str, subject: str | None) -> Message:
    if b"\x00" in body:
        raise _invalid("binary_message", "the message is not text")
    found_sender, found_subject, text, links, attachments, html = _read_email(body)
    # The headers are the message's, not the caller's fields: cleaned, not refused.
    sender = sender or _FIELD_CONTROLS.sub("", found_sender)[:MAX_SENDER]
    if subject is None and found_subject:
        subject = _FIELD_CONTROLS.sub("", found_subject)[:MAX_SUBJECT]
    if _looks_binary(text):
        raise _invalid("binary_message", "the message is not text")
    if not text.strip() and not attachments and not links:
        raise _invalid("empty_message", "the message is empty")
    return Message(
        channel="email",
        sender=sender,
        subject=subject,
        text=text,
        links=links,
        attachments=attachments,
        html=html,
    )


def read_message(
    body: bytes,
    *,
    channel: str = "sms",
    sender: str = "",
    subject: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Message:
    """The raw input: plain text, or a whole ``.eml`` (then the channel is ``email`` and
    the sender and subject come from its headers unless given). Raises
    :class:`InvalidMessage`.

    >>> read_message("Votre carte Vitale est prête : ameli-carte.info".encode()).links[0].host
    'ameli-carte.info'
    >>> read_message(b"   ")
    Traceback (most recent call last):
    ...
    rempart.messages.model.InvalidMessage: empty_message: the message is empty
    """
    if channel not in ("sms", "email"):
        raise _invalid("invalid_channel", "channel must be sms or email", field="channel")
    sender = _field(sender, "sender", MAX_SENDER)
    if subject is not None:
        subject = _field(subject, "subject", MAX_SUBJECT) or None
    if len(body) > max_bytes:
        raise _invalid("message_too_large", f"the message exceeds {max_bytes} bytes", status=413)
    if not body.strip():
        raise _invalid("empty_message", "the message is empty")
    kind: Channel = "email" if channel == "email" else "sms"
    if _is_email(body):
        return _email_message(body, sender, subject)
    text = _decode(body)
    if _looks_binary(text):
        raise _invalid("binary_message", "the message is not text")
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise _invalid("empty_message", "the message is empty")
    if re.search(r"(?is)<(html|body|a\s[^>]*href)\b", text):
        # An e-mail's HTML source pasted alone: read as the reader would see it.
        rendered = render_html(text)
        links = _unique([*rendered.links, *links_in_text(rendered.text)])
        if not rendered.text and not links:
            raise _invalid("empty_message", "the message is empty")
        return Message(kind, sender, subject, rendered.text, links, (), html=True)
    return Message(kind, sender, subject, text, _unique(links_in_text(text)))
