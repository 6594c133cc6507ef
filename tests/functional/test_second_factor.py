"""Issue 10, findings 3, 5 and 7: the attacks on the second factor, played over HTTP.

The attacker holds the password (phished, or from a leak) and tries to get past the
second factor: by reusing a token a phishing relay saw, by replaying it from his own
machine, by guessing codes slowly from rotating addresses, by resetting the password
with one code, by changing it from a stolen session, or by asking the login which
accounts the guard suspended. Client addresses come from ``X-Forwarded-For`` (a
trusted proxy in front, as deployed).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from rempart.audit.events import Origin
from rempart.audit.models import AuditEvent
from rempart.auth.throttle import (
    LoginThrottle,
    MemoryCounterStore,
    ThrottleLimits,
)
from rempart.auth.tokens import InvalidToken
from rempart.cli import app
from rempart.config import Settings, load_settings
from rempart.devtools.soft_authenticator import SoftAuthenticator, SoftCredential
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Account, MailOutbox, WebAuthnCredential
from tests.conftest import FAST_HASHING
from tests.functional.conftest import PROXY, Login, fresh_throttle, totp_code

ORIGIN = "http://testserver"
API = "/api/v1/auth"
PHARMACY = {"X-Forwarded-For": "192.0.2.10", "User-Agent": "Mozilla/5.0 Firefox/128.0"}
RELAY = {"X-Forwarded-For": "198.51.100.23", "User-Agent": "python-requests/2.32.3"}
NEW_PASSWORD = "une toute autre phrase de passe 77"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        trusted_proxies=PROXY,
        webauthn_rp_id="testserver",
        webauthn_origins=[ORIGIN],
        **FAST_HASHING,
    )


@pytest.fixture
def loose_throttle(services: Services) -> None:
    """A throttle that never holds anyone back: what stops the guesser is the count."""
    services.auth.throttle = LoginThrottle(
        MemoryCounterStore(),
        ThrottleLimits(
            account_failures=10_000,
            account_wide_failures=10_000,
            address_failures=10_000,
            address_failed_logins=10_000,
            network_failed_logins=10_000,
            global_failures_per_minute=10_000,
        ),
        secret=services.settings.keys.for_purpose("throttle"),
    )


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def throttle(request: pytest.FixtureRequest, services: Services) -> Iterator[str]:
    """The app's throttle with the shipped limits, in memory or in the real Redis."""
    with fresh_throttle(request, services) as backend:
        yield backend


def bearer(token: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **(headers or {})}


def password_step(
    client: TestClient, login: Login, headers: dict[str, str], password: str | None = None
) -> httpx.Response:
    answer: httpx.Response = client.post(
        f"{API}/login",
        json={"login": login.login, "password": login.password if password is None else password},
        headers=headers,
    )
    return answer


def mfa_token(client: TestClient, login: Login, headers: dict[str, str]) -> str:
    first = password_step(client, login, headers)
    assert first.status_code == 200, first.text
    token: str = first.json()["mfa_token"]
    return token


def totp(client: TestClient, token: str, code: str, headers: dict[str, str]) -> httpx.Response:
    answer: httpx.Response = client.post(
        f"{API}/mfa/totp", json={"mfa_token": token, "code": code}, headers=headers
    )
    return answer


def code_at(login: Login, step: int) -> str:
    """The code of a later time step: a code serves once, and ±1 step is accepted."""
    return totp_code(login, step)


def wrong_code(login: Login) -> str:
    right = {login.totp.at(time.time() + 30 * k) for k in (-1, 0, 1)}
    return next(c for c in (f"{n:06d}" for n in range(1000)) if c not in right)


def events(services: Services, name: str) -> list[AuditEvent]:
    with session_scope(services.sessions) as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.ts_us)
            )
        )


def account(services: Services, account_id: str) -> Account:
    with session_scope(services.sessions) as session:
        row = session.get(Account, account_id)
        assert row is not None
        session.expunge(row)
        return row


def mails(services: Services, kind: str) -> list[MailOutbox]:
    with session_scope(services.sessions) as session:
        rows = list(session.scalars(select(MailOutbox).where(MailOutbox.kind == kind)))
        for row in rows:
            session.expunge(row)
        return rows


