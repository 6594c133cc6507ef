"""Notification campaigns end to end, on SQLite and PostgreSQL, against a real SMTP
server (aiosmtpd) run by the test: plan, preview, run, status, bounces, a complementary
campaign, and every received message checked (headers, DKIM, no link, the person's own
categories, a code the public API confirms); letters checked by their PDF text."""

from __future__ import annotations

import csv
import json
import re
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import dkim
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from pypdf import PdfReader
from sqlalchemy import select
from typer.testing import CliRunner

from rempart.api import create_app
from rempart.cli import app
from rempart.config import Settings, load_settings
from rempart.notify.breach.dkim import signer_from_settings
from rempart.services import Services
from rempart.store.models import Incident, NoticeMessage
from tests.conftest import FAST_HASHING
from tests.functional.breach_world import (
    Insuree,
    build_breach,
    open_and_scope,
    people,
    read,
)
from tests.functional.conftest import PEER, make_login
from tests.functional.test_outbox import Inbox, free_port, start_server

runner = CliRunner()
CODE_LINE = re.compile(r"^Code de vérification : ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})$", re.M)
REFUSED = "refuse@laposte.example"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    inbox.refuse = {REFUSED}
    controller = start_server(inbox, port)
    yield inbox, port
    controller.stop()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp: tuple[Inbox, int]) -> Settings:
    return load_settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        smtp_url=f"smtp://127.0.0.1:{smtp[1]}",
        mail_from="Assurance Maladie <securite@rempart.example>",
        # Every notice is checked three times from the test's one address (the limits
        # themselves are tested in test_notice_verify).
        notice_check_address_checks=1000,
        notice_check_address_failures=1000,
        notice_check_network_failures=1000,
        **FAST_HASHING,
    )


def env_of(services: Services) -> dict[str, str]:
    settings = services.settings
    return {
        "REMPART_DATABASE_URL": services.engine.url.render_as_string(hide_password=False),
        "REMPART_DATA_DIR": str(settings.data_dir),
        "REMPART_SMTP_URL": settings.smtp_url.get_secret_value() if settings.smtp_url else "",
        "REMPART_MAIL_FROM": settings.mail_from,
    }


def cli(services: Services, *args: str) -> Any:
    result = runner.invoke(app, list(args), env=env_of(services))
    assert result.exit_code == 0, result.output
    return result


def cli_json(services: Services, *args: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(cli(services, *args, "--json").stdout)
    return data


def by_key(persons: list[Insuree]) -> dict[str, Insuree]:
    return {p.key: p for p in persons}


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")  # as received: CRLF


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def letters(folder: Path) -> dict[str, dict[str, str]]:
    """Every manifest row of every batch, by person reference (a reference twice fails)."""
    rows: dict[str, dict[str, str]] = {}
    for manifest in sorted(folder.glob("*.csv")):
        with manifest.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle, delimiter=";"):
                assert row["reference"] not in rows, f"{row['reference']} printed twice"
                rows[row["reference"]] = row
    return rows


def pdf_text(folder: Path) -> str:
    return "\n".join(
        page.extract_text() or ""
        for pdf in sorted(folder.glob("*.pdf"))
        for page in PdfReader(pdf).pages
    )


def verify(client: TestClient, code: str, last_name: str) -> bool:
    response = client.post("/api/v1/notices/verify", json={"code": code, "last_name": last_name})
    assert response.status_code == 200, response.text
    genuine: bool = response.json()["genuine"]
    return genuine


def dkim_ok(services: Services, message: EmailMessage) -> bool:
    signer = signer_from_settings(services.settings)
    record = signer.dns_record().encode()

    def dns(name: bytes, timeout: int = 5) -> bytes:
        del timeout
        assert name.decode().startswith(f"{signer.selector}._domainkey.")
        return record

    return bool(dkim.verify(bytes(message), dnsfunc=dns))


