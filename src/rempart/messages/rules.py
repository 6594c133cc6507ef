"""The checker's rules, as data the insurer updates without code (``rules.toml``).

The file says who the insurer is (names, sites, senders, phone numbers), which
phrases betray a request or pressure (with the French reason shown and a weight),
which domains shorten links, the weight of every built-in signal and the verdict
thresholds. It is read with ``tomllib`` and validated with pydantic; every problem is
reported at once, each naming the entry at fault (``phrases[2] (asks_password).weight``).
"""

from __future__ import annotations

import re
import tomllib
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rempart.errors import RempartError
from rempart.messages.text import Phrase, PhraseError, fold

__all__ = ["InvalidRules", "MessageRules", "PhraseFamily", "load_rules", "load_rules_text"]

_DOMAIN = re.compile(
    r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}$"
)
_CODE = re.compile(r"^[a-z][a-z0-9_]{1,47}$")
_EXTENSION = re.compile(r"^[a-z0-9]{1,10}$")
_SENDER_ID = re.compile(r"^[A-Za-z0-9 .&'-]{2,20}$")

# Codes the checker itself gives: a phrase family may not take one.
BUILT_IN_CODES = frozenset(
    {
        "foreign_link", "lookalike_domain", "shortener", "link_text_mismatch", "hidden_link",
        "foreign_phone", "attachment", "attachment_risky", "sender_unknown",
        "sender_name_mismatch", "sender_mobile", "sender_lookalike", "foreign_language",
        "notice_code_genuine", "notice_code_unknown", "notice_code_unchecked", "genuine_channel",
    }
)  # fmt: skip


class InvalidRules(RempartError):
    """A rules file that cannot be used; the detail names each entry at fault."""

    code = "invalid_rules"
    status = 500

    def __init__(self, problems: list[str], source: str) -> None:
        self.problems = problems
        super().__init__(f"message rules {source}: " + "; ".join(problems))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _domains(values: list[str]) -> list[str]:
    cleaned = []
    for value in values:
        domain = value.strip().lower().rstrip(".")
        if not _DOMAIN.match(domain):
            raise ValueError(f"{value!r} is not a domain name (e.g. ameli.fr)")
        cleaned.append(domain)
    return cleaned


def phone_digits(value: str) -> str:
    """A phone number as its national digits: ``+33 1 23 45 67 89`` → ``0123456789``.

    >>> phone_digits("+33 (0)1 23 45 67 89"), phone_digits("36 46")
    ('0123456789', '3646')
    """
    digits = re.sub(r"\D", "", value.replace("(0)", ""))
    if value.strip().startswith("+33") or digits.startswith("0033"):
        digits = "0" + digits[4 if digits.startswith("0033") else 2 :]
    return digits