def enrolled_key(services: Services, login: Login, *, young: bool = False) -> SoftAuthenticator:
    """A key the owner enrolled two days ago from the pharmacy (written as enrolment
    leaves it, past its probation; how a first key may be enrolled is finding 1's), or,
    ``young``, one enrolled just now."""
    key = SoftAuthenticator.security_key(origin=ORIGIN)
    credential = SoftCredential(
        credential_id=secrets.token_bytes(32),
        private_key=ec.generate_private_key(ec.SECP256R1()),
        rp_id="testserver",
        user_handle=services.webauthn.user_handle(login.account_id),
    )
    key.credentials[credential.credential_id] = credential
    with session_scope(services.sessions) as session:
        session.add(
            WebAuthnCredential(
                credential_id=credential.id,
                account_id=login.account_id,
                public_key=credential.cose_public_key(),
                sign_count=0,
                transports="usb",
                label="Clé du comptoir",
                created_at=datetime.now(UTC) - (timedelta(0) if young else timedelta(days=2)),
            )
        )
    return key


def key_login(
    client: TestClient, login: Login, key: SoftAuthenticator, headers: dict[str, str]
) -> httpx.Response:
    token = mfa_token(client, login, headers)
    options = client.post(f"{API}/mfa/webauthn/options", json={"mfa_token": token}, headers=headers)
    assert options.status_code == 200, options.text
    answer: httpx.Response = client.post(
        f"{API}/mfa/webauthn",
        json={
            "mfa_token": token,
            "handle": options.json()["handle"],
            "credential": key.get(options.json()["options"]),
        },
        headers=headers,
    )
    return answer


# -- finding 3: a single-use token, bound to its client ------------------------------------


