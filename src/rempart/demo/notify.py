"""The demo's notification chapter: every person the robot read is told, once.

The campaign is planned from the scoped incident, previewed, then run: e-mails go to
``REMPART_SMTP_URL`` — here the demo's local SMTP server, which keeps what it receives
as ``.eml`` files — and letters into print batches (PDF + CSV manifest). A person then
checks their notice's code on the public page ``/verifier`` over HTTP, a phisher's
made-up code is refused, one e-mail bounces and becomes a letter, and a second run
sends nothing twice.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import httpx
from rich.console import Console

from rempart.demo.login import mail_folder
from rempart.notify.breach.bounces import ingest_bounces
from rempart.notify.breach.dsn import parse_bounce
from rempart.notify.breach.preview import write_preview
from rempart.progress import progress_bar
from rempart.services import Services
from rempart.store.models import Insured

__all__ = ["NotifyReport", "chapter_notify"]

_CODE = re.compile(r"^Code de vérification : (\S+)$", re.MULTILINE)
_ANSWER_OK = "Cet avis est authentique"
_ANSWER_NONE = "Aucun avis ne correspond"


@dataclass
class NotifyReport:
    campaign_id: int
    persons: int
    emailed: int
    printed: int
    batches: int
    letters_dir: Path
    preview_dir: Path
    genuine: bool | None
    fake_refused: bool | None


def chapter_notify(
    console: Console, services: Services, workdir: Path, incident_id: int, http: httpx.Client
) -> NotifyReport:
    campaigns = services.campaigns
    plan = campaigns.plan(incident_id, operator="demo-dpo")
    console.print(
        f"  rempart notify plan {incident_id} → campaign {plan.campaign_id}: "
        f"{plan.email} e-mail(s), {plan.letter} letter(s), "
        f"{sum(plan.unreachable.values())} unreachable"
        + (f" {plan.unreachable}" if plan.unreachable else "")
    )
    letters_dir = workdir / f"courriers-campagne-{plan.campaign_id}"
    runner = services.campaign_runner(letters_dir)
    preview_dir = workdir / f"apercu-campagne-{plan.campaign_id}"
    samples = write_preview(campaigns, runner, plan.campaign_id, preview_dir)
    console.print(
        f"  rempart notify preview {plan.campaign_id} --out {preview_dir.name} → "
        f"{len({p.stem for p in samples})} variants (e-mail and letter, for ALD, AME, C2S, "
        f"minor…; {len(samples)} files), fictitious persons"
    )
    folder = mail_folder(services)
    before = set(folder.glob("*.eml")) if folder.exists() else set()
    with progress_bar(console, "  ", rates=True) as progress:
        report = services.campaign_runner(letters_dir, progress=progress).run(
            plan.campaign_id, operator="demo-dpo"
        )
    received = sorted(set(folder.glob("*.eml")) - before) if folder.exists() else []
    smtp = services.settings.smtp_url is not None
    pdfs = sorted(letters_dir.rglob("*.pdf")) if letters_dir.exists() else []
    console.print(
        f"  rempart notify run {plan.campaign_id} --letters-dir {letters_dir.name} → "
        f"{report.emailed} e-mail(s) signed with DKIM, "
        + (
            f"sent over SMTP to the local server, which received {len(received)} "
            f"(saved in {folder.name}/)"
            if smtp
            else f"written as .eml files to {folder} (no SMTP server)"
        )
        + f"; {report.printed} letter(s) in {report.batches} print batch(es) "
        + f"({', '.join(p.name for p in pdfs) or 'no PDF'})"
    )
    messages = [_read(path) for path in received]
    genuine: bool | None = None
    fake_refused: bool | None = None
    if messages:
        text = _text(messages[0])
        lines = [line for line in text.splitlines() if line.strip()]
        console.print("    the first e-mail received begins:")
        for line in lines[:3]:
            console.print(f"      [dim]{line}[/]", highlight=False)
        code = _CODE.search(text)
        if code:
            genuine, fake_refused = _check_codes(
                console, services, http, messages[0], code.group(1)
            )
        _bounce_one(console, services, messages[-1], plan.campaign_id, letters_dir)
    again = runner.run(plan.campaign_id, operator="demo-dpo")
    status = campaigns.status(plan.campaign_id)
    console.print(
        f"  a second run: {again.emailed} e-mail(s), {again.printed} letter(s) — nobody "
        f"is told twice; status: {status.reached_email} by e-mail, {status.reached_letter} "
        f"by letter, {sum(status.unreachable.values())} unreachable, {status.pending} "
        f"pending, of {status.persons} (adds up: {'yes' if status.adds_up else 'NO'})"
    )
    return NotifyReport(
        campaign_id=plan.campaign_id,
        persons=status.persons,
        emailed=status.reached_email,
        printed=status.reached_letter,
        batches=len(sorted(letters_dir.rglob("*.pdf"))) if letters_dir.exists() else 0,
        letters_dir=letters_dir,
        preview_dir=preview_dir,
        genuine=genuine,
        fake_refused=fake_refused,
    )


def _check_codes(
    console: Console, services: Services, http: httpx.Client, message: EmailMessage, code: str
) -> tuple[bool, bool]:
    """The person checks the code on the public page, as a browser posts its form."""
    recipient = str(message["To"])
    with services.sessions() as session:
        last_name = session.query(Insured.last_name).filter(Insured.email == recipient).scalar()
    genuine = http.post("/verifier", data={"code": code, "last_name": last_name or ""})
    fake = http.post("/verifier", data={"code": "ABCD-EFGH-JKMN", "last_name": "Dupont"})
    said_genuine = _ANSWER_OK in genuine.text
    said_refused = _ANSWER_NONE in fake.text
    console.print(
        f"  the person types the code and their name on the public page: POST /verifier → "
        f"{genuine.status_code} « {_ANSWER_OK if said_genuine else '?'} »"
    )
    console.print(
        f"  a phisher's made-up code: POST /verifier → {fake.status_code} "
        f"« {_ANSWER_NONE if said_refused else '?'} »"
    )
    return said_genuine, said_refused


def _bounce_one(
    console: Console,
    services: Services,
    message: EmailMessage,
    campaign_id: int,
    letters_dir: Path,
) -> None:
    """The receiving server later returns one e-mail (mailbox closed): a DSN (RFC 3464)."""
    dsn = (
        "From: MAILER-DAEMON@mx.example\r\nTo: securite@rempart.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n"
        f"\r\nFinal-Recipient: rfc822; {message['To']}\r\nAction: failed\r\nStatus: 5.2.1\r\n"
        f"\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {message['Message-ID']}"
        f"\r\nTo: {message['To']}\r\n\r\n--B--\r\n"
    ).encode()
    path = letters_dir.parent / "retour-dsn.eml"
    path.write_bytes(dsn)
    report = ingest_bounces(services.campaigns, [(path.name, parse_bounce(dsn))])
    printed = services.campaign_runner(letters_dir).run(campaign_id, operator="demo-dpo")
    console.print(
        f"  rempart notify bounces {path.name} → one e-mail bounced (mailbox closed): "
        f"{report.letters_planned} letter planned instead, printed by the next run "
        f"({printed.printed} letter)"
    )


def _read(path: Path) -> EmailMessage:
    parsed = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    # Stored as SMTP carries it: CRLF line ends.
    return str(part.get_content()).replace("\r\n", "\n") if part is not None else ""
