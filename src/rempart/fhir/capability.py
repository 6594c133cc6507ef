"""The CapabilityStatement: exactly what the facade supports, and nothing more."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rempart.fhir.search import INCLUDE_BENEFICIARY, INCLUDE_DOCTOR, SearchKind
from rempart.fhir.systems import FHIR_VERSION, INS_NIA, INS_NIR, PATIENT_INS_PROFILE

__all__ = ["capability_statement"]

_IDENTIFIER_DOC = (
    f"Token {INS_NIR}|<NIR> (INS-NIR), or {INS_NIA}|<NIA> for a temporary number; "
    "required, in the POSTed form body only"
)
_BIRTHDATE_DOC = "The person's birth date, YYYY-MM-DD (or eqYYYY-MM-DD); required"
_BENEFICIARY_BIRTHDATE_DOC = "The beneficiary's birth date, YYYY-MM-DD; required"
_SECURITY = (
    "Bearer access token of a professional, or of a practice software with the acting "
    "professional in X-Acting-Professional (as the JSON API). Searches are POSTed forms: "
    "a NIR never travels in a URL, and a search by GET is refused. Every search is "
    "decided by the guard before anything is read, and recorded in the audit trail "
    "before the answer leaves."
)


def _search_param(name: str, kind: str, documentation: str) -> dict[str, Any]:
    return {"name": name, "type": kind, "documentation": documentation}


def capability_statement(*, base_url: str, software: str, version: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).date().isoformat(),
        "kind": "instance",
        "software": {"name": software, "version": version},
        "implementation": {"description": "Rempart: guarded rights lookup", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "security": {"description": _SECURITY},
                "resource": [
                    {
                        "type": SearchKind.PATIENT.value,
                        "supportedProfile": [PATIENT_INS_PROFILE],
                        "interaction": [{"code": "search-type"}],
                        "searchInclude": [INCLUDE_DOCTOR],
                        "searchParam": [
                            _search_param("identifier", "token", _IDENTIFIER_DOC),
                            _search_param("birthdate", "date", _BIRTHDATE_DOC),
                        ],
                    },
                    {
                        "type": SearchKind.COVERAGE.value,
                        "interaction": [{"code": "search-type"}],
                        "searchInclude": [INCLUDE_BENEFICIARY, INCLUDE_DOCTOR],
                        "searchParam": [
                            _search_param(
                                "beneficiary.identifier",
                                "token",
                                _IDENTIFIER_DOC + " (also spelt beneficiary:Patient.identifier)",
                            ),
                            _search_param("birthdate", "date", _BENEFICIARY_BIRTHDATE_DOC),
                        ],
                    },
                ],
            }
        ],
    }
