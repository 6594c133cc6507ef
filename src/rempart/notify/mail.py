"""Mail senders: one interface, an SMTP implementation and a folder of ``.eml`` files.

:class:`MailSender` is what the outbox (and, later, notification campaigns) hand a
finished :class:`~email.message.EmailMessage` to. A failure is a
:class:`MailDeliveryError` with a stable code that says whether trying again can help
(``permanent``) and whether the sender itself is down (``connection``: the next
messages would fail the same way, so a delivery pass stops there).

``REMPART_SMTP_URL`` names the server: ``smtp://host:port`` (plain, or STARTTLS only
if asked), ``smtp+starttls://host:port`` (STARTTLS required), ``smtps://host:port``
(TLS from the first byte), with an optional ``user:password@`` (percent-encoded).
The password is never logged, never put in an error and never shown by ``repr``.
Without it, messages are written as ``.eml`` files into ``<data_dir>/outbox/`` so that
the embedded default works with no mail server.
"""

from __future__ import annotations

import errno
import os
import secrets
import smtplib
import ssl
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

import structlog

from rempart.errors import RempartError

if TYPE_CHECKING:
    from rempart.config import Settings

__all__ = [
    "BatchingSender",
    "DirectorySender",
    "MailDeliveryError",
    "MailSender",
    "PreparedMail",
    "PreparedSender",
    "SmtpSender",
    "compose_message",
    "mail_domain",
    "sender_from_settings",
]

log = structlog.get_logger("rempart.notify")

DEFAULT_MAIL_FROM = "Rempart <no-reply@rempart.example>"


class MailDeliveryError(RempartError):
    """A message was not delivered.

    Codes: ``mail_server_unavailable`` (cannot connect, TLS failed, connection lost),
    ``mail_auth_failed`` (the server refused our credentials), ``mail_temporary_failure``
    (a 4xx answer to this message), ``mail_rejected`` (a 5xx answer: retrying will not
    help), ``mail_write_failed`` (the outbox folder cannot be written).
    The detail never holds a password, a server banner or the message itself.
    """

    code = "mail_delivery_failed"
    status = 503

    def __init__(
        self, detail: str, *, code: str, permanent: bool = False, connection: bool = False
    ) -> None:
        super().__init__(detail, code=code)
        self.permanent = permanent
        self.connection = connection


class MailSender(Protocol):
    """Delivers one message or raises :class:`MailDeliveryError`."""

    def send(self, message: EmailMessage) -> None: ...


@runtime_checkable
class BatchingSender(Protocol):
    """A sender that can keep one connection open for several messages."""

    def send(self, message: EmailMessage) -> None: ...

    def batch(self) -> AbstractContextManager[MailSender]: ...


@dataclass(frozen=True)
class PreparedMail:
    """A message already serialized as SMTP carries it (CRLF, signed where it must be):
    sent as these bytes, never encoded again — a campaign serializes each notice once."""

    envelope_from: str
    recipient: str
    message_id: str
    date: datetime
    data: bytes


@runtime_checkable
class PreparedSender(Protocol):
    """A sender that can hand over a :class:`PreparedMail`'s bytes as they are."""

    def send_prepared(self, mail: PreparedMail) -> None: ...


def mail_domain(mail_from: str) -> str:
    """The domain of a ``From`` value such as ``Rempart <no-reply@rempart.example>``."""
    address = parseaddr(mail_from)[1]
    _, _, domain = address.rpartition("@")
    return domain or "rempart.invalid"


def compose_message(
    *,
    mail_from: str,
    recipient: str,
    subject: str,
    text: str,
    html: str | None,
    message_id: str | None = None,
    date: datetime | None = None,
) -> EmailMessage:
    """A UTF-8 message, text with an HTML alternative, marked as automatic (RFC 3834).

    ``message_id`` should be stable for one logical message, so that a copy sent twice
    after a crash carries the same ``Message-ID`` and receivers can tell it is a duplicate.
    """
    Address(addr_spec=recipient)  # raises on anything but one plain address
    message = EmailMessage(policy=default_policy)
    message["From"] = mail_from
    message["To"] = recipient
    message["Subject"] = " ".join(subject.split())
    moment = date or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    message["Date"] = format_datetime(moment)
    message["Message-ID"] = message_id or make_msgid(domain=mail_domain(mail_from))
    message["Auto-Submitted"] = "auto-generated"
    message["Content-Language"] = "fr"
    message.set_content(text, charset="utf-8")
    if html is not None:
        message.add_alternative(html, subtype="html", charset="utf-8")
    return message


