"""Each rule of the message checker: it fires on what it must, and stays silent on the
genuine message that looks like it (an ameli.fr link, a refund notice, the advice of a
breach notice that names bank details only to say they are never asked for)."""

from __future__ import annotations

import pytest

from rempart.messages import Message, MessageChecker, Verdict, load_rules, read_message
from rempart.messages.notice_code import addressee_names
from rempart.messages.rules import MessageRules
from rempart.messages.signals import MAX_READ_CHARACTERS
from rempart.messages.text import MAX_SENTENCES, sentences

RULES = load_rules()


def check(
    text: str, *, channel: str = "sms", sender: str = "", subject: str | None = None
) -> Verdict:
    message = read_message(text.encode(), channel=channel, sender=sender, subject=subject)
    return MessageChecker(RULES).check(message)


def codes(verdict: Verdict) -> list[str]:
    return [r.code for r in verdict.reasons]


# -- links ------------------------------------------------------------------------------


def test_a_link_to_another_domain_is_foreign() -> None:
    verdict = check("Votre attestation est prête : https://attestations-sante.net/dl")
    assert "foreign_link" in codes(verdict)
    reason = next(r for r in verdict.reasons if r.code == "foreign_link")
    assert "« attestations-sante.net »" in reason.text.replace("\u00a0", " ")


@pytest.mark.parametrize(
    "text",
    [
        "Consultez votre décompte sur https://www.ameli.fr/assure",
        "Rendez-vous sur ameli.fr, rubrique Mes paiements.",
        "Plus d'informations sur www.rempart.example/verifier et sur www.cnil.fr",
        "Signalez-le sur internet-signalement.gouv.fr",
    ],
)
def test_the_insurers_own_and_trusted_sites_are_not_foreign(text: str) -> None:
    verdict = check(text, sender="AMELI")
    assert not {"foreign_link", "lookalike_domain"} & set(codes(verdict))
    assert verdict.verdict == "genuine-looking"


@pytest.mark.parametrize(
    "host",
    [
        "ameli-remboursement.com",  # the insurer's name inside another domain
        "ameli.fr.dossier-assure.net",  # the insurer's domain as a subdomain of another
        "www.assurance-maladie-securite.info",
        "amelli.fr",  # one letter more
        "amlei.fr",  # two letters swapped
        "arneli.fr",  # "rn" read as "m"
        "\u0430meli.fr",  # a Cyrillic a (U+0430)
        "xn--meli-43d.fr",  # the same, as punycode
    ],
)
def test_a_lookalike_domain_is_named(host: str) -> None:
    verdict = check(f"Mettez à jour votre dossier : https://{host}/connexion")
    assert verdict.reasons[0].code == "lookalike_domain", codes(verdict)
    assert "foreign_link" not in codes(verdict)
    assert verdict.verdict == "phishing"


def test_a_homoglyph_domain_is_explained_as_such() -> None:
    verdict = check("Connectez-vous sur https://\u0430meli.fr/")
    assert "autre alphabet" in verdict.reasons[0].text


@pytest.mark.parametrize("host", ["camelia-fleurs.fr", "ameliorer-son-habitat.com", "laposte.fr"])
def test_a_domain_that_merely_contains_the_letters_is_no_lookalike(host: str) -> None:
    verdict = check(f"Voir https://{host}/x")
    assert codes(verdict)[0] == "foreign_link"


def test_a_link_behind_a_userinfo_trick_is_judged_by_its_real_host() -> None:
    verdict = check("Connexion : http://www.ameli.fr@connexion-securisee.top/login")
    assert "« connexion-securisee.top »" in verdict.reasons[0].text.replace("\u00a0", " ")


def test_a_url_shortener_is_named() -> None:
    verdict = check("Votre remboursement vous attend : bit.ly/3Rmb")
    assert codes(verdict)[0] == "shortener"
    assert "foreign_link" not in codes(verdict)


def test_an_html_link_showing_one_site_and_leading_to_another_is_named() -> None:
    html = '<p>Connectez-vous sur <a href="https://ameli-secure.top/x">www.ameli.fr</a></p>'
    verdict = check(html, channel="email")
    assert "link_text_mismatch" in codes(verdict)


