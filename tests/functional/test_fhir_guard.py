"""The guard contains a robot that uses the FHIR facade exactly as one using the JSON
API (``test_guard_inline.py``, whose town, accounts and settings this reuses): the same
decisions, in the same few records, the same suspension, each recorded with the
channel ``fhir``; the step-up is RFC 9470's challenge on an OperationOutcome. And an
incident's scoping counts the records read through FHIR like any other.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from rempart.audit.models import AuditEvent
from rempart.cli import app
from rempart.fhir.systems import ERRORS, INS_NIR
from rempart.services import Services
from rempart.store.engine import session_scope
from tests.functional.conftest import Login, Person, log_in, make_login
from tests.functional.test_guard_inline import (  # noqa: F401 - fixtures used by name
    PHARMACY,
    ROBOT,
    STEP_UP_ACRS,
    cli_env,
    guard_redis,
    lookup_entries,
    pharmacist,
    settings,
    town,
    yesterday_at_the_counter,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
runner = CliRunner()
RIGHTS_AND_DOCTOR = "&_include=Coverage:beneficiary&_include=Patient:general-practitioner"


def fhir_lookup(client: TestClient, token: str, person: Person, origin: dict[str, str]) -> Any:
    return client.post(
        "/fhir/Coverage/_search",
        content=(
            f"beneficiary.identifier={INS_NIR}|{person.nir.value}"
            f"&birthdate={person.birth_date.isoformat()}{RIGHTS_AND_DOCTOR}"
        ),
        headers={**FORM, "Authorization": f"Bearer {token}", **origin},
    )


def error_code(response: Any) -> str:
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    coding = body["issue"][0]["details"]["coding"][0]
    assert coding["system"] == ERRORS
    return str(coding["code"])


@pytest.mark.parametrize("in_use", [True, False], ids=["account-in-use", "never-seen"])
def test_a_robot_using_the_fhir_facade_is_contained_as_through_the_json_api(
    client: TestClient,
    services: Services,
    pharmacist: Login,  # noqa: F811 - the fixture
    town: tuple[list[Person], list[Person]],  # noqa: F811 - the fixture
    in_use: bool,
) -> None:
    customers, strangers = town
    if in_use:
        yesterday_at_the_counter(client, services, pharmacist, customers)
    history = len(lookup_entries(services, "ph-lilas"))
    robot = log_in(client, pharmacist)  # a phished password + TOTP: a valid session
    statuses: list[int] = []
    for person in strangers:
        response = fhir_lookup(client, robot, person, ROBOT)
        statuses.append(response.status_code)
        if response.status_code == 401:
            assert error_code(response) == "insufficient_user_authentication"
            challenge = response.headers["www-authenticate"]
            assert 'error="insufficient_user_authentication"' in challenge
            assert STEP_UP_ACRS in challenge
        if response.status_code == 403:
            assert error_code(response) == "account_suspended"
            break
    # The JSON API's bounds (test_guard_inline.py), unchanged.
    assert statuses.count(200) <= (1 if in_use else 3), statuses
    assert 401 in statuses, statuses
    assert statuses[-1] == 403, statuses
    assert len(statuses) <= (12 if in_use else 30), statuses
    after = fhir_lookup(client, robot, strangers[-1], ROBOT)
    assert (after.status_code, error_code(after)) == (403, "account_suspended")
    # And through the JSON API, the same account is refused too: one guard, one account.
    json_api = client.post(
        "/api/v1/rights/lookup",
        json={"nir": strangers[0].nir.value, "birth_date": strangers[0].birth_date.isoformat()},
        headers={"Authorization": f"Bearer {robot}", **ROBOT},
    )
    assert json_api.status_code == 403

    entries = lookup_entries(services, "ph-lilas")[history:]
    assert {e.channel for e in entries[: len(statuses)]} == {"fhir"}
    assert [e.decision for e in entries[: len(statuses)]] == [
        {200: "allow", 401: "step_up", 403: "deny"}[s] for s in statuses
    ]
    for entry, code in zip(entries, statuses, strict=False):
        if code == 200:
            assert entry.categories == "nir,identity,treating_doctor,c2s,ame,ald"
        else:
            assert (entry.found, entry.categories) == (-1, "")


def test_the_pharmacy_at_its_counter_reads_its_customers_through_fhir(
    client: TestClient,
    services: Services,
    pharmacist: Login,  # noqa: F811 - the fixture
    town: tuple[list[Person], list[Person]],  # noqa: F811 - the fixture
) -> None:
    customers, _ = town
    yesterday_at_the_counter(client, services, pharmacist, customers)
    token = log_in(client, pharmacist)
    for person in customers[:6]:
        response = fhir_lookup(client, token, person, PHARMACY)
        assert response.status_code == 200, response.text
        assert response.json()["total"] >= 1
    with session_scope(services.sessions) as session:
        decisions = session.scalars(
            select(AuditEvent.decision)
            .where(AuditEvent.channel == "fhir")
            .order_by(AuditEvent.ts_us)
        ).all()
    assert decisions == ["allow"] * 6


def test_an_incident_scope_counts_fhir_reads_by_what_they_returned(
    client: TestClient,
    services: Services,
    town: tuple[list[Person], list[Person]],  # noqa: F811 - the fixture
) -> None:
    customers, _ = town
    phished = make_login(services, "cabinet.fhir", account_id="cab-fhir")
    token = log_in(client, phished)
    identity_only, rights_only = customers[:2], customers[2:3]
    served: dict[str, str] = {}
    for person in identity_only:
        response = client.post(
            "/fhir/Patient/_search",
            content=f"identifier={person.nir.value}&birthdate={person.birth_date.isoformat()}",
            headers={**FORM, "Authorization": f"Bearer {token}", **PHARMACY},
        )
        if response.status_code == 200:
            served[person.nir.value] = "identity"
    for person in rights_only:
        response = client.post(
            "/fhir/Coverage/_search",
            content=f"beneficiary.identifier={person.nir.value}"
            f"&birthdate={person.birth_date.isoformat()}",
            headers={**FORM, "Authorization": f"Bearer {token}", **PHARMACY},
        )
        if response.status_code == 200:
            served[person.nir.value] = "rights"
    assert served, "the first reads of a new account are served"
    env = cli_env(services)
    opened = runner.invoke(
        app, ["incident", "open", "--name", "Cabinet FHIR", "--accounts", "cab-fhir"], env=env
    )
    assert opened.exit_code == 0, opened.output
    scoped = runner.invoke(
        app, ["incident", "scope", opened.stdout.strip(), "--json", "--operator", "dpo"], env=env
    )
    assert scoped.exit_code == 0, scoped.output
    scope = json.loads(scoped.stdout)
    identities = sum(1 for kind in served.values() if kind == "identity")
    rights = len(served) - identities
    assert (scope["persons"], scope["records"]) == (len(served), len(served))
    expected = {"nir": len(served), "identity": identities, "c2s": rights, "ame": rights}
    expected["ald"] = rights
    assert scope["by_category"] == {k: v for k, v in expected.items() if v}
