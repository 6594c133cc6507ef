"""Mounts the console's pages and its error handlers on the app."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from rempart.console.routes_accounts import router as accounts_router
from rempart.console.routes_admin import router as admin_router
from rempart.console.routes_alerts import router as alerts_router
from rempart.console.routes_campaigns import router as campaigns_router
from rempart.console.routes_history import router as history_router
from rempart.console.routes_incidents import router as incidents_router
from rempart.console.routes_login import router as login_router
from rempart.console.routes_overview import router as overview_router
from rempart.console.web import CONSOLE, install_handlers

__all__ = ["install_console"]


def install_console(app: FastAPI) -> None:
    install_handlers(app)
    for router in (
        login_router,
        overview_router,
        alerts_router,
        accounts_router,
        incidents_router,
        campaigns_router,
        history_router,
        admin_router,
    ):
        app.include_router(router)

    @app.get(CONSOLE, include_in_schema=False)
    def console_root() -> RedirectResponse:
        return RedirectResponse(f"{CONSOLE}/", status_code=308)
