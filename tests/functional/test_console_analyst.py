"""The analyst's console pages on the real app and database (SQLite and PostgreSQL): an
alert raised by a real guard decision, its detail, the account's actions (the domain
calls of the CLI), the roles and forms that are refused, the overview's figures and
its roll-up of the audit trail."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from rempart.api.rollup_pump import RollupPump
from rempart.audit.chain import AuditEntry
from rempart.audit.models import AuditEvent
from rempart.audit.trail import now_us
from rempart.config import Settings
from rempart.console.activity import GRACE_US, HOUR_US, count_closed_hours, overview
from rempart.console.alert_reasons import explain
from rempart.guard.alerts import list_alerts, raise_alert
from rempart.messages.counts import count_check
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Account, ConsoleHourDone, ConsoleHourlyCount, GuardAlert
from tests.functional.conftest import Login, Person, log_in, make_login
from tests.functional.console_helpers import (
    OperatorLogin,
    console_client,
    console_login,
    form_token,
    make_operator,
)
from tests.functional.test_guard_inline import (
    PHARMACY,
    ROBOT,
    build_town,
    guard_settings,
    lookup,
    reset_after_restore,
    totp_session,
)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # The robot and the pharmacy come from their own networks (X-Forwarded-For trusted).
    return guard_settings(database_url, tmp_path)


@pytest.fixture
def console(services: Services) -> Iterator[TestClient]:
    with console_client(services) as client:
        yield client


@pytest.fixture
def analyst(services: Services) -> OperatorLogin:
    return make_operator(services, "alice.analyste", "analyst")


@pytest.fixture
def pharmacist(services: Services) -> Login:
    return make_login(services, "pharmacie.lilas", account_id="ph-lilas")


def status_of(services: Services, account_id: str) -> str | None:
    with session_scope(services.sessions) as session:
        return session.scalar(select(Account.status).where(Account.account_id == account_id))


def trail(services: Services, event: str) -> list[AuditEvent]:
    """The trail's ``event`` entries, oldest first (PostgreSQL keeps no row order)."""
    with session_scope(services.sessions) as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.event == event)
                .order_by(AuditEvent.ts_us, AuditEvent.seq)
            )
        )


def shown_once(html: str) -> list[str]:
    """The values of the "shown once" block of an account page."""
    return [unescape(v) for v in re.findall(r'<dd class="code secret">([^<]+)</dd>', html)]


def post_form(client: TestClient, page_path: str, action: str) -> Response:
    """Posts an account page's form ``action`` with the page's token, as a browser would."""
    token = form_token(client.get(page_path).text)
    response: Response = client.post(action, data={"csrf": token}, follow_redirects=False)
    return response


def robot_until_denied(client: TestClient, pharmacist: Login, strangers: list[Person]) -> None:
    robot = log_in(client, pharmacist)  # a phished password + TOTP: a valid session
    for person in strangers:
        if lookup(client, robot, person, ROBOT).status_code == 403:
            return
    pytest.fail("the guard never denied the robot")


