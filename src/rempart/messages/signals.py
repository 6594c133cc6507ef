"""The signals: each a small function from a message and the rules to the reasons it
finds (none, or one per kind). Topics are no signal — a genuine message speaks of the
carte Vitale, a refund or a data breach; requests, pressure, foreign links and
impostor senders are.

Reason texts are plain French for anyone; the names quoted in them (domains, file
names) come from the message and are cut short, never the person's data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from email.utils import parseaddr

from rempart.messages.domains import Lookalike, lookalike, within
from rempart.messages.links import links_in_text, registrable_domain
from rempart.messages.model import Link, Message, Reason
from rempart.messages.rules import MessageRules, phone_digits
from rempart.messages.text import any_phrase, fold, language_guess, sentences

__all__ = [
    "SIGNALS",
    "attachments",
    "foreign_language",
    "link_signals",
    "phone_numbers",
    "phrase_families",
    "quote",
    "reason",
    "sender",
]

_FRENCH_PHONE = re.compile(
    r"(?<![\d+])(?:(?:\+|00)\s?33\s?(?:\(0\)\s?)?[1-9]|0[1-9])(?:[\s.\-]?\d{2}){4}(?!\d)"
)
_FOREIGN_PHONE = re.compile(r"(?<![\d+])(?:\+|00)(?!33)[1-9]\d{0,2}(?:[\s.\-]?\d){6,12}(?!\d)")
_PREMIUM = ("081", "082", "089")
_MOBILE = ("06", "07")
_SHOWN = 3  # names quoted in one reason, at most


def _typography(text: str) -> str:
    """French typography: no-break spaces inside « » and before : ; ! ?, and the
    typographic apostrophe."""
    text = text.replace("'", "\u2019")
    text = re.sub(r"«\s*", "«\u00a0", text)
    text = re.sub(r"\s*»", "\u00a0»", text)
    text = re.sub(r"\s+:", "\u00a0:", text)
    return re.sub(r"\s+([;!?])", "\u202f\\1", text)


def reason(code: str, text: str, weight: int) -> Reason:
    return Reason(code=code, text=_typography(text), weight=weight)


def quote(names: Sequence[str]) -> str:
    """« a », « a » et « b », « a », « b » et d'autres."""
    shown = [f"« {name[:80]} »" for name in names[:_SHOWN]]
    if len(names) > _SHOWN:
        return ", ".join(shown) + " et d'autres"
    if len(shown) == 1:
        return shown[0]
    return ", ".join(shown[:-1]) + " et " + shown[-1]


# -- links ----------------------------------------------------------------------------------


def _plural(names: Sequence[str], one: str, many: str) -> str:
    return one if len(names) == 1 else many


def link_signals(message: Message, rules: MessageRules) -> list[Reason]:
    """Foreign links, look-alikes, shorteners, hidden links, and links whose visible
    text shows another site than the one they lead to."""
    weights, insurer = rules.weights, rules.insurer.name
    foreign: list[str] = []
    shortened: list[str] = []
    imitations: list[tuple[str, Lookalike]] = []
    hidden: list[str] = []
    mismatched: list[tuple[str, str]] = []
    for link in message.links:
        host = link.host
        if within(host, rules.domains.own) or within(host, rules.domains.trusted):
            continue
        owner = registrable_domain(host)
        if link.hidden:
            hidden.append(owner)
        shown = _shown_elsewhere(link, owner)
        if shown is not None:
            mismatched.append((shown, owner))
        if within(host, rules.domains.shorteners):
            shortened.append(owner)
        elif (imitation := lookalike(host, link.ascii_host, rules.insurer.brands)) is not None:
            imitations.append((host, imitation))
        else:
            foreign.append(owner)
    reasons = []
    if imitations:
        reasons.append(_imitation_reason(imitations, rules))
    if mismatched:
        shown, target = mismatched[0]
        reasons.append(
            reason(
                "link_text_mismatch",
                f"Un lien affiche « {shown[:80]} » mais mène en réalité vers « {target[:80]} » : "
                "c'est une ruse pour vous tromper sur le site visité.",
                weights.link_text_mismatch,
            )
        )
    if hidden:
        names = list(dict.fromkeys(hidden))
        reasons.append(
            reason(
                "hidden_link",
                f"Le message contient un lien caché à vos yeux vers {quote(names)} : "
                "un message honnête n'a rien à cacher.",
                weights.hidden_link,
            )
        )
    if shortened:
        reasons.append(
            reason(
                "shortener",
                "Le message utilise un lien raccourci ("
                + quote(list(dict.fromkeys(shortened)))
                + ") qui cache le site de destination : "
                f"{insurer} n'en utilise pas.",
                weights.shortener,
            )
        )
    if foreign:
        names = list(dict.fromkeys(foreign))
        text = _plural(
            names,
            f"Le lien mène vers {quote(names)}, qui n'est pas un site de {insurer}.",
            f"Les liens mènent vers {quote(names)}, qui ne sont pas des sites de {insurer}.",
        )
        reasons.append(reason("foreign_link", text, weights.foreign_link))
    return reasons


