"""What every route needs from a request: the services, the caller's origin, the bearer token."""

from __future__ import annotations

import re

from fastapi import Request
from sqlalchemy.orm import Session

from rempart.api.schemas import ErrorBody, NoticeOut, TokenResponse
from rempart.audit.events import Origin
from rempart.auth.clients import is_client_token
from rempart.auth.levels import AuthRequirement
from rempart.auth.service import IssuedToken, Principal
from rempart.auth.tokens import InvalidToken
from rempart.services import Services

__all__ = [
    "ACTING_PROFESSIONAL_HEADER",
    "ACTING_PROFESSIONAL_PARAMETER",
    "ERROR_RESPONSES",
    "authenticate_request",
    "bearer_token",
    "client_address",
    "origin_of",
    "services_of",
    "token_response",
    "user_agent_of",
]

ACTING_PROFESSIONAL_HEADER = "X-Acting-Professional"

# Read by authenticate_request, not by a FastAPI parameter: declared in the OpenAPI
# description of the routes that take it (``openapi_extra``), for practice software.
ACTING_PROFESSIONAL_PARAMETER: dict[str, object] = {
    "name": ACTING_PROFESSIONAL_HEADER,
    "in": "header",
    "required": False,
    "description": "With a practice software's client token: the account of the "
    "professional of its organization the request is made for (required then; "
    "ignored with a professional's own token)",
    "schema": {"type": "string", "maxLength": 128},
}

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)
}


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def client_address(request: Request) -> str:
    """The client's address, as :class:`rempart.api.middleware.ClientAddressMiddleware`
    decided it for the whole request (behind trusted proxies only)."""
    return request.client.host if request.client else "unknown"


# C0 and C1 controls and DEL: an HTTP server passes some of them in a header value.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")


def user_agent_of(request: Request) -> str:
    """The request's user agent as every part records and compares it: at most 256
    characters, control characters replaced by U+FFFD (a NUL cannot be stored in
    PostgreSQL, and the odd value is itself worth keeping in the trail)."""
    return _CONTROLS.sub("\ufffd", request.headers.get("user-agent", "")[:256])


def origin_of(request: Request, login: str = "") -> Origin:
    return Origin(login=login, client_ip=client_address(request), user_agent=user_agent_of(request))


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("a bearer access token is required")
    return token.strip()


def authenticate_request(
    request: Request, session: Session, requirement: AuthRequirement | None = None
) -> Principal:
    """The caller of a request: a professional's session token, or a practice software's
    client token with the professional it acts for (``X-Acting-Professional``).

    With a ``requirement`` (the assurance level the route needs), a caller below it gets
    RFC 9470's ``401 insufficient_user_authentication`` challenge.

    The token's unverified ``typ`` only chooses the signer that checks it; each signer
    checks the signature and the purpose, so a token of one kind never passes as the other.
    """
    services = services_of(request)
    token = bearer_token(request)
    if is_client_token(token):
        principal = services.clients.authenticate(
            session,
            token,
            acting=request.headers.get(ACTING_PROFESSIONAL_HEADER),
            origin=origin_of(request),
        )
    else:
        principal = services.auth.authenticate(session, token)
    if requirement is not None:
        requirement.check(principal)
    return principal


def token_response(issued: IssuedToken) -> TokenResponse:
    """A login's answer; ``notices`` only when the login delivered some (a strong one)."""
    return TokenResponse(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        notices=[
            NoticeOut(kind=n.kind, at=n.at, subject=n.subject, text=n.text) for n in issued.notices
        ]
        or None,
    )
