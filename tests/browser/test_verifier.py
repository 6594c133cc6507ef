"""The public verification page in a browser: a genuine notice's code is confirmed, a
wrong name or an unknown code is not."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from rempart.services import Services
from tests.browser.console import assert_accessible, expect_title, notified, screenshot


def _check(page: Page, code: str, last_name: str) -> None:
    page.goto("/verifier")
    page.get_by_label("Code de vérification").fill(code)
    page.get_by_label("Nom de famille").fill(last_name)
    page.get_by_role("button", name="Vérifier").click()


def test_a_genuine_code_is_accepted_and_a_wrong_one_refused(page: Page, services: Services) -> None:
    notices = notified(services)
    page.goto("/verifier")
    expect_title(page, services, "Vérifier un avis")
    assert_accessible(page)
    screenshot(page, "verifier")

    martin = next(n for n in notices if n.last_name == "Martin")
    # Typed as a person would: lower case, spaces for the dashes, the name in capitals.
    _check(page, martin.code.lower().replace("-", " "), "MARTIN")
    expect(page.get_by_role("heading", name="Cet avis est authentique")).to_be_visible()
    assert martin.code not in page.content()
    assert_accessible(page)

    _check(page, martin.code, "Laurent0")  # another notified person's name
    expect(page.get_by_role("heading", name="Aucun avis ne correspond")).to_be_visible()
    other = next(n for n in notices if n.last_name != "Martin")
    wrong = ("Z" if other.code[0] != "Z" else "Y") + other.code[1:]
    _check(page, wrong, other.last_name)
    expect(page.get_by_role("heading", name="Aucun avis ne correspond")).to_be_visible()
    assert_accessible(page)
