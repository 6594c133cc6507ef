"""The FHIR R4 facade through the real app, on SQLite and PostgreSQL: what it emits
validates with the ``fhir.resources`` models (R4B, whose Patient, Coverage,
Practitioner, Bundle, OperationOutcome and CapabilityStatement are R4's), it is the JSON
API's lookup (same answers, same refusals, same audit entry but for the channel and the
categories actually returned), and every failure is an OperationOutcome.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.coverage import Coverage
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner

from rempart.fhir.systems import ERRORS, INS_NIR, PATIENT_INS_PROFILE, RPPS
from rempart.nir import keyed_pseudonym, make_nir
from rempart.services import Services
from rempart.store.engine import session_scope
from tests.functional.conftest import Login, Person, log_in
from tests.functional.test_api_lookup import make_unknown
from tests.functional.test_guard_inline import lookup_entries

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# A well-formed NIR of nobody: what a search's other parameters are judged beside.
NOBODY = make_nir(sex=1, year=1985, month=3, department="75", commune="056", order=999).value


def search(
    client: TestClient,
    token: str | None,
    kind: str,
    body: str,
    *,
    headers: dict[str, str] | None = None,
) -> Any:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(
        f"/fhir/{kind}/_search", content=body, headers={**FORM, **auth, **(headers or {})}
    )


def patient_form(person: Person, extra: str = "") -> str:
    return f"identifier={INS_NIR}|{person.nir.value}&birthdate={person.birth_date}{extra}"


def coverage_form(person: Person, extra: str = "") -> str:
    return (
        f"beneficiary.identifier={INS_NIR}|{person.nir.value}&birthdate={person.birth_date}{extra}"
    )


def bundle_of(response: Any) -> Bundle:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    return Bundle.model_validate(response.json())


def outcome_of(response: Any, status: int, code: str) -> OperationOutcome:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = OperationOutcome.model_validate(response.json())
    (issue,) = outcome.issue
    assert issue.details is not None
    assert issue.details.coding is not None
    assert (issue.details.coding[0].system, issue.details.coding[0].code) == (ERRORS, code)
    return outcome


def resources(bundle: Bundle, kind: str, mode: str | None = None) -> list[Any]:
    return [
        e.resource
        for e in bundle.entry or []
        if e.resource is not None
        and e.resource.get_resource_type() == kind
        and (mode is None or (e.search is not None and e.search.mode == mode))
    ]


def test_metadata_lists_exactly_what_is_supported(client: TestClient) -> None:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    statement = CapabilityStatement.model_validate(response.json())
    assert statement.fhirVersion == "4.0.1"
    (rest,) = statement.rest or []
    supported = {
        r.type: (
            [i.code for i in r.interaction or []],
            sorted(str(p.name) for p in r.searchParam or []),
            sorted(str(i) for i in r.searchInclude or []),
        )
        for r in rest.resource or []
    }
    assert supported == {
        "Patient": (["search-type"], ["birthdate", "identifier"], ["Patient:general-practitioner"]),
        "Coverage": (
            ["search-type"],
            ["beneficiary.identifier", "birthdate"],
            ["Coverage:beneficiary", "Patient:general-practitioner"],
        ),
    }


def test_patient_search_answers_an_fr_core_patient_ins(
    client: TestClient, people: list[Person], pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    person = people[0]
    bundle = bundle_of(search(client, token, "Patient", patient_form(person)))
    assert bundle.type == "searchset"
    assert bundle.total == 1
    # The self link names the endpoint, never the search's parameters.
    assert bundle.link is not None
    assert person.nir.value not in str(bundle.link[0].url)
    (patient,) = resources(bundle, "Patient", "match")
    assert isinstance(patient, Patient)
    assert patient.meta is not None
    assert patient.meta.profile == [PATIENT_INS_PROFILE]
    (identifier,) = patient.identifier or []
    assert (identifier.system, identifier.value, identifier.use) == (
        INS_NIR,
        person.nir.value,
        "official",
    )
    (name,) = patient.name or []
    assert (name.use, name.family, name.given) == ("official", "Dupont", ["Camille"])
    assert patient.gender == "male"  # the NIR's first digit
    assert str(patient.birthDate) == "1985-03-14"
    # Only the identity: no treating doctor unless asked for.
    assert patient.generalPractitioner is None
    assert resources(bundle, "Practitioner") == []


def test_patient_search_includes_the_treating_doctor_by_rpps(
    client: TestClient, people: list[Person], pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    body = patient_form(people[0], "&_include=Patient:general-practitioner")
    bundle = bundle_of(search(client, token, "Patient", body))
    assert bundle.total == 1
    (patient,) = resources(bundle, "Patient", "match")
    (doctor,) = resources(bundle, "Practitioner", "include")
    assert isinstance(doctor, Practitioner)
    assert [(i.system, i.value) for i in doctor.identifier or []] == [(RPPS, "10003456789")]
    assert doctor.name is not None
    assert doctor.name[0].family == "Martin"
    assert [r.reference for r in patient.generalPractitioner or []] == [
        next(e.fullUrl for e in bundle.entry or [] if e.resource is doctor)
    ]


def test_coverage_search_answers_each_right_as_its_own_coverage(
    client: TestClient, people: list[Person], pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    # People[0]: ALD; people[2]: C2S, no ALD.
    with_ald = bundle_of(search(client, token, "Coverage", coverage_form(people[0])))
    (compulsory,) = resources(with_ald, "Coverage", "match")
    assert isinstance(compulsory, Coverage)
    assert with_ald.total == 1
    codes = {c.code for c in compulsory.type.coding or []} if compulsory.type else set()
    assert codes == {"MANDPOL", "amo"}
    (cost,) = compulsory.costToBeneficiary or []
    assert cost.valueQuantity is not None
    assert cost.valueQuantity.value == 0
    assert [c.code for e in cost.exception or [] for c in e.type.coding or []] == ["ald"]
    assert compulsory.beneficiary.identifier is not None
    assert compulsory.beneficiary.identifier.value == people[0].nir.value
    assert resources(with_ald, "Patient") == []

    with_c2s = bundle_of(search(client, token, "Coverage", coverage_form(people[2])))
    kinds = sorted(
        next(c.code for c in cov.type.coding or [] if c.code in {"amo", "c2s", "ame"})
        for cov in resources(with_c2s, "Coverage", "match")
    )
    assert kinds == ["amo", "c2s"]
    assert with_c2s.total == 2
    assert all(
        not cov.costToBeneficiary for cov in resources(with_c2s, "Coverage")
    )  # no ALD: no exoneration


def test_coverage_search_includes_the_patient_and_the_practitioner(
    client: TestClient, people: list[Person], pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    body = coverage_form(
        people[0], "&_include=Coverage:beneficiary&_include:iterate=Patient:general-practitioner"
    )
    bundle = bundle_of(search(client, token, "Coverage", body))
    assert bundle.total == 1  # the matches only, not what was included
    (coverage,) = resources(bundle, "Coverage", "match")
    (patient,) = resources(bundle, "Patient", "include")
    (doctor,) = resources(bundle, "Practitioner", "include")
    urls = {id(e.resource): e.fullUrl for e in bundle.entry or []}
    assert coverage.beneficiary.reference == urls[id(patient)]
    assert [r.reference for r in patient.generalPractitioner or []] == [urls[id(doctor)]]


def test_unknown_nir_and_wrong_birth_date_give_the_same_empty_searchset(
    client: TestClient, people: list[Person], pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    person = people[2]
    unknown = make_unknown(people[0].nir.value)
    answers = [
        search(client, token, "Patient", f"identifier={person.nir.value}&birthdate=2001-12-31"),
        search(client, token, "Patient", f"identifier={unknown}&birthdate=2001-12-30"),
    ]

    def shape(response: Any) -> dict[str, Any]:
        bundle = bundle_of(response).model_dump(mode="json")
        return {k: v for k, v in bundle.items() if k not in {"id", "meta", "timestamp"}}

    assert shape(answers[0]) == shape(answers[1])
    assert shape(answers[0])["total"] == 0
    assert "entry" not in shape(answers[0])


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("identifier=12345&birthdate=1985-03-14", 422, "invalid_nir"),
        ("birthdate=1985-03-14", 422, "missing_field"),
        (f"identifier={INS_NIR}|{NOBODY}", 422, "missing_field"),
        (f"identifier={NOBODY}&birthdate=1985-03-14&_count=5", 422, "unknown_field"),
        (f"identifier={NOBODY}&birthdate=1985-03-14&name=Dupont", 422, "unknown_field"),
        (f"identifier=urn:oid:1.2.3|{NOBODY}&birthdate=1985-03-14", 422, "invalid_value"),
        (f"identifier={NOBODY}&birthdate=gt1985-03-14", 422, "invalid_value"),
        (f"identifier={NOBODY}&birthdate=1985-02-30", 422, "invalid_birth_date"),
        (f"identifier={NOBODY}&birthdate=1985-03-14&_include=Patient:link", 422, "invalid_value"),
        (f"identifier={NOBODY}&identifier={NOBODY}&birthdate=1985-03-14", 422, "invalid_value"),
        (f"identifier={NOBODY}&birthdate=1985-03-14&_format=xml", 406, "not_acceptable"),
        ("identifier=%ff&birthdate=1985-03-14", 400, "malformed_body"),
    ],
)
def test_bad_searches_get_an_operation_outcome_with_the_json_api_code(
    client: TestClient, pharmacist: Login, body: str, status: int, code: str
) -> None:
    token = log_in(client, pharmacist)
    outcome_of(search(client, token, "Patient", body), status, code)


def test_an_unknown_parameter_is_named_but_a_value_put_as_a_name_is_not_echoed(
    client: TestClient, pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    named = outcome_of(
        search(client, token, "Patient", f"identifier={NOBODY}&birthdate=1985-03-14&_count=5"),
        422,
        "unknown_field",
    )
    assert named.issue[0].details is not None
    assert "_count" in (named.issue[0].details.text or "")
    hidden = search(client, token, "Patient", f"{NOBODY}=&birthdate=1985-03-14")
    outcome_of(hidden, 422, "unknown_field")
    assert NOBODY not in hidden.text


def test_a_malformed_nir_is_refused_with_the_json_api_answer(
    client: TestClient, pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    fhir = outcome_of(
        search(client, token, "Patient", "identifier=185037505600611&birthdate=1985-03-14"),
        422,
        "invalid_nir",
    )
    json_api = client.post(
        "/api/v1/rights/lookup",
        json={"nir": "185037505600611", "birth_date": "1985-03-14"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert json_api.status_code == 422
    assert fhir.issue[0].details is not None
    assert fhir.issue[0].details.text == json_api.json()["detail"]


def test_a_search_by_get_is_refused_and_says_why(client: TestClient, pharmacist: Login) -> None:
    token = log_in(client, pharmacist)
    for path in ("/fhir/Patient", "/fhir/Patient/_search", "/fhir/Coverage/_search"):
        response = client.get(
            f"{path}?identifier={NOBODY}&birthdate=1985-03-14",
            headers={"Authorization": f"Bearer {token}"},
        )
        outcome = outcome_of(response, 405, "search_by_get_refused")
        assert response.headers["allow"] == "POST"
        assert outcome.issue[0].details is not None
        assert "URL" in (outcome.issue[0].details.text or "")
    # Parameters in the URL of a POST are refused too, even with a good body.
    response = client.post(
        f"/fhir/Patient/_search?identifier={NOBODY}",
        content="birthdate=1985-03-14",
        headers={**FORM, "Authorization": f"Bearer {token}"},
    )
    outcome_of(response, 400, "parameters_in_url")


def test_transport_and_authentication_errors_are_operation_outcomes(
    client: TestClient, services: Services, people: list[Person], pharmacist: Login
) -> None:
    body = patient_form(people[0])
    outcome_of(search(client, None, "Patient", body), 401, "invalid_token")
    outcome_of(search(client, "not-a-token", "Patient", body), 401, "invalid_token")
    token = log_in(client, pharmacist)
    wrong_type = client.post(
        "/fhir/Patient/_search",
        json={"identifier": "x"},
        headers={"Authorization": f"Bearer {token}"},
    )
    outcome_of(wrong_type, 415, "unsupported_media_type")
    huge = "birthdate=1985-03-14&identifier=" + "1" * (services.settings.max_body_bytes + 1)
    outcome_of(search(client, token, "Patient", huge), 413, "payload_too_large")
    outcome_of(client.get("/fhir/Patient/123"), 404, "not_found")
    outcome_of(
        search(client, token, "Patient", body, headers={"Accept": "application/fhir+xml"}),
        406,
        "not_acceptable",
    )
    with session_scope(services.sessions) as session:
        assert services.auth.suspend(session, pharmacist.account_id)
    outcome_of(search(client, token, "Patient", body), 403, "account_suspended")


def test_the_audit_entry_is_the_json_api_one_with_the_channel_and_the_categories_returned(
    client: TestClient, services: Services, people: list[Person], pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    person = people[0]
    client.post(
        "/api/v1/rights/lookup",
        json={"nir": person.nir.value, "birth_date": "1985-03-14"},
        headers={"Authorization": f"Bearer {token}"},
    )
    search(client, token, "Patient", patient_form(person))
    search(client, token, "Coverage", coverage_form(person))
    search(
        client,
        token,
        "Coverage",
        coverage_form(
            person, "&_include=Coverage:beneficiary&_include=Patient:general-practitioner"
        ),
    )
    search(client, token, "Patient", f"identifier={person.nir.value}&birthdate=1985-03-15")
    entries = lookup_entries(services, pharmacist.account_id)
    assert [(e.channel, e.categories, e.found, e.outcome) for e in entries] == [
        ("portal", "nir,identity,treating_doctor,c2s,ame,ald", 1, "ok"),
        ("fhir", "nir,identity", 1, "ok"),
        ("fhir", "nir,c2s,ame,ald", 1, "ok"),
        ("fhir", "nir,identity,treating_doctor,c2s,ame,ald", 1, "ok"),
        ("fhir", "", 0, "not_found"),
    ]
    # The same person, the same pseudonym, whichever door: the scoping counts them alike.
    pseudonym = keyed_pseudonym(person.nir.value, services.settings.keys.pseudonym_key)
    assert {e.subject for e in entries} == {pseudonym}
    assert len({e.session_id for e in entries}) == 1
    assert {e.decision for e in entries} == {entries[0].decision}
