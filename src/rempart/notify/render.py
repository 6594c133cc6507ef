"""The French e-mails sent to professionals: one folder of templates per kind.

Each kind has ``subject.txt``, ``text.txt`` and ``body.html`` under ``templates/<kind>/``;
the shared layouts carry the anti-phishing reminder. HTML is autoescaped; every
template is strict (a missing variable is an error, never a blank).

Values that come from outside (a user agent, a key's label, a network) go through
``plain``: one line, bounded, and defanged so that no mail client turns them into a
link — an attacker logging in with a stolen password chooses their user agent, and
must not be able to slip a phishing link into a genuine Rempart e-mail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
)

from rempart.errors import RempartError

__all__ = [
    "DAYS",
    "DEFAULT_SECURITY_CONTACT",
    "KINDS",
    "MONTHS",
    "MailRenderer",
    "MailTemplateError",
    "RenderedMail",
    "french_datetime",
    "method_label",
    "plain",
]

TEMPLATES = Path(__file__).parent / "templates"
PARIS = ZoneInfo("Europe/Paris")
DEFAULT_SECURITY_CONTACT = "le service sécurité de votre caisse"

# The context each kind needs (more keys are refused too: a typo must not pass silently).
KINDS: dict[str, frozenset[str]] = {
    "login_new_origin": frozenset({"when", "network", "device", "method"}),
    "webauthn_registered": frozenset({"label", "when"}),
    "webauthn_removed": frozenset({"label", "when"}),
    "webauthn_renamed": frozenset({"previous", "label", "when"}),
    "session_revoked": frozenset({"when", "network", "device"}),
    "sessions_revoked": frozenset({"when", "count"}),
    "password_reset": frozenset({"when", "method"}),
    "password_changed": frozenset({"when"}),
    "mfa_reset": frozenset({"when"}),
    "recovery_codes_created": frozenset({"when", "count"}),
    "recovery_code_used": frozenset({"when"}),
    "reset_code_issued": frozenset({"when"}),
    "enrolment_code_issued": frozenset({"when"}),
    "account_restored": frozenset({"when", "since", "keys", "codes", "sessions"}),
    "account_suspended": frozenset({"when"}),
    "mfa_locked": frozenset({"when", "failures"}),
    "lookups_disowned": frozenset({"when", "count", "since"}),
}

DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)

# How someone logged in or proved who they are, as the professional knows it.
_METHODS = {
    "password+totp": "mot de passe et code de votre application d'authentification",
    "totp": "code de votre application d'authentification",
    "webauthn": "clé de sécurité ou clé d'accès (passkey)",
    "psc": "Pro Santé Connect (e-CPS)",
    "cps": "Pro Santé Connect avec votre carte CPS",
    "password+recovery": "mot de passe et code de secours",
    "recovery": "code de secours",
    "recovery_code": "code de secours",
    "reset_code": "code de réinitialisation remis par courrier",
    "operator": "intervention d'un agent de votre caisse",
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
_SCHEME = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.-]*:/+|(?:mailto|javascript|data|tel|sms|callto):)")
_DOMAIN_LIKE = re.compile(r"(?i)\b(?:[a-z0-9-]+\.)+[a-z][a-z0-9-]*\b")
_PLAIN_MAX = 120


class MailTemplateError(RempartError):
    """An unknown kind, a missing or unexpected value: a bug in the caller, not bad input."""

    code = "mail_template_error"
    status = 500


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def french_datetime(value: object) -> str:
    """``mardi 4 mars 2025 à 9 h 41 (heure de Paris)``; a naive datetime is UTC."""
    if not isinstance(value, datetime):
        raise MailTemplateError(f"a date is expected, not {type(value).__name__}")
    moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    local = moment.astimezone(PARIS)
    day = "1er" if local.day == 1 else str(local.day)
    return (
        f"{DAYS[local.weekday()]} {day} {MONTHS[local.month - 1]} {local.year} "
        f"à {local.hour} h {local.minute:02d} (heure de Paris)"
    )


def plain(value: object) -> str:
    """One line of untrusted text that no mail client will turn into a link."""
    text = _CONTROL.sub(" ", str(value))
    text = " ".join(text.split())
    if len(text) > _PLAIN_MAX:
        text = text[: _PLAIN_MAX - 1].rstrip() + "…"
    # "https://evil" -> "https evil"; "evil.example" -> "evil[.]example" (digits-only
    # tokens such as IP addresses and version numbers stay as they are).
    text = _SCHEME.sub(lambda m: m.group(0).rstrip(":/") + " ", text)
    text = _DOMAIN_LIKE.sub(lambda m: m.group(0).replace(".", "[.]"), text)
    return text.replace("@", " (at) ").strip()


def method_label(value: object) -> str:
    key = str(value)
    return _METHODS.get(key) or plain(key)


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MailTemplateError(f"a count is expected, not {type(value).__name__}")
    return value


class MailRenderer:
    def __init__(self, *, security_contact: str = DEFAULT_SECURITY_CONTACT) -> None:
        self.security_contact = plain(security_contact)
        self._html = self._environment(autoescape=True)
        self._text = self._environment(autoescape=False)
        for env in (self._html, self._text):
            env.filters.update(date_fr=french_datetime, plain=plain, method=method_label)
            env.filters["as_count"] = _count
            env.globals["security_contact"] = self.security_contact

    @staticmethod
    def _environment(*, autoescape: bool) -> Environment:
        # HTML templates are autoescaped; text ones are plain text, never HTML.
        return Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=autoescape,  # noqa: S701 - on for HTML; text bodies are not HTML  # nosec B701
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, kind: str, context: dict[str, object]) -> RenderedMail:
        self._check_context(kind, context)
        try:
            subject = self._text.get_template(f"{kind}/subject.txt").render(context)
            text = self._text.get_template(f"{kind}/text.txt").render(context)
            html = self._html.get_template(f"{kind}/body.html").render(context)
        except TemplateError as exc:
            raise MailTemplateError(f"e-mail {kind!r}: {exc.message}") from None
        return RenderedMail(subject=" ".join(subject.split()), text=text.strip() + "\n", html=html)

    def render_notice(self, kind: str, context: dict[str, object]) -> tuple[str, str]:
        """The subject and the text body of an e-mail without its layout (greeting,
        anti-phishing reminder): what a pending notice shows in the portal."""
        self._check_context(kind, context)
        try:
            subject = self._text.get_template(f"{kind}/subject.txt").render(context)
            template = self._text.get_template(f"{kind}/text.txt")
            body = "".join(template.blocks["body"](template.new_context(context)))
        except (TemplateError, KeyError) as exc:
            raise MailTemplateError(f"notice {kind!r}: {type(exc).__name__}") from None
        return " ".join(subject.split()), body.strip()

    @staticmethod
    def _check_context(kind: str, context: dict[str, object]) -> None:
        expected = KINDS.get(kind)
        if expected is None:
            raise MailTemplateError(f"unknown e-mail kind {kind!r}")
        missing = sorted(expected - context.keys())
        extra = sorted(context.keys() - expected)
        if missing or extra:
            raise MailTemplateError(
                f"e-mail {kind!r}: missing {missing or 'nothing'}, unexpected {extra or 'nothing'}"
            )