def _shown_elsewhere(link: Link, owner: str) -> str | None:
    """The site an HTML link's text shows, when it is not the one it leads to."""
    if not link.text:
        return None
    for shown in links_in_text(link.text):
        if registrable_domain(shown.host) != owner:
            return shown.host
    return None


def _imitation_reason(found: list[tuple[str, Lookalike]], rules: MessageRules) -> Reason:
    host, imitation = found[0]
    insurer = rules.insurer.name
    if imitation.kind == "homoglyph":
        how = (
            f"imite le nom « {imitation.brand} » avec des lettres d'un autre alphabet, "
            "identiques à l'œil"
        )
    elif imitation.kind == "typo":
        how = f"imite le nom « {imitation.brand} » à une lettre près"
    elif host != imitation.owner:
        how = (
            f"reprend le nom « {imitation.brand} » mais appartient en réalité à "
            f"« {imitation.owner[:80]} »"
        )
    else:
        how = f"reprend le nom « {imitation.brand} »"
    return reason(
        "lookalike_domain",
        f"Le lien mène vers « {host[:80]} », qui {how} : ce n'est pas un site de {insurer}.",
        rules.weights.lookalike_domain,
    )


# -- sender ---------------------------------------------------------------------------------


def _claims_insurer(name: str, rules: MessageRules) -> bool:
    folded = f" {fold(name)} "
    names = [brand.replace("-", " ") for brand in rules.insurer.brands]
    names.append(fold(rules.insurer.name))
    return any(f" {name} " in folded for name in names) or "assurance maladie" in folded


def sender(message: Message, rules: MessageRules) -> list[Reason]:
    """The sender is not among the insurer's known senders."""
    if not message.sender:
        return []
    if message.channel == "email" or "@" in message.sender:
        return _email_sender(message.sender, rules)
    return _sms_sender(message.sender, rules)


def _email_sender(value: str, rules: MessageRules) -> list[Reason]:
    name, address = parseaddr(value)
    address = address.lower()
    domain = address.rpartition("@")[2]
    if not domain:
        return []
    known = rules.senders
    if address in known.email_addresses or within(domain, known.email_domains):
        return []
    insurer, weights = rules.insurer.name, rules.weights
    imitation = lookalike(domain, domain, rules.insurer.brands)
    if imitation is not None:
        return [
            reason(
                "sender_lookalike",
                f"L'adresse de l'expéditeur se termine par « {domain[:80]} », qui imite le nom "
                f"« {imitation.brand} » : ce n'est pas une adresse de {insurer}.",
                weights.sender_lookalike,
            )
        ]
    if name and _claims_insurer(name, rules):
        return [
            reason(
                "sender_name_mismatch",
                f"L'expéditeur se présente comme {insurer}, mais son adresse se termine par "
                f"« {domain[:80]} », qui n'est pas une adresse de {insurer}.",
                weights.sender_name_mismatch,
            )
        ]
    return [
        reason(
            "sender_unknown",
            f"L'adresse de l'expéditeur (« {domain[:80]} ») n'est pas une adresse de {insurer}.",
            weights.sender_unknown,
        )
    ]


def _sms_sender(value: str, rules: MessageRules) -> list[Reason]:
    insurer, weights = rules.insurer.name, rules.weights
    if re.fullmatch(r"[+\d\s.()\-]{3,}", value):
        digits = phone_digits(value)
        if digits in rules.own_phones or digits in rules.sms_ids:
            return []
        if len(digits) == 10 and digits.startswith(_MOBILE):
            return [
                reason(
                    "sender_mobile",
                    "Le SMS vient d'un numéro de téléphone portable ordinaire : "
                    f"{insurer} n'envoie pas ses SMS depuis un numéro de particulier.",
                    weights.sender_mobile,
                )
            ]
        return [
            reason(
                "sender_unknown",
                f"Le numéro qui envoie ce SMS n'est pas l'un de ceux de {insurer}.",
                weights.sender_unknown,
            )
        ]
    if fold(value).replace(" ", "") in rules.sms_ids:
        return []
    return [
        reason(
            "sender_unknown",
            f"Le nom d'expéditeur du SMS (« {value[:20]} ») n'est pas l'un de ceux de {insurer}.",
            weights.sender_unknown,
        )
    ]


