"""The OAuth 2.0 token endpoint for practice software (client credentials, RFC 6749 §4.4).

``POST /api/v1/oauth/token`` takes an ``application/x-www-form-urlencoded`` body
with ``grant_type=client_credentials``. The client authenticates with HTTP Basic
(``client_secret_basic``: id and secret form-encoded, then base64, §2.3.1) or with
``client_id`` and ``client_secret`` in the body (``client_secret_post``), never
both. A parameter sent twice is refused (§3.2); ``scope`` is accepted and
ignored (there are no scopes: a token acts for its organization's
professionals). Errors keep our ``{"error", "detail"}`` body, whose ``error``
is RFC 6749's own code (``invalid_request``, ``invalid_client``,
``unsupported_grant_type``). The body is parsed here with the standard library
(bounded field count, strict parsing) rather than a multipart parser.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl, unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from rempart.api.deps import ERROR_RESPONSES, origin_of, services_of
from rempart.api.middleware import OAUTH_TOKEN_PATH
from rempart.api.schemas import TokenResponse, has_control_characters
from rempart.audit.events import Origin
from rempart.auth.service import IssuedToken
from rempart.errors import RempartError
from rempart.services import Services
from rempart.store.engine import session_scope

__all__ = ["InvalidTokenRequest", "UnsupportedGrantType", "router"]

router = APIRouter(tags=["oauth"])

_GRANT = "client_credentials"
_MAX_FIELDS = 8
_MAX_VALUE = 512


class InvalidTokenRequest(RempartError):
    code = "invalid_request"
    status = 400


class UnsupportedGrantType(RempartError):
    code = "unsupported_grant_type"
    status = 400

    def __init__(self) -> None:
        super().__init__("only grant_type=client_credentials is supported")


def _form(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            max_num_fields=_MAX_FIELDS,
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidTokenRequest("the body is not a valid form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise InvalidTokenRequest(f"parameter {name[:32]!r} is repeated")
        if len(value) > _MAX_VALUE:
            raise InvalidTokenRequest(f"parameter {name[:32]!r} is too long")
        if has_control_characters(name) or has_control_characters(value):
            raise InvalidTokenRequest("a parameter holds control characters")
        form[name] = value
    return form


def _basic(header: str) -> tuple[str, str] | None:
    """Client id and secret from ``Authorization: Basic``, or None without one."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidTokenRequest("authenticate the client with HTTP Basic or form parameters")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidTokenRequest("the Basic credentials are malformed") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise InvalidTokenRequest("the Basic credentials are malformed")
    return unquote_plus(client_id), unquote_plus(secret)


def _credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    basic = _basic(request.headers.get("authorization", ""))
    in_form = "client_id" in form or "client_secret" in form
    if basic is not None and in_form:
        raise InvalidTokenRequest("use one client authentication method, not both")
    if basic is not None:
        if any(has_control_characters(part) for part in basic):
            raise InvalidTokenRequest("the Basic credentials hold control characters")
        return basic
    return form.get("client_id", ""), form.get("client_secret", "")


def _check_grant(grant: str | None) -> None:
    if not grant:
        raise InvalidTokenRequest("grant_type is required")
    if grant != _GRANT:
        raise UnsupportedGrantType()


def _issue(services: Services, client_id: str, secret: str, origin: Origin) -> IssuedToken:
    with session_scope(services.sessions) as session:
        return services.clients.issue_token(
            session, client_id=client_id, client_secret=secret, origin=origin
        )


@router.post(
    OAUTH_TOKEN_PATH,
    response_model=TokenResponse,
    responses=ERROR_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["grant_type"],
                        "properties": {
                            "grant_type": {"type": "string", "enum": [_GRANT]},
                            "client_id": {"type": "string"},
                            "client_secret": {"type": "string"},
                            "scope": {"type": "string", "description": "ignored"},
                        },
                    }
                }
            },
        }
    },
)
async def oauth_token(request: Request) -> JSONResponse:
    """A bearer token for practice software (OAuth 2.0 client credentials).

    Send ``X-Acting-Professional`` (RPPS or account id) with every request made with it.
    """
    services = services_of(request)
    origin = origin_of(request)
    client_id = ""
    try:
        form = _form(await request.body())
        client_id, secret = _credentials(request, form)
        _check_grant(form.get("grant_type"))
    except (InvalidTokenRequest, UnsupportedGrantType) as refusal:
        await run_in_threadpool(
            services.clients.reject_request, refusal.code, origin=origin, client_id=client_id
        )
        raise
    issued = await run_in_threadpool(_issue, services, client_id, secret, origin)
    body = TokenResponse(access_token=issued.access_token, expires_in=issued.expires_in)
    # Cache-Control: no-store is on every response (AccessLogMiddleware); Pragma for HTTP/1.0.
    return JSONResponse(body.model_dump(exclude_none=True), headers={"Pragma": "no-cache"})
