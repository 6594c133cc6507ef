"""The portal's security page through the real app: sessions (listed with their network
and device, one or all ended), the password, recovery codes, keys and passkeys (added
with a software authenticator, renamed, removed), each with the proof the API asks for,
each recorded and told to the professional; forged forms refused."""

from __future__ import annotations

import html
import re
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
from rempart.portal.shown_once import keep_codes, take_codes
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import AuthChallenge, MailOutbox, WebAuthnCredential
from tests.conftest import FAST_HASHING
from tests.functional.conftest import PROXY, Login, totp_code
from tests.functional.portal_helpers import (
    PORTAL_BASE,
    form_token,
    portal_client,
    portal_login,
    script_call,
)

COOKIE = "__Host-rempart-portail"
SECURITY = "/portail/securite"
OFFICE = {
    "X-Forwarded-For": "203.0.113.7",
    "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 "
    "Firefox/128.0",
}
PHONE = {
    "X-Forwarded-For": "198.51.100.23",
    "User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
}
RECOVERY_CODE = re.compile(r"<li>([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})</li>")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # The keys' probation is the shipped one (a day): a young key is played here.
    return load_settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        trusted_proxies=PROXY,
        webauthn_rp_id="testserver",
        webauthn_origins=[PORTAL_BASE],
        **FAST_HASHING,
    )


# -- helpers -------------------------------------------------------------------------------


def events(services: Services, name: str) -> list[AuditEvent]:
    with session_scope(services.sessions) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def mails(services: Services, kind: str) -> int:
    with session_scope(services.sessions) as session:
        return len(session.scalars(select(MailOutbox.kind).where(MailOutbox.kind == kind)).all())


def api_login(client: TestClient, login: Login, headers: dict[str, str], *, step: int) -> str:
    """A session opened through the API (practice software, another browser): password
    then the TOTP code of time step ``step`` (a code serves once per account)."""
    first = client.post(
        "/api/v1/auth/login",
        json={"login": login.login, "password": login.password},
        headers=headers,
    )
    assert first.status_code == 200, first.text
    second = client.post(
        "/api/v1/auth/mfa/totp",
        json={"mfa_token": first.json()["mfa_token"], "code": totp_code(login, step)},
        headers=headers,
    )
    assert second.status_code == 200, second.text
    token: str = second.json()["access_token"]
    return token


def session_elsewhere(services: Services, login: Login, headers: dict[str, str]) -> str:
    """A session already open on another device (its TOTP code spent long ago: a code
    serves once per account, and a test has only so many time steps)."""
    with session_scope(services.sessions) as session:
        issued = services.auth.complete_login(
            session,
            account_id=login.account_id,
            acr="password+totp",
            origin=Origin(
                login=login.login,
                client_ip=headers["X-Forwarded-For"],
                user_agent=headers["User-Agent"],
            ),
            method="totp",
        )
    return issued.access_token


def api_works(client: TestClient, token: str) -> bool:
    answer = client.get("/api/v1/auth/sessions", headers={"Authorization": f"Bearer {token}"})
    works: bool = answer.status_code == 200
    return works


def post(client: TestClient, path: str, data: dict[str, str] | None = None) -> httpx.Response:
    """A form of the security page, with the session's token read from the page."""
    token = form_token(client.get(SECURITY).text)
    answer: httpx.Response = client.post(
        path, data={"csrf": token, **(data or {})}, follow_redirects=False
    )
    return answer


def key_form_token(page: str) -> str:
    found = re.search(r'data-webauthn="create"[^>]*data-csrf="([^"]+)"', page)
    assert found, "the page has no key form"
    return found.group(1)


def add_key(
    client: TestClient, key: SoftAuthenticator, label: str, enrolment_code: str = ""
) -> Any:
    """What the page's script does: options, the browser's ceremony, the answer."""
    token = key_form_token(client.get(SECURITY).text)
    fields = {"label": label, "enrolment_code": enrolment_code}
    options = script_call(client, f"{SECURITY}/cles/options", token, fields)
    if options.status_code != 200:
        return options
    body = options.json()
    return script_call(
        client,
        f"{SECURITY}/cles",
        token,
        {**fields, "handle": body["handle"], "credential": key.create(body["options"])},
    )