# -- phone numbers, attachments, language ---------------------------------------------------


def phone_numbers(message: Message, rules: MessageRules) -> list[Reason]:
    """Numbers to call that are not the insurer's."""
    found = [m.group(0) for m in _FRENCH_PHONE.finditer(message.text)]
    found += [m.group(0) for m in _FOREIGN_PHONE.finditer(message.text)]
    foreign = [n for n in found if phone_digits(n) not in rules.own_phones]
    if not foreign:
        return []
    names = list(dict.fromkeys(" ".join(n.split()) for n in foreign))
    premium = any(phone_digits(n).startswith(_PREMIUM) for n in names)
    text = _plural(
        names,
        f"Le message donne un numéro à appeler ({quote(names)}) qui n'est pas celui de "
        f"{rules.insurer.name}.",
        f"Le message donne des numéros à appeler ({quote(names)}) qui ne sont pas ceux de "
        f"{rules.insurer.name}.",
    )
    if premium:
        text += " Un numéro en 081, 082 ou 089 est surtaxé."
    return [reason("foreign_phone", text, rules.weights.foreign_phone)]


def attachments(message: Message, rules: MessageRules) -> list[Reason]:
    """Attachments to open; programs, archives and web pages above all."""
    if not message.attachments:
        return []
    risky_extensions = set(rules.attachments.risky_extensions)
    risky = [
        name
        for name in message.attachments
        if "." in name and name.rsplit(".", 1)[1].lower().strip() in risky_extensions
    ]
    if risky:
        return [
            reason(
                "attachment_risky",
                f"La pièce jointe {quote(risky)} peut installer un programme ou ouvrir une "
                "fausse page : ne l'ouvrez pas.",
                rules.weights.attachment_risky,
            )
        ]
    return [
        reason(
            "attachment",
            f"Le message contient une pièce jointe ({quote(list(message.attachments))}) : "
            f"{rules.insurer.name} met ses documents à disposition dans votre compte, "
            "pas en pièce jointe d'un message inattendu.",
            rules.weights.attachment,
        )
    ]


MAX_READ_CHARACTERS = 65_536
"""How much of a message's words are read for phrases and language: more than any
letter or notice, and a bound on the CPU a hostile quarter of a megabyte can ask of the
public page (its links, sender, numbers and attachments are read whole)."""


def _read_text(message: Message) -> str:
    return f"{message.subject or ''}\n\n{message.text}"[:MAX_READ_CHARACTERS]


def foreign_language(message: Message, rules: MessageRules) -> list[Reason]:
    """Not written in French: the insurer writes in French."""
    language = language_guess(fold(_read_text(message)))
    if language is None or language == "fr":
        return []
    return [
        reason(
            "foreign_language",
            f"Le message n'est pas écrit en français, alors que {rules.insurer.name} vous "
            "écrit en français. Les autres points ci-dessus s'appliquent quelle que soit la "
            "langue.",
            rules.weights.foreign_language,
        )
    ]


# -- phrases --------------------------------------------------------------------------------


def phrase_families(message: Message, rules: MessageRules) -> list[Reason]:
    """Requests (bank details, a password, the NIR, a payment) and pressure (threats,
    urgency), sentence by sentence: a request counts only in a sentence that asks, and
    not in one that warns (``nous ne vous demanderons jamais vos coordonnées``)."""
    fired: list[Reason] = []
    remaining = list(rules.phrases)
    for sentence in sentences(_read_text(message)):
        if not remaining:
            break
        advice = any_phrase(rules.advice_cues, sentence)
        request: bool | None = None
        for family in list(remaining):
            if family.skip_advice and advice:
                continue
            if family.needs_request:
                if request is None:
                    request = any_phrase(rules.request_cues, sentence)
                if not request:
                    continue
            if any_phrase(family.compiled, sentence):
                fired.append(reason(family.code, family.text, family.weight))
                remaining.remove(family)
    return fired


Signal = Callable[[Message, MessageRules], list[Reason]]

SIGNALS: tuple[Signal, ...] = (
    link_signals,
    sender,
    phone_numbers,
    attachments,
    phrase_families,
    foreign_language,
)
"""Every signal that reads the message alone (the notice code needs the notices)."""
