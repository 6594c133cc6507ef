"""Pro Santé Connect login against a real OpenID Connect provider run locally.

The provider is the certified ``oidc-provider`` npm package (tools/oidc-provider):
it runs the authorization endpoint, checks client authentication and PKCE at its
token endpoint, signs ID tokens and serves its JWKS and userinfo. Each refusal
case is produced with that provider (a tampered authorization request, a second
client, an account with a low ``acr``, a stopped provider…); only "a token we did
not get from the provider" is made here.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from rempart.api import create_app
from rempart.audit.models import AuditEvent
from rempart.auth.levels import ACR_CPS, ACR_PSC
from rempart.auth.psc import PscClient, PscTokenInvalid
from rempart.config import Settings, load_settings
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.migrate import upgrade
from tests.conftest import FAST_HASHING
from tests.functional.conftest import Person, make_login
from tests.functional.oidc_provider import LocalProvider, log_in_at_provider, running_provider

CLIENT_ID = "rempart"
CLIENT_SECRET = "rempart-test-client-secret-0123456789"
OTHER_CLIENT_ID = "other-rp"
OTHER_SECRET = "another-relying-party-secret-98765"
REDIRECT_URI = "http://testserver/api/v1/auth/psc/callback"
OTHER_REDIRECT_URI = "http://other-rp.test/callback"
ID_TOKEN_TTL = 300
CLAIRE_ID = "810003456789"  # "8" + the RPPS of dr-martin in the people fixture
BROWSER_COOKIE = "rempart_psc"  # over http; __Host-rempart_psc over https

PROVIDER_CONFIG: dict[str, Any] = {
    "clients": [
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [REDIRECT_URI]},
        {
            "client_id": OTHER_CLIENT_ID,
            "client_secret": OTHER_SECRET,
            "redirect_uris": [OTHER_REDIRECT_URI],
        },
    ],
    "accounts": [
        # e-CPS (the phone app): eIDAS substantial, not a card
        {"id": "claire-ecps", "acr": "eidas1", "amr": ["pin", "mfa"], "claims": {}},
        # the CPS smart card in a reader
        {"id": "claire-card", "acr": "eidas1", "amr": ["sc", "pin"], "claims": {}},
        {"id": "claire-weak", "acr": "eidas0", "amr": ["pwd"], "claims": {}},
        {"id": "claire-odd-acr", "acr": "urn:example:loa:9", "amr": ["pin"], "claims": {}},
        {"id": "stranger", "claims": {"SubjectNameID": "899999999999"}},
        {"id": "adeli-only", "claims": {"SubjectNameID": "0751234567"}},
    ],
    "id_token_ttl": ID_TOKEN_TTL,
}
for _account in PROVIDER_CONFIG["accounts"]:
    _account["claims"].setdefault("SubjectNameID", CLAIRE_ID)
    _account["claims"].setdefault("family_name", "Martin")


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalProvider]:
    with running_provider(PROVIDER_CONFIG, tmp_path_factory.mktemp("oidc")) as running:
        yield running


def psc_settings(
    database_url: str, data_dir: Path, discovery_url: str, **overrides: Any
) -> Settings:
    return load_settings(
        database_url=database_url,
        data_dir=data_dir,
        psc_discovery_url=discovery_url,
        psc_client_id=CLIENT_ID,
        psc_client_secret=CLIENT_SECRET,
        psc_redirect_uri=REDIRECT_URI,
        **FAST_HASHING,
        **overrides,
    )


@pytest.fixture
def settings(database_url: str, tmp_path: Path, provider: LocalProvider) -> Settings:
    return psc_settings(database_url, tmp_path / "data", provider.discovery_url)


@pytest.fixture
def martin(services: Services, people: list[Person]) -> str:
    """dr-martin (RPPS 10003456789) with a Rempart account."""
    return make_login(services, "dr.martin", account_id="dr-martin").account_id


def begin(client: TestClient) -> str:
    response = client.get("/api/v1/auth/psc/start", headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text
    url: str = response.json()["authorization_url"]
    return url


def psc_answer(client: TestClient, account: str, **tamper: str) -> dict[str, str]:
    """Starts a PSC login at Rempart and logs ``account`` in at the provider; returns
    the parameters the provider sends the browser back to the callback with."""
    return log_in_at_provider(begin(client), account, tamper=tamper or None)


def browser_of(client: TestClient) -> str:
    """The binding cookie the last start left in this browser."""
    value = client.cookies.get(BROWSER_COOKIE)
    assert isinstance(value, str), "start sets the browser's binding cookie"
    return value


def switch_browser(client: TestClient, binding: str | None) -> None:
    """Makes ``client`` the browser holding ``binding`` (None: a browser without it)."""
    client.cookies.clear()
    if binding is not None:
        client.cookies.set(BROWSER_COOKIE, binding)


def callback(client: TestClient, params: dict[str, str] | str) -> httpx.Response:
    response: httpx.Response
    if isinstance(params, str):
        response = client.get(f"/api/v1/auth/psc/callback?{params}")
    else:
        response = client.get("/api/v1/auth/psc/callback", params=params)
    return response


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code
    assert set(body) == {"error", "detail"}


def events(services: Services, event: str) -> list[AuditEvent]:
    with session_scope(services.sessions) as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.ts_us)
            )
        )


def acr_of(services: Services, token: str) -> str:
    with session_scope(services.sessions) as session:
        return services.auth.authenticate(session, token).acr


def lookup(client: TestClient, token: str, person: Person) -> httpx.Response:
    response: httpx.Response = client.post(
        "/api/v1/rights/lookup",
        json={"nir": person.nir.value, "birth_date": person.birth_date.isoformat()},
        headers={"Authorization": f"Bearer {token}"},
    )
    return response


def test_start_redirects_to_the_provider_with_pkce_state_and_nonce(
    client: TestClient, provider: LocalProvider
) -> None:
    response = client.get("/api/v1/auth/psc/start", follow_redirects=False)
    assert response.status_code == 302
    location = httpx.URL(response.headers["location"])
    assert str(location).startswith(f"{provider.issuer}/auth?")
    params = location.params
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == REDIRECT_URI
    assert params["response_type"] == "code"
    assert params["code_challenge_method"] == "S256"
    assert params["acr_values"] == "eidas1"
    assert "openid" in params["scope"].split()
    assert len(params["state"]) >= 32
    assert len(params["nonce"]) >= 32
    assert params["state"] != params["nonce"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_e_cps_login_end_to_end_then_rights_lookup(
    client: TestClient, services: Services, people: list[Person], martin: str
) -> None:
    answer = psc_answer(client, "claire-ecps")
    assert set(answer) >= {"code", "state"}
    response = callback(client, answer)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert response.json()["token_type"] == "Bearer"
    assert acr_of(services, token) == ACR_PSC

    found = lookup(client, token, people[0])
    assert found.status_code == 200, found.text
    assert found.json()["last_name"] == "Dupont"

    succeeded = events(services, "login_succeeded")
    assert [(e.account_id, e.acr, e.reasons) for e in succeeded] == [("dr-martin", ACR_PSC, "psc")]


def test_start_binds_the_login_to_the_browser_with_a_cookie(client: TestClient) -> None:
    response = client.get("/api/v1/auth/psc/start", follow_redirects=False)
    assert response.status_code == 302
    cookie = response.headers["set-cookie"]
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert attributes[0].startswith(f"{BROWSER_COOKIE}=")
    assert len(attributes[0].split("=", 1)[1]) >= 32
    # Lax, not Strict: the provider's redirect back is a cross-site top-level navigation.
    assert {"httponly", "path=/", "samesite=lax", "max-age=600"} <= set(attributes)
    assert "secure" not in attributes  # the redirect URI is http here; see the next test


def test_over_https_the_cookie_is_secure_and_host_prefixed(settings: Settings) -> None:
    https = settings.model_copy(
        update={"psc_redirect_uri": "https://portail.example.fr/api/v1/auth/psc/callback"}
    )
    https_services = Services(https)
    upgrade(https_services.engine, schema="data")
    with TestClient(create_app(services=https_services)) as https_client:
        response = https_client.get("/api/v1/auth/psc/start", follow_redirects=False)
    assert response.status_code == 302
    attributes = [part.strip().lower() for part in response.headers["set-cookie"].split(";")]
    assert attributes[0].startswith(f"__host-{BROWSER_COOKIE}=")
    assert {"secure", "httponly", "path=/", "samesite=lax"} <= set(attributes)
    assert not any(part.startswith("domain=") for part in attributes)


def test_login_csrf_a_callback_link_from_another_browser_is_refused(
    client: TestClient, services: Services, people: list[Person], martin: str
) -> None:
    # The attacker starts a login in his own browser, logs in at the provider with his
    # own card, stops before the callback and sends the callback link to the victim.
    attackers_link = psc_answer(client, "claire-card")
    attackers_browser = browser_of(client)
    # The victim's browser never started it: no cookie. The code is not even exchanged.
    switch_browser(client, None)
    refused = callback(client, attackers_link)
    assert_refused(refused, 400, "psc_browser_mismatch")
    assert "access_token" not in refused.text
    # Nor with the cookie of another login the victim started herself.
    client.get("/api/v1/auth/psc/start", follow_redirects=False)
    other_link = psc_answer(TestClient(client.app), "claire-card")  # someone else's browser
    assert_refused(callback(client, other_link), 400, "psc_browser_mismatch")
    # The state is spent by the refusal: not even the attacker's browser can use it now.
    switch_browser(client, attackers_browser)
    assert_refused(callback(client, attackers_link), 400, "psc_state_invalid")
    reasons = [e.reasons for e in events(services, "login_failed")]
    assert reasons == ["no_browser_cookie", "other_browser", "unknown_or_spent_state"]
    assert events(services, "login_succeeded") == []


def test_the_callback_clears_the_binding_cookie(
    client: TestClient, services: Services, martin: str
) -> None:
    answer = psc_answer(client, "claire-ecps")
    response = callback(client, answer)
    assert response.status_code == 200, response.text
    cleared = response.headers["set-cookie"].lower()
    assert cleared.startswith(f'{BROWSER_COOKIE}=""') or "max-age=0" in cleared
    assert client.cookies.get(BROWSER_COOKIE) is None
    # A refusal clears it too.
    psc_answer(client, "claire-ecps")
    refused = callback(client, "code=abc&state=never-issued")
    assert_refused(refused, 400, "psc_state_invalid")
    assert client.cookies.get(BROWSER_COOKIE) is None


def test_cps_card_login_is_phishing_resistant(
    client: TestClient, services: Services, martin: str
) -> None:
    response = callback(client, psc_answer(client, "claire-card"))
    assert response.status_code == 200, response.text
    assert acr_of(services, response.json()["access_token"]) == ACR_CPS


def test_replayed_state_is_refused(client: TestClient, services: Services, martin: str) -> None:
    url = begin(client)
    answer = log_in_at_provider(url, "claire-ecps")
    assert callback(client, answer).status_code == 200
    # The very same answer again (a browser's back button, or a copy of the URL)...
    assert_refused(callback(client, answer), 400, "psc_state_invalid")
    # ...and a fresh code obtained with the same authorization request.
    again = log_in_at_provider(url, "claire-ecps")
    assert again["state"] == answer["state"]
    assert again["code"] != answer["code"]
    assert_refused(callback(client, again), 400, "psc_state_invalid")
    failed = events(services, "login_failed")
    assert [e.outcome for e in failed] == ["psc_state_invalid", "psc_state_invalid"]


def test_wrong_nonce_is_refused_and_spends_the_state(
    client: TestClient, services: Services, martin: str
) -> None:
    # Someone between Rempart and the browser swaps the nonce: the provider signs
    # an ID token for that other nonce, which Rempart did not issue.
    answer = psc_answer(client, "claire-ecps", nonce="a-nonce-rempart-never-issued")
    response = callback(client, answer)
    assert_refused(response, 401, "psc_token_invalid")
    assert "nonce" not in response.json()["detail"]
    assert_refused(callback(client, answer), 400, "psc_state_invalid")
    failed = events(services, "login_failed")
    assert [(e.outcome, e.reasons) for e in failed] == [
        ("psc_token_invalid", "claim:nonce"),
        ("psc_state_invalid", "unknown_or_spent_state"),
    ]


def test_expired_id_token_is_refused(client: TestClient, services: Services, martin: str) -> None:
    answer = psc_answer(client, "claire-ecps")
    psc = services.psc
    assert psc is not None
    # The provider's ID tokens live ID_TOKEN_TTL seconds: check this one after that,
    # past the clock-skew leeway too.
    psc.clock = lambda: time.time() + ID_TOKEN_TTL + psc.leeway_seconds + 5
    assert_refused(callback(client, answer), 401, "psc_token_invalid")
    assert events(services, "login_failed")[0].reasons == "expired"


def test_too_low_or_unknown_acr_is_refused(
    client: TestClient, services: Services, martin: str
) -> None:
    assert_refused(callback(client, psc_answer(client, "claire-weak")), 403, "psc_acr_too_low")
    assert_refused(callback(client, psc_answer(client, "claire-odd-acr")), 403, "psc_acr_too_low")
    assert [e.reasons for e in events(services, "login_failed")] == ["acr_eidas0", "acr_unknown"]
    assert events(services, "login_succeeded") == []


def test_higher_minimum_acr_refuses_eidas1(
    database_url: str, tmp_path: Path, provider: LocalProvider, people: list[Person]
) -> None:
    settings = psc_settings(
        database_url, tmp_path / "data", provider.discovery_url, psc_min_acr="eidas2"
    )
    services = Services(settings)
    try:
        with TestClient(create_app(services=services)) as client:
            make_login(services, "dr.martin", account_id="dr-martin")
            response = callback(client, psc_answer(client, "claire-card"))
            assert_refused(response, 403, "psc_acr_too_low")
    finally:
        services.close()


def test_unknown_professional_is_refused(
    client: TestClient, services: Services, people: list[Person]
) -> None:
    # dr-martin is a known professional, but has no Rempart account yet.
    assert_refused(
        callback(client, psc_answer(client, "claire-ecps")), 403, "psc_unknown_professional"
    )
    make_login(services, "dr.martin", account_id="dr-martin")
    # An RPPS nobody knows, and an identifier that is not RPPS-based.
    assert_refused(
        callback(client, psc_answer(client, "stranger")), 403, "psc_unknown_professional"
    )
    assert_refused(
        callback(client, psc_answer(client, "adeli-only")), 403, "psc_unknown_professional"
    )
    reasons = [e.reasons for e in events(services, "login_failed")]
    assert reasons == ["no_account_for_rpps", "no_account_for_rpps", "not_an_rpps_id"]


@contextmanager
def scratch_session() -> Iterator[Session]:
    """A session on a throwaway database, for flows that do not go through Rempart."""
    scratch = Services(load_settings(database_url="sqlite://", **FAST_HASHING))
    try:
        upgrade(scratch.engine, schema="data")
        with session_scope(scratch.sessions) as session:
            yield session
    finally:
        scratch.close()


def other_client(provider: LocalProvider) -> PscClient:
    return PscClient(
        discovery_url=provider.discovery_url,
        client_id=OTHER_CLIENT_ID,
        client_secret=OTHER_SECRET,
        redirect_uri=OTHER_REDIRECT_URI,
    )


def our_client(provider: LocalProvider) -> PscClient:
    return PscClient(
        discovery_url=provider.discovery_url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT_URI,
    )


def id_token_for(psc: PscClient, secret: str, account: str) -> tuple[str, str]:
    """A real ID token that the provider issues to ``psc``'s client, and its nonce."""
    with scratch_session() as session:
        url = psc.start(session, browser=secrets.token_urlsafe(32))
        challenge = psc.challenges.take(
            session, handle=httpx.URL(url).params["state"], purpose="psc_login"
        )
    assert challenge is not None
    answer = log_in_at_provider(url, account)
    response = httpx.post(
        psc.metadata()["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": answer["code"],
            "redirect_uri": psc.redirect_uri,
            "code_verifier": str(challenge.payload["verifier"]),
        },
        auth=(psc.client_id, secret),
    )
    assert response.status_code == 200, response.text
    return response.json()["id_token"], str(challenge.payload["nonce"])


