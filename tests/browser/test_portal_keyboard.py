"""The portal with the keyboard alone: every field and button reached with Tab, forms
sent with Enter, the focus always shown, the key ceremony started from the keyboard too
(RGAA 7.3, 10.7, 12.13)."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from rempart.services import Services
from tests.browser.authenticator import plug_in
from tests.browser.portal import (
    LOGOUT,
    PASSKEY,
    enrol_through_api,
    pharmacy,
    spaced,
)
from tests.functional.conftest import totp_code

_FOCUSED_MATCHES = "(selector) => document.activeElement?.matches(selector) ?? false"
_FOCUS_OUTLINE = "() => getComputedStyle(document.activeElement).outlineStyle"


def tab_to(page: Page, selector: str, limit: int = 40) -> None:
    """Presses Tab until the element ``selector`` has the focus (it must, within
    ``limit``); the focus must show (an outline)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(_FOCUSED_MATCHES, selector):
            assert page.evaluate(_FOCUS_OUTLINE) not in ("", "none"), f"{selector}: no outline"
            return
    raise AssertionError(f"{selector} is not reached with Tab on {page.url}")


def test_log_in_look_up_and_log_out_with_the_keyboard(
    page: Page, server: str, services: Services
) -> None:
    lilas = pharmacy(services)
    pharmacist, customer = lilas.pharmacist, lilas.customers[0]

    page.goto("/portail/connexion")
    tab_to(page, "#login")
    page.keyboard.type(pharmacist.login)
    tab_to(page, "#password")
    page.keyboard.type(pharmacist.password)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/portail/connexion/facteur$"))
    tab_to(page, "#code")
    page.keyboard.type(totp_code(pharmacist))
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name=LOGOUT)).to_be_visible()

    page.goto("/portail/")
    tab_to(page, "#nir")
    page.keyboard.type(spaced(customer.nir.value))
    tab_to(page, "#birth_date")
    # A date field takes its parts in the order of the browser's own language, not the
    # page's: month, day, year in the headless Chromium (en-US).
    page.keyboard.type(customer.birth_date.strftime("%m%d%Y"))
    expect(page.locator("#birth_date")).to_have_value(customer.birth_date.isoformat())
    page.keyboard.press("Enter")
    expect(page.get_by_text(customer.last_name).first).to_be_visible()

    tab_to(page, "form.console-who button")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/portail/connexion\?message=deconnecte$"))


def test_the_key_alone_from_the_keyboard(page: Page, server: str, services: Services) -> None:
    lilas = pharmacy(services)
    page.goto("/portail/connexion")
    plug_in(page)
    enrol_through_api(page, services, server, lilas.pharmacist)
    page.goto("/portail/connexion")
    tab_to(page, "form[data-webauthn] button")
    expect(page.get_by_role("button", name=PASSKEY)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name=LOGOUT)).to_be_visible()
