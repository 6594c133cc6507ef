"""Breach notices in French: a person's e-mail (text and HTML) and letter, from templates.

The wording lives in ``templates/notice/_body.txt``, written once in a small markup that
both channels share (``templates/notice/README.md``): the letter's body is that markup
cut into :class:`~rempart.notify.breach.content.Block` values for the PDF engine, the
e-mail's text part is the same blocks wrapped at 76 columns, and its HTML part is
``email/body.html`` laying the same blocks out. The communication team changes the
words in one place, without touching code.

Values from data (names, the insurer's contacts, the measures) are put on one line
before they reach a template — a name holding a line break must not start a heading or a
code line — and HTML-escaped in the HTML part. They are not defanged like the
professionals' e-mails' values (``notify.render.plain``): a person's name is shown as
it is. A notice must hold no link at all, so every rendered e-mail is checked, and one
that holds a link, an image or a ``mailto:`` is refused (``notice_link_refused``),
whether it came from a template edit or from data.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError

from rempart.audit.chain import CATEGORIES
from rempart.errors import RempartError
from rempart.notify.breach.content import Block, Insurer, LetterText, NoticeContent, Recipient
from rempart.notify.render import DAYS, MONTHS, PARIS, RenderedMail

__all__ = [
    "SENSITIVE_CATEGORIES",
    "TEMPLATES",
    "NoticeRenderer",
    "NoticeTemplateError",
    "blocks_as_text",
    "french_date",
    "french_day",
    "french_time",
    "parse_blocks",
    "variants",
]

TEMPLATES = Path(__file__).parent / "templates"
SENSITIVE_CATEGORIES = frozenset({"ald", "ame", "c2s"})
"""Categories whose mere mention could be read as the person's status: the notice says
the information *about* them was read, and that it says nothing of the person's case."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
# A notice never holds a link: neither markup that makes one nor text a client follows.
_LINK = re.compile(r"<\s*(?:a|img|link|form|iframe|base)\b|\bhref\s*=|\bsrc\s*=|https?:|mailto:")
_LINK_WORDS = ("<a", "<img", "<link", "<form", "<iframe", "<base", "href", "src", "http", "mailto")
_SPACES = re.compile(r"[ \t\r\f\v]+")
_WIDTH = 76
_CIVILITY = {1: "Monsieur", 2: "Madame"}


class NoticeTemplateError(RempartError):
    """A notice that cannot be rendered. Codes: ``notice_template_error`` (a template
    missing, a variable unknown, a category the templates do not word),
    ``notice_link_refused`` (the rendered e-mail holds a link)."""

    code = "notice_template_error"
    status = 500


