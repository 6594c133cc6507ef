"""WebAuthn through the real HTTP app, with real payloads from a software authenticator.

The relying party is configured for the test client's origin (``http://testserver``);
the soft authenticator plays the browser and the key, and can be made to behave
as a phishing page (another origin), a cloned key or another account's key would.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from rempart.audit.models import AuditEvent
from rempart.config import Settings, load_settings
from rempart.devtools.soft_authenticator import (
    NotAllowed,
    SoftAuthenticator,
    SoftCredential,
    b64url,
)
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Account, AuthChallenge, AuthSession, MailOutbox
from tests.conftest import FAST_HASHING
from tests.functional.conftest import Login, Person, log_in, make_login

ORIGIN = "http://testserver"
PHISHING_ORIGIN = "https://ameli-pro-connexion.example"
STEP_UP_HEADER = (
    'Bearer error="insufficient_user_authentication", '
    'error_description="a stronger authentication is required for this request", '
    'acr_values="cps webauthn"'
)
INV = "webauthn_invalid"
INVALID = {"error": INV, "detail": "the security key's answer could not be verified"}
API = "/api/v1/auth"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        webauthn_rp_id="testserver",
        webauthn_origins=[ORIGIN],
        # Keys are established at once here; their probation is played in test_takeover.py.
        webauthn_key_probation_hours=0,
        **FAST_HASHING,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def delete(client: TestClient, path: str, token: str) -> Any:
    # The API's body filter wants a JSON media type on every non-GET request, even bodiless.
    return client.delete(path, headers={**bearer(token), "Content-Type": "application/json"})


def register_options(client: TestClient, token: str) -> tuple[str, dict[str, Any]]:
    response = client.post(f"{API}/webauthn/register/options", json={}, headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    return body["handle"], body["options"]


def posted_code(client: TestClient, account_id: str) -> str:
    """The enrolment code an operator issues and the insurer posts to the practice."""
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    with session_scope(services.sessions) as session:
        return services.recovery.issue_enrolment_code(session, account_id, operator="alice")


def register_key(
    client: TestClient,
    token: str,
    key: SoftAuthenticator,
    label: str,
    *,
    enrolment_code: str | None = None,
) -> str:
    handle, options = register_options(client, token)
    body: dict[str, Any] = {"handle": handle, "credential": key.create(options), "label": label}
    if enrolment_code is not None:
        body["enrolment_code"] = enrolment_code
    response = client.post(f"{API}/webauthn/register", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    credential_id: str = response.json()["credential_id"]
    return credential_id


def step_up(client: TestClient, token: str, key: SoftAuthenticator, **get: Any) -> Any:
    options = client.post(f"{API}/step-up/webauthn/options", json={}, headers=bearer(token))
    assert options.status_code == 200, options.text
    body = options.json()
    return client.post(
        f"{API}/step-up/webauthn",
        json={"handle": body["handle"], "credential": key.get(body["options"], **get)},
        headers=bearer(token),
    )


def password_step(client: TestClient, login: Login) -> dict[str, Any]:
    response = client.post(f"{API}/login", json={"login": login.login, "password": login.password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def key_options(client: TestClient, mfa_token: str) -> tuple[str, dict[str, Any]]:
    response = client.post(f"{API}/mfa/webauthn/options", json={"mfa_token": mfa_token})
    assert response.status_code == 200, response.text
    return response.json()["handle"], response.json()["options"]


def log_in_with_key(client: TestClient, login: Login, key: SoftAuthenticator, **get: Any) -> Any:
    mfa_token = password_step(client, login)["mfa_token"]
    handle, options = key_options(client, mfa_token)
    return client.post(
        f"{API}/mfa/webauthn",
        json={"mfa_token": mfa_token, "handle": handle, "credential": key.get(options, **get)},
    )


def lookup(client: TestClient, token: str, person: Person) -> Any:
    return client.post(
        "/api/v1/rights/lookup",
        json={"nir": person.nir.value, "birth_date": person.birth_date.isoformat()},
        headers=bearer(token),
    )


def events(services: Services, name: str) -> list[AuditEvent]:
    with session_scope(services.sessions) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def next_totp_session(client: TestClient, login: Login) -> str:
    """Another password + TOTP login within the same 30 s: a code serves once, and the
    next step's code is accepted (one step of drift)."""
    mfa_token = password_step(client, login)["mfa_token"]
    response = client.post(
        f"{API}/mfa/totp",
        json={"mfa_token": mfa_token, "code": login.totp.at(time.time() + 30)},
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def with_key(client: TestClient, login: Login) -> SoftAuthenticator:
    """The account gets a security key (first key: a fresh TOTP login and the posted code)."""
    key = SoftAuthenticator.security_key(origin=ORIGIN)
    code = posted_code(client, login.account_id)
    register_key(client, log_in(client, login), key, "Clé USB", enrolment_code=code)
    return key


# -- registering keys ------------------------------------------------------------------------


def test_two_keys_then_login_with_a_key_and_a_lookup(
    client: TestClient, services: Services, pharmacist: Login, people: list[Person]
) -> None:
    with session_scope(services.sessions) as session:
        session.execute(
            update(Account)
            .where(Account.account_id == pharmacist.account_id)
            .values(email="pharmacie.lilas@example.fr")
        )
    usb = SoftAuthenticator.security_key(origin=ORIGIN)
    passkey = SoftAuthenticator.platform_passkey(origin=ORIGIN)
    totp_session = log_in(client, pharmacist)

    # The first key: a recent password + TOTP login and the enrolment code posted to her.
    first = register_key(
        client,
        totp_session,
        usb,
        "Clé USB du comptoir",
        enrolment_code=posted_code(client, pharmacist.account_id),
    )

    # A second key from the same password + TOTP session: RFC 9470 step-up first.
    refused = client.post(f"{API}/webauthn/register/options", json={}, headers=bearer(totp_session))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == STEP_UP_HEADER
    assert refused.json()["error"] == "insufficient_user_authentication"
    stepped = step_up(client, totp_session, usb)
    assert stepped.status_code == 200, stepped.text
    strong = stepped.json()["access_token"]
    # The step-up replaced the session: the old token is over.
    assert lookup(client, totp_session, people[0]).status_code == 401

    # The retry succeeds; the key already registered is excluded.
    handle, options = register_options(client, strong)
    assert [c["id"] for c in options["excludeCredentials"]] == [first]
    assert options["rp"] == {"id": "testserver", "name": "Rempart"}
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["attestation"] == "none"
    with pytest.raises(NotAllowed):
        usb.create(options)  # a browser refuses to register the same key twice
    response = client.post(
        f"{API}/webauthn/register",
        json={"handle": handle, "credential": passkey.create(options), "label": "iPhone"},
        headers=bearer(strong),
    )
    assert response.status_code == 201, response.text
    second = response.json()["credential_id"]

    listed = client.get(f"{API}/webauthn/credentials", headers=bearer(strong)).json()
    assert [(c["credential_id"], c["label"]) for c in listed["credentials"]] == [
        (first, "Clé USB du comptoir"),
        (second, "iPhone"),
    ]
    assert len(events(services, "webauthn_registered")) == 2
    with session_scope(services.sessions) as session:
        mails = session.scalars(
            select(MailOutbox.kind).where(MailOutbox.account_id == pharmacist.account_id)
        ).all()
    assert mails.count("webauthn_registered") == 2

    # Log in with password + either key; the login offers WebAuthn now.
    assert "webauthn" in password_step(client, pharmacist)["methods"]
    for key in (passkey, usb):
        mfa_token = password_step(client, pharmacist)["mfa_token"]
        handle, options = key_options(client, mfa_token)
        assert {c["id"] for c in options["allowCredentials"]} == {first, second}
        logged = client.post(
            f"{API}/mfa/webauthn",
            json={"mfa_token": mfa_token, "handle": handle, "credential": key.get(options)},
        )
        assert logged.status_code == 200, logged.text
        assert logged.json()["token_type"] == "Bearer"
        found = lookup(client, logged.json()["access_token"], people[0])
        assert found.status_code == 200, found.text
        assert found.json()["last_name"] == "Dupont"
    used = client.get(f"{API}/webauthn/credentials", headers=bearer(strong)).json()
    assert all(c["last_used_at"] for c in used["credentials"])
    successes = [e for e in events(services, "login_succeeded") if e.acr == "webauthn"]
    assert len(successes) == 2


def test_a_first_key_needs_a_recent_login(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    with session_scope(services.sessions) as session:
        session.execute(
            update(AuthSession)
            .where(AuthSession.account_id == pharmacist.account_id)
            .values(auth_time=datetime.now(UTC) - timedelta(minutes=20))
        )
    refused = client.post(f"{API}/webauthn/register/options", json={}, headers=bearer(token))
    assert refused.status_code == 401
    assert 'max_age="600"' in refused.headers["www-authenticate"]
    assert 'acr_values="password+totp psc cps webauthn"' in refused.headers["www-authenticate"]


def test_removing_a_key_needs_a_phishing_resistant_session(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    key = SoftAuthenticator.security_key(origin=ORIGIN)
    totp_session = log_in(client, pharmacist)
    code = posted_code(client, pharmacist.account_id)
    credential_id = register_key(client, totp_session, key, "Clé", enrolment_code=code)
    refused = delete(client, f"{API}/webauthn/credentials/{credential_id}", totp_session)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == STEP_UP_HEADER
    strong = log_in_with_key(client, pharmacist, key).json()["access_token"]
    unknown = delete(client, f"{API}/webauthn/credentials/{b64url(b'nope')}", strong)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "webauthn_not_registered"
    removed = delete(client, f"{API}/webauthn/credentials/{credential_id}", strong)
    assert removed.status_code == 204
    assert client.get(f"{API}/webauthn/credentials", headers=bearer(strong)).json() == {
        "credentials": []
    }
    assert len(events(services, "webauthn_removed")) == 1


# -- step-up ---------------------------------------------------------------------------------


def test_a_phished_totp_code_cannot_pass_a_step_up(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    victim_key = with_key(client, pharmacist)
    # The attacker relayed the password and a TOTP code: a password + TOTP session.
    attacker_session = next_totp_session(client, pharmacist)
    assert (
        client.post(
            f"{API}/webauthn/register/options", json={}, headers=bearer(attacker_session)
        ).headers["www-authenticate"]
        == STEP_UP_HEADER
    )
    # No TOTP step-up exists: the only way up is the key.
    assert client.post(
        f"{API}/step-up/totp", json={}, headers=bearer(attacker_session)
    ).status_code in (
        404,
        405,
    )
    # The attacker's own key is not the account's.
    attacker_key = SoftAuthenticator.security_key(origin=ORIGIN)
    with pytest.raises(NotAllowed):
        step_up(client, attacker_session, attacker_key)
    victim_id = next(iter(victim_key.credentials))
    attacker_key.credentials[victim_id] = _forged(victim_id)
    forged = step_up(client, attacker_session, attacker_key, credential_id=victim_id)
    assert (forged.status_code, forged.json()) == (401, INVALID)
    # The victim's real key, relayed through the phishing page, signs the wrong origin.
    relayed = step_up(client, attacker_session, victim_key, origin=PHISHING_ORIGIN)
    assert (relayed.status_code, relayed.json()) == (401, INVALID)
    # Still not stronger.
    still = client.post(
        f"{API}/webauthn/register/options", json={}, headers=bearer(attacker_session)
    )
    assert still.status_code == 401
    assert len(events(services, "step_up_failed")) == 2


def _forged(credential_id: bytes) -> SoftCredential:
    """The victim's credential id with a key the attacker made (the id is not secret)."""
    forger = SoftAuthenticator.security_key(origin=ORIGIN)
    forger.create(
        {
            "rp": {"id": "testserver"},
            "user": {"id": b64url(b"x")},
            "challenge": b64url(b"c"),
        },
        credential_id=credential_id,
    )
    return forger.credentials[credential_id]


def test_a_step_up_challenge_belongs_to_its_session(client: TestClient, pharmacist: Login) -> None:
    key = with_key(client, pharmacist)
    one = next_totp_session(client, pharmacist)
    other = log_in_with_key(client, pharmacist, key).json()["access_token"]
    body = client.post(f"{API}/step-up/webauthn/options", json={}, headers=bearer(one)).json()
    crossed = client.post(
        f"{API}/step-up/webauthn",
        json={"handle": body["handle"], "credential": key.get(body["options"])},
        headers=bearer(other),
    )
    assert crossed.status_code == 400
    assert crossed.json()["error"] == "webauthn_challenge_invalid"


# -- phishing, replay, another account's key, clones --------------------------------------


def test_a_phishing_origin_or_rp_id_is_refused(client: TestClient, pharmacist: Login) -> None:
    key = with_key(client, pharmacist)
    wrong_origin = log_in_with_key(client, pharmacist, key, origin=PHISHING_ORIGIN)
    wrong_rp_id = log_in_with_key(client, pharmacist, key, rp_id="ameli-pro-connexion.example")
    for refused in (wrong_origin, wrong_rp_id):
        assert (refused.status_code, refused.json()) == (401, INVALID)
    # Registering from the phishing page fails the same way.
    token = log_in_with_key(client, pharmacist, key).json()["access_token"]
    handle, options = register_options(client, token)
    other = SoftAuthenticator.security_key(origin=PHISHING_ORIGIN)
    planted = client.post(
        f"{API}/webauthn/register",
        json={"handle": handle, "credential": other.create(options), "label": "x"},
        headers=bearer(token),
    )
    assert planted.status_code == 400
    assert planted.json() == INVALID


def test_a_challenge_is_used_once(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    key = with_key(client, pharmacist)
    mfa_token = password_step(client, pharmacist)["mfa_token"]
    handle, options = key_options(client, mfa_token)
    answer = key.get(options)
    body = {"mfa_token": mfa_token, "handle": handle, "credential": answer}
    assert client.post(f"{API}/mfa/webauthn", json=body).status_code == 200
    # Issue 10: the MFA token is spent by the login (it used to pass, leaving the
    # challenge alone to refuse the replay).
    replayed = client.post(f"{API}/mfa/webauthn", json=body)
    assert (replayed.status_code, replayed.json()["error"]) == (401, "invalid_token")
    # With a fresh token, the used challenge still serves nothing.
    body["mfa_token"] = password_step(client, pharmacist)["mfa_token"]
    replayed = client.post(f"{API}/mfa/webauthn", json=body)
    assert replayed.status_code == 400
    assert replayed.json()["error"] == "webauthn_challenge_invalid"

    # A refused answer burns the challenge too: no second try with it.
    mfa_token = password_step(client, pharmacist)["mfa_token"]
    handle, options = key_options(client, mfa_token)
    bad = key.get(options, origin=PHISHING_ORIGIN)
    body = {"mfa_token": mfa_token, "handle": handle, "credential": bad}
    assert client.post(f"{API}/mfa/webauthn", json=body).status_code == 401
    body["credential"] = key.get(options)
    assert client.post(f"{API}/mfa/webauthn", json=body).json()["error"] == (
        "webauthn_challenge_invalid"
    )

    # An expired challenge is refused.
    mfa_token = password_step(client, pharmacist)["mfa_token"]
    handle, options = key_options(client, mfa_token)
    with session_scope(services.sessions) as session:
        session.execute(
            update(AuthChallenge)
            .where(AuthChallenge.handle == handle)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    late = client.post(
        f"{API}/mfa/webauthn",
        json={"mfa_token": mfa_token, "handle": handle, "credential": key.get(options)},
    )
    assert late.json()["error"] == "webauthn_challenge_invalid"


def test_another_accounts_key_or_challenge_is_refused(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    key = with_key(client, pharmacist)
    colleague = make_login(services, "pharmacie.roses", account_id="ph-roses")
    colleague_key = with_key(client, colleague)

    # The colleague's key answers the pharmacist's challenge: refused, as any bad answer.
    mfa_token = password_step(client, pharmacist)["mfa_token"]
    handle, options = key_options(client, mfa_token)
    foreign_id = next(iter(colleague_key.credentials))
    foreign = colleague_key.get(options, credential_id=foreign_id)
    refused = client.post(
        f"{API}/mfa/webauthn",
        json={"mfa_token": mfa_token, "handle": handle, "credential": foreign},
    )
    assert (refused.status_code, refused.json()) == (401, INVALID)

    # A challenge issued for the colleague does not serve the pharmacist's login.
    colleague_mfa = password_step(client, colleague)["mfa_token"]
    colleague_handle, _ = key_options(client, colleague_mfa)
    mfa_token = password_step(client, pharmacist)["mfa_token"]
    _, options = key_options(client, mfa_token)
    crossed = client.post(
        f"{API}/mfa/webauthn",
        json={"mfa_token": mfa_token, "handle": colleague_handle, "credential": key.get(options)},
    )
    assert crossed.status_code == 400
    assert crossed.json()["error"] == "webauthn_challenge_invalid"
    failures = [e for e in events(services, "login_failed") if e.reasons == "webauthn"]
    assert {e.account_id for e in failures} == {pharmacist.account_id}
    assert len(failures) == 2


def test_a_cloned_key_is_refused_and_recorded(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    key = with_key(client, pharmacist)
    clone = key.clone()
    assert log_in_with_key(client, pharmacist, key).status_code == 200  # counter 1
    assert log_in_with_key(client, pharmacist, key).status_code == 200  # counter 2
    # The clone still counts from where it was copied: 1, not above 2.
    replayed = log_in_with_key(client, pharmacist, clone)
    assert replayed.status_code == 401
    assert replayed.json()["error"] == "webauthn_clone_suspected"
    # A counter going back to zero is the same signal.
    zero = log_in_with_key(client, pharmacist, key, sign_count=0)
    assert zero.json()["error"] == "webauthn_clone_suspected"
    recorded = events(services, "webauthn_clone_suspected")
    assert len(recorded) == 2
    assert recorded[0].account_id == pharmacist.account_id
    assert "stored=2;reported=1" in recorded[0].reasons
    # The genuine key, counting on, still works.
    assert log_in_with_key(client, pharmacist, key, sign_count=3).status_code == 200


def test_a_passkey_with_a_zero_counter_logs_in_again_and_again(
    client: TestClient, pharmacist: Login
) -> None:
    passkey = SoftAuthenticator.platform_passkey(origin=ORIGIN)
    code = posted_code(client, pharmacist.account_id)
    register_key(client, log_in(client, pharmacist), passkey, "Téléphone", enrolment_code=code)
    for _ in range(3):
        assert log_in_with_key(client, pharmacist, passkey).status_code == 200


def test_a_user_handle_of_another_account_is_refused(client: TestClient, pharmacist: Login) -> None:
    key = with_key(client, pharmacist)
    next(iter(key.credentials.values())).user_handle = b"someone-else"
    refused = log_in_with_key(client, pharmacist, key)
    assert (refused.status_code, refused.json()) == (401, INVALID)


# -- bad input -------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _registrations(good: dict[str, Any]) -> list[tuple[str, dict[str, Any], set[str]]]:
    """Broken registration credentials and the error codes each may get."""
    resp = good["response"]
    shape = {"invalid_value", "invalid_type", "unknown_field", "missing_field", "invalid_body"}
    nested = b"\x81" * 3000 + b"\x00"
    return [
        ("oversized id", {**good, "id": "A" * 5000, "rawId": "A" * 5000}, shape),
        ("not base64url", {**good, "id": "a+b/c=="}, shape),
        ("impossible base64 length", {**good, "id": "A" * 5, "rawId": "A" * 5}, shape),
        (
            "oversized clientDataJSON",
            {**good, "response": {**resp, "clientDataJSON": "A" * 3000}},
            shape,
        ),
        (
            "oversized attestationObject",
            {**good, "response": {**resp, "attestationObject": "A" * 9000}},
            shape,
        ),
        ("unknown field", {**good, "extra": 1}, shape),
        ("wrong type", {**good, "type": "password"}, shape),
        ("no response", {k: v for k, v in good.items() if k != "response"}, shape),
        ("response not an object", {**good, "response": "x"}, shape),
        ("id is a number", {**good, "id": 12}, shape),
        (
            "too many transports",
            {**good, "response": {**resp, "transports": ["usb"] * 50}},
            shape,
        ),
        (
            "clientDataJSON not JSON",
            {**good, "response": {**resp, "clientDataJSON": _b64(b"\xff\xfe not json")}},
            {"webauthn_invalid"},
        ),
        (
            "clientDataJSON a JSON list",
            {**good, "response": {**resp, "clientDataJSON": _b64(b"[1,2,3]")}},
            {"webauthn_invalid"},
        ),
        (
            "attestationObject not CBOR",
            {**good, "response": {**resp, "attestationObject": _b64(b"\xff" * 40)}},
            {"webauthn_invalid"},
        ),
        (
            "attestationObject nested too deep",
            {**good, "response": {**resp, "attestationObject": _b64(nested)}},
            {"webauthn_invalid"},
        ),
        (
            "attestationObject a CBOR list",
            {**good, "response": {**resp, "attestationObject": _b64(b"\x83\x01\x02\x03")}},
            {"webauthn_invalid"},
        ),
        (
            "authData truncated",
            {
                **good,
                "response": {
                    **resp,
                    "attestationObject": _b64(
                        b"\xa3cfmtdnonegattStmt\xa0hauthDataE\x00\x01\x02\x03\x04"
                    ),
                },
            },
            {"webauthn_invalid"},
        ),
        ("id differs from rawId", {**good, "id": _b64(b"another id")}, {"webauthn_invalid"}),
    ]


def test_malformed_or_oversized_registrations_get_stable_codes(
    client: TestClient, pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    key = SoftAuthenticator.security_key(origin=ORIGIN)
    # A refused registration does not spend the posted code: one serves every attempt.
    posted = posted_code(client, pharmacist.account_id)
    for name, credential, codes in _registrations(key.create(register_options(client, token)[1])):
        handle, _ = register_options(client, token)
        response = client.post(
            f"{API}/webauthn/register",
            json={
                "handle": handle,
                "credential": credential,
                "label": "x",
                "enrolment_code": posted,
            },
            headers=bearer(token),
        )
        assert 400 <= response.status_code < 500, (name, response.text)
        body = response.json()
        assert set(body) == {"error", "detail"}, name
        assert body["error"] in codes, (name, body)
        if body["error"] == "webauthn_invalid":
            assert body == INVALID, name
    # Other broken bodies.
    for payload, code in (
        ({"handle": "x" * 500, "credential": {}, "label": ""}, None),
        (
            {
                "handle": "unknown",
                "credential": key.create(register_options(client, token)[1]),
                "enrolment_code": posted,
            },
            "webauthn_challenge_invalid",
        ),
        ({"handle": "h", "credential": [], "label": ""}, None),
        ({"handle": "h", "credential": "x", "label": "l" * 100}, None),
    ):
        response = client.post(f"{API}/webauthn/register", json=payload, headers=bearer(token))
        assert 400 <= response.status_code < 500, response.text
        if code:
            assert response.json()["error"] == code
    not_json = client.post(
        f"{API}/webauthn/register",
        content=b"{not json",
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert (not_json.status_code, not_json.json()["error"]) == (400, "malformed_json")
    too_big = client.post(
        f"{API}/webauthn/register",
        json={"handle": "h", "credential": {"id": "A" * 40_000}},
        headers=bearer(token),
    )
    assert too_big.status_code == 413
    # Nothing got registered.
    assert client.get(f"{API}/webauthn/credentials", headers=bearer(token)).json() == {
        "credentials": []
    }


def test_malformed_or_oversized_assertions_get_stable_codes(
    client: TestClient, pharmacist: Login
) -> None:
    key = with_key(client, pharmacist)
    strong = log_in_with_key(client, pharmacist, key).json()["access_token"]
    shape = {"invalid_value", "invalid_type", "unknown_field", "missing_field", "invalid_body"}

    def at_login(mutate: Any) -> Any:
        mfa_token = password_step(client, pharmacist)["mfa_token"]
        handle, options = key_options(client, mfa_token)
        return client.post(
            f"{API}/mfa/webauthn",
            json={"mfa_token": mfa_token, "handle": handle, "credential": mutate(key.get(options))},
        )

    def at_step_up(mutate: Any) -> Any:
        # The step-up route (no login throttle) takes the many answers that are verified.
        body = client.post(
            f"{API}/step-up/webauthn/options", json={}, headers=bearer(strong)
        ).json()
        return client.post(
            f"{API}/step-up/webauthn",
            json={"handle": body["handle"], "credential": mutate(key.get(body["options"]))},
            headers=bearer(strong),
        )

    def response_with(**fields: Any) -> Any:
        return lambda good: {**good, "response": {**good["response"], **fields}}

    def without_signature(good: dict[str, Any]) -> dict[str, Any]:
        return {**good, "response": {k: v for k, v in good["response"].items() if k != "signature"}}

    cases: list[tuple[str, Any, Any, set[str]]] = [
        ("oversized signature", at_login, response_with(signature="A" * 2000), shape),
        ("oversized userHandle", at_login, response_with(userHandle="A" * 200), shape),
        ("oversized authData", at_login, response_with(authenticatorData="A" * 4000), shape),
        ("signature not base64url", at_login, response_with(signature="%%%"), shape),
        ("missing signature", at_login, without_signature, shape),
        ("userHandle a number", at_login, response_with(userHandle=7), shape),
        ("attestation fields", at_login, response_with(attestationObject="AAAA"), shape),
        ("oversized signature", at_step_up, response_with(signature="A" * 2000), shape),
        ("short authData", at_login, response_with(authenticatorData=_b64(b"\0" * 10)), {INV}),
        ("short authData", at_step_up, response_with(authenticatorData=_b64(b"\0" * 10)), {INV}),
        ("garbage signature", at_step_up, response_with(signature=_b64(b"\x30\x02\x01")), {INV}),
        ("clientDataJSON {}", at_step_up, response_with(clientDataJSON=_b64(b"{}")), {INV}),
        (
            "clientDataJSON not JSON",
            at_step_up,
            response_with(clientDataJSON=_b64(b"\xff\xfe")),
            {INV},
        ),
        (
            "unregistered credential id",
            at_step_up,
            lambda g: {**g, "id": _b64(b"n" * 32), "rawId": _b64(b"n" * 32)},
            {INV},
        ),
        ("odd userHandle", at_step_up, response_with(userHandle=_b64(b"\x00")), {INV}),
    ]
    for name, route, mutate, codes in cases:
        response = route(mutate)
        assert 400 <= response.status_code < 500, (name, response.text)
        body = response.json()
        assert body["error"] in codes, (name, body)
        if body["error"] == INV:
            assert body == INVALID, name
    # The key still works: none of this changed its counter.
    assert at_step_up(lambda good: good).status_code == 200
    # A broken MFA token is refused before anything else.
    forged = client.post(f"{API}/mfa/webauthn/options", json={"mfa_token": "x.y.z"})
    assert forged.status_code == 401
