"""API clients (practice software): client credentials, acting professional, rotation,
revocation, bad tokens; through the real HTTP app on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from rempart.api import create_app
from rempart.audit.events import Origin
from rempart.audit.models import AuditEvent
from rempart.auth.clients import (
    ActingProfessionalInvalid,
    ClientNotFound,
    ClientRevoked,
    ClientSecret,
    InvalidClientInput,
)
from rempart.auth.tokens import InvalidToken
from rempart.cli import app as cli_app
from rempart.config import load_settings
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import ApiClient, Professional
from tests.conftest import FAST_HASHING
from tests.functional.conftest import Login, Person, log_in, make_login

TOKEN_PATH = "/api/v1/oauth/token"
LILAS = "pharma-lilas"
ROSE = "pharma-rose"
RPPS_ALICE = "10000000001"


@dataclass(frozen=True)
class Organizations:
    alice: Login  # pharmacist at Les Lilas (also has an RPPS)
    bruno: Login  # pharmacist at Les Lilas, suspended
    chloe: Login  # pharmacist at La Rose
    nadia_account_id: str  # at Les Lilas in the directory, but no account


def add_professional(
    session: Session, account_id: str, organization_id: str, rpps: str | None = None
) -> None:
    session.add(
        Professional(
            account_id=account_id,
            rpps=rpps,
            profession="pharmacie",
            department="75",
            organization_id=organization_id,
            last_name=account_id.title(),
            first_name="Dominique",
            email=f"{account_id}@example.fr",
        )
    )


@pytest.fixture
def orgs(services: Services) -> Organizations:
    alice = make_login(services, "alice.lilas", account_id="ph-alice")
    bruno = make_login(services, "bruno.lilas", account_id="ph-bruno")
    chloe = make_login(services, "chloe.rose", account_id="ph-chloe")
    with session_scope(services.sessions) as session:
        add_professional(session, "ph-alice", LILAS, rpps=RPPS_ALICE)
        add_professional(session, "ph-bruno", LILAS)
        add_professional(session, "ph-chloe", ROSE)
        add_professional(session, "ph-nadia", LILAS)
        session.flush()
        assert services.auth.suspend(session, "ph-bruno")
    return Organizations(alice=alice, bruno=bruno, chloe=chloe, nadia_account_id="ph-nadia")


def new_client(services: Services, organization_id: str = LILAS) -> ClientSecret:
    with session_scope(services.sessions) as session:
        return services.clients.create(session, organization_id=organization_id, label="LGC test")


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def token_request(
    client: TestClient,
    form: dict[str, str] | str,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    content = form if isinstance(form, str) else str(httpx.QueryParams(form))
    response: httpx.Response = client.post(
        TOKEN_PATH,
        content=content,
        headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
    )
    return response


def get_token(client: TestClient, creds: ClientSecret, *, method: str = "basic") -> str:
    if method == "basic":
        response = token_request(
            client,
            {"grant_type": "client_credentials"},
            basic(creds.client_id, creds.client_secret),
        )
    else:
        response = token_request(
            client,
            {
                "grant_type": "client_credentials",
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
            },
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def lookup(
    client: TestClient, token: str, person: Person, acting: str | None
) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"}
    if acting is not None:
        headers["X-Acting-Professional"] = acting
    response = client.post(
        "/api/v1/rights/lookup",
        json={"nir": person.nir.value, "birth_date": person.birth_date.isoformat()},
        headers=headers,
    )
    return response.status_code, response.json()


def events(services: Services, name: str) -> list[AuditEvent]:
    with Session(services.audit_engine) as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.ts_us)
            ).all()
        )


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_client_credentials_then_a_lookup_as_an_acting_professional(
    client: TestClient, services: Services, orgs: Organizations, people: list[Person]
) -> None:
    creds = new_client(services)
    response = token_request(
        client, {"grant_type": "client_credentials"}, basic(creds.client_id, creds.client_secret)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert response.headers["cache-control"] == "no-store"
    assert creds.client_secret not in response.text
    by_form = get_token(client, creds, method="form")

    status, record = lookup(client, body["access_token"], people[0], orgs.alice.account_id)
    assert status == 200, record
    assert record["last_name"] == "Dupont"
    # The RPPS names the professional too, and a token from form authentication works alike.
    assert lookup(client, by_form, people[1], RPPS_ALICE)[0] == 200

    entries = events(services, "lookup")
    assert len(entries) == 2
    for entry in entries:
        assert entry.channel == "software"
        assert entry.acr == "client"
        assert entry.account_id == orgs.alice.account_id
        assert entry.session_id.startswith(f"client:{creds.client_id}:")
    issued = events(services, "client_token_issued")
    assert len(issued) == 2
    assert issued[0].session_id == f"client:{creds.client_id}"


def test_a_professional_outside_the_organization_gets_the_same_refusal(
    client: TestClient, services: Services, orgs: Organizations, people: list[Person]
) -> None:
    token = get_token(client, new_client(services))
    answers = [
        lookup(client, token, people[0], acting)
        for acting in (
            orgs.chloe.account_id,  # another organization
            "ph-nobody",  # unknown
            orgs.bruno.account_id,  # suspended
            orgs.nadia_account_id,  # in the directory, no account
            "10000000009",  # unknown RPPS
            "dr-martin",  # a professional with no organization
            "x" * 300,  # malformed
        )
    ]
    for status, body in answers:
        assert status == 403
        assert body == answers[0][1]
    assert answers[0][1]["error"] == "acting_professional_invalid"
    status, body = lookup(client, token, people[0], None)
    assert (status, body["error"]) == (400, "acting_professional_required")
    refused = events(services, "client_token_refused")
    assert {e.reasons for e in refused} == {"acting_professional_invalid"}
    assert len(refused) == 7
    assert events(services, "lookup") == []


def test_token_endpoint_refusals(
    client: TestClient, services: Services, orgs: Organizations
) -> None:
    creds = new_client(services)
    grant = {"grant_type": "client_credentials"}

    def expect(response: httpx.Response, status: int, code: str) -> None:
        assert response.status_code == status, response.text
        assert response.json()["error"] == code
        assert set(response.json()) == {"error", "detail"}
        assert creds.client_secret not in response.text

    wrong = token_request(client, grant, basic(creds.client_id, "not-the-secret"))
    expect(wrong, 401, "invalid_client")
    assert wrong.headers["www-authenticate"].startswith("Basic ")
    wrong_form = {**grant, "client_id": creds.client_id, "client_secret": "nope"}
    expect(token_request(client, wrong_form), 401, "invalid_client")
    unknown = token_request(client, grant, basic("lgc-0000000000000000", creds.client_secret))
    expect(unknown, 401, "invalid_client")
    assert unknown.json() == wrong.json()
    expect(token_request(client, grant), 401, "invalid_client")  # no credentials
    both = {**grant, "client_id": creds.client_id, "client_secret": creds.client_secret}
    expect(
        token_request(client, both, basic(creds.client_id, creds.client_secret)),
        400,
        "invalid_request",
    )
    good = basic(creds.client_id, creds.client_secret)
    expect(token_request(client, {"grant_type": "password"}, good), 400, "unsupported_grant_type")
    expect(token_request(client, {}, good), 400, "invalid_request")
    repeated = "grant_type=client_credentials&grant_type=client_credentials"
    expect(token_request(client, repeated, good), 400, "invalid_request")
    expect(token_request(client, "grant_type=%ff%fe", good), 400, "invalid_request")
    expect(token_request(client, grant, {"Authorization": "Basic !!!"}), 400, "invalid_request")
    expect(token_request(client, grant, {"Authorization": "Bearer x"}), 400, "invalid_request")
    as_json = client.post(TOKEN_PATH, json=grant, headers=good)
    expect(as_json, 415, "unsupported_media_type")

    reasons = [e.reasons for e in events(services, "client_token_refused")]
    assert reasons[:4] == [
        "wrong_secret",
        "wrong_secret",
        "unknown_client",
        "malformed_credentials",
    ]
    assert "unsupported_grant_type" in reasons
    assert events(services, "client_token_issued") == []
    # The right secret still works: refusals are not a lockout.
    get_token(client, creds)


def test_guessing_a_secret_is_throttled(
    client: TestClient, services: Services, orgs: Organizations
) -> None:
    creds = new_client(services)
    wrong = basic(creds.client_id, "guess")
    statuses = [
        token_request(client, {"grant_type": "client_credentials"}, wrong).status_code
        for _ in range(services.settings.throttle_account_failures + 2)
    ]
    assert statuses[0] == 401
    assert statuses[-1] == 429
    refused = events(services, "client_token_refused")
    assert refused[-1].reasons == "throttled"
    assert refused[-1].outcome == "too_many_attempts"


def test_rotation_keeps_the_former_secret_during_the_grace_only(
    client: TestClient, services: Services, orgs: Organizations, people: list[Person]
) -> None:
    old = new_client(services)
    old_token = get_token(client, old)
    with session_scope(services.sessions) as session:
        new = services.clients.rotate(session, old.client_id)
    assert new.client_secret != old.client_secret
    assert new.previous_valid_until is not None
    assert timedelta(hours=23) < new.previous_valid_until - datetime.now(UTC) <= timedelta(hours=24)
    # During the grace: both secrets, and tokens from both, work.
    during_grace = get_token(client, old)
    new_token = get_token(client, new)
    for token in (old_token, during_grace, new_token):
        assert lookup(client, token, people[0], orgs.alice.account_id)[0] == 200
    assert events(services, "client_token_issued")[1].reasons == "previous_secret"

    # The grace is over (moved into the past rather than waited for).
    with session_scope(services.sessions) as session:
        session.execute(
            update(ApiClient)
            .where(ApiClient.client_id == old.client_id)
            .values(previous_valid_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = token_request(
        client, {"grant_type": "client_credentials"}, basic(old.client_id, old.client_secret)
    )
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    for token in (old_token, during_grace):
        status, body = lookup(client, token, people[0], orgs.alice.account_id)
        assert (status, body["error"]) == (401, "invalid_token")
    assert lookup(client, new_token, people[0], orgs.alice.account_id)[0] == 200
    reasons = {e.reasons for e in events(services, "client_token_refused")}
    assert reasons == {"expired_secret", "secret_rotated_out"}

    # A rotation with no grace (a leaked secret) ends the former secret at once.
    with session_scope(services.sessions) as session:
        newest = services.clients.rotate(session, old.client_id, grace_hours=0)
    status, body = lookup(client, new_token, people[0], orgs.alice.account_id)
    assert (status, body["error"]) == (401, "invalid_token")
    response = token_request(
        client, {"grant_type": "client_credentials"}, basic(new.client_id, new.client_secret)
    )
    assert response.status_code == 401
    assert lookup(client, get_token(client, newest), people[0], orgs.alice.account_id)[0] == 200
    assert len(events(services, "client_secret_rotated")) == 2


def test_revoking_a_client_kills_its_tokens_at_once(
    client: TestClient, services: Services, orgs: Organizations, people: list[Person]
) -> None:
    creds = new_client(services)
    other = new_client(services)
    token, other_token = get_token(client, creds), get_token(client, other)
    assert lookup(client, token, people[0], orgs.alice.account_id)[0] == 200
    with session_scope(services.sessions) as session:
        assert services.clients.revoke(session, creds.client_id)
        assert not services.clients.revoke(session, creds.client_id)
    status, body = lookup(client, token, people[0], orgs.alice.account_id)
    assert (status, body["error"]) == (401, "invalid_token")
    response = token_request(
        client, {"grant_type": "client_credentials"}, basic(creds.client_id, creds.client_secret)
    )
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    assert lookup(client, other_token, people[0], orgs.alice.account_id)[0] == 200
    assert [e.reasons for e in events(services, "client_token_refused")] == [
        "client_revoked",
        "client_revoked",
    ]
    assert len(events(services, "client_revoked")) == 1


def test_client_and_professional_tokens_do_not_cross(
    client: TestClient, services: Services, orgs: Organizations, people: list[Person]
) -> None:
    creds = new_client(services)
    client_token = get_token(client, creds)
    portal_token = log_in(client, orgs.alice)
    origin = Origin(client_ip="192.0.2.1")
    with session_scope(services.sessions) as session:
        with pytest.raises(InvalidToken):
            services.auth.authenticate(session, client_token)
        with pytest.raises(InvalidToken):
            services.clients.authenticate(
                session, portal_token, acting=orgs.alice.account_id, origin=origin
            )
    # A professional's own token still works on the lookup, whatever header comes with it.
    status, _ = lookup(client, portal_token, people[0], orgs.chloe.account_id)
    assert status == 200
    assert events(services, "lookup")[-1].channel == "portal"

    # Each kind of claims, signed with the other kind's key, is refused.
    keys = services.settings.keys
    client_claims = jwt.decode(client_token, options={"verify_signature": False})
    portal_claims = jwt.decode(portal_token, options={"verify_signature": False})
    forged = [
        jwt.encode(client_claims, keys.for_purpose("access"), algorithm="HS256"),
        jwt.encode({**portal_claims, "typ": "client"}, keys.for_purpose("access"), "HS256"),
        jwt.encode({**client_claims, "typ": "access"}, keys.for_purpose("client"), "HS256"),
        jwt.encode({**portal_claims, "typ": "client"}, keys.for_purpose("client"), "HS256"),
    ]
    for token in forged:
        status, body = lookup(client, token, people[0], orgs.alice.account_id)
        assert (status, body["error"]) == (401, "invalid_token"), token


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_tampered_expired_foreign_and_unsigned_client_tokens_are_refused(
    client: TestClient, services: Services, orgs: Organizations, people: list[Person]
) -> None:
    token = get_token(client, new_client(services))
    rose = get_token(client, new_client(services, ROSE))
    claims = jwt.decode(token, options={"verify_signature": False})
    key = services.settings.keys.for_purpose("client")
    header, _, signature = token.split(".")
    old = int(time.time()) - 7200
    bad = {
        "tampered": f"{header}.{b64({**claims, 'org': ROSE})}.{signature}",
        "expired": jwt.encode({**claims, "iat": old, "exp": old + 3600}, key, "HS256"),
        "foreign": jwt.encode(claims, secrets.token_bytes(32), "HS256"),
        "alg_none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.",
        "wrong_alg": jwt.encode(claims, key, "HS512"),
        "wrong_issuer": jwt.encode({**claims, "iss": "elsewhere"}, key, "HS256"),
        "garbage": "not.a.token",
    }
    for name, forged in bad.items():
        status, body = lookup(client, forged, people[0], orgs.alice.account_id)
        assert (status, body["error"]) == (401, "invalid_token"), name
    # A genuine token of another organization cannot act for this one's professionals.
    status, body = lookup(client, rose, people[0], orgs.alice.account_id)
    assert (status, body["error"]) == (403, "acting_professional_invalid")
    assert lookup(client, rose, people[0], orgs.chloe.account_id)[0] == 200
    assert lookup(client, token, people[0], orgs.alice.account_id)[0] == 200


def test_registry_refuses_bad_input(services: Services, orgs: Organizations) -> None:
    with session_scope(services.sessions) as session:
        with pytest.raises(InvalidClientInput):
            services.clients.create(session, organization_id="no-such-org")
        with pytest.raises(InvalidClientInput):
            services.clients.create(session, organization_id="bad org!")
        with pytest.raises(ClientNotFound):
            services.clients.rotate(session, "lgc-missing")
        creds = services.clients.create(session, organization_id=LILAS)
        with pytest.raises(InvalidClientInput):
            services.clients.rotate(session, creds.client_id, grace_hours=-1)
        services.clients.revoke(session, creds.client_id)
        with pytest.raises(ClientRevoked):
            services.clients.rotate(session, creds.client_id)
        stored = session.get(ApiClient, creds.client_id)
        assert stored is not None
        assert creds.client_secret not in stored.secret_hash
        assert stored.secret_hash.startswith("hmac-sha256$")
    assert ActingProfessionalInvalid().status == 403


# -- the command line -------------------------------------------------------------------


runner = CliRunner()


@pytest.fixture
def cli_world(tmp_path: Path) -> Iterator[tuple[dict[str, str], Services]]:
    """A migrated SQLite database with the two pharmacies, shared by the CLI and an app."""
    env = {
        "REMPART_DATABASE_URL": f"sqlite:///{tmp_path / 'rempart.db'}",
        "REMPART_DATA_DIR": str(tmp_path / "data"),
        **{f"REMPART_{k.upper()}": str(v) for k, v in FAST_HASHING.items()},
    }
    assert runner.invoke(cli_app, ["db", "upgrade"], env=env).exit_code == 0
    services = Services(
        load_settings(
            database_url=env["REMPART_DATABASE_URL"], data_dir=tmp_path / "data", **FAST_HASHING
        )
    )
    make_login(services, "alice.lilas", account_id="ph-alice")
    with session_scope(services.sessions) as session:
        add_professional(session, "ph-alice", LILAS, rpps=RPPS_ALICE)
    yield env, services
    services.close()


def test_cli_creates_rotates_lists_and_revokes_clients(
    cli_world: tuple[dict[str, str], Services],
) -> None:
    env, services = cli_world
    created = runner.invoke(
        cli_app,
        ["clients", "create", "--organization", LILAS, "--label", "Officine", "--json"],
        env=env,
    )
    assert created.exit_code == 0, created.output
    first = json.loads(created.stdout)
    assert first["organization_id"] == LILAS
    assert first["previous_valid_until"] is None

    plain = runner.invoke(cli_app, ["clients", "create", "--organization", LILAS], env=env)
    assert plain.exit_code == 0, plain.output
    lines = dict(line.split("=", 1) for line in plain.stdout.split())
    assert set(lines) == {"client_id", "client_secret"}

    with TestClient(create_app(services=services)) as http:
        creds = ClientSecret(first["client_id"], first["client_secret"], LILAS, "Officine")
        get_token(http, creds)

        rotated = runner.invoke(
            cli_app, ["clients", "rotate", creds.client_id, "--grace-hours", "0", "--json"], env=env
        )
        assert rotated.exit_code == 0, rotated.output
        second = json.loads(rotated.stdout)
        assert second["client_secret"] != first["client_secret"]
        refused = token_request(
            http,
            {"grant_type": "client_credentials"},
            basic(creds.client_id, creds.client_secret),
        )
        assert refused.status_code == 401
        get_token(http, ClientSecret(creds.client_id, second["client_secret"], LILAS, ""))

        revoked = runner.invoke(cli_app, ["clients", "revoke", creds.client_id], env=env)
        assert revoked.exit_code == 0, revoked.output
        refused = token_request(
            http,
            {"grant_type": "client_credentials"},
            basic(creds.client_id, second["client_secret"]),
        )
        assert refused.status_code == 401

    listed = runner.invoke(cli_app, ["clients", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    rows = {row["client_id"]: row for row in json.loads(listed.stdout)}
    assert rows[creds.client_id]["status"] == "revoked"
    assert rows[lines["client_id"]]["status"] == "active"
    assert "secret" not in listed.stdout
    assert first["client_secret"] not in listed.output

    missing = runner.invoke(cli_app, ["clients", "rotate", "lgc-missing"], env=env)
    assert missing.exit_code == 1
    assert "client_not_found" in missing.output
    unknown_org = runner.invoke(
        cli_app, ["clients", "create", "--organization", "nowhere"], env=env
    )
    assert unknown_org.exit_code == 1
    assert "invalid_client_input" in unknown_org.output

    for name, count in (("client_created", 2), ("client_secret_rotated", 1), ("client_revoked", 1)):
        assert len(events(services, name)) == count, name


def test_practice_software_speaks_fhir_with_the_same_credentials_and_refusals(
    client: TestClient, services: Services, orgs: Organizations, people: list[Person]
) -> None:
    token = get_token(client, new_client(services))
    person = people[0]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = f"identifier={person.nir.value}&birthdate={person.birth_date.isoformat()}"

    def fhir(acting: str | None) -> Any:
        headers = {**form, "Authorization": f"Bearer {token}"}
        if acting is not None:
            headers["X-Acting-Professional"] = acting
        return client.post("/fhir/Patient/_search", content=body, headers=headers)

    answered = fhir(orgs.alice.account_id)
    assert answered.status_code == 200, answered.text
    assert answered.json()["total"] == 1
    for acting, status, code in (
        (orgs.chloe.account_id, 403, "acting_professional_invalid"),
        (None, 400, "acting_professional_required"),
    ):
        refused = fhir(acting)
        assert refused.status_code == status
        assert refused.headers["content-type"].startswith("application/fhir+json")
        assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == code
    (entry,) = events(services, "lookup")
    assert (entry.channel, entry.acr, entry.account_id) == ("fhir", "client", "ph-alice")
    assert entry.session_id.startswith("client:")