# --- SMTP -------------------------------------------------------------------------------

Security = Literal["plain", "starttls", "tls"]
_SCHEMES: dict[str, tuple[Security, int]] = {
    "smtp": ("plain", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}


@dataclass(frozen=True)
class SmtpEndpoint:
    host: str
    port: int
    security: Security
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> SmtpEndpoint:
        """Parse ``smtp[s|+starttls]://[user:password@]host[:port]``.

        Errors name the problem, never the URL (it may hold a password).
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise ValueError("not an SMTP URL (e.g. smtp://127.0.0.1:8025)") from None
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise ValueError("must start with smtp://, smtp+starttls:// or smtps://")
        if not parts.hostname:
            raise ValueError("names no host (e.g. smtp://127.0.0.1:8025)")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must be smtp://[user:password@]host[:port], nothing after")
        security, default_port = _SCHEMES[scheme]
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if password is not None and security == "plain" and parts.hostname not in _LOCAL:
            # A password sent in clear over a network: refuse rather than leak it.
            raise ValueError("a password needs smtps:// or smtp+starttls:// to a remote host")
        return cls(
            host=parts.hostname,
            port=port or default_port,
            security=security,
            username=username,
            password=password,
        )

    def describe(self) -> str:
        """For logs: scheme, host and port, never the credentials."""
        scheme = {"plain": "smtp", "starttls": "smtp+starttls", "tls": "smtps"}[self.security]
        return f"{scheme}://{self.host}:{self.port}"


_LOCAL = frozenset({"127.0.0.1", "::1", "localhost"})


class SmtpSender:
    """Delivers through an SMTP server; one connection per message, or per :meth:`batch`."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self.endpoint = SmtpEndpoint.from_url(url)
        self.timeout = timeout
        self._tls_context = tls_context
        self._local_hostname = local_hostname

    def __repr__(self) -> str:
        return f"SmtpSender({self.endpoint.describe()!r})"

    def send(self, message: EmailMessage) -> None:
        with self.batch() as connection:
            connection.send(message)

    def send_prepared(self, mail: PreparedMail) -> None:
        with self.batch() as connection:
            assert isinstance(connection, _SmtpConnection)
            connection.send_prepared(mail)

    @contextmanager
    def batch(self) -> Iterator[MailSender]:
        """One SMTP session for several messages; connects (and logs in) on entry."""
        connection = self._connect()
        try:
            yield _SmtpConnection(connection, self.endpoint)
        finally:
            _quit_quietly(connection)

    def _context(self) -> ssl.SSLContext:
        return self._tls_context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        endpoint = self.endpoint
        client: smtplib.SMTP | None = None
        try:
            if endpoint.security == "tls":
                client = smtplib.SMTP_SSL(
                    endpoint.host,
                    endpoint.port,
                    local_hostname=self._local_hostname,
                    timeout=self.timeout,
                    context=self._context(),
                )
            else:
                client = smtplib.SMTP(
                    endpoint.host,
                    endpoint.port,
                    local_hostname=self._local_hostname,
                    timeout=self.timeout,
                )
            client.ehlo()
            if endpoint.security == "starttls":
                client.starttls(context=self._context())
                client.ehlo()
            if endpoint.username is not None:
                client.login(endpoint.username, endpoint.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            _quit_quietly(client)
            raise MailDeliveryError(
                f"the mail server refused the credentials (SMTP {exc.smtp_code})",
                code="mail_auth_failed",
                connection=True,
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            _quit_quietly(client)
            raise MailDeliveryError(
                f"cannot reach the mail server {endpoint.describe()} ({_describe(exc)})",
                code="mail_server_unavailable",
                connection=True,
            ) from None
        return client


class _SmtpConnection:
    def __init__(self, client: smtplib.SMTP, endpoint: SmtpEndpoint) -> None:
        self._client = client
        self._endpoint = endpoint

    def send(self, message: EmailMessage) -> None:
        self._mapped(lambda: self._client.send_message(message))

    def send_prepared(self, mail: PreparedMail) -> None:
        ascii_only = (mail.envelope_from + mail.recipient).isascii()
        self._mapped(
            lambda: self._client.sendmail(
                mail.envelope_from,
                [mail.recipient],
                mail.data,
                mail_options=() if ascii_only else ("SMTPUTF8",),
            )
        )

    def _mapped(self, call: Callable[[], dict[str, tuple[int, bytes]]]) -> None:
        """Runs one SMTP transaction, its failures as :class:`MailDeliveryError`."""
        try:
            refused = call()
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _text in exc.recipients.values()})
            raise _answer_error("recipient refused", codes[0] if codes else 550) from None
        except smtplib.SMTPServerDisconnected as exc:
            raise MailDeliveryError(
                f"the mail server {self._endpoint.describe()} closed the connection "
                f"({_describe(exc)})",
                code="mail_server_unavailable",
                connection=True,
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise _answer_error("message refused", exc.smtp_code) from None
        except (smtplib.SMTPException, ValueError) as exc:
            # SMTPNotSupportedError (an address the server cannot carry), a malformed message.
            raise MailDeliveryError(
                f"message not deliverable ({type(exc).__name__})",
                code="mail_rejected",
                permanent=True,
            ) from None
        except OSError as exc:
            raise MailDeliveryError(
                f"connection to the mail server lost ({_describe(exc)})",
                code="mail_server_unavailable",
                connection=True,
            ) from None
        if refused:  # only possible with several recipients; some got it, do not resend
            log.warning("mail_partly_refused", refused=len(refused))


def _answer_error(what: str, smtp_code: int) -> MailDeliveryError:
    if 400 <= smtp_code < 500:
        return MailDeliveryError(
            f"{what}, try again later (SMTP {smtp_code})", code="mail_temporary_failure"
        )
    return MailDeliveryError(f"{what} (SMTP {smtp_code})", code="mail_rejected", permanent=True)


def _describe(exc: BaseException) -> str:
    """An exception as a short text with no server banner: class and errno name."""
    number = getattr(exc, "errno", None)
    if isinstance(number, int) and number in errno.errorcode:
        return f"{type(exc).__name__} {errno.errorcode[number]}"
    return type(exc).__name__


def _quit_quietly(client: smtplib.SMTP | None) -> None:
    """End the session; a failure here comes after the messages were accepted."""
    if client is None:
        return
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()


# --- a folder of .eml files -------------------------------------------------------------


class DirectorySender:
    """Writes each message as ``<date>-<message id>.eml`` into a folder, atomically.

    The file appears complete or not at all (temporary file, fsync, rename, fsync of the
    folder). The name comes from the message's ``Date`` and ``Message-ID``: sending the
    same message twice replaces the file instead of adding a copy.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __repr__(self) -> str:
        return f"DirectorySender({str(self.directory)!r})"

    def send(self, message: EmailMessage) -> None:
        if message["Message-ID"] is None:
            message["Message-ID"] = make_msgid(domain=mail_domain(str(message["From"] or "")))
        name = self.file_name(message)
        try:
            data = message.as_bytes(policy=default_policy)
        except (ValueError, TypeError) as exc:
            raise MailDeliveryError(
                f"message not deliverable ({type(exc).__name__})",
                code="mail_rejected",
                permanent=True,
            ) from None
        try:
            self._write_atomically(name, data)
        except OSError as exc:
            raise MailDeliveryError(
                f"cannot write into the outbox folder ({_describe(exc)})",
                code="mail_write_failed",
                connection=True,
            ) from None

    def send_prepared(self, mail: PreparedMail) -> None:
        """Named after the ``Message-ID`` alone: a notice sent again after a crash (same
        Message-ID, a later Date) replaces its file, so the folder holds it once."""
        try:
            self._write_atomically(f"{_safe(mail.message_id)}.eml", mail.data)
        except OSError as exc:
            raise MailDeliveryError(
                f"cannot write into the outbox folder ({_describe(exc)})",
                code="mail_write_failed",
                connection=True,
            ) from None

    @staticmethod
    def file_name(message: EmailMessage) -> str:
        header = message["Date"]
        moment = getattr(header, "datetime", None) if header is not None else None
        stamp = (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"{stamp}-{_safe(str(message['Message-ID']))}.eml"

    def _write_atomically(self, name: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        final = self.directory / name
        temporary = self.directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            temporary.replace(final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        folder = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _safe(message_id: str) -> str:
    raw = message_id.strip().strip("<>")
    return "".join(c if c.isascii() and (c.isalnum() or c in "._-@") else "_" for c in raw)[:150]


def sender_from_settings(settings: Settings) -> MailSender:
    """SMTP if ``REMPART_SMTP_URL`` is set, else ``.eml`` files in ``<data_dir>/outbox/``."""
    if settings.smtp_url is not None:
        return SmtpSender(
            settings.smtp_url.get_secret_value(), timeout=settings.smtp_timeout_seconds
        )
    if settings.env == "production":
        log.warning("mail_to_folder", reason="REMPART_SMTP_URL is not set; e-mails stay on disk")
    return DirectorySender(settings.resolved_data_dir / "outbox")
