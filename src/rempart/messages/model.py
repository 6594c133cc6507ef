"""What the message checker reads and what it answers: plain values, no behaviour.

A :class:`Message` is already parsed (``rempart.messages.parse.read_message``); a
:class:`Verdict` carries every reason behind its score, in French, so that the person
who pasted the message understands it without us.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rempart.errors import RempartError

__all__ = [
    "Channel",
    "InvalidMessage",
    "Link",
    "Message",
    "Reason",
    "Verdict",
    "VerdictLabel",
]

Channel = Literal["sms", "email"]
VerdictLabel = Literal["phishing", "suspicious", "genuine-looking"]


class InvalidMessage(RempartError):
    """Input that is not a message one can check. Stable codes: ``empty_message`` (422),
    ``message_too_large`` (413), ``binary_message`` (422), ``invalid_channel`` (422),
    ``invalid_field`` (422). The detail never quotes the input."""

    status = 422
    field: str | None = None
    """The caller's field at fault (``channel``, ``sender``, ``subject``), when one is."""


@dataclass(frozen=True, slots=True)
class Link:
    """A link the reader could follow: written in the text, or an HTML ``<a href>``."""

    url: str
    """As written (a bare ``exemple.fr/x`` is kept bare)."""
    host: str
    """Lower case, in Unicode form (punycode decoded where it decodes)."""
    ascii_host: str
    """Lower case, in ASCII form (``xn--`` labels for internationalized names)."""
    text: str | None = None
    """The visible text of an HTML link; None for a link written in the text."""
    hidden: bool = False
    """An HTML link the reader cannot see (display:none, zero size, same colour as its
    background, no visible content) but a click or a mail client may still follow."""


@dataclass(frozen=True, slots=True)
class Message:
    """What the checker reads, already parsed. Its ``repr`` hides the content."""

    channel: Channel
    sender: str
    subject: str | None
    text: str
    """The visible text (an HTML e-mail rendered to text)."""
    links: tuple[Link, ...] = ()
    attachments: tuple[str, ...] = ()
    """The attachments' file names (or their content type when they have none)."""
    html: bool = False
    """The message had an HTML part (its text is that part's visible text)."""

    def __repr__(self) -> str:
        return (
            f"Message(channel={self.channel!r}, <redacted>, links={len(self.links)}, "
            f"attachments={len(self.attachments)})"
        )


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    """Stable, snake_case (``foreign_link``, ``notice_code_genuine``, ``genuine_channel``)."""
    text: str
    """Plain French, one sentence or two."""
    weight: int
    """Signed contribution to the score: positive towards fraud, negative towards
    genuine, 0 for advice."""


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: VerdictLabel
    score: int
    """0 to 100, higher is more likely fraud."""
    reasons: tuple[Reason, ...]
    """Strongest first; always ends with the ``genuine_channel`` reason."""

    def to_json(self) -> dict[str, object]:
        return {
            "verdict": self.verdict,
            "score": self.score,
            "reasons": [{"code": r.code, "text": r.text} for r in self.reasons],
        }
