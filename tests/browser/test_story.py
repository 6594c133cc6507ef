"""The story, end to end in a browser on the real app: a robot with a phished password
and a relayed TOTP code reads strangers through the API until the guard denies it; an
analyst finds the alert, checks the account, opens an incident from the alert and
scopes it; the DPO establishes and downloads the CNIL notification, plans the campaign,
starts it and watches it complete, the counts adding up."""

from __future__ import annotations

import re
import time

import httpx
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Incident
from tests.browser.console import log_in
from tests.browser.world import ROBOT, ROBOT_ACCOUNT, robot_attack
from tests.functional.console_helpers import make_operator

INCIDENT_NAME = "Robot sur le compte de la pharmacie des Lilas"


def _new_page(browser: Browser, server: str) -> Page:
    return browser.new_context(base_url=server, locale="fr-FR", accept_downloads=True).new_page()


def test_from_the_robot_to_the_completed_campaign(
    browser: Browser, server: str, services: Services
) -> None:
    attack = robot_attack(services, server)
    read = attack.statuses.count(200)
    assert 1 <= read <= 3, attack.statuses

    # The analyst finds the alert.
    analyst = make_operator(services, "alice.analyste", "analyst")
    page = _new_page(browser, server)
    log_in(page, analyst)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Alertes").click()
    row = page.get_by_role("row").filter(has_text=ROBOT_ACCOUNT)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("ouverte")
    row.get_by_role("link", name=re.compile(r"^n° \d+$")).click()
    expect(page.get_by_role("heading", name=re.compile(r"^Alerte n° \d+$"))).to_be_visible()
    alert_id = int(page.url.rsplit("/", 1)[1])
    expect(page.get_by_text("198.51.100.0/24").first).to_be_visible()  # the robot's network
    expect(page.get_by_text("python-requests/2.32.3").first).to_be_visible()

    # The account: the guard suspended it when it denied (every session ended with it);
    # the page says so and offers to restore it, not to suspend it again.
    page.get_by_role("link", name=ROBOT_ACCOUNT).first.click()
    expect(page.get_by_role("heading", name=f"Compte {ROBOT_ACCOUNT}")).to_be_visible()
    expect(page.locator("#statut-compte")).to_have_text("suspendu")
    expect(page.get_by_role("button", name="Suspendre le compte")).to_have_count(0)
    expect(page.get_by_role("button", name="Rétablir le compte")).to_be_visible()
    with httpx.Client(base_url=server.replace("localhost", "127.0.0.1"), headers=ROBOT) as http:
        refused = http.post(
            "/api/v1/rights/lookup",
            json={"nir": "x", "birth_date": "1970-01-01"},
            headers={"Authorization": f"Bearer {attack.token}"},
        )
    assert refused.status_code in (401, 403), refused.text

    # An incident from the alert (its checkbox and a name on the alerts page), scoped.
    page.goto("/console/alertes")
    page.get_by_label(f"Choisir l'alerte n° {alert_id}").check()
    page.get_by_label("Nom de l'incident").fill(INCIDENT_NAME)
    page.get_by_role("button", name="Ouvrir l'incident").click()
    heading = page.get_by_role("heading", name=re.compile(rf"^Incident n° \d+ : {INCIDENT_NAME}$"))
    expect(heading).to_be_visible()
    incident_id = int(page.url.split("?")[0].rsplit("/", 1)[1])
    page.get_by_role("button", name="Évaluer le périmètre").click()
    expect(page.get_by_role("button", name="Évaluer de nouveau le périmètre")).to_be_visible()
    page.context.close()

    # The DPO: the notification, established and downloaded.
    dpo = make_operator(services, "dora.dpo", "dpo")
    page = _new_page(browser, server)
    log_in(page, dpo)
    page.goto(f"/console/incidents/{incident_id}")
    page.get_by_role("link", name="Notification à la CNIL").click()
    page.get_by_role("button", name="Établir la notification").click()
    with page.expect_download() as info:
        page.get_by_role("link", name="Télécharger la notification (PDF)").click()
    download = info.value
    assert download.suggested_filename == f"notification-cnil-incident-{incident_id}.pdf"
    assert download.path().read_bytes().startswith(b"%PDF-")
    with session_scope(services.sessions) as session:
        incident = session.scalar(select(Incident).where(Incident.incident_id == incident_id))
        assert incident is not None
        assert incident.status == "reported"

    # The campaign: planned, started, watched until it completes.
    page.get_by_role("link", name="Retour à l'incident").click()
    page.get_by_role("button", name="Planifier la campagne d'information des personnes").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Campagne n° \d+$"))).to_be_visible()
    page.get_by_role("button", name="Lancer la campagne").click()
    deadline = time.monotonic() + 120
    while page.locator("p .badge").first.inner_text() != "terminée":
        assert time.monotonic() < deadline, "the campaign did not complete"
        time.sleep(0.5)
        page.get_by_role("link", name="Actualiser").click()
    expect(page.get_by_text(f"{read} personnes traitées sur {read} (100 %)")).to_be_visible()
    expect(page.get_by_role("table").first).to_contain_text("le total correspond au plan")
    expect(page.locator("progress")).to_have_attribute("value", str(read))