def test_code_of_another_client_or_attempt_is_refused(
    client: TestClient, services: Services, provider: LocalProvider, martin: str
) -> None:
    # A code the provider issued to another relying party, injected into our callback:
    # the token endpoint refuses it to Rempart's credentials.
    with scratch_session() as session:
        theirs = log_in_at_provider(
            other_client(provider).start(session, browser=secrets.token_urlsafe(32)),
            "claire-ecps",
        )
    ours = psc_answer(client, "claire-ecps")
    assert_refused(callback(client, {**ours, "code": theirs["code"]}), 401, "psc_token_invalid")
    # A code stolen from someone's login, sent with the thief's own state (from the
    # thief's browser): PKCE binds the code to the victim's verifier, so the provider
    # refuses it.
    victim = psc_answer(client, "claire-ecps")
    victims_browser = browser_of(client)
    thief = psc_answer(client, "stranger")
    assert_refused(callback(client, {**thief, "code": victim["code"]}), 401, "psc_token_invalid")
    assert [e.reasons for e in events(services, "login_failed")] == ["code_rejected"] * 2
    # The victim's own attempt, in the victim's browser, is unharmed.
    switch_browser(client, victims_browser)
    assert callback(client, victim).status_code == 200


def test_id_token_for_another_audience_is_refused(provider: LocalProvider) -> None:
    # A genuine ID token, signed by the provider, issued to another relying party.
    id_token, nonce = id_token_for(other_client(provider), OTHER_SECRET, "claire-ecps")
    assert other_client(provider).validate_id_token(id_token, nonce=nonce)["aud"] == OTHER_CLIENT_ID
    with pytest.raises(PscTokenInvalid) as refused:
        our_client(provider).validate_id_token(id_token, nonce=nonce)
    assert refused.value.reason == "claim:aud"
    assert refused.value.code == "psc_token_invalid"


