"""Mounts the console's pages and its error handlers on the app."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from rempart.console.routes_accounts import router as accounts_router
from rempart.console.routes_alerts import router as alerts_router
from rempart.console.routes_login import router as login_router
from rempart.console.routes_overview import router as overview_router
from rempart.console.web import CONSOLE, install_handlers

__all__ = ["install_console"]


def install_console(app: FastAPI) -> None:
    install_handlers(app)
    for router in (login_router, overview_router, alerts_router, accounts_router):
        app.include_router(router)

    @app.get(CONSOLE, include_in_schema=False)
    def console_root() -> RedirectResponse:
        return RedirectResponse(f"{CONSOLE}/", status_code=308)
