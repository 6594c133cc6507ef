"""Mail senders: SMTP URLs (credentials never shown), message shape, the .eml folder."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest

from rempart.config import ConfigError, load_settings
from rempart.notify.mail import (
    DirectorySender,
    SmtpEndpoint,
    SmtpSender,
    compose_message,
    sender_from_settings,
)


def test_smtp_urls() -> None:
    assert SmtpEndpoint.from_url("smtp://127.0.0.1:8025") == SmtpEndpoint(
        host="127.0.0.1", port=8025, security="plain"
    )
    secure = SmtpEndpoint.from_url("smtps://relais%40caisse:p%C3%A0ss%2Fw@mail.example.fr")
    assert (secure.host, secure.port, secure.security) == ("mail.example.fr", 465, "tls")
    assert (secure.username, secure.password) == ("relais@caisse", "pàss/w")
    starttls = SmtpEndpoint.from_url("smtp+starttls://u:pw@mail.example.fr")
    assert (starttls.port, starttls.security) == (587, "starttls")
    assert SmtpEndpoint.from_url("smtp://mail.example.fr").port == 25


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://mail.example.fr", "must start with"),
        ("smtp://", "no host"),
        ("smtp://mail.example.fr:99999", "not an SMTP URL"),
        ("smtp://mail.example.fr/path?x=1", "nothing after"),
        ("smtp://u:S3cretPassw0rd@mail.example.fr", "needs smtps"),
    ],
)
def test_bad_smtp_urls_are_refused_without_quoting_them(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        SmtpEndpoint.from_url(url)
    assert "S3cretPassw0rd" not in str(caught.value)
    assert "mail.example.fr" not in str(caught.value)


def test_the_password_never_shows() -> None:
    sender = SmtpSender("smtps://relay:S3cretPassw0rd@mail.example.fr:465")
    shown = f"{sender!r} {sender.endpoint!r} {sender.endpoint.describe()}"
    assert "S3cretPassw0rd" not in shown
    assert "mail.example.fr:465" in shown
    settings = load_settings(smtp_url="smtps://relay:S3cretPassw0rd@mail.example.fr")
    assert "S3cretPassw0rd" not in repr(settings)
    with pytest.raises(ConfigError) as caught:
        load_settings(smtp_url="smtp://relay:S3cretPassw0rd@mail.example.fr")
    assert "S3cretPassw0rd" not in str(caught.value)


def _message(**overrides: object) -> EmailMessage:
    fields: dict[str, object] = {
        "mail_from": "Rempart <no-reply@rempart.example>",
        "recipient": "claire.martin@example.fr",
        "subject": "Nouvelle connexion à votre compte Rempart",
        "text": "Bonjour,\n\nUne connexion a eu lieu. Été, août, œuvre.\n",
        "html": "<p>Bonjour,</p><p>Été</p>",
        "message_id": "<rempart.20250304084100.7.outbox@rempart.example>",
        "date": datetime(2025, 3, 4, 8, 41, tzinfo=UTC),
    }
    fields.update(overrides)
    return compose_message(**fields)  # type: ignore[arg-type]


def test_a_message_is_utf8_text_with_an_html_alternative() -> None:
    message = _message()
    parsed = email.message_from_bytes(message.as_bytes(), policy=default_policy)
    assert parsed["From"] == "Rempart <no-reply@rempart.example>"
    assert parsed["To"] == "claire.martin@example.fr"
    assert parsed["Subject"] == "Nouvelle connexion à votre compte Rempart"
    assert parsed["Message-ID"] == "<rempart.20250304084100.7.outbox@rempart.example>"
    assert parsed["Date"].datetime == datetime(2025, 3, 4, 8, 41, tzinfo=UTC)
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    assert text.get_content_charset() == "utf-8"
    assert "Été, août, œuvre." in text.get_content()
    assert "<p>Été</p>" in html.get_content()


@pytest.mark.parametrize(
    "recipient", ["claire@example.fr\r\nBcc: x@evil.example", "a@b.fr, c@d.fr", "pas une adresse"]
)
def test_one_plain_recipient_only(recipient: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - email's own errors vary by case
        _message(recipient=recipient)


def test_the_folder_sender_writes_parseable_files_atomically_and_once(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    sender = DirectorySender(outbox)
    sender.send(_message())
    sender.send(_message())  # the same message again (a resend after a crash): same file
    files = sorted(outbox.iterdir())
    assert [f.name for f in files] == [
        "20250304T084100Z-rempart.20250304084100.7.outbox@rempart.example.eml"
    ]
    assert files[0].stat().st_mode & 0o077 == 0  # personal data: owner only
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=default_policy)
    assert parsed["Subject"] == "Nouvelle connexion à votre compte Rempart"
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None
    assert "Été, août, œuvre." in body.get_content()
    sender.send(_message(message_id="<other@rempart.example>"))
    assert len(list(outbox.glob("*.eml"))) == 2
    assert not list(outbox.glob(".*"))  # no temporary file left behind


def test_the_embedded_default_writes_beside_the_database(tmp_path: Path) -> None:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'r.db'}")
    sender = sender_from_settings(settings)
    assert isinstance(sender, DirectorySender)
    assert sender.directory == tmp_path / "rempart-data" / "outbox"
    smtp = sender_from_settings(load_settings(smtp_url="smtp://127.0.0.1:8025"))
    assert isinstance(smtp, SmtpSender)