def b64url_json(value: dict[str, Any]) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_tokens_not_from_the_provider_are_refused(provider: LocalProvider) -> None:
    ours = our_client(provider)
    genuine, nonce = id_token_for(ours, CLIENT_SECRET, "claire-ecps")
    claims = ours.validate_id_token(genuine, nonce=nonce)
    header, _, signature = genuine.split(".")
    kid = jwt.decode(genuine, ours.key_set()).header["kid"]
    forgeries = {
        # signed with a key of our own posing as the provider's key id
        "own_key": jwt.encode(
            {"alg": "RS256", "kid": kid}, claims, RSAKey.generate_key(2048, parameters={"kid": kid})
        ),
        # an HMAC keyed with the client secret: the secret is no signing key here
        "hmac_secret": jwt.encode(
            {"alg": "HS256"}, claims, OctKey.import_key(CLIENT_SECRET), algorithms=["HS256"]
        ),
        # the genuine signature over changed claims
        "altered": f"{header}.{b64url_json({**claims, 'sub': 'someone-else'})}.{signature}",
        # no signature at all
        "alg_none": f"{b64url_json({'alg': 'none'})}.{b64url_json(claims)}.",
        "garbage": "not.a.token",
        "empty": "",
    }
    refused = {}
    for name, forged in forgeries.items():
        with pytest.raises(PscTokenInvalid) as caught:
            ours.validate_id_token(forged, nonce=nonce)
        refused[name] = caught.value.reason
    assert all(reason.startswith("signature:") for reason in refused.values()), refused


