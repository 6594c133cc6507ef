"""The demo's message-checker chapter: a notice the campaign really sent, and a fake in
the insurer's name, judged side by side by the real checker over HTTP.

The genuine one is an ``.eml`` exactly as the demo's local SMTP server received it (or
as the outbox folder kept it); the fake is a phisher's copy: the insurer's display name
on a look-alike address, a made-up verification code, a link to a look-alike site and a
request for bank details. Both go whole to ``POST /api/v1/messages/check``; the verdict,
the score and every reason come back, and are shown in two columns.
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
from rich.table import Table

from rempart.demo.login import mail_folder
from rempart.services import Services

__all__ = ["MessagesReport", "chapter_messages"]

_CODE = re.compile(r"^Code de vérification : (\S+)$", re.MULTILINE)
_MADE_UP_CODE = "ABCD-EFGH-JKMN"


@dataclass(frozen=True)
class MessagesReport:
    genuine_verdict: str
    genuine_score: int
    fake_verdict: str
    fake_score: int


def chapter_messages(
    console: Console, services: Services, http: httpx.Client
) -> MessagesReport | None:
    sent = _a_sent_notice(mail_folder(services))
    if sent is None:
        console.print("  [yellow]no notice e-mail was sent: nothing to compare[/]")
        return None
    path, genuine = sent
    fake = _forged(genuine, services.settings.organization_name)
    answers = []
    for message in (genuine, fake):
        response = http.post(
            "/api/v1/messages/check",
            json={"channel": "email", "sender": "", "text": message.as_string()},
        )
        response.raise_for_status()
        answers.append(response.json())
    console.print(
        f"  POST /api/v1/messages/check, each e-mail whole (.eml): the genuine notice "
        f"{path.name} as the local server received it, and a phisher's copy of it"
    )
    table = Table(
        "",
        f"genuine notice ({path.name})",
        "fake notice in the insurer's name",
        title="Is this message really from the insurer?",
    )
    table.add_row("From", str(genuine["From"]), str(fake["From"]))
    table.add_row("Subject", str(genuine["Subject"]), str(fake["Subject"]))
    verdicts = [f"[bold]{a['verdict']}[/] (score {a['score']}/100)" for a in answers]
    table.add_row("verdict", *verdicts)
    table.add_row(
        "reasons (French, as the person reads them)",
        *("\n".join(f"• {r['text']}" for r in a["reasons"]) for a in answers),
    )
    console.print(table)
    genuine_answer, fake_answer = answers
    console.print(
        f"  genuine notice → {genuine_answer['verdict']}; fake notice → {fake_answer['verdict']}"
        " — the same check answers on the public page /verifier/message and with "
        "`rempart messages check`; nothing of either message is kept, only a count"
    )
    return MessagesReport(
        genuine_verdict=genuine_answer["verdict"],
        genuine_score=genuine_answer["score"],
        fake_verdict=fake_answer["verdict"],
        fake_score=fake_answer["score"],
    )


def _a_sent_notice(folder: Path) -> tuple[Path, EmailMessage] | None:
    """The first breach notice among the e-mails received (it carries a code)."""
    for path in sorted(folder.glob("*.eml")) if folder.is_dir() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        assert isinstance(message, EmailMessage)
        if _CODE.search(_text(message)):
            return path, message
    return None


def _forged(genuine: EmailMessage, organization: str) -> EmailMessage:
    """What a phisher makes of it: the wording copied, a look-alike sender, a made-up
    code, and what the genuine notice never holds: a link, a request for bank details."""
    text = _CODE.sub(f"Code de vérification : {_MADE_UP_CODE}", _text(genuine))
    text = (
        "IMPORTANT : pour protéger votre dossier, confirmez vos coordonnées bancaires sous "
        "48 heures sur https://rempart-example.verification-dossier.com/securite ; sans "
        "réponse, vos remboursements seront suspendus.\n\n" + text
    )
    fake = EmailMessage()
    fake["From"] = f'"{organization}" <securite@rempart-example.verification-dossier.com>'
    fake["To"] = genuine["To"]
    fake["Subject"] = genuine["Subject"]
    fake.set_content(text)
    return fake


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return str(part.get_content()).replace("\r\n", "\n") if part is not None else ""