def test_a_relayed_mfa_token_is_refused_once_the_owner_logged_in_with_it(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    # A phishing relay passes the password step and forwards the owner's code: it holds
    # the token the owner's login used. It asks for one more session with the next code.
    token = mfa_token(client, pharmacist, RELAY)
    assert totp(client, token, code_at(pharmacist, 0), RELAY).status_code == 200
    reused = totp(client, token, code_at(pharmacist, 1), RELAY)
    assert (reused.status_code, reused.json()["error"]) == (401, "invalid_token")
    # Nor with the recovery-code or key route.
    recovery = client.post(
        f"{API}/mfa/recovery", json={"mfa_token": token, "code": "ABCD-EFGH-JKMN"}, headers=RELAY
    )
    assert (recovery.status_code, recovery.json()["error"]) == (401, "invalid_token")
    assert [e.reasons for e in events(services, "mfa_token_refused")] == ["spent", "spent"]


def test_an_mfa_token_replayed_from_another_client_is_refused(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    token = mfa_token(client, pharmacist, PHARMACY)
    elsewhere = {**PHARMACY, "X-Forwarded-For": "203.0.113.99"}
    other_browser = {**PHARMACY, "User-Agent": "python-requests/2.32.3"}
    for headers in (elsewhere, other_browser):
        stolen = totp(client, token, code_at(pharmacist, 0), headers)
        assert (stolen.status_code, stolen.json()["error"]) == (401, "invalid_token")
        options = client.post(
            f"{API}/mfa/webauthn/options", json={"mfa_token": token}, headers=headers
        )
        assert (options.status_code, options.json()["error"]) == (401, "invalid_token")
    assert {e.reasons for e in events(services, "mfa_token_refused")} == {"other_client"}
    # The client that passed the password step goes on with it.
    assert totp(client, token, code_at(pharmacist, 0), PHARMACY).status_code == 200


def test_a_token_takes_three_attempts_then_is_spent(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    key = enrolled_key(services, pharmacist)
    token = mfa_token(client, pharmacist, PHARMACY)
    # Fetching a key's options is not an attempt.
    for _ in range(5):
        options = client.post(
            f"{API}/mfa/webauthn/options", json={"mfa_token": token}, headers=PHARMACY
        )
        assert options.status_code == 200
    wrong = wrong_code(pharmacist)
    for _ in range(3):
        answer = totp(client, token, wrong, PHARMACY)
        assert (answer.status_code, answer.json()["error"]) == (401, "invalid_mfa_code")
    # Even the right code, or the key, no longer passes with this token.
    spent = totp(client, token, code_at(pharmacist, 0), PHARMACY)
    assert (spent.status_code, spent.json()["error"]) == (401, "invalid_token")
    late_key = client.post(
        f"{API}/mfa/webauthn",
        json={
            "mfa_token": token,
            "handle": options.json()["handle"],
            "credential": key.get(options.json()["options"]),
        },
        headers=PHARMACY,
    )
    assert (late_key.status_code, late_key.json()["error"]) == (401, "invalid_token")
    assert account(services, pharmacist.account_id).mfa_failures == 3


def test_of_two_requests_racing_with_one_token_only_one_wins(
    services: Services, pharmacist: Login
) -> None:
    with session_scope(services.sessions) as session:
        challenge = services.auth.login_password(
            session,
            login=pharmacist.login,
            password=pharmacist.password,
            address="192.0.2.10",
            user_agent="Firefox/128.0",
        )
    origin = Origin(client_ip="192.0.2.10", user_agent="Firefox/128.0")
    with services.sessions() as one, services.sessions() as two:
        # Both requests find the token open (each claims one of its attempts)...
        _, where_one = services.auth.second_step(one, challenge.mfa_token, origin)
        _, where_two = services.auth.second_step(two, challenge.mfa_token, origin)
        one.commit()
        two.commit()
        # ...and both factors verify; the conditional update lets the first one through.
        services.auth.second_factor_passed(one, challenge.mfa_token, where_one)
        one.commit()
        with pytest.raises(InvalidToken):
            services.auth.second_factor_passed(two, challenge.mfa_token, where_two)


# -- finding 3: slow guessing is counted, told and stopped ---------------------------------


@pytest.mark.usefixtures("loose_throttle")
def test_guessing_codes_from_rotating_addresses_locks_the_codes_out(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    key = enrolled_key(services, pharmacist)
    assert key_login(client, pharmacist, key, PHARMACY).status_code == 200  # her usual place
    threshold = services.settings.mfa_lock_threshold
    # The attacker has the password; every guess comes from a new network, after a fresh
    # password step, one code per token, slowly: no throttle rule ever fires here.
    for i in range(threshold):
        where = {"X-Forwarded-For": f"198.51.{i}.23", "User-Agent": f"bot/{i}"}
        guess = totp(client, mfa_token(client, pharmacist, where), wrong_code(pharmacist), where)
        assert (guess.status_code, guess.json()["error"]) == (401, "invalid_mfa_code")
    # At the threshold: the owner is told once, in French, with no link and no request for
    # a secret; the guard's alert is listed.
    [notice] = mails(services, "mfa_locked")
    assert notice.recipient == "pharmacie.lilas@officine.example"
    assert f"{threshold} codes de connexion\nerronés" in notice.body_text
    assert "http" not in notice.body_text.lower()
    runner = CliRunner()
    env = {
        "REMPART_DATABASE_URL": services.settings.database_url,
        "REMPART_DATA_DIR": str(services.settings.resolved_data_dir),
    }
    listed = runner.invoke(app, ["guard", "alerts", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    [alert] = [a for a in json.loads(listed.stdout) if "mfa_guessing" in a["reasons"]]
    assert alert["account_id"] == pharmacist.account_id
    assert [e.reasons for e in events(services, "mfa_locked")] == [
        f"mfa_guessing,mfa_failures:{threshold}"
    ]
    # From now on even the RIGHT code opens nothing, from anywhere, her pharmacy included;
    # the answer says what does.
    where = {"X-Forwarded-For": "198.51.200.23", "User-Agent": "bot/last"}
    for headers in (where, PHARMACY):
        first = password_step(client, pharmacist, headers)
        assert first.json()["methods"] == ["webauthn"]
        right = totp(client, first.json()["mfa_token"], code_at(pharmacist, 0), headers)
        assert (right.status_code, right.json()["error"]) == (401, "mfa_locked")
        assert 'acr_values="cps webauthn"' in right.headers["www-authenticate"]
        assert "security key or the CPS card" in right.json()["detail"]
    assert len(mails(services, "mfa_locked")) == 1
    # Her key, a phishing-resistant factor, logs her in and lifts the lock.
    assert key_login(client, pharmacist, key, PHARMACY).status_code == 200
    cleared = account(services, pharmacist.account_id)
    assert (cleared.mfa_failures, cleared.mfa_locked_at) == (0, None)
    again = totp(client, mfa_token(client, pharmacist, PHARMACY), code_at(pharmacist, 0), PHARMACY)
    assert again.status_code == 200
    assert [e.reasons for e in events(services, "mfa_lock_cleared")] == ["webauthn"]


@pytest.mark.usefixtures("loose_throttle")
def test_below_the_threshold_only_a_known_place_sets_the_count_back(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    threshold = services.settings.mfa_lock_threshold
    first = totp(client, mfa_token(client, pharmacist, PHARMACY), code_at(pharmacist, -1), PHARMACY)
    assert first.status_code == 200

    def guess(i: int) -> None:
        where = {"X-Forwarded-For": f"203.0.{i}.9", "User-Agent": "bot"}
        answer = totp(client, mfa_token(client, pharmacist, where), wrong_code(pharmacist), where)
        assert answer.status_code == 401

    for i in range(threshold - 1):
        guess(i)
    # The owner's success at her pharmacy (known network and device) sets it back...
    ok = totp(client, mfa_token(client, pharmacist, PHARMACY), code_at(pharmacist, 0), PHARMACY)
    assert ok.status_code == 200
    assert account(services, pharmacist.account_id).mfa_failures == 0
    for i in range(threshold - 1):
        guess(i)
    # ...a success from a network the account never used (the guesser's, with a relayed
    # code) does not: one more wrong code and the codes are locked out.
    relayed = totp(client, mfa_token(client, pharmacist, RELAY), code_at(pharmacist, 1), RELAY)
    assert relayed.status_code == 200
    assert account(services, pharmacist.account_id).mfa_failures == threshold - 1
    guess(99)
    assert account(services, pharmacist.account_id).mfa_locked_at is not None


@pytest.mark.usefixtures("loose_throttle")
def test_an_operator_clears_the_lock_and_it_is_audited(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    with session_scope(services.sessions) as session:
        row = session.get(Account, pharmacist.account_id)
        assert row is not None
        row.mfa_failures = services.settings.mfa_lock_threshold
        row.mfa_locked_at = row.created_at
    locked = totp(client, mfa_token(client, pharmacist, PHARMACY), code_at(pharmacist, 0), PHARMACY)
    assert locked.json()["error"] == "mfa_locked"
    runner = CliRunner()
    env = {
        "REMPART_DATABASE_URL": services.settings.database_url,
        "REMPART_DATA_DIR": str(services.settings.resolved_data_dir),
    }
    unnamed = runner.invoke(
        app, ["accounts", "clear-mfa-lock", "--account-id", pharmacist.account_id], env=env
    )
    assert unnamed.exit_code != 0  # the operator must be named
    cleared = runner.invoke(
        app,
        ["accounts", "clear-mfa-lock", "--account-id", pharmacist.account_id, "--operator", "bob"],
        env=env,
    )
    assert cleared.exit_code == 0, cleared.output
    assert [e.reasons for e in events(services, "mfa_lock_cleared")] == ["operator:bob"]
    ok = totp(client, mfa_token(client, pharmacist, PHARMACY), code_at(pharmacist, 0), PHARMACY)
    assert ok.status_code == 200


def test_recovery_codes_are_locked_out_too(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    with session_scope(services.sessions) as session:
        row = session.get(Account, pharmacist.account_id)
        assert row is not None
        row.mfa_locked_at = row.created_at
        code = services.recovery.issue_reset_code(session, pharmacist.account_id, operator="bob")
    token = mfa_token(client, pharmacist, RELAY)
    recovery = client.post(
        f"{API}/mfa/recovery", json={"mfa_token": token, "code": "ABCD-EFGH-JKMN"}, headers=RELAY
    )
    assert (recovery.status_code, recovery.json()["error"]) == (401, "mfa_locked")
    # A password reset with a recovery code neither (the same answer as a wrong code); the
    # code the insurer posts still works.
    refused = client.post(
        f"{API}/password/reset",
        json={
            "login": pharmacist.login,
            "new_password": NEW_PASSWORD,
            "method": "recovery_code",
            "code": "ABCD-EFGH-JKMN",
        },
    )
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_reset")
    posted = client.post(
        f"{API}/password/reset",
        json={
            "login": pharmacist.login,
            "new_password": NEW_PASSWORD,
            "method": "operator_code",
            "code": code,
        },
    )
    assert posted.status_code == 204, posted.text


def test_a_password_reset_with_a_totp_code_is_refused(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    # The attacker has the login (his mailbox) and one relayed code: it used to be enough.
    answer = client.post(
        f"{API}/password/reset",
        json={
            "login": pharmacist.login,
            "new_password": NEW_PASSWORD,
            "method": "totp",
            "code": code_at(pharmacist, 0),
        },
        headers=RELAY,
    )
    assert (answer.status_code, answer.json()["error"]) == (422, "reset_method_unavailable")
    assert password_step(client, pharmacist, PHARMACY).status_code == 200


# -- finding 5: the password change --------------------------------------------------------


def change(client: TestClient, token: str, current: str, code: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"current_password": current, "new_password": NEW_PASSWORD}
    if code is not None:
        body["code"] = code
    answer: httpx.Response = client.post(
        f"{API}/password/change", json=body, headers=bearer(token, RELAY)
    )
    return answer


def test_guessing_the_current_password_from_a_session_is_throttled(
    client: TestClient, services: Services, pharmacist: Login, throttle: str
) -> None:
    # A stolen session tries 40 current passwords, then the right one.
    session = totp(client, mfa_token(client, pharmacist, RELAY), code_at(pharmacist, 0), RELAY)
    token = session.json()["access_token"]
    statuses = [change(client, token, f"guess number {i}").status_code for i in range(40)]
    first_429 = statuses.index(429)
    assert first_429 <= services.settings.throttle_account_failures
    assert set(statuses[:first_429]) == {401}
    # Checked before the password: even the right one (with a right code) waits.
    late = change(client, token, pharmacist.password, code_at(pharmacist, 1))
    assert late.status_code == 429
    assert int(late.headers["retry-after"]) > 0
    assert len(events(services, "password_change_failed")) == first_429
    assert len(events(services, "login_throttled")) >= 40 - first_429


def test_a_password_change_needs_the_second_factor(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    session = totp(client, mfa_token(client, pharmacist, RELAY), code_at(pharmacist, -1), RELAY)
    token = session.json()["access_token"]
    bare = change(client, token, pharmacist.password)
    assert (bare.status_code, bare.json()["error"]) == (401, "second_factor_required")
    assert 'acr_values="cps webauthn"' in bare.headers["www-authenticate"]
    wrong = change(client, token, pharmacist.password, wrong_code(pharmacist))
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_mfa_code")
    assert account(services, pharmacist.account_id).mfa_failures == 1  # counted as a login's
    ok = change(client, token, pharmacist.password, code_at(pharmacist, 0))
    assert ok.status_code == 204, ok.text
    assert password_step(client, pharmacist, PHARMACY, NEW_PASSWORD).status_code == 200


def test_a_recent_key_login_changes_the_password_without_a_code(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    key = enrolled_key(services, pharmacist)
    session = key_login(client, pharmacist, key, RELAY)
    assert session.status_code == 200, session.text
    ok = change(client, session.json()["access_token"], pharmacist.password)
    assert ok.status_code == 204, ok.text


def test_a_young_key_login_does_not_change_the_password_without_a_code(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    # A key still in its probation (perhaps planted with a stolen enrolment letter) is
    # not the proof a password change asks for: a code is still needed.
    key = enrolled_key(services, pharmacist, young=True)
    session = key_login(client, pharmacist, key, RELAY)
    assert session.status_code == 200, session.text
    refused = change(client, session.json()["access_token"], pharmacist.password)
    assert (refused.status_code, refused.json()["error"]) == (401, "second_factor_required")


# -- finding 7: no oracle on suspended accounts --------------------------------------------


def test_a_suspended_account_answers_the_password_step_as_a_wrong_password(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    # A token handed out before the suspension says nothing either.
    early = mfa_token(client, pharmacist, PHARMACY)
    with session_scope(services.sessions) as session:
        services.auth.suspend(session, pharmacist.account_id, by="guard")
    stale = totp(client, early, code_at(pharmacist, 0), PHARMACY)
    assert (stale.status_code, stale.json()["error"]) == (401, "invalid_token")
    # The credential stuffer's right password, his wrong one, and an unknown login.
    right = password_step(client, pharmacist, RELAY)
    wrong = password_step(client, pharmacist, RELAY, "not her password at all")
    unknown = client.post(
        f"{API}/login", json={"login": "nobody.here", "password": "x" * 20}, headers=RELAY
    )
    assert right.status_code == wrong.status_code == unknown.status_code == 401
    assert right.content == wrong.content == unknown.content
    assert right.headers.keys() == wrong.headers.keys()
    assert right.json()["error"] == "invalid_credentials"
    assert "suspend" not in right.text
    # The truth is in the trail, and the right password counted as a failure: the
    # throttle holds the stuffer back as for any wrong password.
    refused = events(services, "login_refused")
    assert [(e.account_id, e.outcome) for e in refused] == [
        (pharmacist.account_id, "account_suspended")
    ]
    free = services.settings.throttle_account_failures
    statuses = [password_step(client, pharmacist, RELAY).status_code for _ in range(free)]
    assert statuses[-1] == 429
