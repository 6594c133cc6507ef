"""A real FHIR client from PyPI (fhirpy) reads a person's rights end to end through the
running service (uvicorn over TCP), and everything it receives validates.

fhirpy sends a search as a GET with its parameters in the URL, which the facade refuses
(a NIR never travels in a URL): the client is fhirpy's own, with its searches sent as
FHIR's other form, a POST to ``[type]/_search`` with the same parameters as a form body,
as a practice software configures its client for this service.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome
from fhirpy.base.utils import AttrDict, encode_params

from rempart.api import create_app
from rempart.api.server import running_server
from rempart.fhir.systems import INS_NIR, RPPS
from rempart.services import Services
from tests.functional.conftest import Login, Person, log_in


class PostSearchClient(SyncFHIRClient):
    """fhirpy, its searches POSTed as forms to ``[type]/_search``."""

    def _fetch_resource(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = requests.post(
            self._build_request_url(f"{path}/_search", None),
            data=encode_params(params or {}),  # type: ignore[no-untyped-call]
            headers={
                **self._build_request_headers(),
                "Content-Type": "application/x-www-form-urlencoded",
            },
            timeout=30,
        )
        if response.status_code != 200:
            raise OperationOutcome(resource=response.json())  # type: ignore[no-untyped-call]
        return json.loads(response.content, object_hook=AttrDict)


@pytest.fixture
def served(services: Services) -> Any:
    with running_server(create_app(services=services)) as url:
        yield url


def test_fhirpy_reads_a_persons_rights_through_the_running_service(
    client: TestClient, served: str, people: list[Person], pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    fhir = PostSearchClient(f"{served}/fhir", authorization=f"Bearer {token}")
    person = people[0]
    rights = (
        fhir.resources("Coverage")
        .search(**{"beneficiary.identifier": f"{INS_NIR}|{person.nir.value}"})
        .search(birthdate=person.birth_date.isoformat())
        .include("Coverage", "beneficiary")
        .include("Patient", "general-practitioner", iterate=True)
    )
    bundle = rights.fetch_raw()
    # What fhirpy received, its resources serialised back: it validates as a whole.
    received = {
        **bundle,
        "entry": [{**e, "resource": e.resource.serialize()} for e in bundle.entry],
    }
    Bundle.model_validate(json.loads(json.dumps(received)))
    by_type: dict[str, list[Any]] = {}
    for entry in bundle.entry:
        by_type.setdefault(entry.resource.resourceType, []).append(entry.resource)
    (coverage,) = by_type["Coverage"]
    (patient,) = by_type["Patient"]
    (doctor,) = by_type["Practitioner"]
    assert coverage.get_by_path(["type", "coding", 1, "code"]) == "amo"
    assert coverage.get_by_path(["costToBeneficiary", 0, "exception", 0, "type", "text"])
    assert patient.get_by_path(["identifier", 0, "value"]) == person.nir.value
    assert patient.get_by_path(["name", 0, "family"]) == "Dupont"
    assert doctor.get_by_path(["identifier", 0]) == {
        "use": "official",
        "type": {
            "coding": [
                {
                    "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203",
                    "code": "RPPS",
                }
            ]
        },
        "system": RPPS,
        "value": "10003456789",
    }
    # The search type's own resources, as fhirpy hands them over.
    (identity,) = (
        fhir.resources("Patient")
        .search(identifier=f"{INS_NIR}|{person.nir.value}", birthdate="1985-03-14")
        .fetch()
    )
    assert identity["gender"] == "male"
    # Nobody: an empty list, as for a wrong birth date.
    assert (
        fhir.resources("Patient")
        .search(identifier=person.nir.value, birthdate="1985-03-15")
        .fetch()
        == []
    )
    # A malformed NIR: fhirpy raises the OperationOutcome, with the JSON API's code.
    with pytest.raises(OperationOutcome) as refused:
        fhir.resources("Patient").search(identifier="12345", birthdate="1985-03-14").fetch()
    assert "invalid_nir" in str(refused.value)


def test_fhirpy_as_shipped_searches_by_get_and_is_told_why_it_is_refused(
    client: TestClient, served: str, people: list[Person], pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    fhir = SyncFHIRClient(f"{served}/fhir", authorization=f"Bearer {token}")
    with pytest.raises(OperationOutcome) as refused:
        fhir.resources("Patient").search(identifier=people[0].nir.value).fetch()
    assert "search_by_get_refused" in str(refused.value)
    assert fhir.execute("metadata", method="get")["fhirVersion"] == "4.0.1"
