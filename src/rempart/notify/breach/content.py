"""What one breach notice says: the facts the templates turn into French text.

The same :class:`NoticeContent` feeds the e-mail and the letter of a person; the
wording lives in the templates (``templates/<message>/<channel>/``) so that the
insurer's communication team changes it without touching code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

__all__ = ["Block", "Insurer", "LetterText", "NoticeContent", "Recipient"]


@dataclass(frozen=True)
class Insurer:
    """Who writes, and every contact a notice gives (never a link: all written as text)."""

    name: str
    """``Caisse d'assurance maladie (démonstration)``."""
    website: str
    """Written out as text, e.g. ``www.rempart.example`` (never a link in a notice)."""
    sender_address: str
    """The genuine address notices come from, e.g. ``securite@rempart.example``."""
    postal_address: str
    dpo_name: str
    dpo_email: str
    dpo_phone: str


@dataclass(frozen=True)
class Recipient:
    """The person, as the insurer knows them (from ``insured``, joined by pseudonym)."""

    sex: int
    """1 man, 2 woman (the civility line); anything else gives no civility."""
    first_name: str
    last_name: str
    birth_date: date
    street: str
    postcode: str
    city: str
    email: str | None


@dataclass(frozen=True)
class NoticeContent:
    """One person's notice. ``categories`` are *this person's* categories read, in
    ``rempart.audit.chain.CATEGORIES`` order (``nir``, ``identity``,
    ``treating_doctor``, ``c2s``, ``ame``, ``ald``): the templates word ``ald`` and
    ``ame`` so that a notice never states the person's illness or residence status
    (it says the information *about* their coverage was read, not what it is)."""

    recipient: Recipient
    reference: str
    """``notify.breach.codes.person_reference``: shown on the letter, in the manifest."""
    code: str
    """The formatted verification code (``K7QM-4XPD-9TRW``)."""
    channel: str
    """``email`` or ``letter``."""
    categories: tuple[str, ...]
    first_read: datetime
    last_read: datetime
    """When this person's data were read (UTC; the templates show Paris time)."""
    incident_start: datetime
    incident_end: datetime
    measures: tuple[str, ...]
    """What the insurer did, as short French sentences (``Le compte utilisé a été
    suspendu le 3 décembre 2026.``)."""
    insurer: Insurer
    sent_on: date
    """The date the notice is dated (the letter's date line)."""
    minor: bool = False
    """Under 18 at the first read: the notice is addressed to their legal guardians."""
    complementary: bool = False
    """Sent by a complementary campaign (a later scope found the person)."""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Block:
    """One block of a letter's body, as the letter template writes it (mini-markup:
    ``## `` a heading, ``- `` a bullet, ``CODE: `` the verification code line, a blank
    line between paragraphs)."""

    kind: Literal["heading", "paragraph", "bullet", "code"]
    text: str


@dataclass(frozen=True)
class LetterText:
    """A rendered letter, ready for the PDF engine (``notify.breach.letters``)."""

    reference: str
    address_lines: tuple[str, ...]
    """The NF Z10-011 address block (``notify.breach.postal``), at most 6 lines."""
    place_date: str
    """``Le 3 décembre 2026``."""
    subject: str
    blocks: tuple[Block, ...]