def test_an_analyst_goes_from_alert_to_account_actions(
    console: TestClient, services: Services, analyst: OperatorLogin, pharmacist: Login
) -> None:
    customers, strangers = build_town(services)
    robot_until_denied(console, pharmacist, strangers)
    assert status_of(services, "ph-lilas") == "suspended"
    with session_scope(services.sessions) as session:
        (alert,) = list_alerts(session)
    console_login(console, analyst)

    # The list: the alert, a link to it, a box to pick it for an incident.
    listed = console.get("/console/alertes")
    assert listed.status_code == 200
    assert f'href="/console/alertes/{alert.alert_id}"' in listed.text
    assert f'name="alert" value="{alert.alert_id}"' in listed.text
    assert 'action="/console/incidents/ouvrir"' in listed.text
    assert 'name="name"' in listed.text
    # Filters: another account, or acknowledged alerts only, list nothing.
    assert "ph-lilas" not in console.get("/console/alertes?compte=quelquun").text
    assert "Aucune alerte" in console.get("/console/alertes?statut=acknowledged").text
    bad = console.get("/console/alertes?du=hier")
    assert bad.status_code == 422
    assert "<title>Erreur" in bad.text

    # The detail: reasons in French, the robot on the timeline, no NIR anywhere.
    detail = console.get(f"/console/alertes/{alert.alert_id}")
    assert detail.status_code == 200
    assert explain(alert.reasons[0]).text.replace("'", "&#39;") in detail.text
    assert "non expliquée" in detail.text
    assert "198.51.100.0/24" in detail.text
    assert "python-requests/2.32.3" in detail.text
    assert 'href="/console/comptes/ph-lilas"' in detail.text
    for person in strangers + customers:
        assert person.nir.value not in detail.text
    assert console.get("/console/alertes/999999").status_code == 404
    assert console.get("/console/alertes/abc").status_code == 404

    # Acknowledged: by the operator, in the trail.
    acknowledged = post_form(
        console,
        f"/console/alertes/{alert.alert_id}",
        f"/console/alertes/{alert.alert_id}/acquitter",
    )
    assert acknowledged.status_code == 303
    with session_scope(services.sessions) as session:
        row = session.get(GuardAlert, alert.alert_id)
        assert row is not None
        assert (row.status, row.acknowledged_by) == ("acknowledged", "alice.analyste")
    (recorded,) = trail(services, "console_alert_acknowledged")
    assert recorded.account_id == "operator:alice.analyste"
    assert recorded.reasons == f"alert:{alert.alert_id}"

    # The search finds the account by the start of its login.
    found = console.get("/console/comptes?q=PHARMACIE")
    assert 'href="/console/comptes/ph-lilas"' in found.text

    # Restored as the CLI does: the new credentials shown once, on the answer itself.
    page = "/console/comptes/ph-lilas"
    restored = post_form(console, page, f"{page}/retablir")
    assert restored.status_code == 200, restored.text
    reset_code, uri = shown_once(restored.text)
    assert uri.startswith("otpauth://")
    assert status_of(services, "ph-lilas") == "active"
    assert reset_code not in console.get(page).text  # once
    assert "operator:alice.analyste" in trail(services, "account_restored")[-1].reasons

    # The owner takes her account back: her token works.
    owner = reset_after_restore(console, pharmacist, f"{reset_code} {uri}")
    token = totp_session(console, owner, ahead=1)
    assert lookup(console, token, customers[0], PHARMACY).status_code == 200
    assert "Sessions ouvertes (1)" in console.get(page).text  # her open session

    # Suspended from the console: her token stops working.
    suspended = post_form(console, page, f"{page}/suspendre")
    assert suspended.status_code == 303
    assert suspended.headers["location"] == f"{page}?message=suspendu"
    assert "Le compte est suspendu" in console.get(suspended.headers["location"]).text
    assert status_of(services, "ph-lilas") == "suspended"
    assert lookup(console, token, customers[1], PHARMACY).status_code in {401, 403}
    assert trail(services, "account_suspended")[-1].reasons == "operator:alice.analyste"

    # Restored again, then her sessions revoked: the new token stops working.
    again = post_form(console, page, f"{page}/retablir")
    reset_code, uri = shown_once(again.text)
    owner = reset_after_restore(console, owner, f"{reset_code} {uri}")
    token = totp_session(console, owner, ahead=1)
    assert lookup(console, token, customers[0], PHARMACY).status_code == 200
    revoked = post_form(console, page, f"{page}/sessions/revoquer")
    assert revoked.status_code == 303
    assert lookup(console, token, customers[1], PHARMACY).status_code == 401
    (revocation,) = trail(services, "console_sessions_revoked")
    assert revocation.account_id == "operator:alice.analyste"
    assert revocation.reasons.startswith("account:ph-lilas,sessions:")

    # A reset code, to post: shown once, on the answer.
    issued = post_form(console, page, f"{page}/code-reinitialisation")
    assert issued.status_code == 200
    assert "à envoyer par courrier" in issued.text.lower()
    (code,) = shown_once(issued.text)
    assert len(code.replace("-", "")) == 16
    assert trail(services, "reset_code_issued")[-1].reasons == "operator:alice.analyste"

    # Second factor reset, lock cleared: the domain calls, the operator named.
    reset = post_form(console, page, f"{page}/second-facteur/reinitialiser")
    (new_uri,) = shown_once(reset.text)
    assert new_uri.startswith("otpauth://")
    assert "operator:alice.analyste" in trail(services, "mfa_reset")[-1].reasons
    unlocked = post_form(console, page, f"{page}/debloquer")
    assert unlocked.status_code == 303
    assert trail(services, "mfa_lock_cleared")[-1].reasons == "operator:alice.analyste"

    # An account that does not exist, an id that needs quoting.
    assert console.get("/console/comptes/personne%2Fici").status_code == 404
    missing = post_form(console, page, "/console/comptes/personne%20ici/suspendre")
    assert missing.status_code == 404