class Insurer(_Section):
    name: str = Field(min_length=2, max_length=80)
    """How reasons name the insurer (``l'Assurance Maladie``)."""
    website: str = Field(min_length=3, max_length=120)
    phone: str = Field(min_length=3, max_length=40)
    verify_page: str = Field(min_length=3, max_length=160)
    brands: list[str] = Field(min_length=1)
    """Names a look-alike domain borrows (``ameli``, ``assurance-maladie``)."""
    genuine_channel: str = Field(min_length=10, max_length=600)

    @field_validator("brands")
    @classmethod
    def _brands(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", value) or len(value) < 3:
                raise ValueError(f"{value!r}: lower-case letters and digits, words joined by -")
        return values


class Domains(_Section):
    own: list[str] = Field(min_length=1)
    """The insurer's domains: a link there (or to a subdomain) is genuine."""
    trusted: list[str] = []
    """Public services a genuine message may cite (cnil.fr, a .gouv.fr site)."""
    shorteners: list[str] = []

    _check = field_validator("own", "trusted", "shorteners")(_domains)


class Senders(_Section):
    email_domains: list[str] = Field(min_length=1)
    email_addresses: list[str] = []
    sms_ids: list[str] = []
    """Alphanumeric sender ids (``AMELI``) and short numbers (``38100``) of its SMS."""

    _check = field_validator("email_domains")(_domains)

    @field_validator("email_addresses")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        for value in values:
            local, _, domain = value.partition("@")
            if not local or not _DOMAIN.match(domain.lower()):
                raise ValueError(f"{value!r} is not an e-mail address")
        return [value.lower() for value in values]

    @field_validator("sms_ids")
    @classmethod
    def _sms_ids(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _SENDER_ID.match(value):
                raise ValueError(f"{value!r}: 2 to 20 letters, digits or spaces")
        return values


class Phones(_Section):
    own: list[str] = Field(min_length=1)

    @field_validator("own")
    @classmethod
    def _numbers(cls, values: list[str]) -> list[str]:
        for value in values:
            digits = phone_digits(value)
            if not (3 <= len(digits) <= 5 or (len(digits) == 10 and digits.startswith("0"))):
                raise ValueError(f"{value!r}: a short number or a French number of 10 digits")
        return values


class Attachments(_Section):
    risky_extensions: list[str] = Field(min_length=1)

    @field_validator("risky_extensions")
    @classmethod
    def _extensions(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _EXTENSION.match(value):
                raise ValueError(f"{value!r}: an extension without its dot, in lower case")
        return values


class Weights(_Section):
    foreign_link: int = Field(ge=0, le=100)
    lookalike_domain: int = Field(ge=0, le=100)
    shortener: int = Field(ge=0, le=100)
    link_text_mismatch: int = Field(ge=0, le=100)
    hidden_link: int = Field(ge=0, le=100)
    foreign_phone: int = Field(ge=0, le=100)
    attachment: int = Field(ge=0, le=100)
    attachment_risky: int = Field(ge=0, le=100)
    sender_unknown: int = Field(ge=0, le=100)
    sender_name_mismatch: int = Field(ge=0, le=100)
    sender_mobile: int = Field(ge=0, le=100)
    sender_lookalike: int = Field(ge=0, le=100)
    foreign_language: int = Field(ge=0, le=100)
    notice_code_unknown: int = Field(ge=0, le=100)
    notice_code_genuine: int = Field(ge=-100, le=0)
    """With the addressee's name found in the message and matching."""
    notice_code_genuine_unnamed: int = Field(ge=-100, le=0)
    """No name found in the message: the code alone is a weaker sign."""


class Thresholds(_Section):
    suspicious: int = Field(ge=1, le=100)
    phishing: int = Field(ge=1, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.suspicious >= self.phishing:
            raise ValueError("suspicious must be lower than phishing")
        return self


def _compile(values: list[str]) -> list[str]:
    for value in values:
        try:
            Phrase.compile(value)
        except PhraseError as exc:
            raise ValueError(str(exc)) from None
    return values


class Cues(_Section):
    advice: list[str] = Field(min_length=1)
    """In a sentence holding one of these, a request phrase is advice or a warning
    (``ne … jamais``, ``escroquerie``), not a request."""
    request: list[str] = Field(min_length=1)
    """Verbs that make a sentence ask something (``confirmez``, ``saisir``)."""

    _check = field_validator("advice", "request")(_compile)


class PhraseFamily(_Section):
    code: str
    text: str = Field(min_length=10, max_length=400)
    weight: int = Field(ge=-100, le=100)
    phrases: list[str] = Field(min_length=1)
    needs_request: bool = False
    """Counts only in a sentence that also asks (a request cue): topics are no signal."""
    skip_advice: bool = True
    """Does not count in a sentence of advice (an advice cue)."""

    _check = field_validator("phrases")(_compile)

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not _CODE.match(value):
            raise ValueError("snake_case, 2 to 48 characters")
        if value in BUILT_IN_CODES:
            raise ValueError(f"{value!r} is a built-in signal's code")
        return value

    @cached_property
    def compiled(self) -> tuple[Phrase, ...]:
        return tuple(Phrase.compile(p) for p in self.phrases)


class MessageRules(_Section):
    """The validated content of a rules file."""

    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,))

    version: int = Field(ge=1, le=1)
    insurer: Insurer
    domains: Domains
    senders: Senders
    phones: Phones
    attachments: Attachments
    weights: Weights
    thresholds: Thresholds
    cues: Cues
    phrases: list[PhraseFamily] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct_codes(self) -> MessageRules:
        seen: set[str] = set()
        for family in self.phrases:
            if family.code in seen:
                raise ValueError(f"phrase family {family.code!r} is defined twice")
            seen.add(family.code)
        return self

    @cached_property
    def advice_cues(self) -> tuple[Phrase, ...]:
        return tuple(Phrase.compile(p) for p in self.cues.advice)

    @cached_property
    def request_cues(self) -> tuple[Phrase, ...]:
        return tuple(Phrase.compile(p) for p in self.cues.request)

    @cached_property
    def own_phones(self) -> frozenset[str]:
        return frozenset(phone_digits(p) for p in self.phones.own)

    @cached_property
    def sms_ids(self) -> frozenset[str]:
        return frozenset(fold(s).replace(" ", "") for s in self.senders.sms_ids)


def _where(loc: tuple[int | str, ...], data: dict[str, Any]) -> str:
    parts: list[str] = []
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            parts[-1] += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("code"), str):
                parts[-1] += f" ({node['code'][:48]})"
        else:
            parts.append(str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"


def load_rules_text(text: str, source: str = "<text>") -> MessageRules:
    """Rules from TOML text; :class:`InvalidRules` lists every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRules([f"not TOML ({exc})"], source) from None
    try:
        return MessageRules.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{_where(tuple(error['loc']), data)}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise InvalidRules(problems, source) from None


def load_rules(path: Path | None = None) -> MessageRules:
    """The rules in ``path``, or the default shipped in the package (``rules.toml``).
    Raises :class:`InvalidRules` (code ``invalid_rules``) naming the entry at fault."""
    if path is None:
        resource = resources.files("rempart.messages").joinpath("rules.toml")
        return load_rules_text(resource.read_text(encoding="utf-8"), "rules.toml")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRules([f"cannot be read ({type(exc).__name__})"], str(path)) from None
    return load_rules_text(text, str(path))
