"""Every page of the portal in a browser, with data in it: no serious or critical
accessibility violation by axe-core, and a screenshot of each (``docs/screenshots/
portail-*.png``, 1280 px wide; the login, the lookup, the card and the security page also
at 390 px, a counter's small screen)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from rempart.services import Services
from tests.browser.authenticator import plug_in
from tests.browser.conftest import WIDTH
from tests.browser.console import Violation, blocking_violations, screenshot, submit_with_token
from tests.browser.portal import (
    USE_KEY,
    enrol_through_api,
    enrolment_code,
    look_up,
    pharmacy,
    someone_else_reads,
)
from tests.functional.conftest import totp_code

SMALL: ViewportSize = {"width": 390, "height": 844}
WIDE: ViewportSize = {"width": WIDTH, "height": 900}


@pytest.fixture
def user_agent() -> str:
    """The screenshots show the devices a pharmacy has, not a headless browser."""
    return (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36"
    )


def _check(page: Page, name: str, found: dict[str, list[Violation]], small: bool = False) -> None:
    """axe-core on the page as it is, then its screenshot (and at 390 px if ``small``)."""
    page.wait_for_load_state()
    found[f"{name} ({page.url})"] = blocking_violations(page)
    screenshot(page, name)
    if small:
        page.set_viewport_size(SMALL)
        found[f"{name}, 390 px ({page.url})"] = blocking_violations(page)
        screenshot(page, f"{name}-mobile")
        page.set_viewport_size(WIDE)


def _visit(
    page: Page, path: str, name: str, found: dict[str, list[Violation]], small: bool = False
) -> None:
    response = page.goto(path)
    assert response is not None
    assert response.status == 200, f"{path}: {response.status}"
    _check(page, name, found, small)


def test_the_portal_pages_are_accessible(page: Page, server: str, services: Services) -> None:
    lilas = pharmacy(services)
    pharmacist = lilas.pharmacist
    found: dict[str, list[Violation]] = {}
    page.goto("/portail/connexion")
    plug_in(page)
    enrol_through_api(page, services, server, pharmacist)  # a key to list and to offer

    # Before a session: the login, a refusal, the second factor.
    _visit(page, "/portail/connexion", "portail-connexion", found, small=True)
    page.get_by_label("Identifiant", exact=True).fill(pharmacist.login)
    page.get_by_label("Mot de passe", exact=True).fill("pas le bon mot de passe")
    page.get_by_role("button", name="Continuer").click()
    expect(page.get_by_role("alert").first).to_be_visible()
    _check(page, "portail-connexion-erreur", found)
    page.get_by_label("Mot de passe", exact=True).fill(pharmacist.password)
    page.get_by_role("button", name="Continuer").click()
    expect(page).to_have_url(re.compile(r"/portail/connexion/facteur$"))
    _check(page, "portail-facteur", found)
    page.get_by_label("Code à usage unique").fill(totp_code(pharmacist))
    page.get_by_role("button", name="Se connecter", exact=True).click()
    expect(page.get_by_role("button", name="Se déconnecter")).to_be_visible()
    # Meanwhile, someone else reads two customers with her password: Mes consultations
    # will show them.
    someone_else_reads(server, pharmacist, lilas.customers[1:3], ahead=1)

    # In session: the lookup, a card, the guard's question, the account's pages.
    _visit(page, "/portail/", "portail-consultation", found, small=True)
    look_up(page, lilas.customers[0])
    _check(page, "portail-carte", found, small=True)
    # A refusal on the lookup form (a wrong birth date), and a form posted with a forged token.
    look_up(page, replace(lilas.customers[0], birth_date=date(1901, 1, 1)))
    expect(page.get_by_role("alert")).to_be_visible()
    _check(page, "portail-consultation-erreur", found)
    submit_with_token(page, "form.console-who", "pas-le-bon-jeton")  # the logout form
    expect(page.get_by_role("heading", name="Formulaire refusé")).to_be_visible()
    _check(page, "portail-formulaire-refuse", found)
    for stranger in lilas.strangers[:6]:
        look_up(page, stranger)
        if page.get_by_role("button", name=USE_KEY).count():
            _check(page, "portail-verification", found)
            break
    else:
        raise AssertionError("the guard never asked for a step-up")
    _visit(page, "/portail/consultations", "portail-mes-consultations", found)
    _visit(page, "/portail/securite", "portail-securite", found, small=True)
    codes = page.get_by_role("region", name="Codes de secours")
    codes.get_by_label("Code d'enrôlement reçu par courrier").fill(enrolment_code(services))
    codes.get_by_role("button", name="Créer de nouveaux codes de secours").click()
    expect(page.get_by_role("heading", name="Vos codes de secours")).to_be_visible()
    _check(page, "portail-codes-de-secours", found)
    _visit(page, "/portail/avis", "portail-avis", found)

    # "Ce n'était pas moi": the question, then the suspension.
    page.goto("/portail/consultations")
    page.get_by_role("button", name="Ce n'était pas moi").first.click()
    _check(page, "portail-pas-moi", found)
    page.get_by_role("button", name=re.compile(r"^(Confirmer|Oui|Suspendre)")).click()
    expect(page.get_by_role("heading", name=re.compile("suspendu"))).to_be_visible()
    _check(page, "portail-suspendu", found)

    report = [
        f"{name}:\n" + "\n".join(f"  {v}" for v in violations)
        for name, violations in found.items()
        if violations
    ]
    assert not report, "serious or critical accessibility violations:\n" + "\n".join(report)