def _paris(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise NoticeTemplateError(f"a datetime is expected, not {type(value).__name__}")
    moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return moment.astimezone(PARIS)


def french_date(value: object) -> str:
    """``3 décembre 2026``; a datetime gives its date in Paris (a naive one is UTC).

    >>> french_date(date(2026, 12, 1))
    '1er décembre 2026'
    >>> french_date(datetime(2026, 3, 31, 23, 30, tzinfo=UTC))
    '1er avril 2026'
    """
    day = _paris(value).date() if isinstance(value, datetime) else value
    if not isinstance(day, date):
        raise NoticeTemplateError(f"a date is expected, not {type(value).__name__}")
    number = "1er" if day.day == 1 else str(day.day)
    return f"{number} {MONTHS[day.month - 1]} {day.year}"


def french_day(value: object) -> str:
    """``mardi 1er décembre 2026`` (Paris).

    >>> french_day(datetime(2026, 12, 1, 8, 5, tzinfo=UTC))
    'mardi 1er décembre 2026'
    """
    local = _paris(value)
    return f"{DAYS[local.weekday()]} {french_date(local.date())}"


def french_time(value: object) -> str:
    """``9 h 05`` (Paris), with no-break spaces.

    >>> french_time(datetime(2026, 12, 1, 8, 5, tzinfo=UTC)).replace("\\u00a0", " ")
    '9 h 05'
    """
    local = _paris(value)
    return f"{local.hour}\u00a0h\u00a0{local.minute:02d}"  # never cut across two lines


def _one_line(value: str) -> str:
    return " ".join(_CONTROL.sub(" ", value).split())


@dataclass(frozen=True)
class _Person:
    civility: str | None
    first_name: str
    last_name: str


def _insurer(insurer: Insurer) -> Insurer:
    return Insurer(
        name=_one_line(insurer.name),
        website=_one_line(insurer.website),
        sender_address=_one_line(insurer.sender_address),
        postal_address=_one_line(insurer.postal_address),
        dpo_name=_one_line(insurer.dpo_name),
        dpo_email=_one_line(insurer.dpo_email),
        dpo_phone=_one_line(insurer.dpo_phone),
    )


def parse_blocks(text: str) -> tuple[Block, ...]:
    """The mini-markup as blocks: ``## `` a heading, ``- `` a bullet, ``CODE: `` the code
    line; other lines join the paragraph or bullet above them; a blank line ends it.

    >>> parse_blocks("## Titre\\n\\nUne phrase\\nsur deux lignes.\\n- un\\n- deux\\nsuite")
    ... # doctest: +NORMALIZE_WHITESPACE
    (Block(kind='heading', text='Titre'),
     Block(kind='paragraph', text='Une phrase sur deux lignes.'),
     Block(kind='bullet', text='un'), Block(kind='bullet', text='deux suite'))
    """
    blocks: list[Block] = []
    current: Block | None = None
    for raw in text.splitlines():
        line = _SPACES.sub(" ", raw).strip(" ")  # no-break spaces are kept
        if not line:
            current = None
        elif line.startswith("## "):
            blocks.append(Block("heading", line[3:].strip()))
            current = None
        elif line.startswith("CODE:"):
            blocks.append(Block("code", line[5:].strip()))
            current = None
        elif line == "-" or line.startswith("- "):
            current = Block("bullet", line[2:].strip())
            blocks.append(current)
        elif current is not None:
            current = replace(current, text=f"{current.text} {line}")
            blocks[-1] = current
        else:
            current = Block("paragraph", line)
            blocks.append(current)
    return tuple(block for block in blocks if block.text)


def blocks_as_text(blocks: Iterable[Block], width: int = _WIDTH) -> str:
    """Plain text: paragraphs wrapped, bullets with a hanging indent, the code line and
    headings whole, one blank line between blocks (none between bullets)."""
    out: list[str] = []
    previous: str | None = None
    for block in blocks:
        if out and not (block.kind == "bullet" and previous == "bullet"):
            out.append("")
        out.extend(_wrapped(block.kind, block.text, width))
        previous = block.kind
    return "\n".join(out) + "\n"


@lru_cache(maxsize=4096)
def _wrapped(kind: str, text: str, width: int) -> tuple[str, ...]:
    # Cached: most blocks (the advice, the rights) are the same in every notice.
    if kind in ("code", "heading"):
        return (text,)
    first = "- " if kind == "bullet" else ""
    return tuple(
        textwrap.wrap(
            text,
            width,
            initial_indent=first,
            subsequent_indent=" " * len(first),
            break_long_words=False,
            break_on_hyphens=False,
        )
    )


def _holds_link(text: str) -> bool:
    lowered = text.lower()
    # The regex is costly on a whole notice; most notices hold none of these words.
    if not any(word in lowered for word in _LINK_WORDS):
        return False
    return _LINK.search(lowered) is not None


class NoticeRenderer:
    """Renders notices from a template folder (default: the one shipped beside this
    module; the insurer may point to a copy it edits)."""

    def __init__(self, templates: Path | None = None) -> None:
        self.templates = templates or TEMPLATES
        self._text = self._environment(autoescape=False)
        self._html = self._environment(autoescape=True)

    def _environment(self, *, autoescape: bool) -> Environment:
        env = Environment(
            loader=FileSystemLoader(self.templates),
            autoescape=autoescape,  # noqa: S701 - on for HTML; the text parts are not HTML  # nosec B701
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        env.filters.update(
            date_fr=french_date, day_fr=french_day, time_fr=french_time, one_line=_one_line
        )
        return env

    def context(self, content: NoticeContent) -> dict[str, Any]:
        """What the templates see (listed in ``templates/notice/README.md``)."""
        unknown = [c for c in content.categories if c not in CATEGORIES]
        if unknown or not content.categories:
            raise NoticeTemplateError(
                f"categories {list(content.categories)!r}: the templates word "
                f"{', '.join(CATEGORIES)}, at least one"
            )
        recipient = content.recipient
        ordered = tuple(c for c in CATEGORIES if c in content.categories)
        first, last = _paris(content.first_read), _paris(content.last_read)
        insurer = _insurer(content.insurer)
        return {
            "channel": content.channel,
            "person": _Person(
                civility=_CIVILITY.get(recipient.sex),
                first_name=_one_line(recipient.first_name),
                last_name=_one_line(recipient.last_name),
            ),
            "insurer": insurer,
            "categories": ordered,
            "sensitive": bool(SENSITIVE_CATEGORIES.intersection(ordered)),
            "first_read": first,
            "last_read": last,
            "reads_same_day": first.date() == last.date(),
            "reads_same_moment": abs(last - first) < timedelta(minutes=1),
            "incident_start": content.incident_start,
            "incident_end": content.incident_end,
            "measures": tuple(_one_line(m) for m in content.measures if m.strip()),
            "code": _one_line(content.code),
            "reference": _one_line(content.reference),
            "verify_page": f"{insurer.website.rstrip('/')}/verifier",
            "sent_on": content.sent_on,
            "minor": content.minor,
            "complementary": content.complementary,
            "extra": {key: _one_line(value) for key, value in content.extra.items()},
        }

    def _render(self, env: Environment, name: str, context: dict[str, Any]) -> str:
        try:
            return env.get_template(name).render(context)
        except TemplateError as exc:
            raise NoticeTemplateError(f"notice template {name!r}: {exc.message}") from None

    def render_email(self, content: NoticeContent) -> RenderedMail:
        context = self.context(_for_channel(content, "email"))
        subject = _one_line(self._render(self._text, "notice/email/subject.txt", context))
        blocks = parse_blocks(self._render(self._text, "notice/email/text.txt", context))
        text = blocks_as_text(blocks)
        html = self._render(
            self._html, "notice/email/body.html", {**context, "subject": subject, "blocks": blocks}
        )
        for part in (subject, text, html):
            if _holds_link(part):
                raise NoticeTemplateError(
                    "a notice e-mail must hold no link, image or mailto:",
                    code="notice_link_refused",
                )
        return RenderedMail(subject=subject, text=text, html=html)

    def render_letter(self, content: NoticeContent, address_lines: tuple[str, ...]) -> LetterText:
        context = self.context(_for_channel(content, "letter"))
        subject = _one_line(self._render(self._text, "notice/letter/subject.txt", context))
        blocks = parse_blocks(self._render(self._text, "notice/letter/body.txt", context))
        return LetterText(
            reference=content.reference,
            address_lines=address_lines,
            place_date=f"Le {french_date(content.sent_on)}",
            subject=subject,
            blocks=blocks,
        )


def _for_channel(content: NoticeContent, channel: str) -> NoticeContent:
    """The content as worded for one channel: a letter sent after a bounce reuses the
    e-mail's content, and must say "ce courrier"."""
    return content if content.channel == channel else replace(content, channel=channel)


# --- sample notices for `notify preview` ------------------------------------------------

SAMPLE_INSURER = Insurer(
    name="Caisse d'assurance maladie (démonstration)",
    website="www.rempart.example",
    sender_address="securite@rempart.example",
    postal_address="Service DPO, 1 rue de l'Exemple, 75000 Paris",
    dpo_name="Délégué à la protection des données",
    dpo_email="dpo@rempart.example",
    dpo_phone="01 23 45 67 89",
)

_VARIANTS: tuple[tuple[str, Recipient, tuple[str, ...], bool, bool], ...] = (
    (
        "ald",
        Recipient(2, "Camille", "Lefèvre-D'Arc", date(1961, 5, 14), "", "", "", None),
        ("nir", "identity", "treating_doctor", "ald"),
        False,
        False,
    ),
    (
        "ame",
        Recipient(1, "Karim", "Benali", date(1988, 11, 2), "", "", "", None),
        ("identity", "ame"),
        False,
        False,
    ),
    (
        "c2s-only",
        Recipient(2, "Josiane", "Moreau", date(1954, 1, 30), "", "", "", None),
        ("c2s",),
        False,
        False,
    ),
    (
        "nir-identity",
        Recipient(1, "Thomas", "Nguyen", date(1979, 7, 21), "", "", "", None),
        ("nir", "identity"),
        False,
        False,
    ),
    (
        "minor",
        Recipient(2, "Léa", "Martin", date(2014, 9, 3), "", "", "", None),
        ("nir", "identity", "treating_doctor"),
        True,
        False,
    ),
    (
        "complementary",
        Recipient(0, "Dominique", "Roux", date(1970, 3, 8), "", "", "", None),
        ("nir", "identity", "c2s"),
        False,
        True,
    ),
)


def variants(insurer: Insurer | None = None, *, sent_on: date | None = None) -> list[NoticeContent]:
    """Fictitious notices covering every message variant, per channel: with ALD, with
    AME, C2S only, NIR and identity only, a minor, a complementary campaign.
    ``extra["variant"]`` names each (``email-ald``, ``letter-minor``…) for file names."""
    start = datetime(2026, 11, 12, 7, 30, tzinfo=UTC)
    contents = []
    for channel in ("email", "letter"):
        for index, (name, person, categories, minor, complementary) in enumerate(_VARIANTS):
            first = start + timedelta(days=index, hours=index)
            last = first + timedelta(minutes=0 if index % 3 == 0 else 17 * index)
            if name == "complementary":
                last = first + timedelta(days=3, hours=2)
            contents.append(
                NoticeContent(
                    recipient=replace(
                        person,
                        street="12 rue des Lilas",
                        postcode="69003",
                        city="Lyon",
                        email=f"{name}@exemple.example" if channel == "email" else None,
                    ),
                    reference=f"C0-EXEMPLE{index:04d}",
                    code="K7QM-4XPD-9TRW",
                    channel=channel,
                    categories=categories,
                    first_read=first,
                    last_read=last,
                    incident_start=start,
                    incident_end=start + timedelta(days=20),
                    measures=(
                        "Le compte utilisé a été suspendu le 2 décembre 2026.",
                        "Une plainte a été déposée et la CNIL a été informée.",
                        "Les contrôles d'accès au portail ont été renforcés.",
                    ),
                    insurer=insurer or SAMPLE_INSURER,
                    sent_on=sent_on or date(2026, 12, 10),
                    minor=minor,
                    complementary=complementary,
                    extra={"variant": f"{channel}-{name}"},
                )
            )
    return contents
