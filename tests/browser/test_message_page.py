"""The public message check in a browser: a fake Carte Vitale SMS is called a fraud with
its reasons, a notice the campaign really sent is recognised; axe-core finds nothing
serious on the empty form, the answers and the errors; the keyboard reaches everything."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from rempart.services import Services
from tests.browser.console import assert_accessible, expect_title, screenshot
from tests.functional.message_helpers import FAKE_CARTE_VITALE_SMS, sent_notices


def _check(page: Page, text: str, *, email: bool = False, sender: str = "") -> None:
    page.goto("/verifier/message")
    if email:
        page.get_by_label("Courriel", exact=True).check()
    page.get_by_label("Expéditeur").fill(sender)
    page.get_by_label("Texte du message").fill(text)
    page.get_by_role("button", name="Vérifier le message").click()


def test_a_fake_is_called_a_fraud_and_a_sent_notice_is_recognised(
    page: Page, services: Services
) -> None:
    notice = sent_notices(services)[0]
    page.goto("/verifier/message")
    expect_title(page, services, "Vérifier un message")
    assert_accessible(page)
    screenshot(page, "verifier-message")
    assert page.context.cookies() == []

    _check(page, FAKE_CARTE_VITALE_SMS, sender="38000")
    expect_title(page, services, "Message frauduleux")
    expect(
        page.get_by_role("heading", name="Ce message est très probablement une fraude")
    ).to_be_visible()
    expect(page.get_by_text("Indice de risque")).to_be_visible()
    expect(page.get_by_role("heading", name="Le canal officiel")).to_be_visible()
    assert_accessible(page)

    _check(page, notice.text, email=True, sender=services.settings.mail_from)
    expect(page.get_by_role("heading", name="Aucun signe de fraude trouvé")).to_be_visible()
    assert_accessible(page)
    assert page.context.cookies() == []

    page.get_by_role("link", name="vérifier ce code avec votre nom").click()
    expect_title(page, services, "Vérifier un avis")


def test_an_empty_message_is_an_error_tied_to_its_field(page: Page, services: Services) -> None:
    page.goto("/verifier/message")
    # The browser's own check (required) is what a person meets first; the server's
    # answer is what a browser without it gets: remove the attribute, as such a one would.
    page.locator("#text").evaluate("field => field.removeAttribute('required')")
    page.get_by_role("button", name="Vérifier le message").click()
    expect_title(page, services, "Erreur : vérifier un message")
    field = page.get_by_label("Texte du message")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description(
        "Copiez tout le texte du message, liens compris, et collez-le ici. Pour un courriel, "
        "vous pouvez aussi coller sa source complète (en-têtes compris). "
        "Erreur : collez le texte du message reçu."
    )
    assert_accessible(page)
    # The summary's link takes the keyboard to the field.
    page.get_by_role("link", name="Texte du message : collez le texte du message reçu.").click()
    expect(field).to_be_focused()


def test_the_keyboard_reaches_every_control_in_order(page: Page) -> None:
    page.goto("/verifier/message")
    reached = []
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.append(
            page.evaluate("document.activeElement.id || document.activeElement.textContent")
        )
    for expected in ("channel-sms", "sender", "subject", "text"):
        assert expected in reached, reached
    order = [reached.index(x) for x in ("channel-sms", "sender", "subject", "text")]
    assert order == sorted(order)
