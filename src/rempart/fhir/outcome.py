"""Errors as FHIR OperationOutcomes, carrying the JSON API's stable codes.

Every failure of the facade, from the body limit to the guard's refusal, is answered
with the same HTTP status as the JSON API and an OperationOutcome whose issue names the
same stable code (``details.coding``, system :data:`~rempart.fhir.systems.ERRORS`) and
the same human detail. Nothing of the request is echoed.
"""

from __future__ import annotations

import json
from typing import Any, Final

from rempart.fhir.systems import ERRORS

__all__ = ["FHIR_JSON", "is_fhir_path", "operation_outcome", "outcome_body"]

FHIR_JSON: Final = "application/fhir+json"
"""The media type of every answer of the facade (with ``charset=utf-8`` on the wire)."""
FHIR_PREFIX: Final = "/fhir/"

# The issue type (http://hl7.org/fhir/issue-type) for a stable code, where the status
# alone would say less.
_BY_CODE: Final = {
    "missing_field": "required",
    "unknown_field": "not-supported",
    "search_by_get_refused": "not-supported",
    "insufficient_user_authentication": "security",
}
_BY_STATUS: Final = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    413: "too-long",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    503: "transient",
}


def is_fhir_path(path: str) -> bool:
    return path.startswith(FHIR_PREFIX) or path == FHIR_PREFIX.rstrip("/")


def operation_outcome(status: int, code: str, detail: str) -> dict[str, Any]:
    issue_type = _BY_CODE.get(code) or _BY_STATUS.get(status) or "exception"
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "fatal" if status >= 500 else "error",
                "code": issue_type,
                "details": {"coding": [{"system": ERRORS, "code": code}], "text": detail},
            }
        ],
    }


def outcome_body(status: int, code: str, detail: str) -> bytes:
    return json.dumps(operation_outcome(status, code, detail), ensure_ascii=False).encode()
