"""What the portal's browser tests do: a pharmacy and its pharmacist, logging in through
the portal's forms (password then TOTP code, or the key alone), logging out, a key
enrolled with the letter's code."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Page, expect

from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.pseudonyms import backfill
from tests.functional.conftest import Login, Person, make_login, totp_code
from tests.functional.test_guard_inline import build_town

ACCOUNT = "ph-lilas"
# Someone else, with her password and a relayed code: another network, a script.
ROBOT = {"X-Forwarded-For": "198.51.100.66", "User-Agent": "python-requests/2.32.3"}
LOGOUT = "Se déconnecter"
PASSKEY = "Se connecter avec une clé de sécurité ou une passkey"
USE_KEY = "Utiliser ma clé de sécurité"


@dataclass(frozen=True)
class Pharmacy:
    """The pharmacist's login, the pharmacy's customers (care links to the account) and
    strangers living elsewhere (reading them is what a robot does)."""

    pharmacist: Login
    customers: list[Person]
    strangers: list[Person]


def pharmacy(services: Services) -> Pharmacy:
    customers, strangers = build_town(services)
    # As a real load does: the pseudonyms by which the audit trail names the persons.
    backfill(services.engine, services.settings.keys.pseudonym_key)
    pharmacist = make_login(services, "pharmacie.lilas", account_id=ACCOUNT)
    return Pharmacy(pharmacist, customers, strangers)


def enrolment_code(services: Services, account_id: str = ACCOUNT) -> str:
    """The code the insurer posts to the professional, for their first key."""
    with session_scope(services.sessions) as session:
        return services.recovery.issue_enrolment_code(session, account_id, operator="tests")


def log_in_with_code(page: Page, login: Login, ahead: int = 0) -> None:
    """Login and password, then the TOTP code (``ahead`` steps of 30 s: a code serves once)."""
    page.goto("/portail/connexion")
    page.get_by_label("Identifiant", exact=True).fill(login.login)
    page.get_by_label("Mot de passe", exact=True).fill(login.password)
    page.get_by_role("button", name="Continuer").click()
    expect(page).to_have_url(re.compile(r"/portail/connexion/facteur$"))
    page.get_by_label("Code à usage unique").fill(totp_code(login, ahead))
    page.get_by_role("button", name="Se connecter", exact=True).click()
    expect(page.get_by_role("button", name=LOGOUT)).to_be_visible()


def log_in_with_key(page: Page) -> None:
    """The key alone: no login typed, the key names the account (a discoverable credential)."""
    page.goto("/portail/connexion")
    page.get_by_role("button", name=PASSKEY).click()
    expect(page.get_by_role("button", name=LOGOUT)).to_be_visible()


def log_out(page: Page) -> None:
    page.get_by_role("button", name=LOGOUT).click()
    expect(page).to_have_url(re.compile(r"/portail/connexion\?message=deconnecte$"))
    expect(page.get_by_text("Vous êtes déconnecté.")).to_be_visible()


def spaced(nir: str) -> str:
    """A NIR as printed on the carte Vitale: 1 85 03 75 056 001 42."""
    return " ".join((nir[0], nir[1:3], nir[3:5], nir[5:7], nir[7:10], nir[10:13], nir[13:]))


def look_up(page: Page, person: Person) -> None:
    """The lookup form, as typed at the counter (the NIR with its spaces)."""
    page.goto("/portail/")
    page.get_by_label("Numéro de sécurité sociale (NIR)").fill(spaced(person.nir.value))
    page.get_by_label("Date de naissance").fill(person.birth_date.isoformat())
    page.get_by_role("button", name="Consulter").click()
    page.wait_for_load_state()


def key_status(page: Page) -> str:
    """What the page's key form says (its role="alert" line), once it has said something
    other than the prompt shown while the ceremony runs."""
    status = page.locator("[data-webauthn-status]:visible").first
    expect(status).not_to_have_text(re.compile(r"^$|^Présentez|^Suivez"))
    return status.inner_text()


# The test's own hand in the page (the portal's pages run only portail.js): the ceremony
# a practice software would run through the API, with the browser's real WebAuthn.
_ENROL_THROUGH_API = """async ([token, code]) => {
    const bytes = (text) => Uint8Array.from(
        atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
    const text = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer)))
        .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
    const call = async (path, body) => {
        const reply = await fetch(path, {
            method: "POST",
            headers: {"content-type": "application/json", "authorization": "Bearer " + token},
            body: JSON.stringify(body),
        });
        return [reply.status, await reply.json()];
    };
    const [status, ceremony] = await call("/api/v1/auth/webauthn/register/options", {});
    if (status !== 200) { return [status, ceremony]; }
    const options = ceremony.options;
    const made = await navigator.credentials.create({publicKey: {
        ...options,
        challenge: bytes(options.challenge),
        user: {...options.user, id: bytes(options.user.id)},
        excludeCredentials: (options.excludeCredentials || []).map(
            (c) => ({...c, id: bytes(c.id)})),
    }});
    return await call("/api/v1/auth/webauthn/register", {
        handle: ceremony.handle,
        label: "Clé USB",
        enrolment_code: code,
        credential: {
            id: made.id,
            rawId: text(made.rawId),
            type: made.type,
            clientExtensionResults: made.getClientExtensionResults(),
            response: {
                clientDataJSON: text(made.response.clientDataJSON),
                attestationObject: text(made.response.attestationObject),
                transports: made.response.getTransports(),
            },
        },
    });
}"""


def loopback(server: str) -> str:
    """The server's address by IP, for the test's own HTTP client (a ``*.localhost``
    name is resolved by the browser, not by every resolver)."""
    return urlsplit(server)._replace(netloc=f"127.0.0.1:{urlsplit(server).port}").geturl()


def enrol_through_api(page: Page, services: Services, server: str, login: Login) -> None:
    """A first key enrolled with the posted code through the API (as practice software
    would), the ceremony run by the browser on ``page`` (already on the portal's origin)."""
    with httpx.Client(base_url=loopback(server), timeout=30) as http:
        first = http.post(
            "/api/v1/auth/login", json={"login": login.login, "password": login.password}
        )
        assert first.status_code == 200, first.text
        second = http.post(
            "/api/v1/auth/mfa/totp",
            json={"mfa_token": first.json()["mfa_token"], "code": totp_code(login, -1)},
        )
        assert second.status_code == 200, second.text
        token = second.json()["access_token"]
    status, answer = page.evaluate(_ENROL_THROUGH_API, [token, enrolment_code(services)])
    assert status == 201, answer


def someone_else_reads(server: str, login: Login, persons: list[Person], ahead: int = -1) -> None:
    """Her password and a relayed TOTP code (``ahead`` steps of 30 s), used through the
    API from another network, to read a few of the pharmacy's own customers (nothing the
    guard would stop)."""
    with httpx.Client(base_url=loopback(server), headers=ROBOT, timeout=30) as http:
        first = http.post(
            "/api/v1/auth/login", json={"login": login.login, "password": login.password}
        )
        assert first.status_code == 200, first.text
        second = http.post(
            "/api/v1/auth/mfa/totp",
            json={"mfa_token": first.json()["mfa_token"], "code": totp_code(login, ahead)},
        )
        assert second.status_code == 200, second.text
        bearer = {"Authorization": f"Bearer {second.json()['access_token']}"}
        for person in persons:
            read = http.post(
                "/api/v1/rights/lookup",
                json={"nir": person.nir.value, "birth_date": person.birth_date.isoformat()},
                headers=bearer,
            )
            assert read.status_code == 200, read.text
