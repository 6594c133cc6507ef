"""The French e-mails to professionals: every kind renders, strictly, with no link in it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from rempart.notify.render import (
    KINDS,
    MailRenderer,
    MailTemplateError,
    french_datetime,
    method_label,
    plain,
)

WHEN = datetime(2025, 3, 4, 8, 41, tzinfo=UTC)  # 9 h 41 in Paris (winter time)

SAMPLES: dict[str, dict[str, object]] = {
    "login_new_origin": {
        "when": WHEN,
        "network": "adresse IP 203.0.113.7",
        "device": "Firefox 128 sur Windows",
        "method": "password+totp",
    },
    "webauthn_registered": {"label": "YubiKey du cabinet", "when": WHEN},
    "webauthn_removed": {"label": "YubiKey du cabinet", "when": WHEN},
    "webauthn_renamed": {
        "previous": "Clé de sécurité",
        "label": "YubiKey du cabinet",
        "when": WHEN,
    },
    "session_revoked": {
        "when": WHEN,
        "network": "adresse IP 203.0.113.7",
        "device": "Firefox 128 sur Windows",
    },
    "sessions_revoked": {"when": WHEN, "count": 3},
    "password_reset": {"when": WHEN, "method": "webauthn"},
    "password_changed": {"when": WHEN},
    "mfa_reset": {"when": WHEN},
    "recovery_codes_created": {"when": WHEN, "count": 10},
    "recovery_code_used": {"when": WHEN},
    "reset_code_issued": {"when": WHEN},
    "account_suspended": {"when": WHEN},
    "mfa_locked": {"when": WHEN, "failures": 5},
    "lookups_disowned": {"when": WHEN, "count": 3, "since": WHEN},
    "enrolment_code_issued": {"when": WHEN},
    "account_restored": {"when": WHEN, "since": WHEN, "keys": 1, "codes": 10, "sessions": 2},
}

# Anything a mail client could turn into a link.
LINKISH = re.compile(
    r"(?i)(://|\bwww\.|href\s*=|<a[\s>]|\bmailto:|\b[a-z0-9-]+\.(?:fr|com|net|org|example|io)\b)"
)


@pytest.fixture(scope="module")
def renderer() -> MailRenderer:
    return MailRenderer()


def test_every_kind_has_a_sample() -> None:
    assert set(SAMPLES) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_renders_in_french_with_the_advice_and_no_link(
    renderer: MailRenderer, kind: str
) -> None:
    mail = renderer.render(kind, SAMPLES[kind])
    assert mail.subject
    assert "\n" not in mail.subject
    assert "Rempart" in mail.subject
    for raw in (mail.text, mail.html):
        body = " ".join(raw.replace("&nbsp;", " ").split())
        assert "Bonjour," in body
        assert "mardi 4 mars 2025 à 9 h 41 (heure de Paris)" in body
        assert "le service sécurité de votre caisse" in body
        # Never asks for a secret, and says so: the 2022 breach was followed by phishing.
        assert "ne vous demandera" in body
        assert "ni par SMS, ni par téléphone" in body
        assert "hameçonnage" in body
        assert not LINKISH.search(body), LINKISH.search(body)
        assert "{{" not in body
        assert "{%" not in body
    assert mail.html.startswith("<!DOCTYPE html>")
    assert '<html lang="fr">' in mail.html


def test_the_new_origin_e_mail_says_what_when_from_where(renderer: MailRenderer) -> None:
    mail = renderer.render("login_new_origin", SAMPLES["login_new_origin"])
    assert "Date : mardi 4 mars 2025 à 9 h 41 (heure de Paris)" in mail.text
    assert "Réseau : adresse IP 203.0.113.7" in mail.text
    assert "Appareil : Firefox 128 sur Windows" in mail.text
    assert "mot de passe et code de votre application d'authentification" in mail.text
    assert "Si ce n'était pas vous" in mail.text


def test_values_from_outside_are_escaped_and_cannot_carry_a_link(renderer: MailRenderer) -> None:
    # The attacker who logs in with a stolen password chooses the user agent.
    hostile = "<script>x</script> https://ameli.example/x www.vitale.fr\r\nBcc: victime@example.fr"
    mail = renderer.render(
        "login_new_origin",
        {"when": WHEN, "network": hostile, "device": hostile, "method": hostile},
    )
    assert "<script>" not in mail.html
    assert "&lt;script&gt;" in mail.html
    for body in (mail.text, mail.html):
        assert not LINKISH.search(body), LINKISH.search(body)
        assert not re.search(r"(?m)^\s*Bcc:", body)  # stays on its line, defanged
        assert "Bcc: victime (at) example[.]fr" in body
    label = renderer.render(
        "webauthn_registered", {"label": '<img src=x onerror="x()">', "when": WHEN}
    )
    assert "<img" not in label.html
    assert "&lt;img src=x onerror=&#34;x()&#34;&gt;" in label.html


def test_a_missing_or_unexpected_value_is_an_error_not_a_blank(renderer: MailRenderer) -> None:
    with pytest.raises(MailTemplateError, match="missing"):
        renderer.render("login_new_origin", {"when": WHEN, "network": "x", "device": "y"})
    with pytest.raises(MailTemplateError, match="unexpected"):
        renderer.render("password_changed", {"when": WHEN, "whn": WHEN})
    with pytest.raises(MailTemplateError, match="unknown"):
        renderer.render("lettre_au_pere_noel", {})
    with pytest.raises(MailTemplateError, match="date"):
        renderer.render("password_changed", {"when": "2025-03-04"})
    with pytest.raises(MailTemplateError, match="count"):
        renderer.render("recovery_codes_created", {"when": WHEN, "count": "10"})


def test_singular_recovery_code(renderer: MailRenderer) -> None:
    mail = renderer.render("recovery_codes_created", {"when": WHEN, "count": 1})
    assert "Un code de secours a été créé" in mail.text
    assert "Un code de secours a été créé" in mail.html
    many = renderer.render("recovery_codes_created", {"when": WHEN, "count": 10})
    assert "10 codes de secours ont été créés" in many.text


def test_the_security_contact_comes_from_settings_and_is_never_a_link() -> None:
    renderer = MailRenderer(
        security_contact="le service sécurité de votre caisse au 01 23 45 67 89"
    )
    mail = renderer.render("account_suspended", {"when": WHEN})
    assert "contactez\nle service sécurité de votre caisse au 01 23 45 67 89." in mail.text
    assert "au 01 23 45 67 89" in mail.html
    linked = MailRenderer(security_contact="https://securite.caisse.example")
    mail = linked.render("account_suspended", {"when": WHEN})
    assert not LINKISH.search(mail.text)


def test_dates_are_french_in_paris_time() -> None:
    assert french_datetime(datetime(2025, 7, 14, 22, 5, tzinfo=UTC)) == (
        "mardi 15 juillet 2025 à 0 h 05 (heure de Paris)"  # summer time, next day
    )
    assert french_datetime(datetime(2024, 12, 31, 23, 0, tzinfo=UTC)) == (
        "mercredi 1er janvier 2025 à 0 h 00 (heure de Paris)"
    )
    # A naive datetime is UTC (as SQLite returns them).
    assert french_datetime(datetime(2025, 8, 15, 10, 30)) == (  # noqa: DTZ001
        "vendredi 15 août 2025 à 12 h 30 (heure de Paris)"
    )


def test_plain_keeps_addresses_and_versions_but_defangs_names() -> None:
    assert plain("adresse IP 203.0.113.7") == "adresse IP 203.0.113.7"
    assert plain("adresse IP 2001:db8::1") == "adresse IP 2001:db8::1"
    assert plain("Chrome/126.0.0.0 Safari/537.36") == "Chrome/126.0.0.0 Safari/537.36"
    assert plain("see http://evil.example/a") == "see http evil[.]example/a"
    assert plain("a\nb\tc\u202ed") == "a b c d"
    assert len(plain("x" * 1000)) <= 120
    assert method_label("psc") == "Pro Santé Connect (e-CPS)"
    assert method_label("quelque.chose.example") == "quelque[.]chose[.]example"


def test_a_notice_is_the_e_mail_without_its_layout(renderer: MailRenderer) -> None:
    subject, text = renderer.render_notice("webauthn_registered", SAMPLES["webauthn_registered"])
    assert subject == "Clé de sécurité ajoutée à votre compte Rempart"
    assert "« YubiKey du cabinet » a été\najoutée à votre compte Rempart le mardi 4 mars" in text
    assert "Bonjour" not in text
    assert "RAPPEL DE SÉCURITÉ" not in text
