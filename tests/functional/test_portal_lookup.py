"""The portal's lookup pages through the real app, on SQLite and on PostgreSQL: the form,
the card shown once behind a redirect (no NIR in any address), the French refusals, the
forged posts, the guard's step-up answered with a security key (the lookup resumes), a
young key told apart, and the guard's suspension."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from rempart.audit.events import Origin
from rempart.audit.models import AuditEvent
from rempart.auth.service import Principal
from rempart.config import Settings, load_settings
from rempart.devtools.soft_authenticator import SoftAuthenticator
from rempart.portal.lookup_flow import NothingToResume, resume_pending, take_result
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Account, AuthChallenge, WebAuthnCredential
from tests.conftest import FAST_HASHING
from tests.functional.conftest import Login, Person, totp_code
from tests.functional.portal_helpers import (
    PORTAL_BASE,
    form_token,
    portal_client,
    portal_login,
    register_key,
    script_call,
)
from tests.functional.test_guard_inline import town

__all__ = ["town"]  # the fixture, imported for these tests

SESSION_COOKIE = "__Host-rempart-portail"
RESULT_COOKIE = "__Host-rempart-portail-resultat"
PENDING_COOKIE = "__Host-rempart-portail-attente"
RESULT_PATH = "/portail/consultation/resultat"
NOT_FOUND = "Aucun assuré ne correspond à ce NIR et à cette date de naissance."
GONE = "Ce résultat n'est plus affiché : refaites la consultation."


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        webauthn_rp_id="testserver",
        webauthn_origins=[PORTAL_BASE],
        webauthn_key_probation_hours=0,
        **FAST_HASHING,
    )


@contextmanager
def logged_in(services: Services, login: Login) -> Iterator[tuple[TestClient, list[str]]]:
    """A portal session, and every URL the client asks for (the addresses a browser's
    history and a proxy's log would hold)."""
    with portal_client(services) as client:
        urls: list[str] = []
        client.event_hooks["request"].append(lambda request: urls.append(str(request.url)))
        portal_login(client, login)
        yield client, urls


def spaced(person: Person) -> str:
    nir = person.nir.value
    return f"{nir[0]} {nir[1:3]} {nir[3:5]} {nir[5:7]} {nir[7:10]} {nir[10:13]} {nir[13:]}"


def ask(client: TestClient, nir: str, birth_date: str, **headers: str) -> httpx.Response:
    """The form, filled in and posted as the browser does (its token read from the page)."""
    token = form_token(client.get("/portail/").text)
    response: httpx.Response = client.post(
        "/portail/consultation",
        data={"csrf": token, "nir": nir, "birth_date": birth_date},
        headers=headers,
        follow_redirects=False,
    )
    return response


def set_cookie_headers(response: httpx.Response) -> list[str]:
    return [v for k, v in response.headers.multi_items() if k == "set-cookie"]


def lookups(services: Services, account_id: str) -> list[AuditEvent]:
    with session_scope(services.sessions) as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.event == "lookup", AuditEvent.account_id == account_id)
                .order_by(AuditEvent.ts_us)
            )
        )


def card(page: str) -> dict[str, str]:
    return dict(re.findall(r"<dt>([^<]+)</dt>\s*<dd>([^<]*)</dd>", html.unescape(page)))


def said(response: httpx.Response) -> str:
    """The page's text as read (entities decoded)."""
    return html.unescape(response.text)


def test_the_form_is_the_portals_home(services: Services, pharmacist: Login) -> None:
    with logged_in(services, pharmacist) as (client, _):
        page = client.get("/portail/")
    assert page.status_code == 200
    assert '<label for="nir">Numéro de sécurité sociale (NIR)</label>' in page.text
    nir_input = re.search(r'<input type="text" id="nir"[^>]*>', page.text)
    assert nir_input is not None
    assert 'autocomplete="off"' in nir_input.group(0)
    assert 'inputmode="numeric"' in nir_input.group(0)
    assert '<label for="birth_date">Date de naissance</label>' in page.text
    assert '<input type="date" id="birth_date" name="birth_date"' in page.text
    assert '<form method="post" action="/portail/consultation"' in page.text
    assert ">Consulter</button>" in page.text