def test_an_html_link_whose_text_is_plain_words_is_no_mismatch() -> None:
    html = '<p><a href="https://www.ameli.fr/assure">Accéder à mon compte</a></p>'
    verdict = check(html, channel="email", sender="AMELI <ne-pas-repondre@ameli.fr>")
    assert codes(verdict) == ["genuine_channel"]


def test_a_hidden_html_link_is_named() -> None:
    html = (
        "<p>Votre attestation est disponible dans votre compte.</p>"
        '<a href="https://collecte.example.top/p" style="display:none">x</a>'
    )
    assert "hidden_link" in codes(check(html, channel="email"))


# -- requests and pressure ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (
            "Confirmez vos coordonnées bancaires pour recevoir votre remboursement.",
            "asks_bank_details",
        ),
        ("Merci de saisir votre IBAN et votre RIB.", "asks_bank_details"),
        ("Renseignez le numéro de votre carte bancaire et le cryptogramme.", "asks_bank_details"),
        ("Veuillez confirmer vos c00rd0nnées b a n c a i r e s.", "asks_bank_details"),
        ("Indiquez votre identifiant et mot de passe ameli.", "asks_password"),
        ("Communiquez-nous le code reçu par SMS.", "asks_password"),
        ("Merci de confirmer votre numéro de sécurité sociale.", "asks_nir"),
        ("Des frais de livraison de 1,49 € restent à régler.", "asks_payment"),
        ("Réglez les frais d'envoi de votre nouvelle carte Vitale.", "asks_payment"),
        ("Votre dossier est incomplet et sera suspendu.", "threat"),
        ("Sans réponse, vos droits seront définitivement clôturés.", "threat"),
        ("Répondez sous 24h.", "urgency"),
        ("DERNIER RAPPEL avant clôture.", "urgency"),
    ],
)
def test_a_request_or_pressure_fires_its_family(text: str, code: str) -> None:
    assert code in codes(check(text))


@pytest.mark.parametrize(
    "text",
    [
        # The advice of the insurer's own notices.
        "Nous ne vous demanderons jamais, ni par courriel, ni par SMS, ni par téléphone, "
        "vos coordonnées bancaires, un mot de passe, votre numéro de sécurité sociale ou un "
        "paiement.",
        "La carte Vitale et son renouvellement sont gratuits. Un message qui réclame des frais "
        "pour une carte Vitale est une escroquerie.",
        "Si vous avez déjà donné des coordonnées bancaires à un inconnu, prévenez sans attendre "
        "votre banque.",
        # Topics of genuine messages: a refund, the Carte Vitale, a breach.
        "Votre remboursement de 23,50 € a été versé sur votre compte bancaire le 12 mars.",
        "Votre nouvelle carte Vitale vous a été envoyée par courrier.",
        "Des données vous concernant ont été consultées lors d'une fuite de données.",
        "Le compte professionnel utilisé a été suspendu le 3 décembre 2026.",
    ],
)
def test_topics_and_warnings_are_no_request(text: str) -> None:
    verdict = check(text, sender="AMELI")
    assert codes(verdict) == ["genuine_channel"], codes(verdict)
    assert verdict.verdict == "genuine-looking"
    assert verdict.score == 0


# -- phone numbers, attachments, senders, language -------------------------------------


def test_a_number_to_call_that_is_not_the_insurers_is_named() -> None:
    verdict = check("Votre carte Vitale est bloquée. Rappelez le 09 70 12 34 56.")
    assert "foreign_phone" in codes(verdict)


def test_a_premium_number_is_said_to_be_one() -> None:
    verdict = check("Appelez le 0899 12 34 56 pour débloquer votre dossier.")
    reason = next(r for r in verdict.reasons if r.code == "foreign_phone")
    assert "surtaxé" in reason.text


@pytest.mark.parametrize("number", ["3646", "01 23 45 67 89", "+33 1 23 45 67 89", "33700"])
def test_the_insurers_own_numbers_are_not_foreign(number: str) -> None:
    assert "foreign_phone" not in codes(check(f"Pour nous joindre : {number}."))


def test_a_postcode_or_an_amount_is_not_a_phone_number() -> None:
    text = "CNIL, 3 place de Fontenoy, TSA 80715, 75334 Paris Cedex 07. Montant : 1 234,56 €."
    assert "foreign_phone" not in codes(check(text))