def test_a_dpo_is_refused_the_alerts_and_the_actions(
    console: TestClient, services: Services, pharmacist: Login
) -> None:
    dpo = make_operator(services, "denise.dpo", "dpo")
    console_login(console, dpo)
    assert console.get("/console/alertes").status_code == 403
    assert console.get("/console/comptes").status_code == 403
    assert console.get("/console/comptes/ph-lilas").status_code == 403
    token = form_token(console.get("/console/").text)  # a valid token of her session
    refused = console.post(
        "/console/comptes/ph-lilas/suspendre", data={"csrf": token}, follow_redirects=False
    )
    assert refused.status_code == 403
    assert "Accès refusé" in refused.text
    assert status_of(services, "ph-lilas") == "active"
    assert trail(services, "account_suspended") == []


def test_a_form_without_its_token_changes_nothing(
    console: TestClient, services: Services, analyst: OperatorLogin, pharmacist: Login
) -> None:
    console_login(console, analyst)
    for data in ({}, {"csrf": "0" * 64}):
        refused = console.post(
            "/console/comptes/ph-lilas/suspendre", data=data, follow_redirects=False
        )
        assert refused.status_code == 403
        assert "Formulaire refusé" in refused.text
    assert status_of(services, "ph-lilas") == "active"
    from_elsewhere = console.post(
        "/console/comptes/ph-lilas/suspendre",
        data={"csrf": form_token(console.get("/console/comptes/ph-lilas").text)},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert from_elsewhere.status_code == 403
    assert status_of(services, "ph-lilas") == "active"


def figure(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]+)<', html)
    assert found, element_id
    return found.group(1)


def lookups(services: Services, ts_us: int, *decisions: str) -> None:
    services.audit.append(
        [
            AuditEntry(
                seq=0,
                ts_us=ts_us + i,
                event="lookup",
                account_id="ph-lilas",
                subject=f"p{i}",
                found=1,
                decision=decision,
                outcome="ok",
            )
            for i, decision in enumerate(decisions)
        ]
    )