def test_a_lookup_shows_the_card_once_and_never_puts_the_nir_in_an_address(
    services: Services, people: list[Person], pharmacist: Login
) -> None:
    dupont, santoni = people[0], people[1]
    with logged_in(services, pharmacist) as (client, urls):
        posted = ask(client, spaced(dupont), "1985-03-14")
        assert posted.status_code == 303, posted.text
        assert posted.headers["location"] == RESULT_PATH
        kept = next(c for c in set_cookie_headers(posted) if c.startswith(f"{RESULT_COOKIE}="))
        for attribute in ("secure", "httponly", "samesite=strict", "path=/", "max-age=120"):
            assert attribute in kept.lower()

        shown = client.get(RESULT_PATH)
        assert shown.status_code == 200
        assert card(shown.text) == {
            "Nom": "DUPONT",
            "Prénom": "Camille",
            "Date de naissance": "14/03/1985",
            "Sexe": "Homme",
            "Numéro de sécurité sociale (NIR)": spaced(dupont),
            "Médecin traitant": "Dr Claire Martin (RPPS 10003456789)",
            "Complémentaire santé solidaire (C2S)": "Non",
            "Aide médicale de l'État (AME)": "Non",
            "Affection de longue durée, prise en charge à 100 %": "Oui",
        }
        assert "no-store" in shown.headers["cache-control"]
        # Nothing of the person in the title either (a browser's history keeps titles).
        title = re.search(r"<title>([^<]*)</title>", said(shown))
        assert title is not None
        assert "Dupont" not in title.group(1).title()
        assert client.cookies.get(RESULT_COOKIE) is None

        # A reload or the back button: the card is gone, and says so.
        again = client.get(RESULT_PATH)
        assert again.status_code == 410
        assert GONE in said(again)
        assert "DUPONT" not in again.text

        # Nobody's treating doctor, written out.
        other = ask(client, spaced(santoni), "1955-08-02")
        assert other.status_code == 303
        assert card(client.get(RESULT_PATH).text)["Médecin traitant"] == (
            "Aucun médecin traitant déclaré"
        )
    for url in urls:
        for person in people:
            assert person.nir.value not in url.replace("%20", "").replace("+", ""), url
    entries = lookups(services, pharmacist.account_id)
    assert [(e.channel, e.outcome, e.found) for e in entries] == [("portal", "ok", 1)] * 2
    # The card is not kept once shown (the store holds nothing of it).
    with session_scope(services.sessions) as session:
        assert (
            session.scalars(
                select(AuthChallenge).where(AuthChallenge.purpose == "portal-result")
            ).all()
            == []
        )


def test_a_card_is_only_for_the_session_that_asked(
    services: Services, people: list[Person], pharmacist: Login
) -> None:
    with logged_in(services, pharmacist) as (client, _):
        assert ask(client, people[0].nir.value, "1985-03-14").status_code == 303
        handle = client.cookies.get(RESULT_COOKIE)
        assert handle
        with portal_client(services) as other:
            # Another session of the same account (a second login, on another computer).
            with session_scope(services.sessions) as session:
                issued = services.auth.complete_login(
                    session,
                    account_id=pharmacist.account_id,
                    acr="password+totp",
                    origin=Origin(client_ip="127.0.0.1", user_agent="testclient"),
                    method="totp",
                )
            other.cookies.set(SESSION_COOKIE, issued.access_token, domain="testserver.local")
            other.cookies.set(RESULT_COOKIE, handle, domain="testserver.local")
            assert other.get("/portail/").status_code == 200
            stolen = other.get(RESULT_PATH)
            assert stolen.status_code == 410
            assert "DUPONT" not in stolen.text
        # Single use: the attempt spent it.
        assert client.get(RESULT_PATH).status_code == 410


def test_a_malformed_nir_says_what_is_wrong_and_keeps_what_was_typed(
    services: Services, people: list[Person], pharmacist: Login
) -> None:
    nir = people[0].nir.value
    wrong_key = nir[:13] + f"{(int(nir[13:]) % 97) + 1:02d}"
    with logged_in(services, pharmacist) as (client, _):
        refused = ask(client, wrong_key, "1985-03-14")
        assert refused.status_code == 422
        assert 'role="alert"' in said(refused)
        assert "La clé du NIR (les 2 derniers chiffres) ne correspond pas au numéro" in (
            said(refused)
        )
        assert f'value="{wrong_key}"' in refused.text  # to correct the typo
        assert 'value="1985-03-14"' in said(refused)
        assert 'aria-invalid="true"' in said(refused)
        short = ask(client, nir[:12], "1985-03-14")
        assert short.status_code == 422
        assert "Le NIR compte 15 caractères" in short.text
        letters = ask(client, "1 85 03 75 O56 001 23", "1985-03-14")
        assert letters.status_code == 422
        assert "Le NIR ne contient que des chiffres" in letters.text
        bad_date = ask(client, nir, "1985-02-30")
        assert bad_date.status_code == 422
        assert "La date de naissance n'est pas valide" in said(bad_date)
    assert {e.outcome for e in lookups(services, pharmacist.account_id)} == {
        "invalid_nir",
        "invalid_birth_date",
    }