@pytest.mark.parametrize(
    "query",
    [
        "",
        "code=abc",
        "state=abc",
        "code=&state=",
        "code=abc&state=",
        "code=a&code=b&state=s",
        "code=a&state=s&state=t",
        "code=a&state=s&iss=x&iss=y",
        "error=access_denied",
        "error=access_denied&error_description=%3Cscript%3E&state=s",
        "code=a&state=s&error=server_error",
        f"code={'A' * 5000}&state=s",
        f"code=a&state={'S' * 1000}",
        "code=a&state=%00",
        "code=a&state=abc%0A",
        "code=%00&state=s",
        "code=a%20b&state=s",
        "code=a&state=%C3%A9t%C3%A9",
        "code=a&state=..%2F..%2Fetc",
        "error=access_denied&state=%00",
    ],
)
def test_malformed_callbacks_are_refused(
    client: TestClient, services: Services, query: str
) -> None:
    response = callback(client, query)
    assert_refused(response, 400, "psc_callback_invalid")
    detail = response.json()["detail"]
    assert "script" not in detail
    assert "AAAA" not in detail
    assert [e.outcome for e in events(services, "login_failed")] == ["psc_callback_invalid"]


def test_unknown_state_and_foreign_issuer_are_refused(
    client: TestClient, services: Services, martin: str
) -> None:
    assert_refused(callback(client, "code=abc&state=never-issued"), 400, "psc_state_invalid")
    # RFC 9207: an answer naming another issuer (a mix-up attack) is refused.
    answer = psc_answer(client, "claire-ecps")
    foreign = {**answer, "iss": "https://attacker.example"}
    assert_refused(callback(client, foreign), 400, "psc_callback_invalid")
    # The provider announces that it sends iss: an answer without it is refused too.
    answer = psc_answer(client, "claire-ecps")
    del answer["iss"]
    assert_refused(callback(client, answer), 400, "psc_callback_invalid")
    reasons = [e.reasons for e in events(services, "login_failed")]
    assert reasons == ["unknown_or_spent_state", "issuer_mismatch", "issuer_missing"]


