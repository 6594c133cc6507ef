"""Pure ASGI middleware: client address, body size and media type limits, access log,
response headers, and the last word on unexpected errors.

The access log records the matched route template, never the raw path or the
query string, so that nothing a client puts in a URL (a NIR, say) reaches a log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rempart.fhir.outcome import FHIR_JSON, is_fhir_path, outcome_body
from rempart.forwarded import InvalidForwardedFor, IPNetwork, client_behind_proxies
from rempart.ops.metrics import observe_request

__all__ = [
    "OAUTH_TOKEN_PATH",
    "SECURITY_HEADERS",
    "AccessLogMiddleware",
    "BodyLimitMiddleware",
    "ClientAddressMiddleware",
    "reply_error",
]

OAUTH_TOKEN_PATH = "/api/v1/oauth/token"  # noqa: S105 - a path, not a secret
_FORM = b"application/x-www-form-urlencoded"

log = structlog.get_logger("rempart.access")

# Every answer is JSON or a redirect: nothing may load, run or frame it. A page that
# needs more sets its own Content-Security-Policy, which is then kept.
SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
]


async def reply_error(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    detail: str,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """An answer of a middleware itself, as the door asked speaks errors (JSON, or an
    OperationOutcome on the FHIR facade)."""
    if is_fhir_path(scope.get("path", "")):
        body, media = outcome_body(status, code, detail), FHIR_JSON.encode()
    else:
        body, media = json.dumps({"error": code, "detail": detail}).encode(), b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", media),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuses bodies over ``max_bytes`` (413), and bodies of the wrong media type (415)
    on the API (JSON) and the FHIR facade (forms).

    ``path_limits`` raises the limit of a few exact paths (a message to check is longer
    than any other body)."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, path_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        max_bytes = self.path_limits.get(scope["path"], self.default_max_bytes)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await reply_error(scope, send, 400, "bad_request", "invalid Content-Length")
                return
            if int(declared) > max_bytes:
                await reply_error(scope, send, 413, "payload_too_large", self._too_large(max_bytes))
                return
        # A body-less POST (log out, end sessions) has no media type to check.
        has_body = (declared is not None and declared != b"0") or b"transfer-encoding" in headers
        path = scope["path"]
        if (path.startswith("/api/") or is_fhir_path(path)) and has_body:
            media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            # The OAuth token endpoint takes a form body (RFC 6749 section 4.4.2), and so
            # do the FHIR facade's searches (FHIR's POST search).
            expected = (
                _FORM if path == OAUTH_TOKEN_PATH or is_fhir_path(path) else b"application/json"
            )
            if media != expected:
                await reply_error(
                    scope,
                    send,
                    415,
                    "unsupported_media_type",
                    f"send the body as {expected.decode()}",
                )
                return

        # The whole body is read here, before the application sees any of it: a body
        # without Content-Length (chunked) is then refused like any other, with 413.
        chunks: list[bytes] = []
        received = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before the end of its body
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > max_bytes:
                await reply_error(scope, send, 413, "payload_too_large", self._too_large(max_bytes))
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # http.disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    def _too_large(max_bytes: int) -> str:
        return f"the body must not exceed {max_bytes} bytes"


class ClientAddressMiddleware:
    """The one place that decides who a request comes from: ``scope["client"]`` becomes
    the client behind the trusted proxies (:func:`rempart.forwarded.client_behind_proxies`),
    so the throttle, the guard, the audit trail, the new-origin check and the access log
    all see the same address. A forwarded entry that is not an address gets 400.

    It changes the scope in place, so that the access log around it sees the result too.
    """

    def __init__(self, app: ASGIApp, *, trusted_proxies: Sequence[IPNetwork]) -> None:
        self.app = app
        self.trusted_proxies = tuple(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = scope.get("client")
        if scope["type"] not in ("http", "websocket") or not self.trusted_proxies or not peer:
            await self.app(scope, receive, send)
            return
        forwarded = [
            value.decode("latin-1")
            for name, value in scope.get("headers") or []
            if name == b"x-forwarded-for"
        ]
        try:
            client = client_behind_proxies(str(peer[0]), forwarded, self.trusted_proxies)
        except InvalidForwardedFor as exc:
            await reply_error(scope, send, exc.status, exc.code, exc.detail)
            return
        if client != peer[0]:
            # The client's source port is unknown behind a proxy.
            scope["client"] = (client, 0)
        await self.app(scope, receive, send)


class AccessLogMiddleware:
    """Outermost: logs every request, adds the security headers to every answer, and
    answers an unexpected exception with a plain 500 (the exception's type and route are
    logged; no traceback, no message, which could quote input)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        anonymous_routes: Collection[str] = (),
        quiet_routes: Collection[str] = (),
    ) -> None:
        self.app = app
        # Routes polled by machines (probes, Prometheus): counted in the metrics, logged
        # only when they fail.
        self.quiet_routes = frozenset(quiet_routes)
        # Routes whose callers are not recorded, even here (the message checker keeps
        # nothing of a check but a count).
        self.anonymous_routes = frozenset(anonymous_routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        responded = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status = int(message["status"])
                responded = True
                message["headers"] = _with_security_headers(message.get("headers") or [])
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:  # noqa: BLE001 - the last word: logged, answered, not raised
            log.error(  # noqa: TRY400 - a traceback's frames could show input values
                "unhandled_error",
                error_type=type(exc).__name__,
                method=scope["method"],
                route=_route_of(scope),
            )
            if responded:
                status = 500  # the answer was cut short; the client sees a broken body
            else:
                await reply_error(
                    scope, send_with_headers, 500, "internal_error", "an internal error occurred"
                )
        finally:
            path = _route_of(scope)
            seconds = time.perf_counter() - started
            observe_request(scope["method"], path, status, seconds)
            if status >= 400 or path not in self.quiet_routes:
                client = scope.get("client")
                log.info(
                    "request",
                    method=scope["method"],
                    route=path,
                    status=status,
                    duration_ms=round(seconds * 1000, 2),
                    client=client[0] if client and path not in self.anonymous_routes else None,
                )


def _route_of(scope: Scope) -> str:
    route: Any = scope.get("route")
    return getattr(route, "path", None) or "<unmatched>"


def _with_security_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    present = {bytes(name).lower() for name, _ in headers}
    return [*headers, *((n, v) for n, v in SECURITY_HEADERS if n not in present)]