def portal_key_login(client: TestClient, login: Login, key: SoftAuthenticator) -> None:
    """Password, then the key, through the portal's login pages."""
    page = client.get("/portail/connexion")
    first = client.post(
        "/portail/connexion",
        data={"csrf": form_token(page.text), "login": login.login, "password": login.password},
        follow_redirects=False,
    )
    assert first.status_code == 303, first.text
    factor = client.get(first.headers["location"])
    token = factor.text.split('data-csrf="')[1].split('"')[0]
    options = script_call(client, "/portail/connexion/cle/options", token, {})
    assert options.status_code == 200, options.text
    done = script_call(
        client,
        "/portail/connexion/cle",
        token,
        {"handle": options.json()["handle"], "credential": key.get(options.json()["options"])},
    )
    assert done.status_code == 200, done.text


def portal_recovery_login(client: TestClient, login: Login, code: str) -> None:
    """Password, then a recovery code, through the portal's login pages."""
    page = client.get("/portail/connexion")
    first = client.post(
        "/portail/connexion",
        data={"csrf": form_token(page.text), "login": login.login, "password": login.password},
        follow_redirects=False,
    )
    factor = client.get(first.headers["location"])
    done = client.post(
        "/portail/connexion/secours",
        data={"csrf": form_token(factor.text), "code": code},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text


def confirm_with_key(client: TestClient, key: SoftAuthenticator) -> Any:
    """What the page's script does with the "Confirmer avec ma clé" form."""
    page = client.get(SECURITY).text
    found = re.search(r'data-webauthn="get"[^>]*data-csrf="([^"]+)"', page)
    assert found, "the page offers no confirmation with a key"
    options = script_call(client, f"{SECURITY}/confirmation/options", found.group(1), {})
    assert options.status_code == 200, options.text
    body = options.json()
    return script_call(
        client,
        f"{SECURITY}/confirmation",
        found.group(1),
        {"handle": body["handle"], "credential": key.get(body["options"])},
    )


def posted_code(services: Services, login: Login) -> str:
    with session_scope(services.sessions) as session:
        return services.recovery.issue_enrolment_code(session, login.account_id, operator="tests")


def said(response: httpx.Response) -> str:
    """A page as read (entities such as the apostrophe's decoded)."""
    return html.unescape(response.text)


def section(page: str, anchor: str) -> str:
    """The text of one section of the security page, as read."""
    page = html.unescape(page)
    start = page.index(f'<section aria-labelledby="{anchor}">')
    return page[start : page.index("</section>", start)]


# -- sessions ------------------------------------------------------------------------------


def test_sessions_are_listed_with_network_and_device_and_another_one_can_be_ended(
    services: Services, pharmacist: Login
) -> None:
    with portal_client(services) as client:
        client.headers.update(OFFICE)
        portal_login(client, pharmacist)
        phone = api_login(client, pharmacist, PHONE, step=1)

        page = client.get(SECURITY)
        assert page.status_code == 200
        sessions = section(page.text, "sessions")
        assert "Sessions ouvertes (2)" in sessions
        for seen in (
            "Firefox 128 sur Windows",
            "adresse IP 203.0.113.7",
            "Safari 17 sur iPhone",
            "adresse IP 198.51.100.23",
            "cette session",
        ):
            assert seen in sessions
        # Only the other session has a button, naming it by a reference, not its id.
        refs = re.findall(r'name="session" value="([^"]+)"', sessions)
        assert len(refs) == 1
        with session_scope(services.sessions) as session:
            ids = session.scalars(select(AuditEvent.session_id)).all()
        assert not any(ref in (sid or "") for ref in refs for sid in ids)

        ended = post(client, f"{SECURITY}/sessions/fermer", {"session": refs[0]})
        assert ended.status_code == 303
        assert ended.headers["location"] == f"{SECURITY}?fait=session-fermee"
        assert "La session est fermée." in client.get(ended.headers["location"]).text
        assert not api_works(client, phone)
        assert "Sessions ouvertes (1)" in client.get(SECURITY).text

        # The same reference again: already ended, said so; nothing more recorded.
        again = post(client, f"{SECURITY}/sessions/fermer", {"session": refs[0]})
        assert again.status_code == 409
        assert "Cette session est déjà fermée." in said(again)
    revoked = events(services, "session_revoked")
    assert [(e.account_id, e.client_ip) for e in revoked] == [
        (pharmacist.account_id, "203.0.113.7")
    ]
    assert mails(services, "session_revoked") == 1


def test_ending_every_session_logs_out_here_and_everywhere(
    services: Services, pharmacist: Login
) -> None:
    with portal_client(services) as client:
        client.headers.update(OFFICE)
        portal_login(client, pharmacist)
        phone = api_login(client, pharmacist, PHONE, step=1)
        out = post(client, f"{SECURITY}/sessions/fermer-toutes")
        assert out.status_code == 303
        assert out.headers["location"] == "/portail/connexion?message=sessions-fermees"
        assert any(
            v.startswith(f'{COOKIE}=""') for k, v in out.headers.multi_items() if k == "set-cookie"
        )
        assert "Toutes vos sessions sont fermées" in client.get(out.headers["location"]).text
        assert not api_works(client, phone)
        back = client.get(SECURITY, follow_redirects=False)
        assert back.status_code == 303
        assert back.headers["location"] == "/portail/connexion"
    assert [e.reasons for e in events(services, "sessions_revoked")] == ["count:2"]
    assert mails(services, "sessions_revoked") == 1


# -- password ------------------------------------------------------------------------------


def test_changing_the_password_needs_the_current_one_and_a_code_and_ends_every_session(
    services: Services, pharmacist: Login
) -> None:
    new = "une phrase de passe toute neuve pour l'officine"
    with portal_client(services) as client:
        portal_login(client, pharmacist)
        phone = session_elsewhere(services, pharmacist, PHONE)
        page = client.get(SECURITY).text
        assert 'name="code"' in section(page, "mot-de-passe")
        form = {"current_password": pharmacist.password, "new_password": new}

        mismatch = post(client, f"{SECURITY}/mot-de-passe", {**form, "new_password_confirm": "x"})
        assert mismatch.status_code == 422
        assert "Les deux saisies du nouveau mot de passe sont différentes." in said(mismatch)
        assert "<title>Erreur" in said(mismatch)
        assert 'role="alert"' in section(mismatch.text, "mot-de-passe")

        wrong = post(
            client,
            f"{SECURITY}/mot-de-passe",
            {**form, "current_password": "pas le bon", "new_password_confirm": new, "code": ""},
        )
        assert wrong.status_code == 401
        assert "Le mot de passe actuel est incorrect." in said(wrong)

        no_code = post(client, f"{SECURITY}/mot-de-passe", {**form, "new_password_confirm": new})
        assert no_code.status_code == 401
        assert "Saisissez le code à 6 chiffres" in said(no_code)
        assert api_works(client, phone)  # nothing changed yet

        done = post(
            client,
            f"{SECURITY}/mot-de-passe",
            {**form, "new_password_confirm": new, "code": totp_code(pharmacist, 1)},
        )
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/portail/connexion?message=mot-de-passe-change"
        assert not api_works(client, phone)
        assert client.get(SECURITY, follow_redirects=False).status_code == 303
        old = client.post(
            "/api/v1/auth/login", json={"login": pharmacist.login, "password": pharmacist.password}
        )
        assert old.status_code == 401
        renewed = client.post(
            "/api/v1/auth/login", json={"login": pharmacist.login, "password": new}
        )
        assert renewed.status_code == 200
    assert [e.outcome for e in events(services, "password_change_failed")] == ["refused"]
    assert len(events(services, "password_changed")) == 1
    assert mails(services, "password_changed") == 1


# -- recovery codes ------------------------------------------------------------------------


def test_recovery_codes_need_the_posted_code_are_shown_once_and_log_in(
    services: Services, pharmacist: Login
) -> None:
    with portal_client(services) as client:
        portal_login(client, pharmacist)
        codes_section = section(client.get(SECURITY).text, "codes")
        assert "Code d'enrôlement reçu par courrier" in codes_section

        refused = post(client, f"{SECURITY}/codes")
        assert refused.status_code == 401
        assert "Pour créer des codes de secours, saisissez le code" in said(refused)
        wrong = post(client, f"{SECURITY}/codes", {"enrolment_code": "ABCD-EFGH-JKMN-PQRS"})
        assert wrong.status_code == 401
        assert "Code d'enrôlement incorrect ou déjà utilisé." in said(wrong)

        made = post(
            client, f"{SECURITY}/codes", {"enrolment_code": posted_code(services, pharmacist)}
        )
        assert made.status_code == 303
        assert made.headers["location"] == f"{SECURITY}/codes"
        with session_scope(services.sessions) as session:
            kept = session.scalars(
                select(AuthChallenge.payload).where(
                    AuthChallenge.purpose == "portal_recovery_codes"
                )
            ).all()
        assert len(kept) == 1

        shown = client.get(made.headers["location"])
        assert shown.status_code == 200
        assert shown.headers["cache-control"] == "no-store"
        codes = RECOVERY_CODE.findall(shown.text)
        assert len(codes) == services.settings.recovery_code_count
        assert "Ces codes ne seront plus jamais affichés." in said(shown)
        assert "Les codes créés auparavant ne fonctionnent plus." in said(shown)
        # Kept sealed while waiting: the database never held them readable.
        assert not any(code in kept[0] or code.replace("-", "") in kept[0] for code in codes)

        reload = client.get(made.headers["location"])
        assert reload.status_code == 410
        assert "Ces codes de secours ont déjà été affichés" in said(reload)
        assert not RECOVERY_CODE.findall(reload.text)

        first = client.post(
            "/api/v1/auth/login", json={"login": pharmacist.login, "password": pharmacist.password}
        )
        logged = client.post(
            "/api/v1/auth/mfa/recovery",
            json={"mfa_token": first.json()["mfa_token"], "code": codes[0]},
        )
        assert logged.status_code == 200, logged.text

    # A session opened with a recovery code never mints more (one leaked code would
    # otherwise become a permanent foothold).
    with portal_client(services) as client:
        portal_recovery_login(client, pharmacist, codes[1])
        codes_section = section(client.get(SECURITY).text, "codes")
        assert "Cette session a été ouverte avec un code de secours" in codes_section
        assert "<button" not in codes_section
        refused = post(
            client, f"{SECURITY}/codes", {"enrolment_code": posted_code(services, pharmacist)}
        )
        assert refused.status_code == 401
        assert "Une session ouverte avec un code de secours ne peut ni créer" in said(refused)
    assert [e.reasons for e in events(services, "recovery_codes_created")] == ["enrolment_code"]
    assert mails(services, "recovery_codes_created") == 1


# -- keys and passkeys ---------------------------------------------------------------------


def test_keys_are_added_with_the_proof_renamed_and_removed_with_an_established_key(
    services: Services, pharmacist: Login
) -> None:
    usb = SoftAuthenticator.security_key(origin=PORTAL_BASE)
    with portal_client(services) as client:
        portal_login(client, pharmacist)
        keys = section(client.get(SECURITY).text, "cles")
        assert "Aucune clé n'est enregistrée" in keys
        assert "Code d'enrôlement reçu par courrier" in keys

        # A first key without the posted code: refused before the key is even touched.
        refused = add_key(client, usb, "Clé USB")
        assert refused.status_code == 401
        assert refused.json()["error"] == "first_key_proof_required"
        assert refused.json()["message"].startswith("Pour ajouter votre première clé")
        assert usb.credentials == {}

        added = add_key(client, usb, "Clé USB", posted_code(services, pharmacist))
        assert added.status_code == 200, added.text
        assert added.json() == {"next": f"{SECURITY}?fait=cle-ajoutee"}
        page = client.get(added.json()["next"]).text
        assert "La clé est ajoutée" in page
        keys = section(page, "cles")
        assert "Clé USB" in keys
        assert "en période probatoire" in keys
        assert "Code d'enrôlement" not in keys  # a further key needs no letter, but more

        # A further key from this password + code session: not enough.
        further = add_key(client, SoftAuthenticator.platform_passkey(origin=PORTAL_BASE), "Tél")
        assert further.status_code == 401
        assert further.json()["error"] == "established_key_required"

        # Renaming: any session of the account (a name opens nothing), told to the owner.
        credential_id = re.findall(r'name="cle" value="([^"]+)"', keys)[0]
        renamed = post(
            client, f"{SECURITY}/cles/renommer", {"cle": credential_id, "label": "Clé du comptoir"}
        )
        assert renamed.status_code == 303
        assert renamed.headers["location"] == f"{SECURITY}?fait=cle-renommee"
        assert "Clé du comptoir" in section(client.get(SECURITY).text, "cles")
        unknown = post(client, f"{SECURITY}/cles/renommer", {"cle": "bm9wZQ", "label": "x"})
        assert unknown.status_code == 404
        assert "Cette clé n'est pas enregistrée sur votre compte." in said(unknown)

        # Removing it needs an established key or the card.
        weak = post(client, f"{SECURITY}/cles/retirer", {"cle": credential_id})
        assert weak.status_code == 401
        assert "Pour ajouter ou retirer une clé" in said(weak)

        with portal_client(services) as elsewhere:
            portal_key_login(elsewhere, pharmacist, usb)  # the key itself, still young
            young = post(elsewhere, f"{SECURITY}/cles/retirer", {"cle": credential_id})
            assert young.status_code == 401
            assert "encore en période probatoire" in said(young)

        # A day later the key is established: this session is confirmed with it, in place.
        with session_scope(services.sessions) as session:
            session.execute(
                update(WebAuthnCredential).values(created_at=datetime.now(UTC) - timedelta(days=2))
            )
        keys = section(client.get(SECURITY).text, "cles")
        assert "établie" in keys
        assert "Confirmer avec ma clé" in keys
        before = client.cookies.get(COOKIE)
        confirmed = confirm_with_key(client, usb)
        assert confirmed.status_code == 200, confirmed.text
        assert confirmed.json() == {"next": f"{SECURITY}?fait=confirmee"}
        assert not api_works(client, before or "")  # the confirmed session replaced it
        assert "Confirmer avec ma clé" not in section(client.get(SECURITY).text, "cles")
        removed = post(client, f"{SECURITY}/cles/retirer", {"cle": credential_id})
        assert removed.status_code == 303
        assert removed.headers["location"] == f"{SECURITY}?fait=cle-retiree"
        page = client.get(removed.headers["location"])
        assert "La clé est retirée" in said(page)
        assert "Aucune clé n'est enregistrée" in section(page.text, "cles")

    assert len(events(services, "webauthn_registered")) == 1
    assert len(events(services, "webauthn_renamed")) == 1
    assert len(events(services, "webauthn_removed")) == 1
    for kind in ("webauthn_registered", "webauthn_renamed", "webauthn_removed"):
        assert mails(services, kind) == 1, kind


def test_the_key_form_without_its_script_says_so_and_keeps_the_code_out_of_urls(
    services: Services, pharmacist: Login
) -> None:
    with portal_client(services) as client:
        portal_login(client, pharmacist)
        page = client.get(SECURITY).text
        form = re.search(r'<form [^>]*data-webauthn="create"[^>]*>', page)
        assert form is not None
        assert f'method="post" action="{SECURITY}/cles/sans-script"' in form.group(0)
        answer = post(client, f"{SECURITY}/cles/sans-script", {"label": "x", "enrolment_code": "y"})
        assert answer.status_code == 400
        assert "le script de la page est bloqué ou désactivé" in said(answer)


# -- forged requests ---------------------------------------------------------------------


def test_forged_forms_and_script_calls_are_refused(services: Services, pharmacist: Login) -> None:
    with portal_client(services) as client:
        assert client.get(SECURITY, follow_redirects=False).headers["location"] == (
            "/portail/connexion"
        )
        portal_login(client, pharmacist)
        token = form_token(client.get(SECURITY).text)
        for path in ("sessions/fermer-toutes", "codes", "mot-de-passe", "cles/retirer"):
            no_token = client.post(f"{SECURITY}/{path}", data={}, follow_redirects=False)
            assert no_token.status_code == 403, path
            assert "Formulaire refusé" in said(no_token)
        cross_site = client.post(
            f"{SECURITY}/sessions/fermer-toutes",
            data={"csrf": token},
            headers={"sec-fetch-site": "cross-site"},
            follow_redirects=False,
        )
        assert cross_site.status_code == 403
        for path in ("cles/options", "cles"):
            call = script_call(client, f"{SECURITY}/{path}", "not-the-token", {})
            assert call.status_code == 403
            assert call.json()["error"] == "csrf_refused"
        assert client.get(SECURITY).status_code == 200  # still logged in
    assert events(services, "sessions_revoked") == []


def test_waiting_codes_open_only_for_the_session_that_minted_them(
    services: Services, pharmacist: Login
) -> None:
    mine = Principal(pharmacist.account_id, "session-a", "password+totp", 0)
    other = Principal(pharmacist.account_id, "session-b", "password+totp", 0)
    box = services.auth.secret_box
    with session_scope(services.sessions) as session:
        handle = keep_codes(box, session, mine, ["AAAA-BBBB-CCCC"])
        stolen = keep_codes(box, session, mine, ["DDDD-EEEE-FFFF"])
    with session_scope(services.sessions) as session:
        assert take_codes(box, session, other, stolen) is None
        assert take_codes(box, session, mine, stolen) is None  # gone, once tried
        assert take_codes(box, session, mine, handle) == ["AAAA-BBBB-CCCC"]
        assert take_codes(box, session, mine, handle) is None
