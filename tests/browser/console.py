"""What the browser tests do on the pages: log in through the form, submit a form with
a forged token, check a page with axe-core, take a screenshot."""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from rempart.services import Services
from tests.functional.breach_world import Insuree, build_breach, open_and_scope, people
from tests.functional.console_helpers import OperatorLogin, fresh_code

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# axe-core's impacts, lowest first: a page must have none of the last two.
BLOCKING = ("serious", "critical")
_CODE_LINE = re.compile(r"^Code de vérification : ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})$", re.M)


def expect_title(page: Page, services: Services, title: str) -> None:
    """The page's title, then an en dash and the organisation's name (base.html)."""
    expect(page).to_have_title(f"{title} \u2013 {services.settings.organization_name}")


def log_in(page: Page, operator: OperatorLogin, code: str | None = None) -> None:
    """Types the operator's login, password and TOTP code into the login form."""
    page.goto("/console/connexion")
    page.get_by_label("Identifiant").fill(operator.login)
    page.get_by_label("Mot de passe").fill(operator.password)
    page.get_by_label("Code à usage unique").fill(code or fresh_code(operator))
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_text(f"{operator.login} (")).to_be_visible()


def submit_with_token(page: Page, form: str, token: str) -> None:
    """Submits the page's ``form`` (a CSS selector) with its hidden CSRF field changed.

    The pages run no script (their CSP says ``script-src 'none'``); Playwright's
    evaluate is the test's own hand, not the page's."""
    page.locator(f"{form} input[name=csrf]").evaluate(
        "(field, value) => field.value = value", token
    )
    page.locator(f"{form} button[type=submit]").first.click()


def post_form(page: Page, action: str, fields: dict[str, str]) -> None:
    """Adds a form to the page and submits it, as a person who crafted it by hand in the
    browser would: the browser sends it with the session's cookie from this origin."""
    page.evaluate(
        """([action, fields]) => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = action;
            for (const [name, value] of Object.entries(fields)) {
                const input = document.createElement("input");
                input.type = "hidden";
                input.name = name;
                input.value = value;
                form.appendChild(input);
            }
            document.body.appendChild(form);
            form.submit();
        }""",
        [action, fields],
    )
    page.wait_for_load_state()


def csrf_of(page: Page) -> str:
    """The session's CSRF token, read from the page's logout form."""
    token = page.locator("form.console-who input[name=csrf]").get_attribute("value")
    assert token
    return token


@dataclass(frozen=True)
class Violation:
    rule: str
    impact: str
    help: str
    targets: list[str]

    def __str__(self) -> str:
        return f"{self.rule} ({self.impact}): {self.help} — {', '.join(self.targets)}"


def blocking_violations(page: Page) -> list[Violation]:
    """The page's serious and critical accessibility violations, by axe-core."""
    results: Any = Axe().run(page)
    found = []
    for violation in results.response["violations"]:
        if violation.get("impact") in BLOCKING:
            targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]]
            found.append(
                Violation(violation["id"], violation["impact"], violation["help"], targets)
            )
    return found


def assert_accessible(page: Page) -> None:
    violations = blocking_violations(page)
    assert not violations, f"{page.url} ({page.title()}):\n" + "\n".join(
        f"  {v}" for v in violations
    )


def screenshot(page: Page, name: str) -> Path:
    """The page, whole, 1280 px wide, as ``docs/screenshots/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


@dataclass(frozen=True)
class SentNotice:
    last_name: str
    code: str


def notified(services: Services) -> list[SentNotice]:
    """A real breach, incident, campaign and e-mail run (the DirectorySender writes the
    mail to the outbox folder): each notified person's name and the code their mail gave."""
    persons = [p for p in people() if p.key in ("identity", "ame", "mail-0")]
    build_breach(services, persons)
    incident = open_and_scope(services)
    plan = services.campaigns.plan(incident, operator="dpo")
    letters = services.settings.resolved_data_dir / "courriers"
    services.campaign_runner(letters).run(plan.campaign_id, operator="dpo", channels=("email",))
    return _codes(services, persons)


def _codes(services: Services, persons: list[Insuree]) -> list[SentNotice]:
    sent = []
    for path in sorted((services.settings.resolved_data_dir / "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        assert isinstance(message, EmailMessage)
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        found = _CODE_LINE.search(str(body.get_content()).replace("\r\n", "\n"))
        assert found, path.name
        to = str(message["To"])
        person = next(p for p in persons if p.email and p.email in to)
        sent.append(SentNotice(person.last_name, found.group(1)))
    assert len(sent) == len(persons)
    return sent
