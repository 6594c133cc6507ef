"""The outbox against real databases and a real SMTP server (aiosmtpd) run by the test."""

from __future__ import annotations

import asyncio
import email
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from typer.testing import CliRunner

from rempart.cli import app
from rempart.notify.mail import DirectorySender, MailDeliveryError, SmtpSender, compose_message
from rempart.notify.outbox import MAX_ATTEMPTS, Outbox
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import MailOutbox

WHEN = datetime(2025, 3, 4, 8, 41, tzinfo=UTC)
RECIPIENT = "claire.martin@example.fr"
SMTP_USER = "relais"
SMTP_PASSWORD = "S3cret-smtp-Passw0rd"


def new_origin(ip: str = "203.0.113.7") -> dict[str, object]:
    return {
        "when": WHEN,
        "network": f"adresse IP {ip}",
        "device": "Firefox 128 sur Windows",
        "method": "password+totp",
    }


@dataclass
class Received:
    envelope_from: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class Inbox:
    """What the SMTP server accepted; refuses RCPT to addresses in ``refuse``."""

    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    logins: list[str] = field(default_factory=list)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, _server: Any, _session: Any, envelope: Any, address: str, _options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        if self.delay:
            await asyncio.sleep(self.delay)  # lets two delivery passes overlap
        parsed = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def authenticate(
        self, _server: Any, _session: Any, _envelope: Any, _mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
        )
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(inbox: Inbox, port: int) -> Controller:
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=inbox.authenticate,
        auth_require_tls=False,  # a local test server; the URL check allows it for 127.0.0.1
    )
    controller.start()
    return controller


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = start_server(inbox, port)
    yield inbox, port
    controller.stop()


def smtp_url(port: int) -> str:
    return f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{port}"


def rows(services: Services) -> list[MailOutbox]:
    with services.sessions() as session:
        return list(session.scalars(select(MailOutbox).order_by(MailOutbox.message_id)))


