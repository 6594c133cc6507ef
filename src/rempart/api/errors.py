"""One place that turns every failure into ``{"error": code, "detail": text}``, or, on
the FHIR facade (``/fhir/``), into an OperationOutcome carrying the same code and detail.

No stack trace, no input value and no NIR ever goes back to the client or into the log.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from rempart.api.schemas import CONTROL_CHARACTERS_ERROR, INVALID_NIR_ERROR
from rempart.errors import RempartError
from rempart.fhir.outcome import FHIR_JSON, is_fhir_path, outcome_body
from rempart.nir import InvalidNIR, NIRError

__all__ = ["error_response", "install_error_handlers"]

log = structlog.get_logger("rempart.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
}

# Pydantic error types -> (status, stable code), most specific first.
_VALIDATION_CODES: tuple[tuple[frozenset[str], int, str], ...] = (
    (frozenset({"json_invalid"}), 400, "malformed_json"),
    (frozenset({"extra_forbidden"}), 422, "unknown_field"),
    (frozenset({"missing"}), 422, "missing_field"),
    (frozenset({"model_attributes_type", "dict_type", "model_type"}), 422, "invalid_body"),
    (frozenset({CONTROL_CHARACTERS_ERROR}), 422, CONTROL_CHARACTERS_ERROR),
)


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": code, "detail": detail}, status_code=status, headers=headers or None
    )


def _answer(
    request: Request,
    status: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
    *,
    extra: dict[str, str] | None = None,
) -> Response:
    """The error as the door that was asked speaks it: JSON, or FHIR on ``/fhir/``."""
    if is_fhir_path(request.url.path):
        return Response(
            outcome_body(status, code, detail),
            status_code=status,
            media_type=FHIR_JSON,
            headers=headers or None,
        )
    return JSONResponse(
        {"error": code, "detail": detail, **(extra or {})},
        status_code=status,
        headers=headers or None,
    )


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    message = str(error.get("msg", "invalid"))
    return f"{location}: {message}" if location else message


def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors: list[dict[str, Any]] = list(exc.errors())
    kinds = {str(e.get("type")) for e in errors}
    if INVALID_NIR_ERROR in kinds:
        # As the lookup answers any malformed NIR, before the guard is asked.
        return _invalid_nir(request, InvalidNIR(NIRError.CHARACTERS))
    status, code = 422, "invalid_type"
    for types, candidate_status, candidate_code in _VALIDATION_CODES:
        if kinds & types:
            status, code = candidate_status, candidate_code
            break
    else:
        if kinds & {"string_too_long", "string_too_short"}:
            code = "invalid_value"
    if code == "malformed_json":
        return _answer(request, status, code, "the body is not valid JSON")
    return _answer(request, status, code, "; ".join(_describe(e) for e in errors[:5]))


def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RempartError)
    return _answer(request, exc.status, exc.code, exc.detail, exc.headers)


def _invalid_nir(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidNIR)
    return _answer(request, 422, "invalid_nir", exc.detail, extra={"reason": exc.code.value})


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    detail = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot decode at all (not UTF-8, for one).
        code, detail = "malformed_body", "the body is not UTF-8 encoded JSON"
    return _answer(request, exc.status_code, code, detail, dict(exc.headers or {}))


def _database_down(request: Request, exc: Exception) -> Response:
    log.error("database_unavailable", error_type=type(exc).__name__)
    return _answer(
        request, 503, "database_unavailable", "the database cannot be reached; retry later"
    )


def _data_refused(request: Request, exc: Exception) -> Response:
    # A value the database cannot hold got past the schemas: the request's fault, and
    # its message may quote the value, so the type and the route only.
    route = getattr(request.scope.get("route"), "path", None) or "<unmatched>"
    log.warning("database_refused_value", error_type=type(exc).__name__, route=route)
    return _answer(
        request, 422, "invalid_value", "a value of the request cannot be stored or searched"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RempartError, _domain_error)
    app.add_exception_handler(InvalidNIR, _invalid_nir)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(DataError, _data_refused)
    # Any other exception: AccessLogMiddleware answers the 500 (inside the middleware
    # that adds the security headers, unlike Starlette's ServerErrorMiddleware).
