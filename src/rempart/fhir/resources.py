"""A lookup's answer written as FHIR R4 resources: a ``searchset`` Bundle.

- the Patient follows FR Core Patient INS: the INS-NIR (or INS-NIA for a temporary
  number) as identifier, the official name, the birth date, the gender read from the
  NIR's sex digit, the place of birth's INSEE code read from the NIR;
- the rights are Coverages: the compulsory cover (with the 100 % exoneration of an ALD
  as a zero co-payment and its exception), C2S and AME each their own;
- the treating doctor is a Practitioner identified by RPPS, the Patient's
  ``generalPractitioner``.

Only what the search asked for is written, so that the audit entry's categories
(:func:`returned_categories`) are exactly what left. Resource ids are random per answer
(``urn:uuid``): nothing in an answer identifies a person across answers but the INS,
and no id can be turned back into a NIR.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from rempart.fhir.search import FhirSearch, SearchKind
from rempart.fhir.systems import (
    ACT_CODE,
    BIRTH_PLACE,
    COMMUNES,
    COPAY_TYPE,
    COUNTRIES,
    FR_CORE,
    IDENTIFIER_TYPES,
    IDENTITY_RELIABILITY,
    IDENTITY_STATUS,
    INS_NIA,
    INS_NIR,
    INSEE_CODE,
    PATIENT_INS_PROFILE,
    PRACTITIONER_PROFILE,
    RIGHTS,
    RPPS,
    UCUM,
)
from rempart.nir import NIR
from rempart.rights.lookup import RightsRecord, TreatingDoctor

__all__ = ["returned_categories", "search_bundle"]

Resource = dict[str, Any]

_BIRTH_LIST_GIVEN_NAME = f"{FR_CORE}/StructureDefinition/fr-core-patient-birth-list-given-name"


def returned_categories(search: FhirSearch) -> tuple[str, ...]:
    """The data categories (``rempart.audit.chain.CATEGORIES``) an answer to this search
    carries when the person is found: what the audit entry records."""
    if search.kind is SearchKind.PATIENT:
        categories = ["nir", "identity"]
    else:
        categories = ["nir", "c2s", "ame", "ald"]
        if search.include_patient:
            categories.append("identity")
    if search.include_doctor:
        categories.append("treating_doctor")
    return tuple(categories)


def search_bundle(
    search: FhirSearch, record: RightsRecord | None, *, base_url: str, insurer: str
) -> Resource:
    """The ``searchset`` answering ``search``: empty when nobody matched (an unknown NIR
    and a wrong birth date answer alike), else the matches and what was included. The
    self link names the search endpoint, never its parameters."""
    entries: list[Resource] = []
    matches = 0
    if record is not None:
        patient_id, doctor_id = _new_id(), _new_id()
        doctor = record.treating_doctor if search.include_doctor else None
        doctor_ref = f"urn:uuid:{doctor_id}" if doctor is not None else None
        if search.kind is SearchKind.PATIENT:
            entries.append(_entry(patient_id, _patient(patient_id, record, doctor_ref), "match"))
            matches = 1
        else:
            patient_ref = f"urn:uuid:{patient_id}" if search.include_patient else None
            for coverage_id, coverage in _coverages(record, patient_ref, insurer):
                entries.append(_entry(coverage_id, coverage, "match"))
            matches = len(entries)
            if search.include_patient:
                patient = _patient(patient_id, record, doctor_ref)
                entries.append(_entry(patient_id, patient, "include"))
        if doctor is not None:
            entries.append(_entry(doctor_id, _practitioner(doctor_id, doctor), "include"))
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return {
        "resourceType": "Bundle",
        "id": _new_id(),
        "meta": {"lastUpdated": now},
        "type": "searchset",
        "timestamp": now,
        "total": matches,
        "link": [{"relation": "self", "url": f"{base_url}/{search.kind.value}/_search"}],
        "entry": entries,
    }


def _new_id() -> str:
    return str(uuid.uuid4())


def _entry(resource_id: str, resource: Resource, mode: str) -> Resource:
    return {"fullUrl": f"urn:uuid:{resource_id}", "resource": resource, "search": {"mode": mode}}


def _ins_identifier(nir: NIR) -> Resource:
    temporary = nir.temporary
    return {
        "use": "temp" if temporary else "official",
        "type": {
            "coding": [
                {
                    "system": IDENTIFIER_TYPES,
                    "code": "INS-NIA" if temporary else "INS-NIR",
                    "display": "NIA" if temporary else "NIR",
                }
            ]
        },
        "system": INS_NIA if temporary else INS_NIR,
        "value": nir.value,
    }


def _birth_place(nir: NIR) -> Resource:
    place = nir.birth_place
    insee = place.department + place.commune
    system = COUNTRIES if place.abroad else COMMUNES
    return {
        "url": BIRTH_PLACE,
        "valueAddress": {
            "extension": [{"url": INSEE_CODE, "valueCoding": {"system": system, "code": insee}}]
        },
    }


def _patient(patient_id: str, record: RightsRecord, doctor_ref: str | None) -> Resource:
    nir = NIR(record.nir)
    patient: Resource = {
        "resourceType": "Patient",
        "id": patient_id,
        "meta": {"profile": [PATIENT_INS_PROFILE]},
        "extension": [
            {
                # The identity as the insurer's register holds it: the reference the
                # INS itself is checked against.
                "url": IDENTITY_RELIABILITY,
                "extension": [
                    {
                        "url": "identityStatus",
                        "valueCoding": {
                            "system": IDENTITY_STATUS,
                            "code": "VALI",
                            "display": "Identité validée",
                        },
                    }
                ],
            },
            _birth_place(nir),
        ],
        "identifier": [_ins_identifier(nir)],
        "name": [
            {
                "extension": [{"url": _BIRTH_LIST_GIVEN_NAME, "valueString": record.first_name}],
                "use": "official",
                "family": record.last_name,
                "given": [record.first_name],
            }
        ],
        "gender": "male" if nir.sex == 1 else "female",
        "birthDate": record.birth_date.isoformat(),
    }
    if doctor_ref is not None:
        patient["generalPractitioner"] = [{"reference": doctor_ref}]
    return patient


def _practitioner(doctor_id: str, doctor: TreatingDoctor) -> Resource:
    name: Resource = {"text": doctor.name}
    if doctor.last_name:
        name["family"] = doctor.last_name
    if doctor.first_name:
        name["given"] = [doctor.first_name]
    practitioner: Resource = {
        "resourceType": "Practitioner",
        "id": doctor_id,
        "meta": {"profile": [PRACTITIONER_PROFILE]},
        "name": [name],
    }
    if doctor.rpps:
        practitioner["identifier"] = [
            {
                "use": "official",
                "type": {"coding": [{"system": IDENTIFIER_TYPES, "code": "RPPS"}]},
                "system": RPPS,
                "value": doctor.rpps,
            }
        ]
    return practitioner


def _coverage_type(act_code: str, act_display: str, code: str, label: str) -> Resource:
    return {
        "coding": [
            {"system": ACT_CODE, "code": act_code, "display": act_display},
            {"system": RIGHTS, "code": code, "display": label},
        ],
        "text": label,
    }


def _coverages(
    record: RightsRecord, patient_ref: str | None, insurer: str
) -> list[tuple[str, Resource]]:
    nir = NIR(record.nir)
    beneficiary: Resource = {"identifier": _ins_identifier(nir)}
    if patient_ref is not None:
        beneficiary = {"reference": patient_ref, **beneficiary}

    def coverage(coverage_type: Resource) -> tuple[str, Resource]:
        coverage_id = _new_id()
        return coverage_id, {
            "resourceType": "Coverage",
            "id": coverage_id,
            "status": "active",
            "type": coverage_type,
            "subscriberId": nir.value,
            "beneficiary": beneficiary,
            "relationship": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                        "code": "self",
                    }
                ]
            },
            "payor": [{"display": insurer}],
        }

    compulsory_id, compulsory = coverage(
        _coverage_type(
            "MANDPOL", "mandatory health program", "amo", "Assurance maladie obligatoire"
        )
    )
    if record.ald:
        compulsory["costToBeneficiary"] = [
            {
                "type": {
                    "coding": [{"system": COPAY_TYPE, "code": "copaypct"}],
                    "text": "Ticket modérateur",
                },
                "valueQuantity": {"value": 0, "unit": "%", "system": UCUM, "code": "%"},
                "exception": [
                    {
                        "type": {
                            "coding": [
                                {
                                    "system": RIGHTS,
                                    "code": "ald",
                                    "display": "Affection de longue durée : prise en charge "
                                    "à 100 %",
                                }
                            ],
                            "text": "Exonération du ticket modérateur (ALD, 100 %)",
                        }
                    }
                ],
            }
        ]
    found = [(compulsory_id, compulsory)]
    if record.c2s:
        found.append(
            coverage(
                _coverage_type(
                    "SUBSIDIZ", "subsidized health program", "c2s", "Complémentaire santé solidaire"
                )
            )
        )
    if record.ame:
        found.append(
            coverage(
                _coverage_type(
                    "SUBSIDIZ", "subsidized health program", "ame", "Aide médicale de l'État"
                )
            )
        )
    return found
