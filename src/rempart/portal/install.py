"""Mounts the portal's pages and its error handlers on the app."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from rempart.portal.routes_history import router as history_router
from rempart.portal.routes_login import router as login_router
from rempart.portal.routes_lookup import router as lookup_router
from rempart.portal.routes_security import router as security_router
from rempart.portal.web import PORTAL, install_handlers

__all__ = ["install_portal"]


def install_portal(app: FastAPI) -> None:
    install_handlers(app)
    for router in (login_router, lookup_router, history_router, security_router):
        app.include_router(router)

    @app.get(PORTAL, include_in_schema=False)
    def portal_root() -> RedirectResponse:
        return RedirectResponse(f"{PORTAL}/", status_code=308)
