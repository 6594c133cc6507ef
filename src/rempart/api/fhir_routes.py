"""The FHIR R4 facade's routes: ``/fhir/metadata`` and the POSTed searches.

Thin: the form is read by :mod:`rempart.fhir.search`, the lookup is the JSON API's own
(:func:`rempart.rights.guarded.guarded_lookup`: same authentication, same guard decision
before anything is read, same audit entry, committed before the answer leaves), and the
answer is written by :mod:`rempart.fhir.resources`. Errors become OperationOutcomes in
:mod:`rempart.api.errors`, with the JSON API's statuses and codes.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rempart.api.deps import (
    ACTING_PROFESSIONAL_PARAMETER,
    authenticate_request,
    origin_of,
    services_of,
)
from rempart.auth.levels import LOOKUP_REQUIREMENT
from rempart.errors import RempartError
from rempart.fhir import (
    CHANNEL,
    FHIR_JSON,
    FhirSearch,
    InvalidSearch,
    SearchKind,
    capability_statement,
    parse_search,
    returned_categories,
    search_bundle,
)
from rempart.fhir.search import SEARCH_PARAMETERS
from rempart.rights.guarded import caller_of, check_input, guarded_lookup
from rempart.rights.lookup import NotFound, RightsRecord
from rempart.store.engine import lookup_scope

__all__ = ["router"]

router = APIRouter(prefix="/fhir", tags=["fhir"])

# The facade's searches in the OpenAPI description, so that clients (and the fuzz,
# tests/functional/test_fuzz_api.py) see them: the form's fields, and every answer as
# application/fhir+json, errors as OperationOutcomes with the JSON API's statuses.
_OUTCOME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "issue": {"type": "array", "minItems": 1, "items": {"type": "object"}},
    },
}
_FHIR_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": "an OperationOutcome naming the stable code (urn:rempart:error)",
        "content": {FHIR_JSON: {"schema": _OUTCOME_SCHEMA}},
    }
    for status in (400, 401, 403, 406, 413, 415, 422, 429, 503)
}


def _fhir_ok(resource_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    schema = {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"const": resource_type}},
    }
    return {200: {"description": description, "content": {FHIR_JSON: {"schema": schema}}}}


def _search_form(kind: SearchKind) -> dict[str, Any]:
    text = {"type": "string", "maxLength": 256}
    properties: dict[str, Any] = dict.fromkeys(SEARCH_PARAMETERS[kind], text)
    identifier = "identifier" if kind is SearchKind.PATIENT else "beneficiary.identifier"
    properties[identifier] = {
        **text,
        "description": "the person: urn:oid:1.2.250.1.213.1.4.8|<NIR> (INS-NIR)",
    }
    properties["birthdate"] = {**text, "description": "YYYY-MM-DD"}
    return {
        "parameters": [ACTING_PROFESSIONAL_PARAMETER],
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": properties,
                        "required": [identifier, "birthdate"],
                        "additionalProperties": False,
                    }
                }
            },
        },
    }


_ACCEPTED = ("*/*", "application/*", "application/fhir+json", "application/json", "json")


def _fhir(resource: dict[str, Any], status: int = 200) -> Response:
    return Response(
        json.dumps(resource, ensure_ascii=False), status_code=status, media_type=FHIR_JSON
    )


def _check_accept(request: Request) -> None:
    accept = request.headers.get("accept", "").lower()
    if accept and not any(kind in accept for kind in _ACCEPTED):
        raise InvalidSearch(
            "this server answers application/fhir+json only", code="not_acceptable", status=406
        )


def _base_url(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}/fhir"


@router.get(
    "/metadata",
    response_class=Response,
    responses={**_fhir_ok("CapabilityStatement", "what the facade supports"), **_FHIR_ERRORS},
)
def metadata(request: Request) -> Response:
    """What the facade supports (no authentication: it says nothing about anyone)."""
    _check_accept(request)
    app = request.app
    return _fhir(
        capability_statement(base_url=_base_url(request), software=app.title, version=app.version)
    )


def _run(request: Request, search: FhirSearch) -> RightsRecord | None:
    services = services_of(request)
    with lookup_scope(services.sessions) as session:
        principal = authenticate_request(request, session, LOOKUP_REQUIREMENT)
        caller = caller_of(principal, origin_of(request), channel=CHANNEL)
        try:
            return guarded_lookup(
                services,
                session,
                caller,
                raw_nir=search.raw_nir,
                raw_birth_date=search.raw_birth_date,
                returned=returned_categories(search),
            )
        except NotFound:
            # Recorded as not found, answered as an empty searchset: an unknown NIR and
            # a wrong birth date look alike, as through the JSON API.
            return None


async def _search(request: Request, kind: SearchKind) -> Response:
    _check_accept(request)
    if request.url.query:
        raise RempartError(
            "a search's parameters travel in the POSTed form body, never in the URL "
            "(a NIR in a URL is kept by proxies and access logs)",
            code="parameters_in_url",
            status=400,
        )
    search = parse_search(kind, await request.body())
    # As the JSON API's schema refuses them, before anyone is asked.
    check_input(search.raw_nir, search.raw_birth_date)
    record = await run_in_threadpool(_run, request, search)
    services = services_of(request)
    bundle = search_bundle(
        search, record, base_url=_base_url(request), insurer=services.settings.organization_name
    )
    return _fhir(bundle)


@router.post(
    "/Patient/_search",
    response_class=Response,
    responses={**_fhir_ok("Bundle", "a searchset: the Patient, or none"), **_FHIR_ERRORS},
    openapi_extra=_search_form(SearchKind.PATIENT),
)
async def search_patient(request: Request) -> Response:
    """The person's identity as an FR Core Patient INS."""
    return await _search(request, SearchKind.PATIENT)


@router.post(
    "/Coverage/_search",
    response_class=Response,
    responses={**_fhir_ok("Bundle", "a searchset: the Coverages, or none"), **_FHIR_ERRORS},
    openapi_extra=_search_form(SearchKind.COVERAGE),
)
async def search_coverage(request: Request) -> Response:
    """The person's rights as Coverages (``_include`` the Patient and the Practitioner)."""
    return await _search(request, SearchKind.COVERAGE)


@router.get("/Patient", include_in_schema=False)
@router.get("/Patient/_search", include_in_schema=False)
@router.get("/Coverage", include_in_schema=False)
@router.get("/Coverage/_search", include_in_schema=False)
def search_by_get(request: Request) -> Response:
    """Refused: a GET search would carry the NIR in its URL."""
    del request
    raise RempartError(
        "a search by GET would carry the NIR in its URL, which proxies and access logs "
        "keep: POST it as a form (application/x-www-form-urlencoded) to "
        "/fhir/<type>/_search",
        code="search_by_get_refused",
        status=405,
        headers={"Allow": "POST"},
    )