def test_a_campaign_tells_each_person_once_through_the_right_channel(
    services: Services, smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, _ = smtp
    persons = build_breach(services)
    named = by_key(persons)
    incident = open_and_scope(services)

    plan = cli_json(services, "notify", "plan", str(incident), "--operator", "dpo")
    expected_email = [p for p in persons if p.channel == "email"]
    expected_letter = [p for p in persons if p.channel == "letter"]
    assert plan["kind"] == "initial"
    assert plan["email"] == len(expected_email)
    assert plan["letter"] == len(expected_letter)
    assert plan["unreachable"] == 2
    assert plan["unreachable_reasons"] == {"no_address": 1, "unknown_person": 1}
    campaign = str(plan["campaign"])

    preview = tmp_path / "preview"
    cli(services, "notify", "preview", campaign, "--out", str(preview))
    assert list(preview.glob("*-email-*.eml"))
    assert list(preview.glob("*-letter-*.pdf"))
    assert not inbox.received, "a preview sends nothing"

    printed = tmp_path / "letters"
    result = cli_json(
        services, "notify", "run", campaign, "--letters-dir", str(printed), "--operator", "dpo"
    )
    assert result["run"]["failed_emails"] == 1  # the refused address...
    assert result["run"]["letters_planned"] == 1  # ...gets a letter instead

    # Every e-mail person but the refused one received exactly one message.
    received = [r.message for r in inbox.received]
    recipients = sorted(str(m["To"]) for m in received)
    wanted = sorted(p.email or "" for p in expected_email if p.email != REFUSED)
    assert recipients == wanted
    assert len({str(m["Message-ID"]) for m in received}) == len(received)

    with TestClient(create_app(services=services), client=PEER) as client:
        for message in received:
            person = next(p for p in persons if p.email == str(message["To"]))
            text, html = text_of(message), html_of(message)
            assert str(message["From"]) == "Assurance Maladie <securite@rempart.example>"
            assert message["Message-ID"].startswith("<notice.c")
            assert dkim_ok(services, message), person.key
            assert not message.is_multipart() or not any(
                part.get_content_disposition() == "attachment" for part in message.walk()
            )
            for body in (text, html):
                assert not re.search(r"(?i)https?://|href|mailto:|<a\s", body), person.key
            codes = CODE_LINE.findall(text)
            assert len(codes) == 1, person.key
            assert verify(client, codes[0], person.last_name)
            assert verify(client, codes[0].lower(), person.last_name.upper())
            assert not verify(client, codes[0], "Quelquun")
        # Their own categories only, worded with care.
        ald = text_of(next(m for m in received if str(m["To"]) == named["ald"].email))
        identity = text_of(next(m for m in received if str(m["To"]) == named["identity"].email))
        assert "affection de longue durée" in ald
        assert "affection de longue durée" not in identity
        assert "numéro de sécurité sociale ;" in ald
        assert "numéro de sécurité sociale ;" not in identity
        assert "Aide médicale de l'État" not in identity
        assert "ne dit rien de votre situation" in ald
        minor = text_of(next(m for m in received if str(m["To"]) == named["minor"].email))
        assert "représentant" in minor

        # Letters: one per letter person plus the refused e-mail, each once.
        rows = letters(printed)
        assert len(rows) == len(expected_letter) + 1
        text = pdf_text(printed)
        for person in [*expected_letter, named["refused"]]:
            assert person.last_name.upper() in text, person.key
        letter_codes = CODE_LINE.findall(text.replace("\u00a0", " "))
        assert len(letter_codes) == len(rows)
        flagged = [r for r in rows.values() if r["flags"]]
        assert len(flagged) == 1
        assert "abbreviated" in flagged[0]["flags"]
        for row in rows.values():
            lines = [row[f"line{i}"] for i in range(1, 7) if row.get(f"line{i}")]
            assert len(lines) <= 6
            assert all(len(line) <= 38 for line in lines)
            assert re.fullmatch(r"\d{5} [A-Z0-9 ]+", lines[-1]), lines

    status = cli_json(services, "notify", "status", campaign)
    assert status["persons"] == len(persons)
    assert status["reached"] == {"email": len(expected_email) - 1, "letter": len(rows)}
    assert status["pending"] == 0
    assert status["unreachable"] == 2
    assert status["status"] == "done"
    with services.sessions() as session:
        assert session.get(Incident, incident).status == "notified"  # type: ignore[union-attr]

    # A second run sends and prints nothing more.
    again = cli_json(
        services, "notify", "run", campaign, "--letters-dir", str(printed), "--operator", "dpo"
    )
    assert again["run"]["emailed"] == 0
    assert again["run"]["printed"] == 0
    assert len(inbox.received) == len(received)


def test_a_complementary_campaign_tells_only_the_new_persons(
    services: Services, smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, _ = smtp
    first = build_breach(services, [p for p in people() if p.key.startswith("mail-")])
    incident = open_and_scope(services)
    plan = cli_json(services, "notify", "plan", str(incident), "--operator", "dpo")
    cli(services, "notify", "run", str(plan["campaign"]), "--letters-dir", str(tmp_path / "l"))
    assert len(inbox.received) == len(first)

    # A second account was used too: found later, the definition grows, re-scoped.
    make_login(services, "pharmacie.robot2", account_id="ph-robot2")
    later = build_breach(
        services,
        [
            p.__class__(
                **{
                    **p.__dict__,
                    "key": f"late-{p.key}",
                    "last_name": f"Tard{i}",
                    "email": f"tard{i}@gmail.example",
                }
            )
            for i, p in enumerate(people()[:3])
        ],
    )
    read(services, later, account="ph-robot2")
    cli(services, "incident", "add", str(incident), "--accounts", "ph-robot2", "--operator", "dpo")
    cli(services, "incident", "scope", str(incident), "--operator", "dpo")
    second = cli_json(services, "notify", "plan", str(incident), "--operator", "dpo")
    assert second["kind"] == "complementary"
    assert second["email"] == len(later)
    cli(services, "notify", "run", str(second["campaign"]), "--letters-dir", str(tmp_path / "l"))
    addresses = [str(r.message["To"]) for r in inbox.received]
    assert len(addresses) == len(set(addresses)) == len(first) + len(later)
    text = text_of(inbox.received[-1].message)
    assert "plus complète" in text

    # Nothing new: a third plan is refused with a stable code.
    result = runner.invoke(app, ["notify", "plan", str(incident)], env=env_of(services))
    assert result.exit_code != 0
    assert "nothing_to_notify" in result.output


def dsn(message_id: str, recipient: str, status: str = "5.1.1", action: str = "failed") -> bytes:
    """A delivery status notification as Postfix writes one (RFC 3464)."""
    return (
        "From: MAILER-DAEMON@mx.example\r\n"
        "To: securite@rempart.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        "\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: securite@rempart.example\r\nTo: {recipient}\r\nMessage-ID: {message_id}\r\n"
        "Subject: Information importante\r\n"
        "\r\n--B--\r\n"
    ).encode()


def test_a_bounce_turns_the_email_into_a_letter_once(
    services: Services, smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, _ = smtp
    build_breach(services, [p for p in people() if p.key in ("ald", "identity", "no-address")])
    incident = open_and_scope(services)
    campaign = str(
        cli_json(services, "notify", "plan", str(incident), "--operator", "dpo")["campaign"]
    )
    printed = tmp_path / "letters"
    cli(services, "notify", "run", campaign, "--letters-dir", str(printed))
    assert len(inbox.received) == 2
    bounced = inbox.received[0].message
    bounces = tmp_path / "bounces"
    bounces.mkdir()
    (bounces / "1.eml").write_bytes(dsn(str(bounced["Message-ID"]), str(bounced["To"])))
    (bounces / "2.eml").write_bytes(
        dsn(str(inbox.received[1].message["Message-ID"]), "x@y.example", "4.4.1", "delayed")
    )
    (bounces / "3.eml").write_bytes(b"not a bounce at all")

    report = cli_json(services, "notify", "bounces", str(bounces))
    assert report["letters_planned"] == 1
    assert report["delayed"] == 1
    assert report["not_bounces"] == 1
    assert cli_json(services, "notify", "status", campaign)["pending"] == 1

    cli(services, "notify", "run", campaign, "--letters-dir", str(printed))
    assert len(letters(printed)) == 1
    status = cli_json(services, "notify", "status", campaign)
    assert status["reached"] == {"email": 1, "letter": 1}
    assert status["pending"] == 0
    assert status["status"] == "done"
    # The same bounce read again changes nothing.
    assert cli_json(services, "notify", "bounces", str(bounces))["already"] == 1
    assert len(inbox.received) == 2


def test_the_run_pauses_while_the_mail_server_is_away_and_resumes(
    services: Services, tmp_path: Path
) -> None:
    build_breach(services, [p for p in people() if p.key.startswith("mail-")])
    incident = open_and_scope(services)
    plan = services.campaigns.plan(incident, operator="dpo")
    # The same database, a mail server that is not there yet.
    port = free_port()
    away = Services(
        services.settings.model_copy(update={"smtp_url": SecretStr(f"smtp://127.0.0.1:{port}")})
    )
    late = Inbox()
    started: list[Any] = []

    def start_later() -> None:
        time.sleep(1.5)
        started.append(start_server(late, port))

    threading.Thread(target=start_later, daemon=True).start()
    try:
        report = away.campaign_runner(tmp_path / "letters").run(plan.campaign_id, operator="dpo")
    finally:
        for controller in started:
            controller.stop()
        away.close()
    assert report.pauses >= 1
    assert len(late.received) == plan.email == report.emailed
    with services.sessions() as session:
        states = set(session.scalars(select(NoticeMessage.state)))
    assert states == {"sent"}


class Grumpy(Inbox):
    """Answers 451 (try again later) to the first ``times`` deliveries to an address."""

    def __init__(self, address: str, times: int) -> None:
        super().__init__()
        self.address, self.left = address, times

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address == self.address and self.left > 0:
            self.left -= 1
            return "451 4.7.1 greylisted, try again later"
        return await super().handle_RCPT(server, session, envelope, address, options)


@pytest.mark.parametrize(("times", "letter"), [(2, False), (9, True)], ids=["later", "never"])
def test_a_temporary_refusal_is_retried_then_turned_into_a_letter(
    services: Services, tmp_path: Path, times: int, letter: bool
) -> None:
    persons = build_breach(services, [p for p in people() if p.key in ("ald", "identity")])
    incident = open_and_scope(services)
    plan = services.campaigns.plan(incident, operator="dpo")
    port = free_port()
    grumpy = Grumpy(persons[0].email or "", times)
    controller = start_server(grumpy, port)
    other = Services(
        services.settings.model_copy(update={"smtp_url": SecretStr(f"smtp://127.0.0.1:{port}")})
    )
    try:
        worker = other.campaign_runner(tmp_path / "letters")
        worker.retry_wait = 0.05
        worker.max_attempts = 3
        report = worker.run(plan.campaign_id, operator="dpo")
    finally:
        controller.stop()
        other.close()
    addresses = [str(r.message["To"]) for r in grumpy.received]
    status = services.campaigns.status(plan.campaign_id)
    if letter:  # still refused after 3 attempts: a letter instead, the e-mail failed
        assert addresses == [persons[1].email]
        assert report.letters_planned == 1
        assert status.reached_letter == 1
    else:  # accepted at the third attempt, once
        assert sorted(addresses) == sorted(p.email or "" for p in persons)
        assert status.reached_email == 2
    assert status.pending == 0