def test_the_overview_counts_what_the_trail_holds(
    console: TestClient, services: Services, analyst: OperatorLogin, pharmacist: Login
) -> None:
    now = now_us()
    # The open hour (read live) and a closed hour three hours ago (rolled up).
    lookups(services, now - 60_000_000, "allow", "allow", "allow", "step_up", "step_up", "deny")
    lookups(services, now - 3 * HOUR_US, "allow", "allow", "allow", "allow", "deny")
    services.audit.append([AuditEntry(seq=0, ts_us=now, event="login_succeeded")])
    with session_scope(services.sessions) as session:
        raise_alert(
            session,
            account_id="ph-lilas",
            session_id="s",
            decision="deny",
            score=3.0,
            reasons=("robot",),
            audit_ts_us=now,
        )
        services.auth.suspend(session, "ph-lilas", by="tests")
    for door in ("api", "page", "cli"):
        count_check(services.engine, door=door, channel="sms", verdict="phishing")
    count_check(services.engine, door="api", channel="email", verdict="genuine-looking")
    week_ago = datetime.now(UTC).date() - timedelta(days=7)  # out of the overview's 7 days
    count_check(services.engine, door="api", channel="sms", verdict="phishing", day=week_ago)
    console_login(console, analyst)
    page = console.get("/console/")
    assert page.status_code == 200
    html = page.text
    assert figure(html, "messages-phishing") == "3"
    assert figure(html, "messages-suspicious") == "0"
    assert figure(html, "messages-genuine-looking") == "1"
    assert figure(html, "decision-allow") == "7"
    assert figure(html, "decision-step_up") == "2"
    assert figure(html, "decision-deny") == "2"
    assert figure(html, "par-minute-5") == "1,2"  # 6 lookups in the last 5 minutes
    assert figure(html, "par-minute-60") == "0,1"  # 6 in the last hour
    assert figure(html, "alertes-ouvertes") == "1"
    assert figure(html, "comptes-suspendus") == "1"
    # Both charts, each with its figures in a table; no script, no inline style.
    assert html.count("<svg") == 2
    assert html.count("<details>") == 2
    assert "<script" not in html
    assert "style=" not in html
    assert '<td class="number">5</td><td class="number">1</td>' in html  # the closed hour


def test_a_closed_hour_is_counted_once_and_the_open_hour_live(services: Services) -> None:
    now = now_us()
    current = now // HOUR_US
    closed = current - 5
    lookups(services, closed * HOUR_US + 10, "allow", "deny")

    # The work per view is bounded: the newest missing hours first.
    counted, left = count_closed_hours(
        services.engine, services.audit_engine, now_us=now, span_hours=48, max_hours=3
    )
    assert counted == 3
    first_open = (now - GRACE_US) // HOUR_US
    # The hours before the trail's first entry are marked done without being counted;
    # the others wait for the next views.
    assert left == (first_open - closed) - 3
    with session_scope(services.sessions) as session:
        done = set(session.scalars(select(ConsoleHourDone.hour)))
        rolled = set(session.scalars(select(ConsoleHourlyCount.hour)))
    before_trail = set(range(first_open - 48, closed))
    assert done == {first_open - 1, first_open - 2, first_open - 3} | before_trail
    assert not rolled & before_trail

    figures = overview(services.engine, services.audit_engine, now_us=now, max_hours=48)
    bar = next(b for b in figures.hours if int(b.start.timestamp()) // 3600 == closed)
    assert (bar.lookups, bar.denied, bar.pending) == (2, 1, False)
    with session_scope(services.sessions) as session:
        rows = {
            (r.event, r.decision): r.entries
            for r in session.scalars(
                select(ConsoleHourlyCount).where(ConsoleHourlyCount.hour == closed)
            )
        }
    assert rows == {("lookup", "allow"): 1, ("lookup", "deny"): 1}

    # An entry that reaches a counted hour afterwards is not read again: the hour is
    # counted once. The open hour, read live, shows a new entry at once.
    lookups(services, closed * HOUR_US + 20, "allow")
    lookups(services, now, "allow")
    later = overview(services.engine, services.audit_engine, now_us=now + 1000)
    bar = next(b for b in later.hours if int(b.start.timestamp()) // 3600 == closed)
    assert bar.lookups == 2
    assert later.hours[-1].lookups == figures.hours[-1].lookups + 1


def test_the_rollup_pump_counts_every_missing_hour(services: Services) -> None:
    """The server's pump brings the roll-up up to date in one pass: the page views then
    find nothing left to count."""
    now = now_us()
    current = now // HOUR_US
    for back in (30, 200, 600):
        lookups(services, (current - back) * HOUR_US + 5, "allow", "deny")
    assert RollupPump(services, interval_seconds=0).run_once() > 12
    figures = overview(services.engine, services.audit_engine, now_us=now_us())
    assert figures.pending_hours == 0
    assert figures.counted_now == 0
    days = {bar.label: (bar.lookups, bar.denied) for bar in figures.days}
    assert sum(lookups for lookups, _ in days.values()) >= 6
    assert sum(denied for _, denied in days.values()) >= 3
