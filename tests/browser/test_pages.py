"""The console's main pages and the public page in a browser, with data in them: no
serious or critical accessibility violation by axe-core on any of them, and a
screenshot of each (``docs/screenshots/``, shown in the README)."""

from __future__ import annotations

from playwright.sync_api import Browser, Page

from rempart.services import Services
from tests.browser.conftest import WIDTH
from tests.browser.console import Violation, blocking_violations, log_in, screenshot
from tests.browser.world import first_alert, notified_breach, robot_attack
from tests.functional.console_helpers import OperatorLogin, make_operator


def _visit(
    browser: Browser,
    server: str,
    operator: OperatorLogin,
    pages: list[tuple[str, str]],
    found: dict[str, list[Violation]],
) -> Page:
    """Logs ``operator`` in, then opens each (name, path): axe-core checks it, and it
    is written as docs/screenshots/<name>.png."""
    context = browser.new_context(
        base_url=server, viewport={"width": WIDTH, "height": 900}, locale="fr-FR"
    )
    page = context.new_page()
    log_in(page, operator)
    for name, path in pages:
        response = page.goto(path)
        assert response is not None
        assert response.status == 200, f"{path}: {response.status}"
        found[f"{name} ({path})"] = blocking_violations(page)
        screenshot(page, name)
    return page


def test_the_main_pages_are_accessible(browser: Browser, server: str, services: Services) -> None:
    robot_attack(services, server)
    alert = first_alert(services)
    breach = notified_breach(services)
    incident, campaign = breach.incident, breach.campaign
    found: dict[str, list[Violation]] = {}

    analyst = make_operator(services, "alice.analyste", "analyst")
    _visit(
        browser,
        server,
        analyst,
        [
            ("console-vue-d-ensemble", "/console/"),
            ("console-alertes", "/console/alertes?statut=all"),
            ("console-alerte", f"/console/alertes/{alert}"),
            ("console-comptes", "/console/comptes?q=lilas"),
            ("console-compte", "/console/comptes/ph-lilas"),
        ],
        found,
    ).context.close()

    dpo = make_operator(services, "dora.dpo", "dpo")
    page = _visit(
        browser,
        server,
        dpo,
        [
            ("console-incidents", "/console/incidents"),
            ("console-incident", f"/console/incidents/{incident}"),
            ("console-notification", f"/console/incidents/{incident}/notification"),
            ("console-campagnes", "/console/campagnes"),
            ("console-campagne", f"/console/campagnes/{campaign}"),
            ("console-historique", "/console/historique"),
        ],
        found,
    )
    # A person's history, asked by NIR in the form (never in the address).
    page.get_by_label("NIR de la personne").fill(breach.nir)
    page.get_by_role("button", name="Rechercher").click()
    found["console-historique-resultat (POST /console/historique)"] = blocking_violations(page)
    screenshot(page, "console-historique-resultat")
    page.context.close()

    admin = make_operator(services, "adam.admin", "admin")
    _visit(
        browser,
        server,
        admin,
        [
            ("console-operateurs", "/console/operateurs"),
            ("console-configuration", "/console/configuration"),
        ],
        found,
    ).context.close()

    report = [
        f"{page}:\n" + "\n".join(f"  {v}" for v in violations)
        for page, violations in found.items()
        if violations
    ]
    assert not report, "serious or critical accessibility violations:\n" + "\n".join(report)
