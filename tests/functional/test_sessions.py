"""Sessions: idle and absolute ends, logout, revoking them all, tokens bound to them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import AuthSession
from tests.functional.conftest import Login, Person, log_in


def lookup(client: TestClient, token: str, person: Person) -> tuple[int, dict[str, object]]:
    response = client.post(
        "/api/v1/rights/lookup",
        json={"nir": person.nir.value, "birth_date": person.birth_date.isoformat()},
        headers={"Authorization": f"Bearer {token}"},
    )
    return response.status_code, response.json()


def age_session(services: Services, *, last_seen_at: timedelta) -> None:
    """Moves the sessions' last activity back in time, as if the professional had left."""
    with session_scope(services.sessions) as session:
        session.execute(update(AuthSession).values(last_seen_at=datetime.now(UTC) - last_seen_at))


def second_session(client: TestClient, login: Login, token: str) -> str:
    """Another session of the same account: a TOTP code cannot serve twice, so this one
    logs in with a recovery code (itself created through the API)."""
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    with session_scope(services.sessions) as session:
        posted = services.recovery.issue_enrolment_code(session, login.account_id, operator="a")
    codes = client.post(
        "/api/v1/auth/recovery-codes",
        json={"enrolment_code": posted},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert codes.status_code == 201, codes.text
    first = client.post(
        "/api/v1/auth/login", json={"login": login.login, "password": login.password}
    )
    second = client.post(
        "/api/v1/auth/mfa/recovery",
        json={"mfa_token": first.json()["mfa_token"], "code": codes.json()["codes"][0]},
    )
    assert second.status_code == 200, second.text
    other: str = second.json()["access_token"]
    return other


def test_an_idle_session_ends(
    client: TestClient, services: Services, pharmacist: Login, people: list[Person]
) -> None:
    token = log_in(client, pharmacist)
    assert lookup(client, token, people[0])[0] == 200
    # 59 minutes of silence: still open, and the lookup refreshes it.
    age_session(services, last_seen_at=timedelta(minutes=59))
    assert lookup(client, token, people[0])[0] == 200
    assert lookup(client, token, people[0])[0] == 200
    age_session(services, last_seen_at=timedelta(minutes=61))
    status, body = lookup(client, token, people[0])
    assert (status, body["error"]) == (401, "session_expired")


def test_a_busy_session_still_ends_at_its_absolute_limit(
    client: TestClient, services: Services, pharmacist: Login, people: list[Person]
) -> None:
    token = log_in(client, pharmacist)
    with session_scope(services.sessions) as session:
        session.execute(
            update(AuthSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    status, body = lookup(client, token, people[0])
    assert (status, body["error"]) in ((401, "session_expired"), (401, "invalid_token"))


def test_logout_ends_this_session_only(
    client: TestClient, pharmacist: Login, people: list[Person]
) -> None:
    desk = log_in(client, pharmacist)
    phone = second_session(client, pharmacist, desk)
    bye = client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {desk}"})
    assert bye.status_code == 204
    assert lookup(client, desk, people[0])[1]["error"] == "session_expired"
    assert lookup(client, phone, people[0])[0] == 200


def test_a_professional_sees_and_ends_every_session(
    client: TestClient, pharmacist: Login, people: list[Person]
) -> None:
    mine = log_in(client, pharmacist)
    other = second_session(client, pharmacist, mine)
    listed = client.get("/api/v1/auth/sessions", headers={"Authorization": f"Bearer {mine}"})
    assert listed.status_code == 200
    sessions = listed.json()
    assert len(sessions) == 2
    assert sorted(s["current"] for s in sessions) == [False, True]
    assert {s["acr"] for s in sessions} == {"password+totp", "password+recovery"}
    ended = client.post(
        "/api/v1/auth/sessions/revoke-all", headers={"Authorization": f"Bearer {mine}"}
    )
    assert ended.status_code == 204
    for token in (mine, other):
        assert lookup(client, token, people[0])[0] == 401


def test_a_token_is_bound_to_its_own_session_and_account(
    client: TestClient, services: Services, pharmacist: Login, people: list[Person]
) -> None:
    token = log_in(client, pharmacist)
    claims = services.auth.access_tokens.check_access(token)
    # A validly signed token naming a session that is not the account's is refused.
    forged = services.auth.access_tokens.issue_access(
        "someone-else",
        session_id=claims.session_id,
        acr="webauthn",
        epoch=0,
        auth_time=claims.auth_time,
        expires_at=claims.expires_at,
    )
    assert lookup(client, forged, people[0])[1]["error"] == "session_expired"
    # The session, not the token, says how the caller authenticated.
    upgraded = services.auth.access_tokens.issue_access(
        pharmacist.account_id,
        session_id=claims.session_id,
        acr="webauthn",
        epoch=claims.epoch,
        auth_time=claims.auth_time,
        expires_at=claims.expires_at,
    )
    with session_scope(services.sessions) as session:
        assert services.auth.authenticate(session, upgraded).acr == "password+totp"