EML = (
    "From: Assurance Maladie <service@remboursement-assure.net>\r\n"
    "To: vous@exemple.fr\r\n"
    "Subject: Votre attestation\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nVoir la pièce jointe.\r\n"
    "--b\r\nContent-Type: application/octet-stream\r\n"
    'Content-Disposition: attachment; filename="{name}"\r\n\r\nAAAA\r\n--b--\r\n'
)


@pytest.mark.parametrize("name", ["attestation.pdf.exe", "dossier.zip", "formulaire.html"])
def test_a_risky_attachment_is_named(name: str) -> None:
    verdict = check(EML.format(name=name), channel="email")
    assert "attachment_risky" in codes(verdict)


def test_another_attachment_is_a_light_sign() -> None:
    verdict = check(EML.format(name="attestation.pdf"), channel="email")
    reason = next(r for r in verdict.reasons if r.code == "attachment")
    assert reason.weight == RULES.weights.attachment
    assert "attachment_risky" not in codes(verdict)


def test_a_sender_claiming_the_insurers_name_from_another_domain() -> None:
    verdict = check(EML.format(name="a.pdf"), channel="email")
    assert "sender_name_mismatch" in codes(verdict)


@pytest.mark.parametrize(
    ("sender", "code"),
    [
        ("Service client <info@newsletter-promo.fr>", "sender_unknown"),
        ("Ameli <contact@ameli-assure.com>", "sender_lookalike"),
    ],
)
def test_an_email_sender_outside_the_known_ones(sender: str, code: str) -> None:
    assert code in codes(check("Bonjour.", channel="email", sender=sender))


@pytest.mark.parametrize(
    "sender",
    ["Ameli <ne-pas-repondre@ameli.fr>", "no-reply@rempart.example", "x@assurance-maladie.fr"],
)
def test_a_known_email_sender_is_silent(sender: str) -> None:
    assert codes(check("Bonjour.", channel="email", sender=sender)) == ["genuine_channel"]


@pytest.mark.parametrize(
    ("sender", "code"),
    [
        ("+33 6 12 34 56 78", "sender_mobile"),
        ("0756123456", "sender_mobile"),
        ("INFO-SANTE", "sender_unknown"),
    ],
)
def test_an_sms_sender_outside_the_known_ones(sender: str, code: str) -> None:
    assert code in codes(check("Bonjour.", sender=sender))


@pytest.mark.parametrize("sender", ["AMELI", "ameli", "Assur Maladie", "3646"])
def test_a_known_sms_sender_is_silent(sender: str) -> None:
    assert codes(check("Bonjour.", sender=sender)) == ["genuine_channel"]


def test_a_message_in_another_language_gets_a_clear_verdict_and_says_why() -> None:
    verdict = check(
        "Your health insurance card is blocked, please confirm your details on "
        "https://ameli-card.top/en within 24 hours."
    )
    assert "foreign_language" in codes(verdict)
    assert "lookalike_domain" in codes(verdict)  # the rules still apply to links
    assert verdict.verdict == "phishing"


def test_french_is_not_a_foreign_language() -> None:
    verdict = check("Votre attestation de droits est disponible dans votre compte ameli.")
    assert "foreign_language" not in codes(verdict)


# -- the verdict ----------------------------------------------------------------------------


def test_every_verdict_ends_with_the_genuine_channel_and_orders_its_reasons() -> None:
    verdict = check(
        "Ameli : votre carte Vitale expire. Frais de renouvellement 2,99 € à régler sous 48h "
        "sur https://carte-vitale-renouvellement.top/p",
        sender="+33712345678",
    )
    assert verdict.verdict == "phishing"
    assert verdict.score == 100
    assert verdict.reasons[-1].code == "genuine_channel"
    assert "3646" in verdict.reasons[-1].text
    weights = [abs(r.weight) for r in verdict.reasons[:-1]]
    assert weights == sorted(weights, reverse=True)
    assert verdict.to_json()["reasons"][-1] == {  # type: ignore[index]
        "code": "genuine_channel",
        "text": verdict.reasons[-1].text,
    }


