"""Issue 10, finding 1, played for real: a phished password and one relayed TOTP code must
not become a key that passes the guard's step-up, nor recovery codes, nor a foothold that
survives the operator's restore; and the owner learns of it without her mailbox.

The attacker's key is a software authenticator; the guard runs inline, in memory; the
pharmacy and the attacker come from their own networks (forwarded addresses, trusted).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, update

from rempart.auth.levels import YOUNG_KEY_DETAIL
from rempart.cli import app
from rempart.config import Settings
from rempart.devtools.soft_authenticator import SoftAuthenticator
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import AccountCode, AuthSession, MailOutbox, WebAuthnCredential
from tests.functional.conftest import Login, Person, totp_code
from tests.functional.test_guard_inline import (
    ORIGIN,
    PHARMACY,
    ROBOT,
    cli_env,
    guard_settings,
    lookup,
    reset_after_restore,
    runner,
    town,
)

__all__ = ["town"]  # the fixture, imported for these tests

API = "/api/v1/auth"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return guard_settings(database_url, tmp_path)


def bearer(token: str, origin: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **origin}


def totp_login(client: TestClient, login: Login, origin: dict[str, str], ahead: int) -> Any:
    """Password, then a TOTP code (``ahead`` steps of 30 s: a code serves once)."""
    first = client.post(
        f"{API}/login", json={"login": login.login, "password": login.password}, headers=origin
    )
    assert first.status_code == 200, first.text
    return client.post(
        f"{API}/mfa/totp",
        json={
            "mfa_token": first.json()["mfa_token"],
            "code": totp_code(login, ahead),
        },
        headers=origin,
    )


def totp_token(client: TestClient, login: Login, origin: dict[str, str], ahead: int) -> str:
    response = totp_login(client, login, origin, ahead)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def register(
    client: TestClient,
    token: str,
    key: SoftAuthenticator,
    origin: dict[str, str],
    enrolment_code: str | None = None,
) -> Any:
    options = client.post(
        f"{API}/webauthn/register/options", json={}, headers=bearer(token, origin)
    )
    assert options.status_code == 200, options.text
    body: dict[str, Any] = {
        "handle": options.json()["handle"],
        "credential": key.create(options.json()["options"]),
        "label": "Clé",
    }
    if enrolment_code is not None:
        body["enrolment_code"] = enrolment_code
    return client.post(f"{API}/webauthn/register", json=body, headers=bearer(token, origin))


def key_login(
    client: TestClient, login: Login, key: SoftAuthenticator, origin: dict[str, str]
) -> Any:
    first = client.post(
        f"{API}/login", json={"login": login.login, "password": login.password}, headers=origin
    )
    assert first.status_code == 200, first.text
    mfa_token = first.json()["mfa_token"]
    options = client.post(
        f"{API}/mfa/webauthn/options", json={"mfa_token": mfa_token}, headers=origin
    ).json()
    return client.post(
        f"{API}/mfa/webauthn",
        json={
            "mfa_token": mfa_token,
            "handle": options["handle"],
            "credential": key.get(options["options"]),
        },
        headers=origin,
    )


def key_step_up(
    client: TestClient, token: str, key: SoftAuthenticator, origin: dict[str, str]
) -> Any:
    options = client.post(f"{API}/step-up/webauthn/options", json={}, headers=bearer(token, origin))
    assert options.status_code == 200, options.text
    return client.post(
        f"{API}/step-up/webauthn",
        json={"handle": options.json()["handle"], "credential": key.get(options.json()["options"])},
        headers=bearer(token, origin),
    )


def posted_code(services: Services, account_id: str = "ph-lilas") -> str:
    with session_scope(services.sessions) as session:
        return services.recovery.issue_enrolment_code(session, account_id, operator="alice")


def read_strangers(
    client: TestClient, token: str, strangers: list[Person], origin: dict[str, str]
) -> list[Any]:
    """Lookups of strangers until the guard asks for a step-up (or suspends)."""
    answers = []
    for person in strangers:
        response = lookup(client, token, person, origin)
        answers.append(response)
        if response.status_code != 200:
            break
    return answers


def age_keys(services: Services, days: int = 2) -> None:
    with session_scope(services.sessions) as session:
        session.execute(
            update(WebAuthnCredential).values(created_at=datetime.now(UTC) - timedelta(days=days))
        )


def key_count(services: Services) -> int:
    with session_scope(services.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(WebAuthnCredential)) or 0)


# -- (a) a relayed TOTP code does not plant a key ----------------------------------------------


def test_a_relayed_totp_session_cannot_register_the_attackers_key(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    totp_token(client, pharmacist, PHARMACY, ahead=-1)  # the owner, at the counter
    attacker = totp_token(client, pharmacist, ROBOT, ahead=0)  # password + relayed code
    planted = register(client, attacker, SoftAuthenticator.security_key(origin=ORIGIN), ROBOT)
    assert planted.status_code == 401, planted.text
    assert planted.json()["error"] == "insufficient_user_authentication"
    challenge = planted.headers["www-authenticate"]
    assert 'acr_values="cps psc webauthn"' in challenge
    assert 'max_age="600"' in challenge
    assert "enrolment code" in planted.json()["detail"]
    # A guessed enrolment code does no better, and is recorded.
    guessed = register(
        client,
        attacker,
        SoftAuthenticator.security_key(origin=ORIGIN),
        ROBOT,
        enrolment_code="ABCD-EFGH-JKMN-PQRS",
    )
    assert (guessed.status_code, guessed.json()["error"]) == (401, "invalid_enrolment_code")
    assert key_count(services) == 0


# -- (b) a key enrolled with the posted code is young: no step-up with it ---------------------


def test_a_young_key_does_not_pass_the_guards_step_up_until_established(
    client: TestClient,
    services: Services,
    pharmacist: Login,
    town: tuple[list[Person], list[Person]],
) -> None:
    _, strangers = town
    totp_token(client, pharmacist, PHARMACY, ahead=-1)  # the pharmacy's network is known
    key = SoftAuthenticator.security_key(origin=ORIGIN)
    token = totp_token(client, pharmacist, PHARMACY, ahead=0)
    registered = register(client, token, key, PHARMACY, enrolment_code=posted_code(services))
    assert registered.status_code == 201, registered.text

    young = key_login(client, pharmacist, key, PHARMACY)
    assert young.status_code == 200, young.text
    answers = read_strangers(client, young.json()["access_token"], strangers, PHARMACY)
    refused = answers[-1]
    assert refused.status_code == 401, [a.status_code for a in answers]
    assert refused.json() == {
        "error": "insufficient_user_authentication",
        "detail": YOUNG_KEY_DETAIL,
    }
    # Answering the challenge with the young key gives a session that is still refused.
    stepped = key_step_up(client, young.json()["access_token"], key, PHARMACY)
    assert stepped.status_code == 200, stepped.text
    again = lookup(client, stepped.json()["access_token"], strangers[len(answers)], PHARMACY)
    assert again.status_code == 401
    assert again.json()["detail"] == YOUNG_KEY_DETAIL

    # A day later, from the pharmacy: the key is established and passes the step-up.
    age_keys(services)
    established = key_login(client, pharmacist, key, PHARMACY)
    assert established.status_code == 200, established.text
    with session_scope(services.sessions) as session:
        assert session.scalar(
            select(AuthSession.factor_established)
            .where(AuthSession.acr == "webauthn")
            .order_by(AuthSession.auth_time.desc())
            .limit(1)
        )
    passed = lookup(
        client, established.json()["access_token"], strangers[len(answers) + 1], PHARMACY
    )
    assert passed.status_code == 200, passed.text


def test_a_key_enrolled_from_the_attackers_network_never_passes_the_step_up(
    client: TestClient,
    services: Services,
    pharmacist: Login,
    town: tuple[list[Person], list[Person]],
) -> None:
    _, strangers = town
    totp_token(client, pharmacist, PHARMACY, ahead=-1)
    # The attacker holds the posted letter too (stolen from the pharmacy's mailbox).
    attacker = totp_token(client, pharmacist, ROBOT, ahead=0)
    key = SoftAuthenticator.security_key(origin=ORIGIN)
    planted = register(client, attacker, key, ROBOT, enrolment_code=posted_code(services))
    assert planted.status_code == 201, planted.text
    age_keys(services, days=30)  # long past the probation
    with_key = key_login(client, pharmacist, key, ROBOT)
    assert with_key.status_code == 200, with_key.text
    answers = read_strangers(client, with_key.json()["access_token"], strangers, ROBOT)
    assert answers[-1].status_code == 401, [a.status_code for a in answers]
    assert answers[-1].json()["detail"] == YOUNG_KEY_DETAIL
    assert sum(a.status_code == 200 for a in answers) <= 3


# -- (c) recovery codes -------------------------------------------------------------------------


def test_recovery_codes_are_refused_to_totp_and_recovery_sessions(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    totp_token(client, pharmacist, PHARMACY, ahead=-1)
    attacker = totp_token(client, pharmacist, ROBOT, ahead=0)
    minted = client.post(f"{API}/recovery-codes", json={}, headers=bearer(attacker, ROBOT))
    assert minted.status_code == 401
    assert minted.json()["error"] == "insufficient_user_authentication"

    # Codes the owner made with her posted code; one of them leaks.
    owner = totp_token(client, pharmacist, PHARMACY, ahead=1)
    codes = client.post(
        f"{API}/recovery-codes",
        json={"enrolment_code": posted_code(services)},
        headers=bearer(owner, PHARMACY),
    )
    assert codes.status_code == 201, codes.text
    first = client.post(
        f"{API}/login",
        json={"login": pharmacist.login, "password": pharmacist.password},
        headers=ROBOT,
    )
    recovered = client.post(
        f"{API}/mfa/recovery",
        json={"mfa_token": first.json()["mfa_token"], "code": codes.json()["codes"][0]},
        headers=ROBOT,
    )
    assert recovered.status_code == 200, recovered.text
    # A password + recovery session never mints codes, even with a posted code.
    refused = client.post(
        f"{API}/recovery-codes",
        json={"enrolment_code": posted_code(services)},
        headers=bearer(recovered.json()["access_token"], ROBOT),
    )
    assert refused.status_code == 401
    assert refused.json()["error"] == "insufficient_user_authentication"
    with session_scope(services.sessions) as session:
        left = session.scalar(
            select(func.count())
            .select_from(AccountCode)
            .where(AccountCode.kind == "recovery", AccountCode.used_at.is_(None))
        )
    assert left == services.settings.recovery_code_count - 1  # the owner's, minus the leaked


# -- (d) the restore cycle ------------------------------------------------------------------------


def test_restore_takes_back_the_attackers_key_codes_and_sessions(
    client: TestClient,
    services: Services,
    pharmacist: Login,
    town: tuple[list[Person], list[Person]],
) -> None:
    _, strangers = town
    totp_token(client, pharmacist, PHARMACY, ahead=-1)  # the owner, weeks ago
    with session_scope(services.sessions) as session:
        session.execute(
            update(AuthSession).values(auth_time=datetime.now(UTC) - timedelta(days=30))
        )

    # The attacker: password + relayed code from his network, a key planted with a letter
    # he should not have had, recovery codes minted with another, then a robot reads.
    attacker = totp_token(client, pharmacist, ROBOT, ahead=0)
    his_key = SoftAuthenticator.security_key(origin=ORIGIN)
    assert register(client, attacker, his_key, ROBOT, posted_code(services)).status_code == 201
    his_codes = client.post(
        f"{API}/recovery-codes",
        json={"enrolment_code": posted_code(services)},
        headers=bearer(attacker, ROBOT),
    )
    assert his_codes.status_code == 201, his_codes.text
    with_key = key_login(client, pharmacist, his_key, ROBOT).json()["access_token"]
    statuses = [lookup(client, with_key, person, ROBOT).status_code for person in strangers]
    assert 403 in statuses, statuses
    assert statuses.count(200) <= 3, statuses

    env = cli_env(services)
    restored = runner.invoke(
        app, ["accounts", "restore", "--account-id", "ph-lilas", "--operator", "alice"], env=env
    )
    assert restored.exit_code == 0, restored.output
    assert "removed 1 key(s), 10 recovery code(s), 2 network(s) or device(s)" in restored.stderr
    assert "new network" in restored.stderr  # the evidence that dated the compromise
    # His key and codes are gone.
    with session_scope(services.sessions) as session:
        assert session.scalars(select(WebAuthnCredential.credential_id)).all() == []
        assert (
            session.scalar(
                select(func.count()).select_from(AccountCode).where(AccountCode.kind == "recovery")
            )
            == 0
        )
        open_sessions = session.scalar(
            select(func.count()).select_from(AuthSession).where(AuthSession.revoked_at.is_(None))
        )
    assert open_sessions == 0
    # Nothing he held works any more: his session, his key, his codes, the password he
    # phished and the TOTP seed behind the code he relayed.
    assert lookup(client, with_key, strangers[0], ROBOT).status_code == 401
    first = client.post(
        f"{API}/login", json={"login": pharmacist.login, "password": pharmacist.password}
    )
    assert (first.status_code, first.json()["error"]) == (401, "invalid_credentials")

    # The owner, with what the insurer posted: a new password and the new seed.
    new_owner = reset_after_restore(client, pharmacist, restored.stdout)
    old_seed = Login(pharmacist.account_id, pharmacist.login, new_owner.password, pharmacist.totp)
    stale = totp_login(client, old_seed, PHARMACY, ahead=0)
    assert (stale.status_code, stale.json()["error"]) == (401, "invalid_mfa_code")
    # Even were he to learn the new password, his key is no longer the account's.
    first = client.post(
        f"{API}/login",
        json={"login": new_owner.login, "password": new_owner.password},
        headers=ROBOT,
    )
    assert first.json()["methods"] == ["totp", "recovery_code"]
    assert totp_login(client, new_owner, PHARMACY, ahead=0).status_code == 200
    with session_scope(services.sessions) as session:
        kinds = session.scalars(
            select(MailOutbox.kind).where(MailOutbox.account_id == "ph-lilas")
        ).all()
    assert "account_restored" in kinds


# -- (e) notices do not rely on the mailbox --------------------------------------------------------


def test_a_notice_the_attacker_deleted_is_shown_at_the_owners_next_strong_login(
    client: TestClient, services: Services, pharmacist: Login
) -> None:
    owner_key = SoftAuthenticator.security_key(origin=ORIGIN)
    owner = totp_token(client, pharmacist, PHARMACY, ahead=-1)
    assert register(client, owner, owner_key, PHARMACY, posted_code(services)).status_code == 201
    age_keys(services, days=60)
    first_strong = key_login(client, pharmacist, owner_key, PHARMACY)
    assert first_strong.status_code == 200
    assert {n["kind"] for n in first_strong.json()["notices"]} >= {"webauthn_registered"}

    # The attacker logs in from his network; he holds the mailbox and deletes the e-mail.
    totp_token(client, pharmacist, ROBOT, ahead=0)
    with session_scope(services.sessions) as session:
        session.execute(delete(MailOutbox))

    # The owner's next strong login shows it, in French, once.
    strong = key_login(client, pharmacist, owner_key, PHARMACY)
    assert strong.status_code == 200, strong.text
    [notice] = strong.json()["notices"]
    assert notice["kind"] == "login_new_origin"
    assert "198.51.100.66" in notice["text"]
    assert "connexion" in notice["subject"].lower()
    again = key_login(client, pharmacist, owner_key, PHARMACY)
    assert "notices" not in again.json()
    # A password + TOTP login is not shown notices (it may be the attacker's)...
    weak = totp_login(client, pharmacist, PHARMACY, ahead=1)
    assert "notices" not in weak.json()
    # ...and any session may list them (newest first), without marking them.
    listed = client.get(
        f"{API}/notices", headers=bearer(weak.json()["access_token"], PHARMACY)
    ).json()["notices"]
    assert listed[0]["kind"] == "login_new_origin"
