"""« Mes consultations » and « Ce n'était pas moi », through the portal's pages, on
SQLite and PostgreSQL: the list names the persons this account read and no one else,
never a NIR; the report suspends the account, raises the alert, opens the incident
draft whose scope is exactly the persons the account read, and is recorded."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from rempart.audit.models import AuditEvent
from rempart.config import Settings, load_settings
from rempart.console.alert_reasons import explain
from rempart.devtools.soft_authenticator import SoftAuthenticator
from rempart.incident.live_source import LiveSource
from rempart.nir import pseudonymize
from rempart.portal.own_lookups import own_lookups
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import (
    Account,
    AccountNotice,
    GuardAlert,
    Incident,
    MailOutbox,
)
from rempart.store.pseudonyms import backfill
from tests.conftest import FAST_HASHING
from tests.functional.conftest import PROXY, Login, Person, make_login
from tests.functional.portal_helpers import (
    PORTAL_BASE,
    form_token,
    portal_client,
    portal_login,
    portal_login_with_key,
    register_key,
)
from tests.functional.test_guard_inline import (
    PHARMACY,
    ROBOT,
    build_town,
    lookup,
    totp_session,
)

HISTORY = "/portail/consultations"
REPORT = "/portail/consultations/signaler"
COOKIE = "__Host-rempart-portail"
REFS = re.compile(r'name="consultation" value="([^"]+)"')


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        webauthn_rp_id="testserver",
        webauthn_origins=[PORTAL_BASE],
        trusted_proxies=PROXY,  # the robot comes from its own network
        webauthn_key_probation_hours=0,  # a key is established at once (strong sessions)
        **FAST_HASHING,
    )


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with portal_client(services) as test_client:
        yield test_client


def named(person: Person) -> str:
    return f"Camille {person.last_name.upper()}"


def spaced(nir: str) -> str:
    return f"{nir[:1]} {nir[1:3]} {nir[3:5]} {nir[5:7]} {nir[7:10]} {nir[10:13]} {nir[13:]}"


def entries(services: Services, event: str, account_id: str) -> list[AuditEvent]:
    with session_scope(services.sessions) as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.event == event, AuditEvent.account_id == account_id)
                .order_by(AuditEvent.ts_us)
            )
        )


def assert_no_nir(html: str, persons: list[Person]) -> None:
    for person in persons:
        assert person.nir.value not in html
        assert spaced(person.nir.value) not in html
        assert person.nir.value[:13] not in html


def earlier_login(client: TestClient, login: Login) -> str:
    """An API session on the previous TOTP step: the portal's login then takes the
    current one (a step serves once per account)."""
    return totp_session(client, login, ahead=-1)


def portal_as(client: TestClient, login: Login) -> None:
    """A password + TOTP session: it sees the names of its own lookups only."""
    client.cookies.clear()
    portal_login(client, login)


def strong_portal_as(client: TestClient, services: Services, login: Login, bearer: str) -> None:
    """A phishing-resistant portal session (password, then an established key, enrolled
    in the API session ``bearer``): it sees every name."""
    key = SoftAuthenticator.security_key(origin=PORTAL_BASE)
    register_key(client, services, login, key, bearer=bearer)
    client.cookies.clear()
    portal_login_with_key(client, login, key)


def test_my_lookups_by_name_and_outcome_not_anyone_elses_and_never_a_nir(
    client: TestClient, services: Services, people: list[Person], pharmacist: Login
) -> None:
    backfill(services.engine, services.settings.keys.pseudonym_key)
    other = make_login(services, "pharmacie.voisine", account_id="ph-voisine")
    mine = earlier_login(client, pharmacist)
    assert lookup(client, mine, people[0]).status_code == 200
    # The right NIR with a wrong birth date: not found, and the person stays unnamed here.
    wrong = Person(people[1].nir, date(1999, 9, 9), people[1].last_name)
    assert lookup(client, mine, wrong).status_code == 404
    malformed = client.post(
        "/api/v1/rights/lookup",
        json={"nir": "1 85 03 75 056", "birth_date": "1985-03-14"},
        headers={"Authorization": f"Bearer {mine}", **PHARMACY},
    )
    assert malformed.status_code in (400, 422), malformed.text
    theirs = earlier_login(client, other)
    assert lookup(client, theirs, people[2]).status_code == 200

    strong_portal_as(client, services, pharmacist, mine)
    page = client.get(HISTORY)
    assert page.status_code == 200, page.text
    assert "no-store" in page.headers["cache-control"]
    html = page.text
    assert "<h1>Mes consultations</h1>" in html
    assert f"{named(people[0])}, né en 1985" in html
    assert "données lues" in html
    assert "aucun assuré trouvé" in html
    assert "NIR mal formé" in html
    assert "Non affichée&nbsp;: rien n'a été lu" in html
    assert people[1].last_name.upper() not in html  # looked up with a wrong birth date
    assert people[2].last_name.upper() not in html  # another account's lookup
    assert "Adresse IP 203.0.113.20" in html
    assert "LogicielOfficine/5.2" in html
    assert_no_nir(html, people)
    assert "<caption>Consultations faites avec votre compte</caption>" in html
    assert 'action="/portail/consultations/signaler"' in html

    viewed = entries(services, "own_lookups_viewed", pharmacist.account_id)
    assert len(viewed) == 1
    assert viewed[0].reasons == "page:list,rows:3,names:all"
    assert viewed[0].subject == ""  # the trail names no person for a view

    # The other account sees its own lookup, not the pharmacist's.
    strong_portal_as(client, services, other, theirs)
    html = client.get(HISTORY).text
    assert named(people[2]) in html
    assert people[0].last_name.upper() not in html
    assert_no_nir(html, people)


def test_a_password_and_code_session_sees_its_own_names_only(
    client: TestClient, services: Services, people: list[Person], pharmacist: Login
) -> None:
    """A password and one relayed code open a session: the page must not hand its holder
    the names of everyone the practice read this week, past the guard."""
    backfill(services.engine, services.settings.keys.pseudonym_key)
    earlier = earlier_login(client, pharmacist)
    assert lookup(client, earlier, people[0]).status_code == 200

    portal_as(client, pharmacist)
    home = client.get("/portail/")
    mine = client.post(
        "/portail/consultation",
        data={
            "csrf": form_token(home.text),
            "nir": people[2].nir.value,
            "birth_date": people[2].birth_date.isoformat(),
        },
        headers=PHARMACY,  # from the practice's own network and software, as the other
        follow_redirects=False,
    )
    assert mine.status_code == 303, mine.text
    html = client.get(HISTORY).text
    assert named(people[2]) + "," in html  # read in this very session
    assert people[0].last_name.upper() not in html  # read in another session
    assert html.count("Nom masqué") == 1
    assert "Les noms des personnes consultées dans vos autres sessions sont masqués" in html
    assert html.count("données lues") == 2  # the lookups themselves stay visible
    assert_no_nir(html, people)
    viewed = entries(services, "own_lookups_viewed", pharmacist.account_id)
    assert [v.reasons for v in viewed] == ["page:list,rows:2,names:session"]
    # The confirmation page lists them the same way.
    report = client.get(REPORT).text
    assert people[0].last_name.upper() not in report
    assert named(people[2]) in report


def test_a_step_up_and_a_refusal_are_shown_for_what_they_were(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    _, strangers = build_town(services, accounts=("ph-lilas",))
    backfill(services.engine, services.settings.keys.pseudonym_key)
    robot = earlier_login(client, pharmacist)
    statuses = []
    for person in strangers:
        statuses.append(lookup(client, robot, person, ROBOT).status_code)
        if statuses[-1] == 403:
            break
    assert 401 in statuses, statuses
    assert statuses[-1] == 403, statuses  # denied: the guard suspended the account
    read = [p for p, s in zip(strangers, statuses, strict=False) if s == 200]
    stepped = [p for p, s in zip(strangers, statuses, strict=False) if s == 401]
    with session_scope(services.sessions) as session:
        services.auth.restore(session, pharmacist.account_id, operator="tests")

    strong_portal_as(client, services, pharmacist, totp_session(client, pharmacist))
    html = client.get(HISTORY).text
    assert "vérification demandée (clé de sécurité ou carte CPS)" in html
    assert "refusée : compte suspendu" in html
    assert "Programme (python-requests)" in html
    assert "Adresse IP 198.51.100.66" in html
    for person in read:
        assert named(person) + "," in html
    for person in stepped:
        assert named(person) + "," not in html  # refused before anything was read
    assert_no_nir(html, strangers)


def test_a_report_without_the_sessions_token_is_refused_and_changes_nothing(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    portal_as(client, pharmacist)
    for data in ({}, {"csrf": "0" * 64}):
        refused = client.post(REPORT, data=data, follow_redirects=False)
        assert refused.status_code == 403
        assert "Formulaire refusé" in refused.text
    cross_site = client.post(
        REPORT,
        data={"csrf": form_token(client.get(REPORT).text)},
        headers={"sec-fetch-site": "cross-site"},
        follow_redirects=False,
    )
    assert cross_site.status_code == 403
    with session_scope(services.sessions) as session:
        account = session.get(Account, pharmacist.account_id)
        assert account is not None
        assert account.status == "active"
        assert session.scalars(select(GuardAlert)).all() == []
        assert session.scalars(select(Incident)).all() == []


def test_it_was_not_me_suspends_alerts_and_opens_the_incident_draft_of_those_lookups(
    client: TestClient, services: Services, people: list[Person], pharmacist: Login
) -> None:
    key = services.settings.keys.pseudonym_key
    backfill(services.engine, key)
    other = make_login(services, "pharmacie.voisine", account_id="ph-voisine")
    token = earlier_login(client, pharmacist)
    assert lookup(client, token, people[0]).status_code == 200
    assert lookup(client, earlier_login(client, other), people[1]).status_code == 200
    assert lookup(client, token, people[2]).status_code == 200
    client.cookies.clear()

    portal_as(client, pharmacist)
    confirm = client.get(REPORT)
    assert confirm.status_code == 200, confirm.text
    assert "Votre compte est suspendu tout de suite" in confirm.text
    assert_no_nir(confirm.text, people)
    refs = REFS.findall(confirm.text)
    assert len(refs) == 2  # this account's two lookups, newest first
    oldest = refs[-1]
    cookie = client.cookies.get(COOKIE, domain="testserver.local")
    assert cookie
    done = client.post(
        REPORT,
        data={"csrf": form_token(confirm.text), "consultation": [oldest, "0-999999", "x"]},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/portail/consultations/signale"
    assert any(
        v.startswith(f"{COOKIE}=") and "Max-Age=0" in v
        for k, v in done.headers.multi_items()
        if k == "set-cookie"
    )
    page = client.get(done.headers["location"])
    assert page.status_code == 200
    assert "votre compte est suspendu" in page.text
    assert "Changez le mot de passe de votre messagerie" in page.text

    # Every session ended: the API token is refused as suspended.
    later = lookup(client, token, people[0])
    assert later.status_code == 403
    assert later.json()["error"] == "account_suspended"

    with session_scope(services.sessions) as session:
        account = session.get(Account, pharmacist.account_id)
        assert account is not None
        assert account.status == "suspended"
        alerts = session.scalars(select(GuardAlert)).all()
        assert [(a.account_id, a.reasons, a.decision, a.status) for a in alerts] == [
            (pharmacist.account_id, "reported_by_owner", "deny", "open")
        ]
        incidents = session.scalars(select(Incident)).all()
        assert len(incidents) == 1
        incident = incidents[0]
        assert incident.status == "open"  # a draft: not scoped yet
        assert incident.opened_by == f"professional:{pharmacist.account_id}"
        assert "Signalé par le professionnel depuis le portail" in incident.discovery
        assert f"alerte n° {alerts[0].alert_id}" in incident.discovery
        definition = json.loads(incident.definition)
        assert [a["account_id"] for a in definition["accounts"]] == [pharmacist.account_id]
        kinds = set(
            session.scalars(
                select(MailOutbox.kind).where(MailOutbox.account_id == pharmacist.account_id)
            )
        )
        assert {"account_suspended", "lookups_disowned"} <= kinds
        notices = set(
            session.scalars(
                select(AccountNotice.kind).where(AccountNotice.account_id == pharmacist.account_id)
            )
        )
        assert "lookups_disowned" in notices
    assert explain("reported_by_owner").known

    lookups = entries(services, "lookup", pharmacist.account_id)
    assert definition["accounts"][0]["since_us"] == lookups[0].ts_us
    summary = services.incidents.scope(
        incident.incident_id, LiveSource(services.audit_engine), operator="dpo"
    )
    assert summary.persons == 2
    with session_scope(services.sessions) as session:
        exposed = set(services.incidents.exposed_pseudonyms(session, incident.incident_id))
    assert exposed == {pseudonymize(people[0].nir, key), pseudonymize(people[2].nir, key)}

    reported = entries(services, "account_disowned_lookups", pharmacist.account_id)
    assert len(reported) == 1
    assert reported[0].reasons == (
        f"alert:{alerts[0].alert_id},incident:{incident.incident_id},lookups:1,"
        f"since_us:{lookups[0].ts_us}"
    )
    suspended = entries(services, "account_suspended", pharmacist.account_id)
    assert [e.reasons for e in suspended] == [f"professional:{pharmacist.account_id}"]

    # A second submission (the old cookie, a double click): the same page, nothing twice.
    client.cookies.set(COOKIE, cookie, domain="testserver.local")
    again = client.post(REPORT, data={"csrf": form_token(confirm.text)}, follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"] == "/portail/consultations/signale"
    with session_scope(services.sessions) as session:
        assert len(session.scalars(select(GuardAlert)).all()) == 1
        assert len(session.scalars(select(Incident)).all()) == 1
    assert len(entries(services, "account_disowned_lookups", pharmacist.account_id)) == 1


def test_nothing_ticked_reports_the_whole_window(
    client: TestClient, services: Services, people: list[Person], pharmacist: Login
) -> None:
    backfill(services.engine, services.settings.keys.pseudonym_key)
    token = earlier_login(client, pharmacist)
    for person in people:
        assert lookup(client, token, person).status_code == 200
    client.cookies.clear()
    portal_as(client, pharmacist)
    confirm = client.get(REPORT)
    done = client.post(REPORT, data={"csrf": form_token(confirm.text)}, follow_redirects=False)
    assert done.status_code == 303
    lookups = entries(services, "lookup", pharmacist.account_id)
    with session_scope(services.sessions) as session:
        incident = session.scalars(select(Incident)).one()
        definition = json.loads(incident.definition)
    assert definition["accounts"][0]["since_us"] == lookups[0].ts_us
    summary = services.incidents.scope(
        incident.incident_id, LiveSource(services.audit_engine), operator="dpo"
    )
    assert summary.persons == 3
    reported = entries(services, "account_disowned_lookups", pharmacist.account_id)
    assert ",lookups:0," in reported[0].reasons


def test_older_lookups_come_page_by_page(
    client: TestClient, services: Services, people: list[Person], pharmacist: Login
) -> None:
    backfill(services.engine, services.settings.keys.pseudonym_key)
    token = earlier_login(client, pharmacist)
    for person in people:
        assert lookup(client, token, person).status_code == 200
    first = own_lookups(
        services.audit_engine, services.engine, pharmacist.account_id, named_session=None, limit=2
    )
    assert [lookup.person.split(",")[0] for lookup in first.lookups] == [
        named(people[2]),
        named(people[1]),
    ]
    assert first.next_before is not None
    rest = own_lookups(
        services.audit_engine,
        services.engine,
        pharmacist.account_id,
        named_session=None,
        before_us=first.next_before,
        limit=2,
    )
    assert [lookup.person.split(",")[0] for lookup in rest.lookups] == [named(people[0])]
    assert rest.next_before is None
    # Named for the session that read them; masked for any other.
    elsewhere = own_lookups(
        services.audit_engine, services.engine, pharmacist.account_id, named_session="other"
    )
    assert [(lookup.person, lookup.masked) for lookup in elsewhere.lookups] == [("", True)] * 3

    strong_portal_as(client, services, pharmacist, token)
    html = client.get(HISTORY, params={"avant": str(first.next_before)}).text
    assert "Consultations faites avec votre compte (suite)" in html
    assert named(people[0]) in html
    assert named(people[1]) not in html
    assert named(people[2]) not in html
    assert 'href="/portail/consultations">Revenir aux plus récentes' in html
    viewed = entries(services, "own_lookups_viewed", pharmacist.account_id)
    assert viewed[-1].reasons == f"page:list,rows:1,names:all,before_us:{first.next_before}"
    # A cursor that is not a number is ignored: the first page.
    assert named(people[2]) in client.get(HISTORY, params={"avant": "hier"}).text
