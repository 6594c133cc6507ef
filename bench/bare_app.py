"""The floor for bench_lookup: a bare FastAPI app, one ``POST /bare`` returning a constant.

No authentication, no database, no middleware, no body parsing: what FastAPI and
uvicorn cost by themselves on the same server settings as the real service.

    uvicorn bench.bare_app:app --factory --workers 2 --host 127.0.0.1 --port 8001 \
        --log-level warning --no-access-log --no-server-header

``app`` (an ``async def`` endpoint) is the reference of the benchmark. ``app_sync`` is the
same endpoint written as a plain ``def``, which FastAPI runs in its thread pool as it
runs the lookup route: measured alongside to show what the thread pool alone costs.
"""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["app", "app_sync"]

_CONSTANT = {"status": "ok"}


def _bare_app() -> FastAPI:
    bare = FastAPI(title="bare", docs_url=None, redoc_url=None, openapi_url=None)

    @bare.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return bare


def app() -> FastAPI:
    """The app factory, as for ``rempart.api.factory:app`` (``--factory``)."""
    bare = _bare_app()

    @bare.post("/bare")
    async def constant() -> dict[str, str]:
        return _CONSTANT

    return bare


def app_sync() -> FastAPI:
    """The same app with a plain ``def`` endpoint (run in the thread pool)."""
    bare = _bare_app()

    @bare.post("/bare")
    def constant() -> dict[str, str]:
        return _CONSTANT

    return bare
