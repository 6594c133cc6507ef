"""The rights lookup spoken as FHIR R4 (FR Core, INS) for practice software.

A facade, not a second path: :mod:`rempart.fhir.search` reads a search's form body into
the lookup's two fields, the API route sends them through the same guarded and audited
lookup as the JSON API (:func:`rempart.rights.guarded.guarded_lookup`), and
:mod:`rempart.fhir.resources` writes the answer as FHIR resources. Framework-free.
"""

from typing import Final

from rempart.fhir.capability import capability_statement
from rempart.fhir.outcome import FHIR_JSON, operation_outcome
from rempart.fhir.resources import returned_categories, search_bundle
from rempart.fhir.search import FhirSearch, InvalidSearch, SearchKind, parse_search

__all__ = [
    "CHANNEL",
    "FHIR_JSON",
    "FhirSearch",
    "InvalidSearch",
    "SearchKind",
    "capability_statement",
    "operation_outcome",
    "parse_search",
    "returned_categories",
    "search_bundle",
]

CHANNEL: Final = "fhir"
"""The audit trail's ``channel`` of a lookup made through the facade (the JSON API's are
``portal`` and ``software``; the ``acr`` says whether a practice software asked)."""
