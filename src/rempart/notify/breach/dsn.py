"""Bounces that come back after a notice left: which person's e-mail failed, for good or not.

A notice accepted by our SMTP server may still bounce later, from the person's provider.
The bounce is a delivery status notification (RFC 3464: ``multipart/report;
report-type=delivery-status``) or, from older servers, a free-form message.
:func:`parse_bounce` reads the standard fields with the standard library
(``Action``, ``Status``, ``Final-Recipient``) and asks ``flufl.bounce`` (Mailman's bounce
detectors, which know many non-standard formats) for the failed addresses; the original
``Message-ID`` — stable per campaign and person (``codes.message_id``) — comes from the
returned headers (``text/rfc822-headers`` or ``message/rfc822``), and is what ties a
bounce to a recipient. A permanent failure (``failed``, ``5.x.x``) turns into a letter; a
``delayed`` or ``4.x.x`` one does not (yet).

Bounces are untrusted input: anything that is not a readable bounce gives ``None``,
never an exception.
"""

from __future__ import annotations

import email
import email.message
import mailbox
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from flufl.bounce import all_failures

__all__ = ["Bounce", "parse_bounce", "read_bounces"]

_MAX_BYTES = 10 * 1024 * 1024  # a bounce larger than this is not one worth parsing
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class Bounce:
    original_message_id: str | None
    """The ``Message-ID`` of the notice that bounced (with its angle brackets), if the
    bounce returned it."""
    recipients: tuple[str, ...]
    """The failed addresses, lower-cased, sorted."""
    permanent: bool
    status: str
    """The RFC 3463 status (``5.1.1``), or ``5.0.0`` / ``4.0.0`` when the bounce gave none."""


def _address(value: str) -> str | None:
    # "rfc822; camille@gmail.example" -> "camille@gmail.example"
    kind, _, address = value.partition(";")
    if not address:
        address = kind
    elif kind.strip().lower() != "rfc822":
        return None
    address = address.strip().strip("<>").strip().lower()
    return address if "@" in address else None


def _status_fields(message: email.message.Message) -> list[email.message.Message]:
    """The field groups of every ``message/delivery-status`` part."""
    groups: list[email.message.Message] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            groups.extend(p for p in payload if isinstance(p, email.message.Message))
        elif isinstance(payload, str):
            # Some servers send it as plain text: groups separated by blank lines.
            groups.extend(HeaderParser().parsestr(chunk) for chunk in re.split(r"\n\s*\n", payload))
    return groups


def _original_message_id(message: email.message.Message) -> str | None:
    for part in message.walk():
        kind = part.get_content_type()
        headers: email.message.Message | None = None
        if kind == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                headers = HeaderParser().parsestr(payload.decode("utf-8", "replace"))
        elif kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                headers = payload[0]
        if headers is not None and headers.get("Message-ID"):
            value = " ".join(str(headers["Message-ID"]).split())
            return value or None
    return None


def _parse(raw: bytes) -> Bounce | None:
    message = email.message_from_bytes(raw)
    dsn_failed: dict[str, str] = {}
    dsn_delayed: dict[str, str] = {}
    for group in _status_fields(message):
        action = str(group.get("Action", "")).strip().lower()
        recipient = _address(
            str(group.get("Final-Recipient") or group.get("Original-Recipient") or "")
        )
        if recipient is None or action not in ("failed", "delayed"):
            continue
        found = _STATUS.search(str(group.get("Status", "")))
        status = ".".join(found.groups()) if found else ("5.0.0" if action == "failed" else "4.0.0")
        if action == "failed" and status.startswith("5"):
            dsn_failed[recipient] = status
        else:
            dsn_delayed[recipient] = status
    temporary, permanent = all_failures(message)
    heuristic_permanent = {a.decode("utf-8", "replace").lower() for a in permanent}
    heuristic_temporary = {a.decode("utf-8", "replace").lower() for a in temporary}
    if dsn_failed:
        return Bounce(
            _original_message_id(message),
            tuple(sorted(dsn_failed)),
            True,
            sorted(dsn_failed.values())[0],
        )
    if dsn_delayed:
        return Bounce(
            _original_message_id(message),
            tuple(sorted(dsn_delayed)),
            False,
            sorted(dsn_delayed.values())[0],
        )
    recipients = {a for a in heuristic_permanent | heuristic_temporary if "@" in a}
    if not recipients:
        return None
    is_permanent = bool(heuristic_permanent)
    return Bounce(
        _original_message_id(message),
        tuple(sorted(recipients)),
        is_permanent,
        "5.0.0" if is_permanent else "4.0.0",
    )


def parse_bounce(raw: bytes) -> Bounce | None:
    """The bounce in ``raw``, or None if it is not one (or cannot be read)."""
    if not raw or len(raw) > _MAX_BYTES:
        return None
    try:
        return _parse(raw)
    except Exception:  # noqa: BLE001 - a bounce is hostile input: unreadable means not one
        return None


def read_bounces(path: Path) -> Iterator[tuple[str, Bounce | None]]:
    """Every message in a ``.eml`` file, a folder of them, or an mbox, with its name
    (``file.eml``, ``box.mbox#3``) and its parse."""
    if path.is_dir():
        for item in sorted(path.iterdir()):
            if item.is_file() and not item.name.startswith("."):
                yield from read_bounces(item)
        return
    with path.open("rb") as handle:
        head = handle.read(5)
    if head == b"From ":
        box = mailbox.mbox(path, create=False)
        try:
            for index, key in enumerate(box.iterkeys(), start=1):
                yield f"{path.name}#{index}", parse_bounce(box.get_bytes(key))
        finally:
            box.close()
        return
    size = path.stat().st_size
    yield path.name, None if size > _MAX_BYTES else parse_bounce(path.read_bytes())