def test_provider_error_spends_the_state(client: TestClient, martin: str) -> None:
    url = begin(client)
    state = httpx.URL(url).params["state"]
    # The professional cancels at the provider, which answers with an error.
    response = callback(client, {"error": "access_denied", "state": state})
    assert_refused(response, 400, "psc_callback_invalid")
    assert_refused(
        callback(client, log_in_at_provider(url, "claire-ecps")), 400, "psc_state_invalid"
    )


def test_keys_are_fetched_again_when_the_provider_rotates(
    client: TestClient, services: Services, martin: str
) -> None:
    psc = services.psc
    assert psc is not None
    psc.key_set()
    # What the client holds now is an old key set the provider no longer uses.
    stale = KeySet([RSAKey.generate_key(2048, parameters={"kid": "retired-key"})])
    psc._jwks, psc._jwks_at = stale, 0.0
    response = callback(client, psc_answer(client, "claire-ecps"))
    assert response.status_code == 200, response.text
    assert psc.key_set() is not stale


def test_national_id_read_from_the_id_token(
    tmp_path: Path, database_url: str, people: list[Person]
) -> None:
    # A provider that puts the scope claims in the ID token itself (no userinfo needed).
    config = {**PROVIDER_CONFIG, "id_token_claims": True}
    with running_provider(config, tmp_path / "oidc") as own:
        id_token, nonce = id_token_for(our_client(own), CLIENT_SECRET, "claire-card")
        assert (
            our_client(own).validate_id_token(id_token, nonce=nonce)["SubjectNameID"] == CLAIRE_ID
        )
        services = Services(psc_settings(database_url, tmp_path / "data", own.discovery_url))
        try:
            with TestClient(create_app(services=services)) as client:
                make_login(services, "dr.martin", account_id="dr-martin")
                response = callback(client, psc_answer(client, "claire-card"))
                assert response.status_code == 200, response.text
                assert acr_of(services, response.json()["access_token"]) == ACR_CPS
        finally:
            services.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_provider_down(
    tmp_path: Path, database_url: str, client: TestClient, services: Services, martin: str
) -> None:
    # Unreachable before the login starts: no discovery document.
    services.__dict__["psc"] = PscClient(
        discovery_url=f"http://127.0.0.1:{closed_port()}/.well-known/openid-configuration",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT_URI,
        timeout_seconds=2,
    )
    response = client.get("/api/v1/auth/psc/start", follow_redirects=False)
    assert_refused(response, 503, "psc_unavailable")

    # Gone between the login page and the callback: the code cannot be exchanged.
    with running_provider(PROVIDER_CONFIG, tmp_path / "oidc") as short_lived:
        services.__dict__["psc"] = our_client(short_lived)
        answer = psc_answer(client, "claire-ecps")
        short_lived.stop()
        assert_refused(callback(client, answer), 503, "psc_unavailable")
    reasons = [e.reasons for e in events(services, "login_failed")]
    assert reasons == ["discovery_unreachable", "token_endpoint_failed"]


def test_not_configured(database_url: str, tmp_path: Path) -> None:
    # No PSC setting at all (and no provider needed): both routes answer 404.
    plain = Services(
        load_settings(database_url=database_url, data_dir=tmp_path / "data", **FAST_HASHING)
    )
    try:
        upgrade(plain.engine, schema="data")
        upgrade(plain.audit_engine, schema="audit")
        assert plain.psc is None
        with TestClient(create_app(services=plain)) as client:
            assert_refused(client.get("/api/v1/auth/psc/start"), 404, "psc_not_configured")
            assert_refused(callback(client, "code=a&state=b"), 404, "psc_not_configured")
    finally:
        plain.close()


def test_one_source_cannot_start_logins_without_end(
    client: TestClient, services: Services, provider: LocalProvider
) -> None:
    """Each start stores a challenge: a source is throttled like any login attempt."""
    limit = services.settings.throttle_address_attempts
    answers = [
        client.get("/api/v1/auth/psc/start", headers={"Accept": "application/json"}).status_code
        for _ in range(limit + 1)
    ]
    assert answers[:limit] == [200] * limit
    assert answers[-1] == 429
