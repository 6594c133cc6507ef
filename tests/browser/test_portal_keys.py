"""A pharmacist's day with a security key, in a real browser on the real app.

She logs in with her password and a TOTP code, adds a key with the enrolment code the
insurer posted to her (Chromium's virtual authenticator answers ``navigator.credentials
.create``), logs out and back in with the key alone, looks a customer up, reads a few
strangers until the guard asks for a step-up and passes it with the key, finds her
lookups on "Mes consultations", and ends a session left open on another computer.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import update

from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import WebAuthnCredential
from tests.browser.authenticator import plug_in
from tests.browser.conftest import WIDTH
from tests.browser.portal import (
    ACCOUNT,
    USE_KEY,
    Pharmacy,
    enrol_through_api,
    enrolment_code,
    log_in_with_code,
    log_in_with_key,
    log_out,
    look_up,
    pharmacy,
)
from tests.functional.conftest import Person
from tests.functional.test_guard_inline import lookup_entries

KEY_NAME = "Clé USB du comptoir"
CARD = re.compile(r"/portail/consultation/resultat$")


def _end_probation(services: Services) -> None:
    """Two days pass: the key, enrolled from the pharmacy's own network, is established
    (past its probation) and may answer the guard. The session it opened stays as trusted
    as it was then: a young key's session is stepped up like a password's."""
    with session_scope(services.sessions) as session:
        session.execute(
            update(WebAuthnCredential).values(created_at=datetime.now(UTC) - timedelta(days=2))
        )


def _read_strangers_until_asked(page: Page, strangers: list[Person]) -> Person:
    """Strangers looked up one by one until the guard asks for the key; the one asked on."""
    for person in strangers[:6]:
        look_up(page, person)
        if page.get_by_role("button", name=USE_KEY).count():
            return person
        expect(page).to_have_url(CARD)
    raise AssertionError("the guard never asked for a step-up")


def test_a_key_enrolled_logs_in_alone_and_answers_the_guard(
    browser: Browser, page: Page, server: str, services: Services
) -> None:
    lilas: Pharmacy = pharmacy(services)
    key = plug_in(page)

    # Password and TOTP code, then the first key, with the code the insurer posted.
    log_in_with_code(page, lilas.pharmacist, ahead=-1)
    page.goto("/portail/securite")
    keys = page.get_by_role("region", name="Clés de sécurité et passkeys")
    keys.get_by_label("Nom de la clé", exact=True).fill(KEY_NAME)
    keys.get_by_label("Code d'enrôlement reçu par courrier").fill(enrolment_code(services))
    keys.get_by_role("button", name="Ajouter une clé").click()
    expect(page.get_by_role("status")).to_be_visible()
    # Listed, and young: it logs in, but may not answer the guard yet.
    expect(page.get_by_role("row", name=KEY_NAME)).to_contain_text("en période probatoire")
    (credential,) = key.credentials()
    assert credential["rpId"] == "localhost"
    assert credential["isResidentCredential"] is True
    log_out(page)

    # The key alone: no login, no password. A customer's card.
    log_in_with_key(page)
    customer = lilas.customers[0]
    look_up(page, customer)
    expect(page).to_have_url(CARD)
    expect(page.get_by_text(customer.last_name).first).to_be_visible()
    assert customer.nir.value not in page.url

    # Strangers: the guard asks for the key, which answers; the lookup goes on.
    _end_probation(services)
    stranger = _read_strangers_until_asked(page, lilas.strangers)
    page.get_by_role("button", name=USE_KEY).click()
    expect(page).to_have_url(CARD)
    expect(page.get_by_text(stranger.last_name).first).to_be_visible()
    last = lookup_entries(services, ACCOUNT)[-1]  # the trail: passed by the key
    assert (last.decision, last.outcome, last.acr) == ("step_up", "ok", "webauthn")
    assert last.reasons.split(",")[0] == "step_up_passed"

    # Her own lookups, by name, never a NIR in full.
    page.goto("/portail/consultations")
    lookups = page.get_by_role("table")
    expect(lookups).to_contain_text(customer.last_name, ignore_case=True)
    expect(lookups).to_contain_text(stranger.last_name, ignore_case=True)
    assert customer.nir.value not in page.content()
    assert stranger.nir.value not in page.content()

    # A session left open on the back-office computer, ended from the counter.
    back_office = browser.new_context(
        base_url=server, viewport={"width": WIDTH, "height": 900}, locale="fr-FR"
    ).new_page()
    log_in_with_code(back_office, lilas.pharmacist, ahead=0)
    page.goto("/portail/securite")
    other = page.get_by_role("button", name=re.compile(r"^Fermer la session "))
    expect(other).to_have_count(1)  # hers, at the counter, is ended by logging out
    other.click()
    expect(page.get_by_role("status")).to_be_visible()
    back_office.reload()
    expect(back_office).to_have_url(re.compile(r"/portail/connexion"))
    expect(page.get_by_role("button", name="Se déconnecter")).to_be_visible()
    back_office.context.close()


def test_the_key_as_the_second_factor_after_the_password(
    page: Page, server: str, services: Services
) -> None:
    """The other way in with a key: the password first, then the key instead of a code."""
    lilas = pharmacy(services)
    page.goto("/portail/connexion")
    key = plug_in(page)
    enrol_through_api(page, services, server, lilas.pharmacist)
    page.get_by_label("Identifiant", exact=True).fill(lilas.pharmacist.login)
    page.get_by_label("Mot de passe", exact=True).fill(lilas.pharmacist.password)
    page.get_by_role("button", name="Continuer").click()
    (before,) = key.credentials()
    page.get_by_role("button", name=USE_KEY).click()
    expect(page.get_by_role("button", name="Se déconnecter")).to_be_visible()
    (after,) = key.credentials()
    assert after["signCount"] > before["signCount"]
