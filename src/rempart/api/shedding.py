"""Load shedding: a worker past its capacity refuses new requests at once.

A request that cannot be served soon is better refused now, with ``503 overloaded`` and
``Retry-After``, than queued: a queue in front of a saturated worker only grows, every
request in it waits longer, and the clients (or their retries) time out on work the
server will still do, audit entry included. Refusing at the door costs microseconds and
touches nothing: no session is read, no lookup is made, nothing is audited, so a shed
request never reads a record and never leaves one half-written.

The bound is on the requests in progress in this worker (its event loop counts them; no
lock is needed as the counter is only touched from the loop), counted once their body is
in: it sits inside the body limit, which reads a whole (bounded) body first. A request
whose body is still on its way holds no slot, so a client that opens connections and
sends its bodies a byte at a time cannot fill the bound and have the professionals
refused. Probes (``/health/live``,
``/health/ready``, ``/healthz``) and ``/metrics`` are never shed: a load balancer and the
monitoring must see the truth exactly when the service is busiest.

The public checks (a notice's code, a suspicious message) need no account, and a message
at the size limit costs up to a second of CPU: they get a lane of their own, a smaller
bound inside the worker's, so that an anonymous flood is shed on its own and can never
take every slot from the professionals' lookups.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from rempart.api.middleware import reply_error
from rempart.api.ops_routes import OPS_PATHS
from rempart.ops.metrics import count_shed
from rempart.web.pages import wait_in_words

__all__ = ["OVERLOADED", "LoadSheddingMiddleware"]

OVERLOADED = "overloaded"

# A page (portal, console, public checks) gets a page, in French, not JSON.
_PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>Service momentanément surchargé</title>
</head><body><main><h1>Service momentanément surchargé</h1>
<p>Trop de demandes arrivent en même temps. Votre demande n'a pas été traitée&nbsp;:
réessayez dans {wait}.</p></main></body></html>
"""


class LoadSheddingMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_in_flight: int,
        retry_after_seconds: int,
        public_paths: Collection[str] = (),
        max_public_in_flight: int | None = None,
        never_shed: Collection[str] = OPS_PATHS,
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.public_paths = frozenset(public_paths)
        self.max_public_in_flight = min(max_public_in_flight or max_in_flight, max_in_flight)
        self.retry_after = str(retry_after_seconds)
        self.wait = wait_in_words(retry_after_seconds)
        self.never_shed = frozenset(never_shed)
        self.in_flight = 0
        self.public_in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in self.never_shed:
            await self.app(scope, receive, send)
            return
        public = path in self.public_paths and scope["method"] == "POST"
        full = self.in_flight >= self.max_in_flight
        if full or (public and self.public_in_flight >= self.max_public_in_flight):
            count_shed("worker" if full else "public")
            await self._refuse(scope, send)
            return
        self.in_flight += 1
        self.public_in_flight += public
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.public_in_flight -= public

    async def _refuse(self, scope: Scope, send: Send) -> None:
        headers = [(b"retry-after", self.retry_after.encode())]
        if _wants_page(scope):
            body = _PAGE.format(wait=self.wait).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"text/html; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                        *headers,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await reply_error(
            scope,
            send,
            503,
            OVERLOADED,
            f"the service is overloaded; retry in {self.retry_after} seconds",
            headers=headers,
        )


def _wants_page(scope: Scope) -> bool:
    path: str = scope["path"]
    if path.startswith(("/api/", "/fhir")):
        return False
    accept = dict(scope.get("headers") or []).get(b"accept", b"")
    return b"text/html" in accept