def test_a_plain_genuine_sms_looks_genuine() -> None:
    verdict = check(
        "Assurance Maladie : votre remboursement de 25,00 € a été effectué. Détail sur "
        "votre compte ameli.fr",
        sender="AMELI",
    )
    assert verdict.to_json() == {
        "verdict": "genuine-looking",
        "score": 0,
        "reasons": [{"code": "genuine_channel", "text": verdict.reasons[0].text}],
    }


def test_reasons_use_french_typography() -> None:
    verdict = check("Voir https://attestations-sante.net/dl")
    text = verdict.reasons[0].text
    assert "«\u00a0" in text
    assert "\u00a0»" in text
    assert "'" not in text


def test_a_notice_code_without_a_notice_check_is_advice() -> None:
    verdict = check("Code de vérification : K7QM-4XPD-9TRW")
    assert codes(verdict)[0] == "notice_code_unchecked"
    assert verdict.reasons[0].weight == 0


def test_a_code_no_notice_can_carry_is_made_up_even_unchecked() -> None:
    # 0, O, 1, I and L are not in the notices' alphabet.
    verdict = check("Code de vérification : K0QM-1XPD-OTRW")
    assert codes(verdict)[0] == "notice_code_unknown"


def test_the_notice_check_is_asked_with_the_addressees_name() -> None:
    asked: list[tuple[str, str | None]] = []

    def notice_check(code: str, last_name: str | None) -> bool:
        asked.append((code, last_name))
        return last_name == "Moreau"

    message = read_message(
        "Vous recevez ce courriel en tant que représentant légal de Léo Moreau. Nous vous "
        "informons…\nCode de vérification : K7QM-4XPD-9TRW".encode(),
        channel="email",
    )
    verdict = MessageChecker(RULES, notice_check).check(message)
    assert asked[0] == ("K7QM-4XPD-9TRW", "Moreau")
    assert codes(verdict)[0] == "notice_code_genuine"
    assert verdict.reasons[0].weight == RULES.weights.notice_code_genuine


def test_message_repr_hides_its_content() -> None:
    message = Message("sms", "+33612345678", None, "Mon NIR 1 85 03 75 056 001 23")
    assert "NIR" not in repr(message)
    assert "612345678" not in repr(message)


def test_rules_are_a_frozen_model() -> None:
    assert isinstance(RULES, MessageRules)
    with pytest.raises(ValueError, match="frozen"):
        RULES.version = 2  # type: ignore[misc]


def test_a_salutation_naming_someone_is_the_name_a_copied_code_is_checked_against() -> None:
    named = Message("email", "", None, "Madame Durand,\n\nVotre code de vérification : X")
    assert addressee_names(named) == ("Durand",)
    # The insurer's own salutation names nobody.
    assert addressee_names(Message("email", "", None, "Madame,\n\nNous vous informons")) == ()
    assert addressee_names(Message("email", "", None, "Madame, Monsieur,\n\nNous")) == ()


def test_a_hostile_message_of_tiny_sentences_is_read_once_each_and_bounded() -> None:
    # A quarter of a megabyte of "M. M. M. ...": one distinct sentence, and too short.
    assert sentences("M. " * 80_000) == []
    repeated = sentences("Confirmez vos coordonnées. " * 1_000)
    assert repeated == ["confirmez vos coordonnees"]
    many = sentences(" ".join(f"mot{i} ab." for i in range(MAX_SENTENCES + 500)))
    assert len(many) == MAX_SENTENCES
    # The lure is still found after a long, repetitive preamble; past the words read
    # (MAX_READ_CHARACTERS), the link is still read.
    checker = MessageChecker(load_rules())
    lure = "Confirmez vos coordonnées bancaires sur http://ameli-x.com"
    near = checker.check(read_message(("Bonjour. " * 5_000 + lure).encode(), channel="sms"))
    assert {"asks_bank_details", "lookalike_domain"} <= {r.code for r in near.reasons}
    assert len("Bonjour. " * 20_000) > MAX_READ_CHARACTERS
    far = checker.check(read_message(("Bonjour. " * 20_000 + lure).encode(), channel="sms"))
    assert "lookalike_domain" in {r.code for r in far.reasons}
    assert far.verdict != "genuine-looking"