def test_an_unknown_person_and_a_wrong_birth_date_get_the_same_page(
    services: Services, people: list[Person], pharmacist: Login
) -> None:
    known = people[0].nir.value
    unknown = people[2].nir.value[:7] + "999" + people[2].nir.value[10:13]
    unknown += f"{97 - int(unknown) % 97:02d}"
    with logged_in(services, pharmacist) as (client, _):
        wrong_date = ask(client, known, "1985-03-15")
        nobody = ask(client, unknown, "1985-03-15")
    assert wrong_date.status_code == nobody.status_code == 404
    assert NOT_FOUND in said(wrong_date)
    assert wrong_date.text.replace(known, "NIR") == nobody.text.replace(unknown, "NIR")
    assert [e.outcome for e in lookups(services, pharmacist.account_id)] == ["not_found"] * 2


def test_a_forged_lookup_is_refused_and_reads_nothing(
    services: Services, people: list[Person], pharmacist: Login
) -> None:
    person = people[0]
    fields = {"nir": person.nir.value, "birth_date": "1985-03-14"}
    with logged_in(services, pharmacist) as (client, _):
        no_token = client.post("/portail/consultation", data=fields, follow_redirects=False)
        assert no_token.status_code == 403
        assert "Formulaire refusé" in no_token.text
        token = form_token(client.get("/portail/").text)
        cross_site = client.post(
            "/portail/consultation",
            data={"csrf": token, **fields},
            headers={"Sec-Fetch-Site": "cross-site"},
            follow_redirects=False,
        )
        assert cross_site.status_code == 403
        wrong_token = client.post(
            "/portail/consultation", data={"csrf": "0" * 64, **fields}, follow_redirects=False
        )
        assert wrong_token.status_code == 403
        # The same token from the portal's own page passes.
        assert ask(client, **fields, **{"Sec-Fetch-Site": "same-origin"}).status_code == 303
    assert len(lookups(services, pharmacist.account_id)) == 1
    # Without a session: the login page, nothing read.
    with portal_client(services) as stranger:
        anonymous = stranger.post("/portail/consultation", data=fields, follow_redirects=False)
        assert anonymous.status_code == 303
        assert anonymous.headers["location"] == "/portail/connexion"
    assert len(lookups(services, pharmacist.account_id)) == 1


# -- the guard's step-up -------------------------------------------------------------------------


def with_key(services: Services, login: Login) -> SoftAuthenticator:
    """A security key registered through the API with the code the insurer posts (a TOTP
    code of the previous step: the portal's login then uses the current one)."""
    key = SoftAuthenticator.security_key(origin=PORTAL_BASE)
    with portal_client(services) as client:
        first = client.post(
            "/api/v1/auth/login", json={"login": login.login, "password": login.password}
        )
        second = client.post(
            "/api/v1/auth/mfa/totp",
            json={"mfa_token": first.json()["mfa_token"], "code": totp_code(login, -1)},
        )
        assert second.status_code == 200, second.text
        register_key(client, services, login, key, bearer=second.json()["access_token"])
    return key


def until_stepped_up(client: TestClient, strangers: list[Person]) -> tuple[httpx.Response, int]:
    """Strangers looked up until the guard asks for a step-up: its page, and the index of
    the stranger whose lookup waits."""
    for i, person in enumerate(strangers):
        response = ask(client, person.nir.value, person.birth_date.isoformat())
        if response.status_code != 303:
            assert response.status_code == 401, response.text
            return response, i
        assert client.get(RESULT_PATH).status_code == 200
    pytest.fail("the guard never asked for a step-up")


def key_answer(
    client: TestClient, token: str, key: SoftAuthenticator, *, forged: bool = False
) -> Any:
    """The key ceremony as the portal's script runs it; ``forged``: a signature that is
    not the key's (a relayed or tampered answer)."""
    options = script_call(client, "/portail/verification/cle/options", token, {})
    assert options.status_code == 200, options.text
    credential = key.get(options.json()["options"])
    if forged:
        signature = credential["response"]["signature"]
        credential["response"]["signature"] = signature[:-8] + (
            "AAAAAAAA" if not signature.endswith("AAAAAAAA") else "BBBBBBBB"
        )
    return script_call(
        client,
        "/portail/verification/cle",
        token,
        {"handle": options.json()["handle"], "credential": credential},
    )


