"""Roles in a browser: each operator's navigation shows only their pages; a page or an
action outside the role is refused with the French 403 page and changes nothing."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Account
from tests.browser.console import csrf_of, expect_title, log_in, post_form
from tests.functional.conftest import make_login
from tests.functional.console_helpers import make_operator


def _status(services: Services, account_id: str) -> str:
    with session_scope(services.sessions) as session:
        status = session.scalar(select(Account.status).where(Account.account_id == account_id))
    return str(status)


def _refused(page: Page, services: Services) -> None:
    expect(page.get_by_role("heading", name="Accès refusé")).to_be_visible()
    expect_title(page, services, "Accès refusé")


def test_a_wrong_role_is_refused_a_page_and_an_action(
    browser: Browser, server: str, services: Services
) -> None:
    make_login(services, "pharmacie.lilas", account_id="ph-lilas")
    dpo = make_operator(services, "dora.dpo", "dpo")
    analyst = make_operator(services, "alice.analyste", "analyst")

    as_dpo = browser.new_context(base_url=server, locale="fr-FR").new_page()
    log_in(as_dpo, dpo)
    navigation = as_dpo.get_by_role("navigation", name="Console")
    expect(navigation.get_by_role("link", name="Incidents")).to_be_visible()
    expect(navigation.get_by_role("link", name="Alertes")).to_have_count(0)
    response = as_dpo.goto("/console/alertes")
    assert response is not None
    assert response.status == 403
    _refused(as_dpo, services)
    # The analyst's action, posted by hand with the DPO's own valid token.
    post_form(as_dpo, "/console/comptes/ph-lilas/suspendre", {"csrf": csrf_of(as_dpo)})
    _refused(as_dpo, services)
    assert _status(services, "ph-lilas") == "active"
    as_dpo.context.close()

    as_analyst = browser.new_context(base_url=server, locale="fr-FR").new_page()
    log_in(as_analyst, analyst)
    token = csrf_of(as_analyst)
    for action, fields in (
        ("/console/campagnes/1/lancer", {}),
        ("/console/operateurs", {"login": "mallory", "role": "admin", "password": "x" * 20}),
    ):
        post_form(as_analyst, action, {"csrf": token, **fields})
        _refused(as_analyst, services)
    for page in ("/console/campagnes", "/console/operateurs", "/console/historique"):
        response = as_analyst.goto(page)
        assert response is not None
        assert response.status == 403, page
    with session_scope(services.sessions) as session:
        assert "mallory" not in {o.login for o in services.operators.list(session)}
    # What the role holds, it may do: the analyst suspends the account from its page.
    as_analyst.goto("/console/comptes/ph-lilas")
    as_analyst.get_by_role("button", name="Suspendre le compte").click()
    expect(as_analyst.get_by_role("status")).to_contain_text("suspendu")
    assert _status(services, "ph-lilas") == "suspended"
    as_analyst.context.close()