def test_a_rolled_back_change_sends_nothing_a_committed_one_is_sent_once(
    services: Services, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    outbox, sender = services.outbox, SmtpSender(smtp_url(port))

    def failing_login() -> None:
        with session_scope(services.sessions) as session:
            outbox.enqueue(
                session,
                kind="login_new_origin",
                recipient=RECIPIENT,
                account_id="ph-lilas",
                context=new_origin("198.51.100.66"),
            )
            raise RuntimeError("the login failed after the e-mail was queued")

    with pytest.raises(RuntimeError):
        failing_login()
    with session_scope(services.sessions) as session:
        outbox_id = outbox.enqueue(
            session,
            kind="login_new_origin",
            recipient=RECIPIENT,
            account_id="ph-lilas",
            context=new_origin(),
        )

    report = outbox.deliver_pending(services.sessions, sender)
    assert (report.sent, report.failed, report.remaining, report.abandoned) == (1, 0, 0, 0)
    again = outbox.deliver_pending(services.sessions, sender)
    assert (again.sent, again.failed, again.remaining) == (0, 0, 0)

    assert len(inbox.received) == 1
    got = inbox.received[0]
    assert inbox.logins == [SMTP_USER]
    assert got.envelope_from == "no-reply@rempart.example"
    assert got.recipients == [RECIPIENT]
    message = got.message
    assert message["From"] == "Rempart <no-reply@rempart.example>"
    assert message["To"] == RECIPIENT
    assert message["Subject"].startswith("Nouvelle connexion à votre compte Rempart")
    assert message["Message-ID"].endswith(f".{outbox_id}.outbox@rempart.example>")
    assert message["Date"].datetime is not None
    assert message["Auto-Submitted"] == "auto-generated"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    body = text.get_content()
    assert "mardi 4 mars 2025 à 9 h 41 (heure de Paris)" in body
    assert "adresse IP 203.0.113.7" in body
    assert "198.51.100.66" not in body  # the rolled-back one never existed
    assert "Rempart ne vous demandera jamais votre mot de passe" in body
    assert "adresse IP 203.0.113.7" in html.get_content()

    [row] = rows(services)
    assert row.sent_at is not None
    assert row.attempts == 1
    assert row.last_error is None


def test_smtp_down_keeps_the_row_pending_and_a_later_pass_sends_it(services: Services) -> None:
    outbox, port = services.outbox, free_port()
    sender = SmtpSender(smtp_url(port), timeout=5)
    batch: list[tuple[str, dict[str, object]]] = [
        ("login_new_origin", new_origin()),
        ("password_changed", {"when": WHEN}),
        ("mfa_reset", {"when": WHEN}),
    ]
    with session_scope(services.sessions) as session:
        for kind, context in batch:
            outbox.enqueue(
                session, kind=kind, recipient=RECIPIENT, account_id="ph-lilas", context=context
            )

    down = outbox.deliver_pending(services.sessions, sender)
    assert (down.sent, down.failed, down.remaining) == (0, 1, 3)
    first, second, third = rows(services)
    # The pass stopped at the first failure instead of charging every waiting row.
    assert (first.attempts, second.attempts, third.attempts) == (1, 0, 0)
    assert first.sent_at is None
    assert first.last_error is not None
    assert first.last_error.startswith("mail_server_unavailable:")
    assert SMTP_PASSWORD not in first.last_error
    assert SMTP_USER not in first.last_error

    inbox = Inbox()
    controller = start_server(inbox, port)
    try:
        # The failed row waits for its retry time; the others go now.
        now = outbox.deliver_pending(services.sessions, sender)
        assert (now.sent, now.failed, now.remaining) == (2, 0, 1)
        later = outbox.deliver_pending(
            services.sessions, sender, now=datetime.now(UTC) + timedelta(minutes=2)
        )
        assert (later.sent, later.failed, later.remaining) == (1, 0, 0)
    finally:
        controller.stop()
    subjects = sorted(r.message["Subject"] for r in inbox.received)
    assert len(subjects) == 3
    assert any(s.startswith("Nouvelle connexion") for s in subjects)
    first = rows(services)[0]
    assert first.sent_at is not None
    assert first.attempts == 2
    assert first.last_error is None


def test_a_refused_recipient_is_given_up_at_once_and_the_others_go(
    services: Services, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    inbox.refuse.add("parti@example.fr")
    outbox = services.outbox
    with session_scope(services.sessions) as session:
        for recipient in ("parti@example.fr", RECIPIENT):
            outbox.enqueue(
                session,
                kind="account_suspended",
                recipient=recipient,
                account_id=None,
                context={"when": WHEN},
            )
    report = outbox.deliver_pending(services.sessions, SmtpSender(smtp_url(port)))
    assert (report.sent, report.failed, report.remaining, report.abandoned) == (1, 1, 0, 1)
    refused, delivered = rows(services)
    assert refused.sent_at is None
    assert refused.attempts == MAX_ATTEMPTS
    assert refused.last_error == "mail_rejected: recipient refused (SMTP 550)"
    assert delivered.sent_at is not None
    assert [r.recipients for r in inbox.received] == [[RECIPIENT]]
    # Given up means given up: later passes leave it alone.
    later = outbox.deliver_pending(
        services.sessions, SmtpSender(smtp_url(port)), now=datetime.now(UTC) + timedelta(days=9)
    )
    assert (later.sent, later.failed, later.abandoned) == (0, 0, 1)


def test_two_concurrent_passes_never_send_a_row_twice(
    services: Services, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    inbox.delay = 0.005
    with session_scope(services.sessions) as session:
        for n in range(40):
            services.outbox.enqueue(
                session,
                kind="login_new_origin",
                recipient=f"pro{n}@example.fr",
                account_id=f"pro{n}",
                context=new_origin(f"203.0.113.{n}"),
            )
    # Two workers: separate Outbox objects (no shared in-process lock), separate senders.
    workers = [Outbox.from_settings(services.settings) for _ in range(2)]
    start = threading.Barrier(2)
    reports: list[Any] = [None, None]

    def work(index: int) -> None:
        start.wait()
        reports[index] = workers[index].deliver_pending(
            services.sessions, SmtpSender(smtp_url(port)), limit=1000
        )

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(r is not None and r.failed == 0 for r in reports)
    assert sum(r.sent for r in reports) == 40
    message_ids = [r.message["Message-ID"] for r in inbox.received]
    assert len(message_ids) == 40
    assert len(set(message_ids)) == 40
    assert sorted(r.recipients[0] for r in inbox.received) == sorted(
        f"pro{n}@example.fr" for n in range(40)
    )
    assert all(row.sent_at is not None and row.attempts == 1 for row in rows(services))


def test_the_embedded_default_writes_eml_files(services: Services) -> None:
    sender = services.mail_sender
    assert isinstance(sender, DirectorySender)
    assert sender.directory == services.settings.resolved_data_dir / "outbox"
    with session_scope(services.sessions) as session:
        outbox_id = services.outbox.enqueue(
            session,
            kind="webauthn_registered",
            recipient=RECIPIENT,
            account_id="ph-lilas",
            context={"label": "Clé <du> cabinet", "when": WHEN},
        )
    report = services.outbox.deliver_pending(services.sessions, sender)
    assert (report.sent, report.remaining) == (1, 0)
    [path] = sorted(sender.directory.glob("*.eml"))
    message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    assert isinstance(message, EmailMessage)
    assert message["To"] == RECIPIENT
    assert message["Subject"] == "Clé de sécurité ajoutée à votre compte Rempart"
    assert message["Message-ID"].endswith(f".{outbox_id}.outbox@rempart.example>")
    html = message.get_body(preferencelist=("html",))
    text = message.get_body(preferencelist=("plain",))
    assert html is not None
    assert text is not None
    assert "Clé &lt;du&gt; cabinet" in html.get_content()
    assert "« Clé <du> cabinet »" in text.get_content()


def test_the_cli_delivers_and_prints_counts(services: Services, tmp_path: Path) -> None:
    with session_scope(services.sessions) as session:
        services.outbox.enqueue(
            session,
            kind="reset_code_issued",
            recipient=RECIPIENT,
            account_id="ph-lilas",
            context={"when": WHEN},
        )
    settings = services.settings
    env = {
        "REMPART_DATABASE_URL": settings.database_url,
        "REMPART_DATA_DIR": str(settings.resolved_data_dir),
    }
    result = CliRunner().invoke(app, ["outbox", "deliver", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().replace(" ", "").replace("\n", "") == (
        '{"sent":1,"failed":0,"remaining":0,"abandoned":0}'
    )
    assert len(list((settings.resolved_data_dir / "outbox").glob("*.eml"))) == 1
    down = CliRunner().invoke(
        app,
        ["outbox", "deliver"],
        env={**env, "REMPART_SMTP_URL": f"smtp://127.0.0.1:{free_port()}"},
    )
    assert down.exit_code == 0, down.output  # nothing pending: nothing failed
    assert down.stdout.strip() == "sent 0, failed 0, remaining 0, abandoned 0"


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, the test's own authority."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("scheme", ["smtp+starttls", "smtps"])
def test_tls_and_credentials_reach_a_real_server(tmp_path: Path, scheme: str) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    inbox, port = Inbox(), free_port()
    options: dict[str, Any] = (
        {"tls_context": server_tls, "require_starttls": True}  # AUTH only after STARTTLS
        if scheme == "smtp+starttls"
        else {"ssl_context": server_tls, "auth_require_tls": False}  # TLS from the first byte
    )
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate, **options
    )
    controller.start()
    try:
        url = f"{scheme}://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{port}"
        trusting = SmtpSender(url, tls_context=ssl.create_default_context(cafile=str(cert)))
        trusting.send(
            compose_message(
                mail_from="Rempart <no-reply@rempart.example>",
                recipient=RECIPIENT,
                subject="Votre compte Rempart est suspendu",
                text="Bonjour,\n",
                html=None,
            )
        )
        assert inbox.logins == [SMTP_USER]
        assert [r.message["Subject"] for r in inbox.received] == [
            "Votre compte Rempart est suspendu"
        ]
        # The system's authorities do not know the test's certificate: refused, nothing sent.
        with pytest.raises(MailDeliveryError) as caught:
            SmtpSender(url).send(inbox.received[0].message)
        assert caught.value.code == "mail_server_unavailable"
        assert caught.value.connection
        assert SMTP_PASSWORD not in str(caught.value)
        assert len(inbox.received) == 1
    finally:
        controller.stop()