def test_the_guards_step_up_asks_for_the_key_and_the_lookup_resumes(
    services: Services, pharmacist: Login, town: tuple[list[Person], list[Person]]
) -> None:
    _, strangers = town
    key = with_key(services, pharmacist)
    with logged_in(services, pharmacist) as (client, urls):
        page, waiting = until_stepped_up(client, strangers)
        assert waiting <= 3
        assert "Vérification supplémentaire" in page.text
        assert "Par sécurité, confirmez que c'est bien vous" in said(page)
        assert 'data-webauthn="get"' in page.text
        assert 'data-options="/portail/verification/cle/options"' in page.text
        assert 'data-finish="/portail/verification/cle"' in page.text
        assert "Utiliser ma clé de sécurité" in page.text
        pending = next(c for c in set_cookie_headers(page) if c.startswith(f"{PENDING_COOKIE}="))
        for attribute in ("secure", "httponly", "samesite=strict", "path=/", "max-age=300"):
            assert attribute in pending.lower()
        token = form_token(page.text.replace('data-csrf="', 'name="csrf" value="'))
        old_session = client.cookies.get(SESSION_COOKIE)

        # An answer that is not the key's: refused, said in French, the lookup still waits.
        refused = key_answer(client, token, key, forged=True)
        assert refused.status_code == 401
        assert refused.json() == {
            "error": "webauthn_invalid",
            "message": "La clé n'a pas été reconnue. Utilisez une clé enregistrée sur ce compte.",
        }
        assert client.cookies.get(SESSION_COOKIE) == old_session
        assert client.cookies.get(PENDING_COOKIE)
        with session_scope(services.sessions) as session:
            failed = session.scalars(
                select(AuditEvent).where(AuditEvent.event == "step_up_failed")
            ).all()
        assert [(e.outcome, e.reasons) for e in failed] == [("webauthn_invalid", "webauthn")]
        # A script call without the token, or from another site: refused.
        assert script_call(client, "/portail/verification/cle", "", {}).status_code == 403
        forged = client.post(
            "/portail/verification/cle/options",
            content="{}",
            headers={
                "content-type": "application/json",
                "x-csrf-token": token,
                "sec-fetch-site": "cross-site",
            },
        )
        assert forged.status_code == 403

        # The account's key: a new session, and the lookup that waited is answered.
        answered = key_answer(client, token, key)
        assert answered.status_code == 200, answered.text
        assert answered.json() == {"next": RESULT_PATH}
        assert client.cookies.get(SESSION_COOKIE) not in (None, old_session)
        assert client.cookies.get(PENDING_COOKIE) is None
        shown = client.get(RESULT_PATH)
        assert shown.status_code == 200
        assert card(shown.text)["Nom"] == strangers[waiting].last_name.upper()
        # The old session has ended.
        assert (
            client.get(
                "/api/v1/auth/sessions", headers={"Authorization": f"Bearer {old_session}"}
            ).status_code
            == 401
        )
    for url in urls:
        for person in strangers:
            assert person.nir.value not in url, url
    entries = lookups(services, pharmacist.account_id)
    assert [e.decision for e in entries[-2:]] == ["step_up", "step_up"]
    assert entries[-2].outcome == "insufficient_user_authentication"
    assert entries[-1].outcome == "ok"
    assert entries[-1].reasons.split(",")[0] == "step_up_passed"
    assert entries[-1].acr == "webauthn"
    assert entries[-1].channel == "portal"


def test_a_young_key_is_told_apart_and_the_lookup_keeps_waiting(
    services: Services, pharmacist: Login, town: tuple[list[Person], list[Person]]
) -> None:
    _, strangers = town
    key = with_key(services, pharmacist)
    with session_scope(services.sessions) as session:
        # As if enrolled from a network new to the account: never an established key.
        session.execute(update(WebAuthnCredential).values(new_network=True))
    young = "ne peut pas encore servir à cette vérification"
    with logged_in(services, pharmacist) as (client, _):
        page, _ = until_stepped_up(client, strangers)
        token = form_token(page.text.replace('data-csrf="', 'name="csrf" value="'))
        handle = client.cookies.get(PENDING_COOKIE)
        answered = key_answer(client, token, key)
        assert answered.status_code == 401, answered.text
        assert answered.json()["error"] == "insufficient_user_authentication"
        assert young in answered.json()["message"]
        assert "carte CPS" in answered.json()["message"]
        # The key's session replaced the old one; the lookup waits for it, same handle.
        assert client.cookies.get(PENDING_COOKIE) == handle
        again = key_answer(client, form_token(client.get("/portail/").text), key)
        assert again.status_code == 401
        assert young in again.json()["message"]


