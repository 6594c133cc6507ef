"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from anyio import to_thread
from fastapi import FastAPI

from rempart.api.account_routes import router as account_router
from rempart.api.errors import install_error_handlers
from rempart.api.fhir_routes import router as fhir_router
from rempart.api.mail_pump import MailPump
from rempart.api.message_routes import MESSAGE_ROUTES, message_body_limit
from rempart.api.message_routes import router as message_router
from rempart.api.middleware import (
    AccessLogMiddleware,
    BodyLimitMiddleware,
    ClientAddressMiddleware,
)
from rempart.api.notice_routes import NOTICE_ROUTES
from rempart.api.notice_routes import router as notice_router
from rempart.api.oauth_routes import router as oauth_router
from rempart.api.ops_routes import OPS_PATHS
from rempart.api.ops_routes import router as ops_router
from rempart.api.psc_routes import router as psc_router
from rempart.api.rollup_pump import RollupPump
from rempart.api.routes import router
from rempart.api.shedding import LoadSheddingMiddleware
from rempart.api.webauthn_routes import router as webauthn_router
from rempart.claims.consumer import ClaimsConsumer
from rempart.claims.follower import ClaimsFollower
from rempart.config import Settings, load_settings
from rempart.console.install import install_console
from rempart.ops.metrics import worker_exit
from rempart.portal.install import install_portal
from rempart.services import Services
from rempart.web import assets_router

__all__ = ["create_app"]


log = structlog.get_logger("rempart.api")


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    services = services or Services(settings or load_settings())

    @asynccontextmanager
    async def lifespan(started: FastAPI) -> AsyncIterator[None]:
        # Blocking routes run in threads; a few threads keep the database busy, while
        # dozens only fight over the GIL (measured in bench/bench_lookup.py).
        to_thread.current_default_thread_limiter().total_tokens = services.settings.worker_threads
        pump = MailPump(services, interval_seconds=services.settings.mail_poll_seconds)
        pump.start()
        rollup = RollupPump(services, interval_seconds=services.settings.console_rollup_seconds)
        rollup.start()
        # The guard learns its history (the audit trail's recent lookups) before the
        # first request rather than during it. If that fails here (database or Redis
        # not there yet), the first lookup builds it and fails closed meanwhile.
        try:
            await to_thread.run_sync(lambda: services.guard)
        except Exception as exc:  # noqa: BLE001 - reported, and retried by the first lookup
            log.warning("guard_not_ready_at_start", error=type(exc).__name__)
        # Claims (care billed) explain lookups: the table's new rows, and the stream when
        # configured, fed to the guard once it is built (one builder at a time).
        follower = ClaimsFollower(
            services.engine,
            lambda: services.guard,
            interval_seconds=services.settings.claims_poll_seconds,
            history_days=services.settings.guard_history_days,
        )
        follower.start()
        stream = None
        if services.settings.claims_amqp_url is not None:
            stream = ClaimsConsumer.from_services(services)
            stream.start()
        started.state.claims_follower, started.state.claims_stream = follower, stream
        yield
        if stream is not None:
            stream.stop()
        follower.stop()
        rollup.stop()
        pump.stop()
        readiness = getattr(started.state, "readiness", None)
        if readiness is not None:
            readiness.close()
        services.close()
        worker_exit()

    app = FastAPI(
        title="Rempart",
        summary="Guarded rights lookup for health professionals",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(ops_router)
    app.include_router(account_router)
    app.include_router(psc_router)
    app.include_router(webauthn_router)
    app.include_router(oauth_router)
    app.include_router(notice_router)
    app.include_router(message_router)
    app.include_router(fhir_router)
    app.include_router(assets_router)
    install_console(app)
    install_portal(app)

    # The last added runs first: the access log (and its headers and 500s) around all,
    # then the client's address, then the body limits (the whole body read), then load
    # shedding: a slow body holds no slot (rempart.api.shedding).
    app.add_middleware(
        LoadSheddingMiddleware,
        max_in_flight=services.settings.max_in_flight,
        retry_after_seconds=services.settings.overload_retry_after_seconds,
        public_paths={*MESSAGE_ROUTES, *NOTICE_ROUTES},
        max_public_in_flight=services.settings.max_public_in_flight,
    )
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=services.settings.max_body_bytes,
        path_limits=dict.fromkeys(MESSAGE_ROUTES, message_body_limit(services.settings)),
    )
    app.add_middleware(ClientAddressMiddleware, trusted_proxies=services.settings.trusted_proxies)
    app.add_middleware(AccessLogMiddleware, anonymous_routes=MESSAGE_ROUTES, quiet_routes=OPS_PATHS)
    return app
