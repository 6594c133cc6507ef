"""A search's form body, read into the lookup's two fields and what to include.

The NIR travels in a POSTed form, never in a URL (DESIGN.md): a search's parameters are
read from the body only. Parameters are strict: an unknown or repeated one is refused
with a stable code, rather than ignored (FHIR's lenient default would let a client
believe a filter applied). The values themselves (a malformed NIR, a wrong date) are
left to the lookup, which records them in the audit trail as the JSON API does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import parse_qsl

from rempart.errors import RempartError
from rempart.fhir.systems import INS_NIA, INS_NIR

__all__ = [
    "INCLUDE_BENEFICIARY",
    "INCLUDE_DOCTOR",
    "FhirSearch",
    "InvalidSearch",
    "SearchKind",
    "parse_search",
]

INCLUDE_BENEFICIARY: Final = "Coverage:beneficiary"
INCLUDE_DOCTOR: Final = "Patient:general-practitioner"
_FORMATS: Final = frozenset({"json", "application/json", "application/fhir+json"})
_MAX_FIELDS: Final = 16
_PARAMETER_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z_.:-]{0,39}")


class SearchKind(StrEnum):
    PATIENT = "Patient"
    COVERAGE = "Coverage"


# The parameter naming the person, per resource type: the Coverage's is a chained
# search on its beneficiary, in FHIR's two spellings.
_IDENTIFIER_PARAMETERS: Final = {
    SearchKind.PATIENT: ("identifier",),
    SearchKind.COVERAGE: ("beneficiary.identifier", "beneficiary:Patient.identifier"),
}
_INCLUDES: Final = {
    SearchKind.PATIENT: frozenset({INCLUDE_DOCTOR}),
    SearchKind.COVERAGE: frozenset({INCLUDE_BENEFICIARY, INCLUDE_DOCTOR}),
}
SEARCH_PARAMETERS: Final = {
    kind: (*_IDENTIFIER_PARAMETERS[kind], "birthdate", "_include", "_include:iterate", "_format")
    for kind in SearchKind
}
"""Every parameter a search of each type accepts (the CapabilityStatement lists them)."""


class InvalidSearch(RempartError):
    """A search the facade cannot run; ``code`` is one of the JSON API's."""

    status = 422


@dataclass(frozen=True, slots=True)
class FhirSearch:
    kind: SearchKind
    raw_nir: str
    raw_birth_date: str
    include_patient: bool
    include_doctor: bool

    def __repr__(self) -> str:
        return f"FhirSearch({self.kind.value}, <redacted>)"


def parse_search(kind: SearchKind, body: bytes) -> FhirSearch:
    """The search a form body asks for, or :class:`InvalidSearch`."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=bool(text),
            max_num_fields=_MAX_FIELDS,
            errors="strict",  # a percent-escape that is not UTF-8 either
        )
    except UnicodeDecodeError:
        raise InvalidSearch(
            "the body is not a UTF-8 encoded form", code="malformed_body", status=400
        ) from None
    except ValueError:
        raise InvalidSearch(
            "the body is not a form (name=value pairs joined by &)",
            code="malformed_body",
            status=400,
        ) from None
    values: dict[str, str] = {}
    includes: set[str] = set()
    for name, value in pairs:
        if name not in SEARCH_PARAMETERS[kind]:
            # Named back only when it looks like a parameter name: nothing a client typed
            # (a NIR put in the wrong place, say) is echoed.
            shown = f" {name}" if _PARAMETER_NAME.fullmatch(name) else ""
            raise InvalidSearch(
                f"the parameter{shown} is not supported by a {kind.value} search; "
                f"supported: {', '.join(SEARCH_PARAMETERS[kind])}",
                code="unknown_field",
            )
        if name in ("_include", "_include:iterate"):
            includes.add(_include(kind, value))
            continue
        if name in values:
            raise InvalidSearch(f"the parameter {name} is given twice", code="invalid_value")
        values[name] = value
    identifier = next((values[p] for p in _IDENTIFIER_PARAMETERS[kind] if p in values), None)
    if sum(p in values for p in _IDENTIFIER_PARAMETERS[kind]) > 1:
        raise InvalidSearch("the person is named twice", code="invalid_value")
    if identifier is None:
        raise InvalidSearch(
            f"{_IDENTIFIER_PARAMETERS[kind][0]} is required: "
            f"{INS_NIR}|<NIR> (the INS-NIR, or {INS_NIA} for a temporary number)",
            code="missing_field",
        )
    if "birthdate" not in values:
        raise InvalidSearch("birthdate is required (YYYY-MM-DD)", code="missing_field")
    if values.get("_format", "json") not in _FORMATS:
        raise InvalidSearch("only JSON is served (_format=json)", code="not_acceptable", status=406)
    return FhirSearch(
        kind=kind,
        raw_nir=_nir_of(identifier),
        raw_birth_date=_date_of(values["birthdate"]),
        include_patient=INCLUDE_BENEFICIARY in includes,
        include_doctor=INCLUDE_DOCTOR in includes,
    )


def _nir_of(token: str) -> str:
    """The value of a token ``system|value``; a bare value searches every system, ours."""
    system, bar, value = token.partition("|")
    if not bar:
        return token
    if system not in (INS_NIR, INS_NIA):
        raise InvalidSearch(
            f"the identifier's system must be {INS_NIR} (INS-NIR) or {INS_NIA} (INS-NIA)",
            code="invalid_value",
        )
    return value


def _date_of(value: str) -> str:
    """A date search's value: the ``eq`` prefix is the only one a lookup can honour."""
    if value.startswith("eq"):
        return value[2:]
    if value[:2].isalpha():
        raise InvalidSearch(
            "birthdate takes an exact date (YYYY-MM-DD, or eqYYYY-MM-DD)", code="invalid_value"
        )
    return value


def _include(kind: SearchKind, value: str) -> str:
    if value not in _INCLUDES[kind]:
        raise InvalidSearch(
            f"_include may be {' or '.join(sorted(_INCLUDES[kind]))} on a {kind.value} search",
            code="invalid_value",
        )
    return value