def test_the_guards_suspension_shows_who_to_call_and_ends_the_session(
    services: Services, pharmacist: Login, town: tuple[list[Person], list[Person]]
) -> None:
    _, strangers = town
    with logged_in(services, pharmacist) as (client, _):
        statuses = []
        for person in strangers:
            response = ask(client, person.nir.value, person.birth_date.isoformat())
            statuses.append(response.status_code)
            if response.status_code == 303:
                client.get(RESULT_PATH)
            if response.status_code == 403:
                break
        assert statuses[-1] == 403, statuses
        assert 401 in statuses, statuses
        assert "Votre compte est suspendu" in said(response)
        assert services.settings.security_contact in said(response)
        cleared = next(
            c for c in set_cookie_headers(response) if c.startswith(f"{SESSION_COOKIE}=")
        )
        assert "max-age=0" in cleared.lower()
        assert client.cookies.get(SESSION_COOKIE) is None
    with session_scope(services.sessions) as session:
        status = session.scalar(
            select(Account.status).where(Account.account_id == pharmacist.account_id)
        )
    assert status == "suspended"


def test_a_step_up_after_the_lookup_expired_says_so_and_keeps_the_new_session(
    services: Services, pharmacist: Login, town: tuple[list[Person], list[Person]]
) -> None:
    _, strangers = town
    key = with_key(services, pharmacist)
    with logged_in(services, pharmacist) as (client, _):
        page, _ = until_stepped_up(client, strangers)
        token = form_token(page.text.replace('data-csrf="', 'name="csrf" value="'))
        with session_scope(services.sessions) as session:  # five minutes later
            session.execute(
                update(AuthChallenge)
                .where(AuthChallenge.purpose == "portal-pending")
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        old_session = client.cookies.get(SESSION_COOKIE)
        answered = key_answer(client, token, key)
        assert answered.status_code == 200, answered.text
        assert answered.json() == {"next": "/portail/?message=attente-expiree"}
        assert client.cookies.get(SESSION_COOKIE) not in (None, old_session)
        assert client.cookies.get(PENDING_COOKIE) is None
        home = client.get(answered.json()["next"])
        assert home.status_code == 200
        assert "La consultation en attente a expiré : refaites-la." in said(home)


def test_resume_pending_serves_the_card_step_up(
    services: Services, pharmacist: Login, town: tuple[list[Person], list[Person]]
) -> None:
    """What the Pro Santé Connect callback calls after a CPS login that replaced the
    session the lookup waited in: the lookup is done as the card's session, once."""
    _, strangers = town
    with logged_in(services, pharmacist) as (client, _):
        _, waiting = until_stepped_up(client, strangers)
        first = client.cookies.get(PENDING_COOKIE)
        # A second lookup stepped up in the same session: another handle.
        other = strangers[waiting + 1]
        assert ask(client, other.nir.value, other.birth_date.isoformat()).status_code == 401
        second = client.cookies.get(PENDING_COOKIE)
        assert first
        assert second
        assert first != second
        token = client.cookies.get(SESSION_COOKIE)
    origin = Origin(client_ip="127.0.0.1", user_agent="testclient")
    with session_scope(services.sessions) as session:
        waited_in = services.auth.authenticate(session, token).session_id

    def card_login(replaces: str | None) -> Principal:
        with session_scope(services.sessions) as session:
            issued = services.auth.complete_login(
                session,
                account_id=pharmacist.account_id,
                acr="cps",
                origin=origin,
                method="psc",
                replaces_session_id=replaces,
            )
        with session_scope(services.sessions) as session:
            return services.auth.authenticate(session, issued.access_token)

    # A card login that did not replace the waiting session cannot take its lookup (and
    # the attempt spends the handle).
    unrelated = card_login(None)
    for replaced in (unrelated.session_id, waited_in):
        with session_scope(services.sessions) as session, pytest.raises(NothingToResume):
            resume_pending(
                services, session, unrelated, first, origin, replaced_session_id=replaced
            )
    stepped_up = card_login(waited_in)
    with session_scope(services.sessions) as session:
        result = resume_pending(
            services, session, stepped_up, second, origin, replaced_session_id=waited_in
        )
    with session_scope(services.sessions) as session:
        shown = take_result(services, session, stepped_up, result)
        assert shown is not None
        assert shown.last_name == other.last_name.upper()
        assert take_result(services, session, stepped_up, result) is None
    with session_scope(services.sessions) as session, pytest.raises(NothingToResume):
        resume_pending(services, session, stepped_up, second, origin, replaced_session_id=waited_in)
    entries = lookups(services, pharmacist.account_id)
    assert (entries[-1].acr, entries[-1].outcome) == ("cps", "ok")
    assert entries[-1].reasons.split(",")[0] == "step_up_passed"
