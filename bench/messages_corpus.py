"""The labelled corpus of French messages that evaluates the message checker (issue 18).

``bench/messages/<family>.toml`` holds one family of messages, all of the family's
label (``phishing`` or ``genuine``)::

    family = "carte_vitale"
    label = "phishing"
    description = "Fake Carte Vitale renewals and delivery fees"

    [[message]]
    id = "cv-01"
    label = "phishing"
    channel = "sms"                 # or "email"
    sender = "+33 6 44 12 87 30"
    subject = "..."                 # optional (e-mails)
    text = "..."
    html = "..."                    # optional: an HTML e-mail (sent as text + HTML)
    note = "..."                    # optional: where the pattern comes from
    lang = "fr"                     # optional, default "fr"

    [[message]]
    id = "cv-14"
    label = "phishing"
    eml = "phish_cv_attachment.eml" # a whole e-mail beside the TOML files
                                    # (channel, sender, subject from its headers)

The genuine breach notices are not written by hand: a ``[[notice]]`` entry names a
person and a variant of the real notice (``rempart.notify.breach.render.variants``),
and the loader renders it with the real renderer and assembles the real e-mail
(``notify.breach.mime.notice_mail``), with a verification code derived from a fixed
corpus key (``notify.breach.codes.derive_code``). :attr:`Corpus.notices` lists each
rendered code with its person's last name, for the benchmark's notice-code check.

Every entry is validated; a bad one raises :class:`CorpusError` naming the file and the
entry's id.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rempart.config import Settings
from rempart.notify.breach.codes import NoticeKeys, derive_code, person_reference
from rempart.notify.breach.content import Insurer, NoticeContent
from rempart.notify.breach.mime import notice_mail
from rempart.notify.breach.render import SAMPLE_INSURER, NoticeRenderer, variants

__all__ = [
    "CORPUS_DIR",
    "MIN_PER_FAMILY",
    "Corpus",
    "CorpusError",
    "CorpusMessage",
    "Family",
    "NoticeSample",
    "demo_insurer",
    "load_corpus",
]

CORPUS_DIR = Path(__file__).resolve().parent / "messages"
MIN_PER_FAMILY = 12
# The corpus's notices are rendered with codes derived from this key, never the
# deployment's: the corpus is public, and its codes must be the same on every machine.
_CORPUS_NOTICE_KEY = b"rempart-bench-messages-corpus"
_CORPUS_CAMPAIGN = 1
_NOTICE_SENT_AT = datetime(2026, 12, 10, 8, 15, tzinfo=UTC)

Label = Literal["phishing", "genuine"]
Channel = Literal["sms", "email"]
NoticeForm = Literal["eml", "text", "forwarded", "excerpt"]
_ID = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,40}$")]
_FAMILY = re.compile(r"^[a-z][a-z0-9_]{1,40}$")
_M = TypeVar("_M", bound=BaseModel)


class CorpusError(Exception):
    """A corpus file or entry that does not hold; the message names the file and id."""


@dataclass(frozen=True)
class CorpusMessage:
    """One labelled message, as the checker's ``read_message`` takes it: ``body`` is
    the text (UTF-8) or, when ``is_eml``, a whole RFC 5322 message."""

    id: str
    family: str
    label: Label
    channel: Channel
    sender: str
    subject: str | None
    body: bytes
    is_eml: bool
    lang: str
    note: str | None
    source: str
    """The file it comes from (and, for an .eml, that file too), for error messages."""

    def visible_text(self) -> str:
        """The text a reader sees, for the benchmark's word counts (not the checker's
        reading): an e-mail's plain part, else its HTML, decoded by its charset
        (Windows-1252 when none is declared)."""
        if not self.is_eml:
            return self.body.decode("utf-8")
        parsed = email.message_from_bytes(self.body, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        part = parsed.get_body(("plain", "html"))
        assert part is not None
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload.decode(part.get_content_charset() or "cp1252", errors="replace")


@dataclass(frozen=True)
class NoticeSample:
    """A rendered genuine notice's verification code and its person's last name."""

    id: str
    code: str
    last_name: str


@dataclass(frozen=True)
class Family:
    name: str
    label: Label
    description: str
    messages: tuple[CorpusMessage, ...]


@dataclass(frozen=True)
class Corpus:
    families: tuple[Family, ...]
    notices: tuple[NoticeSample, ...]

    @property
    def messages(self) -> tuple[CorpusMessage, ...]:
        return tuple(m for family in self.families for m in family.messages)


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: _ID
    label: Label
    channel: Channel | None = None
    sender: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    subject: Annotated[str, Field(min_length=1, max_length=300)] | None = None
    text: Annotated[str, Field(min_length=1, max_length=20_000)] | None = None
    html: Annotated[str, Field(min_length=1, max_length=50_000)] | None = None
    eml: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+\.eml$")] | None = None
    note: str | None = None
    lang: Annotated[str, Field(pattern=r"^[a-z]{2}$")] = "fr"

    @model_validator(mode="after")
    def _shape(self) -> _Message:
        if self.eml is not None:
            given = [
                name
                for name in ("channel", "sender", "subject", "text", "html")
                if getattr(self, name) is not None
            ]
            if given:
                raise ValueError(f"an eml entry takes its {', '.join(given)} from the file")
            return self
        if self.channel is None or self.sender is None or self.text is None:
            raise ValueError("channel, sender and text are required (or eml)")
        if self.channel == "sms" and (self.subject is not None or self.html is not None):
            raise ValueError("an SMS has no subject and no HTML")
        return self


class _Notice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: _ID
    label: Literal["genuine"]
    variant: Literal["ald", "ame", "c2s-only", "nir-identity", "minor", "complementary"]
    sex: Literal[0, 1, 2]
    first_name: Annotated[str, Field(min_length=1, max_length=80)]
    last_name: Annotated[str, Field(min_length=1, max_length=80)]
    form: NoticeForm
    forwarded_by: str | None = None
    forward_words: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _forward(self) -> _Notice:
        if (self.form == "forwarded") != (self.forwarded_by is not None):
            raise ValueError("forwarded_by is given exactly when form is 'forwarded'")
        return self


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    family: str
    label: Label
    description: Annotated[str, Field(min_length=1)]
    message: list[dict[str, object]] = Field(default_factory=list)
    notice: list[dict[str, object]] = Field(default_factory=list)


def load_corpus(directory: Path = CORPUS_DIR) -> Corpus:
    """Every ``*.toml`` family of ``directory``, validated (see the module's docstring)."""
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise CorpusError(f"{directory}: no family file (*.toml)")
    families: list[Family] = []
    notices: list[NoticeSample] = []
    seen: dict[str, str] = {}
    for path in files:
        family, rendered = _load_family(path)
        for message in family.messages:
            if message.id in seen:
                raise CorpusError(
                    f"{path.name}: message {message.id!r}: id already used in {seen[message.id]}"
                )
            seen[message.id] = path.name
        families.append(family)
        notices.extend(rendered)
    return Corpus(families=tuple(families), notices=tuple(notices))


def _load_family(path: Path) -> tuple[Family, list[NoticeSample]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CorpusError(f"{path.name}: cannot be read as TOML: {exc}") from None
    try:
        head = _File.model_validate(data)
    except ValidationError as exc:
        raise CorpusError(f"{path.name}: {_problems(exc)}") from None
    if not _FAMILY.match(head.family) or head.family != path.stem:
        raise CorpusError(
            f"{path.name}: family {head.family!r} must be the file's name ({path.stem!r})"
        )
    messages: list[CorpusMessage] = []
    for raw in head.message:
        entry = _validated(_Message, raw, path)
        _same_label(entry.label, head.label, path, entry.id)
        messages.append(_message(entry, head.family, path))
    samples: list[NoticeSample] = []
    renderer = NoticeRenderer()
    for raw in head.notice:
        notice = _validated(_Notice, raw, path)
        _same_label(notice.label, head.label, path, notice.id)
        message, sample = _render_notice(notice, head.family, path, renderer)
        messages.append(message)
        samples.append(sample)
    if not messages:
        raise CorpusError(f"{path.name}: no [[message]] nor [[notice]] entry")
    family = Family(head.family, head.label, head.description.strip(), tuple(messages))
    return family, samples


def _validated(model: type[_M], raw: dict[str, object], path: Path) -> _M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        ident = raw.get("id", "<no id>")
        raise CorpusError(f"{path.name}: entry {ident!r}: {_problems(exc)}") from None


def _same_label(label: str, family_label: str, path: Path, ident: str) -> None:
    if label != family_label:
        raise CorpusError(
            f"{path.name}: entry {ident!r}: label {label!r} in a {family_label!r} family"
        )


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'entry'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    )


def _message(entry: _Message, family: str, path: Path) -> CorpusMessage:
    if entry.eml is not None:
        return _eml_message(entry, family, path)
    assert entry.channel is not None
    assert entry.sender is not None
    assert entry.text is not None
    is_eml = entry.html is not None
    if entry.html is not None:
        body = _html_email(entry.id, entry.sender, entry.subject, entry.text, entry.html)
    else:
        body = entry.text.encode("utf-8")
    return CorpusMessage(
        id=entry.id,
        family=family,
        label=entry.label,
        channel=entry.channel,
        sender=entry.sender,
        subject=entry.subject,
        body=body,
        is_eml=is_eml,
        lang=entry.lang,
        note=entry.note,
        source=path.name,
    )


def _eml_message(entry: _Message, family: str, path: Path) -> CorpusMessage:
    assert entry.eml is not None
    eml_path = path.parent / entry.eml
    where = f"{path.name}: entry {entry.id!r}"
    try:
        body = eml_path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{where}: {entry.eml} cannot be read: {exc.strerror}") from None
    parsed = email.message_from_bytes(body, policy=email.policy.default)
    if parsed.defects or not parsed["From"] or parsed.get_body(("html", "plain")) is None:
        raise CorpusError(f"{where}: {entry.eml} is not a whole e-mail (From and a text body)")
    return CorpusMessage(
        id=entry.id,
        family=family,
        label=entry.label,
        channel="email",
        sender=str(parsed["From"]),
        subject=str(parsed["Subject"]) if parsed["Subject"] else None,
        body=body,
        is_eml=True,
        lang=entry.lang,
        note=entry.note,
        source=f"{path.name}, {entry.eml}",
    )


def _html_email(ident: str, sender: str, subject: str | None, text: str, html: str) -> bytes:
    """An HTML e-mail as a mail client receives it: text and HTML alternatives (the
    same bytes on every load: identifiers derive from the entry's id)."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = "destinataire@exemple.fr"
    if subject is not None:
        mail["Subject"] = subject
    mail["Date"] = format_datetime(_NOTICE_SENT_AT)
    mail["Message-ID"] = f"<{ident}@corpus.invalid>"
    mail.set_content(text)
    mail.add_alternative(html, subtype="html")
    mail.set_boundary(f"=_corpus_{ident}")
    return mail.as_bytes(policy=email.policy.SMTP)


def demo_insurer() -> tuple[Insurer, str]:
    """The demo insurer as ``rempart.config``'s defaults name it (its name, site and
    sender), with the sample notices' postal and DPO contacts (the defaults leave them
    empty); and the default ``From`` of its e-mails."""
    fields = Settings.model_fields
    mail_from = str(fields["mail_from"].default)
    insurer = dataclasses.replace(
        SAMPLE_INSURER,
        name=str(fields["organization_name"].default),
        website=str(fields["organization_website"].default),
        sender_address=parseaddr(mail_from)[1],
    )
    return insurer, mail_from


def _render_notice(
    notice: _Notice, family: str, path: Path, renderer: NoticeRenderer
) -> tuple[CorpusMessage, NoticeSample]:
    insurer, mail_from = demo_insurer()
    keys = NoticeKeys(_CORPUS_NOTICE_KEY)
    base = next(v for v in variants(insurer) if v.extra.get("variant") == f"email-{notice.variant}")
    code = derive_code(keys, _CORPUS_CAMPAIGN, notice.id, "email")
    address = f"{notice.first_name}.{notice.last_name}".lower()
    address = re.sub(r"[^a-z0-9.]", "", address) + "@exemple.fr"
    content: NoticeContent = dataclasses.replace(
        base,
        recipient=dataclasses.replace(
            base.recipient,
            sex=notice.sex,
            first_name=notice.first_name,
            last_name=notice.last_name,
            email=address,
        ),
        code=code,
        reference=person_reference(keys, _CORPUS_CAMPAIGN, notice.id),
    )
    rendered = renderer.render_email(content)
    sender, subject, is_eml = mail_from, rendered.subject, False
    if notice.form == "eml":
        body = notice_mail(
            mail_from=mail_from,
            recipient=address,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=f"<notice.{notice.id}@rempart.example>",
            date=_NOTICE_SENT_AT,
        ).data
        is_eml = True
    elif notice.form == "text":
        body = rendered.text.encode("utf-8")
    elif notice.form == "excerpt":
        # What someone pastes to ask "is this real?": the end, from the check paragraph.
        start = rendered.text.find("Vérifier que ce courriel est authentique")
        if start < 0:
            raise CorpusError(f"{path.name}: entry {notice.id!r}: the notice changed wording")
        body = rendered.text[start:].encode("utf-8")
    else:
        assert notice.forwarded_by is not None
        sender = notice.forwarded_by
        subject = f"TR: {rendered.subject}"
        body = _forwarded(notice, mail_from, address, rendered.subject, rendered.text)
    message = CorpusMessage(
        id=notice.id,
        family=family,
        label=notice.label,
        channel="email",
        sender=sender,
        subject=subject,
        body=body,
        is_eml=is_eml,
        lang="fr",
        note=notice.note or f"rendered notice, variant {notice.variant}, form {notice.form}",
        source=path.name,
    )
    return message, NoticeSample(notice.id, code, notice.last_name)


def _forwarded(notice: _Notice, mail_from: str, address: str, subject: str, text: str) -> bytes:
    words = notice.forward_words or "Bonjour, j'ai reçu ce courriel, est-ce qu'il est vrai ?"
    header = "\n".join(
        (
            "---------- Message transféré ---------",
            f"De : {formataddr(parseaddr(mail_from))}",
            "Date : jeu. 10 déc. 2026 à 09:15",
            f"Objet : {subject}",
            f"À : {address}",
        )
    )
    return f"{words}\n\n{header}\n\n{text}".encode()
