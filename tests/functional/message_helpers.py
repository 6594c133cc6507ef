"""Messages for the checker's tests: notices a real campaign sent, and fakes of them."""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy

from rempart.notify.breach.codes import NoticeKeys, derive_code
from rempart.services import Services
from tests.functional.breach_world import build_breach, open_and_scope, people

CODE_LINE = re.compile(r"^Code de vérification : ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})$", re.M)

# A fake in the style of the public warnings: a Carte Vitale "delivery fee", urgency, a
# look-alike link and a call-back number.
FAKE_CARTE_VITALE_SMS = (
    "ASSURANCE MALADIE : votre nouvelle carte Vitale est prête. Réglez les frais de "
    "livraison de 1,49 EUR avant 24h, sinon votre dossier sera suspendu : "
    "https://ameli-carte-vitale.fr.livraison-securisee.com/paiement "
    "Une question ? Rappelez le 09 72 10 44 18."
)


@dataclass(frozen=True)
class SentNotice:
    last_name: str
    code: str
    eml: bytes
    """The e-mail as the campaign handed it to the mail sender (headers and all)."""

    @property
    def text(self) -> str:
        message = email.message_from_bytes(self.eml, policy=default_policy)
        assert isinstance(message, EmailMessage)
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        return str(body.get_content()).replace("\r\n", "\n")


def sent_notices(services: Services) -> list[SentNotice]:
    """A real breach, incident and campaign, its e-mails sent to the outbox folder (no
    SMTP server configured): each person's name, code and e-mail."""
    persons = [p for p in people() if p.key in ("identity", "ame", "mail-0")]
    build_breach(services, persons)
    incident = open_and_scope(services)
    plan = services.campaigns.plan(incident, operator="dpo")
    letters = services.settings.resolved_data_dir / "courriers"
    services.campaign_runner(letters).run(plan.campaign_id, operator="dpo", channels=("email",))
    sent = []
    for path in sorted((services.settings.resolved_data_dir / "outbox").glob("*.eml")):
        eml = path.read_bytes()
        message = email.message_from_bytes(eml, policy=default_policy)
        to = str(message["To"])
        person = next(p for p in persons if p.email and p.email in to)
        notice = SentNotice(person.last_name, "", eml)
        found = CODE_LINE.search(notice.text)
        assert found, path.name
        sent.append(SentNotice(person.last_name, found.group(1), eml))
    assert len(sent) == len(persons)
    return sent


def made_up_code(services: Services, n: int = 0) -> str:
    """A well-formed code that no notice carries."""
    return derive_code(
        NoticeKeys(services.settings.keys.notice_code_key), 999, f"nobody-{n}", "email"
    )


def forged_notice(notice: SentNotice, code: str) -> str:
    """A phisher's copy of a genuine notice: another code, and a link to "check" it on a
    look-alike site."""
    text = notice.text.replace(notice.code, code)
    return (
        text + "\nPour sécuriser votre dossier, confirmez vos coordonnées bancaires sous 48 heures "
        "sur https://rempart-example.securite-dossier.com/verification\n"
    )
