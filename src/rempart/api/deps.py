"""What every route needs from a request: the services, the caller's origin, the bearer token."""

from __future__ import annotations

from fastapi import Request

from rempart.api.schemas import ErrorBody
from rempart.audit.events import Origin
from rempart.auth.tokens import InvalidToken
from rempart.services import Services

__all__ = ["ERROR_RESPONSES", "bearer_token", "client_address", "origin_of", "services_of"]

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)
}


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def client_address(request: Request) -> str:
    if services_of(request).settings.trust_proxy_headers:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.client.host if request.client else "unknown"


def origin_of(request: Request, login: str = "") -> Origin:
    return Origin(
        login=login,
        client_ip=client_address(request),
        user_agent=request.headers.get("user-agent", "")[:256],
    )


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("a bearer access token is required")
    return token.strip()
