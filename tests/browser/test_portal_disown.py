"""The owner as the fastest detector: a pharmacist finds lookups she did not make on
"Mes consultations", says "Ce n'était pas moi", and her account is suspended at once; an
operator in the console sees the alert and the incident drafted from those lookups."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Account
from tests.browser.console import log_in as operator_logs_in
from tests.browser.portal import ACCOUNT, ROBOT, log_in_with_code, pharmacy, someone_else_reads
from tests.functional.console_helpers import make_operator

NOT_ME = "Ce n'était pas moi"
DRAFT = f"Consultations non reconnues par le titulaire du compte {ACCOUNT}"


def _status(services: Services) -> str:
    with session_scope(services.sessions) as session:
        return str(session.scalar(select(Account.status).where(Account.account_id == ACCOUNT)))


def test_ce_n_etait_pas_moi_suspends_and_the_operators_see_it(
    browser: Browser, page: Page, server: str, services: Services
) -> None:
    lilas = pharmacy(services)
    read = lilas.customers[:2]
    someone_else_reads(server, lilas.pharmacist, read)

    # At the counter: lookups she did not make, from a device that is not hers. Her
    # session is a password and a code: the other session's names stay masked (a relayed
    # code must not read them), the times, network and device are what she recognises.
    log_in_with_code(page, lilas.pharmacist, ahead=0)
    page.goto("/portail/consultations")
    lookups = page.get_by_role("table")
    for person in read:
        expect(lookups).not_to_contain_text(person.last_name, ignore_case=True)
    expect(lookups.get_by_text("Nom masqué")).to_have_count(len(read))
    expect(lookups).to_contain_text("python-requests")
    expect(lookups).to_contain_text(ROBOT["X-Forwarded-For"])
    page.get_by_role("button", name=NOT_ME).click()

    # She ticks the reads that were not hers, and confirms.
    not_hers = page.get_by_role("row").filter(has_text="python-requests")
    expect(not_hers).to_have_count(len(read))
    for row in not_hers.all():
        row.get_by_role("checkbox").check()
    page.get_by_role("button", name=re.compile(r"^Confirmer")).click()
    expect(
        page.get_by_role("heading", name=re.compile("votre compte est suspendu"))
    ).to_be_visible()
    assert _status(services) == "suspended"
    page.goto("/portail/consultations")
    expect(page).to_have_url(re.compile(r"/portail/connexion"))

    # The analyst: the alert on the account, the incident drafted from it.
    analyst = make_operator(services, "alice.analyste", "analyst")
    console = browser.new_context(base_url=server, locale="fr-FR").new_page()
    operator_logs_in(console, analyst)
    console.goto("/console/alertes")
    alert = console.get_by_role("row").filter(has_text=ACCOUNT)
    expect(alert).to_have_count(1)
    alert.get_by_role("link", name=re.compile(r"^n° \d+$")).click()
    expect(console.get_by_text("Ce n'était pas moi").first).to_be_visible()
    console.goto("/console/incidents")
    drafted = console.get_by_role("row").filter(has_text=DRAFT)
    expect(drafted).to_have_count(1)
    expect(drafted).to_contain_text("ouvert")  # opened, to be scoped by the analyst
    drafted.get_by_role("link", name=re.compile(r"^n° \d+$")).click()
    expect(console.get_by_role("heading", name=re.compile(DRAFT))).to_be_visible()
    console.context.close()
