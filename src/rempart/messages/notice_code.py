"""A breach notice's verification code inside a message, and its check against the
notices really sent.

Every notice shows ``Code de vérification : K7QM-4XPD-9TRW`` on a line of its own
(``rempart.notify.breach.templates``). Phishers imitate notices; a copied layout with
a made-up code is a strong sign of fraud, a genuine code addressed to the name the
message names a strong sign of authenticity. The name is read where the templates
write it: a notice to a minor's guardians names the child ("représentant légal de
Léo Moreau", "Les données de Léo Moreau ont été consultées", the subject); a notice to
an adult names nobody in its text (the salutation is "Madame,"), so its code alone is
checked — a weaker sign, since a genuine code may have been copied.
"""

from __future__ import annotations

import re
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from rempart.errors import RempartError
from rempart.messages.model import Message
from rempart.notify.breach.codes import NoticeKeys, normalize_code
from rempart.notify.breach.verify import NameComparer, find_notice_holder

__all__ = [
    "NoticeCheckUnavailable",
    "NoticeCodeCheck",
    "addressee_names",
    "database_notice_check",
    "is_code_shaped",
    "notice_codes",
]


_CODE_LINE = re.compile(
    r"(?i)code\s+de\s+v[ée]rification\s*:?\s*"
    r"([a-z0-9]{4}[\s\-.]?[a-z0-9]{4}[\s\-.]?[a-z0-9]{4})(?![a-z0-9])"
)
_NAME = r"(?P<name>[^\W\d_][^.,;:!?()\n]{1,79}?)"
_ADDRESSEE = (
    re.compile(rf"(?i)repr[ée]sentant(?:e)?\s+l[ée]ga(?:l|ux)\s+de\s+{_NAME}\s*[.,;]"),
    re.compile(rf"(?i)donn[ée]es\s+de\s+{_NAME}\s+ont\s+[ée]t[ée]\s+consult[ée]es"),
    re.compile(rf"(?i)non\s+autoris[ée]e\s+des\s+donn[ée]es\s+de\s+{_NAME}\s*$"),
    # A salutation naming someone ("Madame Durand,"): the insurer's own notices greet
    # "Madame," alone, so a copied genuine code with a name is checked against it.
    re.compile(rf"(?im)^\s*(?:madame|monsieur|mme|m\.)\s+{_NAME}\s*,"),
)
_MAX_WORDS = 6


class NoticeCodeCheck(Protocol):
    def __call__(self, code: str, last_name: str | None) -> bool:
        """True only when the code is a genuine notice's and (when a name is found in the
        message) the name matches. Unknown code and someone else's name answer alike."""
        ...


def notice_codes(message: Message) -> list[str]:
    """The verification codes the message shows, as written (at most two).

    >>> from rempart.messages.model import Message
    >>> notice_codes(Message("email", "", None, "Code de vérification : K7QM-4XPD-9TRW"))
    ['K7QM-4XPD-9TRW']
    """
    found = _CODE_LINE.findall(f"{message.subject or ''}\n{message.text}")
    return list(dict.fromkeys(" ".join(code.split()) for code in found))[:2]


def addressee_names(message: Message) -> tuple[str, ...]:
    """The last names the message may address, as the notice templates write the
    addressee (first name then last name, either of which may hold several words):
    every ending of the words found, shortest first. Empty when none is written.

    >>> addressee_names(Message("email", "", None,
    ...     "en tant que représentant légal de Léo Moreau. Nous vous informons"))
    ('Moreau', 'Léo Moreau')
    """
    candidates: dict[str, None] = {}
    for text in (message.subject or "", message.text):
        for pattern in _ADDRESSEE:
            for match in pattern.finditer(text):
                words = match.group("name").split()
                if len(words) > _MAX_WORDS:
                    continue
                for start in range(len(words) - 1, -1, -1):
                    candidates[" ".join(words[start:])] = None
    return tuple(candidates)


def is_code_shaped(code: str) -> bool:
    """Whether a code could be a notice's at all (its alphabet, its length)."""
    return normalize_code(code) is not None


class NoticeCheckUnavailable(RempartError):
    code = "notice_check_unavailable"
    status = 503


def database_notice_check(sessions: sessionmaker[Session], keys: NoticeKeys) -> NoticeCodeCheck:
    """The real check against the notices sent (the lookup of the public notice check,
    ``rempart.notify.breach.verify``). A database failure raises
    :class:`NoticeCheckUnavailable` (503) rather than answering "not genuine"."""
    names = NameComparer()

    def check(code: str, last_name: str | None) -> bool:
        if normalize_code(code) is None:
            return False
        try:
            holder = find_notice_holder(sessions, keys, code)
        except SQLAlchemyError:
            raise NoticeCheckUnavailable(
                "the notices cannot be read right now; try again later"
            ) from None
        if last_name is None:
            return holder is not None
        return names.same(last_name, holder)

    return check
