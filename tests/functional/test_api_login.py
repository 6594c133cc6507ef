"""Login with password and TOTP through the real HTTP app."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from rempart.services import Services
from rempart.store.engine import session_scope
from tests.functional.conftest import Login, make_login


def password_step(client: TestClient, login: str, password: str) -> tuple[int, dict[str, object]]:
    response = client.post("/api/v1/auth/login", json={"login": login, "password": password})
    return response.status_code, response.json()


def test_login_needs_both_factors(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    status, body = password_step(client, pharmacist.login, pharmacist.password)
    assert status == 200
    assert body["methods"] == ["totp", "recovery_code"]
    assert "access_token" not in body
    # The MFA token is not an access token.
    refused = client.post(
        "/api/v1/rights/lookup",
        json={"nir": "185037505601270", "birth_date": "1985-03-14"},
        headers={"Authorization": f"Bearer {body['mfa_token']}"},
    )
    assert refused.status_code == 401
    second = client.post(
        "/api/v1/auth/mfa/totp",
        json={"mfa_token": body["mfa_token"], "code": pharmacist.totp.now()},
    )
    assert second.status_code == 200
    token = second.json()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == services.settings.session_absolute_seconds


def test_wrong_password_and_unknown_login_are_indistinguishable(
    client: TestClient, pharmacist: Login
) -> None:
    wrong = password_step(client, pharmacist.login, "not the right password at all")
    unknown = password_step(client, "nobody.here", "not the right password at all")
    assert (
        wrong
        == unknown
        == (
            401,
            {
                "error": "invalid_credentials",
                "detail": "the login or the password is wrong, or the account cannot be "
                "used; contact the insurer if it persists",
            },
        )
    )


def test_a_totp_code_is_accepted_once(client: TestClient, pharmacist: Login) -> None:
    code = pharmacist.totp.now()
    _, first = password_step(client, pharmacist.login, pharmacist.password)
    ok = client.post("/api/v1/auth/mfa/totp", json={"mfa_token": first["mfa_token"], "code": code})
    assert ok.status_code == 200
    _, again = password_step(client, pharmacist.login, pharmacist.password)
    replay = client.post(
        "/api/v1/auth/mfa/totp", json={"mfa_token": again["mfa_token"], "code": code}
    )
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_mfa_code"


def test_totp_tolerates_one_step_of_drift_only(client: TestClient, pharmacist: Login) -> None:
    now = time.time()
    _, body = password_step(client, pharmacist.login, pharmacist.password)
    too_old = pharmacist.totp.at(now - 90)
    refused = client.post(
        "/api/v1/auth/mfa/totp", json={"mfa_token": body["mfa_token"], "code": too_old}
    )
    assert refused.status_code == 401
    ahead = pharmacist.totp.at(now + 30)
    accepted = client.post(
        "/api/v1/auth/mfa/totp", json={"mfa_token": body["mfa_token"], "code": ahead}
    )
    assert accepted.status_code == 200


def test_repeated_failures_are_throttled_with_retry_after(
    client: TestClient, pharmacist: Login, services: Services
) -> None:
    limit = services.settings.throttle_account_failures
    for _ in range(limit):
        assert password_step(client, pharmacist.login, "wrong password again")[0] == 401
    response = client.post(
        "/api/v1/auth/login", json={"login": pharmacist.login, "password": pharmacist.password}
    )
    assert response.status_code == 429
    assert response.json()["error"] == "too_many_attempts"
    assert 0 < int(response.headers["retry-after"]) <= services.settings.throttle_window_seconds
    # Throttling is checked before verification: even the right password is refused.


def test_unknown_logins_are_throttled_like_real_ones(
    client: TestClient, services: Services
) -> None:
    limit = services.settings.throttle_account_failures
    statuses = [
        password_step(client, "ghost.login", "some password 123")[0] for _ in range(limit + 1)
    ]
    assert statuses == [401] * limit + [429]


def test_one_address_trying_many_accounts_is_throttled(
    client: TestClient, services: Services
) -> None:
    limit = services.settings.throttle_address_failed_logins
    statuses = [
        password_step(client, f"victim{i}", "leaked password 2022")[0] for i in range(limit + 1)
    ]
    assert statuses[:limit] == [401] * limit
    assert statuses[limit] == 429


def test_suspended_account_cannot_log_in(client: TestClient, services: Services) -> None:
    # Issue 10, finding 7: this used to answer 403 account_suspended to the right password
    # (an oracle on the accounts the guard flagged); it now answers as a wrong password.
    login = make_login(services, "to.suspend")
    with session_scope(services.sessions) as session:
        services.auth.suspend(session, login.account_id)
    status, body = password_step(client, login.login, login.password)
    assert status == 401
    assert body["error"] == "invalid_credentials"
