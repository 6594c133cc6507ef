"""Operations routes: liveness, readiness and the Prometheus metrics.

``/health/live`` and ``/health/ready`` are in the OpenAPI description (no input, two
declared answers each: what a fuzzer finds there it can check). ``/metrics`` is not:
its answer is Prometheus text, not JSON, and it is not for every caller. It is open
to ``REMPART_METRICS_NETWORKS`` (loopback by default: a Prometheus beside the service,
or the operator's SSH tunnel) and, from anywhere, to the bearer ``REMPART_METRICS_TOKEN``
when set. Nothing in it is personal, but the rates of refusals and of the guard's
rules tell an attacker how close they are to a threshold.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Literal

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily
from pydantic import BaseModel

from rempart.errors import RempartError
from rempart.ops.health import (
    OK,
    Readiness,
    ReadinessReport,
    check_audit,
    check_database,
    check_redis,
)
from rempart.ops.metrics import exposition
from rempart.ops.queues import QueueDepths
from rempart.services import Services

__all__ = ["LIVE_PATHS", "OPS_PATHS", "router"]

LIVE_PATHS = ("/health/live", "/healthz")
OPS_PATHS = frozenset({*LIVE_PATHS, "/health/ready", "/metrics"})

router = APIRouter(tags=["operations"])


class Live(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    checks: dict[str, str]


class NotReady(BaseModel):
    error: Literal["not_ready"]
    detail: str
    status: Literal["not_ready"]
    checks: dict[str, str]


class MetricsForbidden(RempartError):
    code = "metrics_forbidden"
    status = 403


@router.get("/health/live", response_model=Live, summary="The process answers")
async def live() -> Live:
    # No dependency checked, no thread taken: a busy pool of blocking routes must not
    # make the orchestrator kill a process that is only busy.
    return Live(status="ok")


@router.get(
    "/health/ready",
    response_model=Ready,
    summary="Every dependency a lookup needs answers",
    responses={503: {"model": NotReady, "description": "A check failed (named by code)"}},
)
async def ready(request: Request) -> Response:
    report = await to_thread.run_sync(_readiness(request).run, limiter=_own_threads(request))
    checks = dict(report.checks)
    if report.ready:
        return JSONResponse({"status": "ready", "checks": checks})
    detail = "not ready: " + ", ".join(f"{n} {checks[n]}" for n in report.failing)
    return JSONResponse(
        {"error": "not_ready", "detail": detail, "status": "not_ready", "checks": checks},
        status_code=503,
        headers={"Retry-After": "5"},
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    _allow_metrics(request, services)
    depths = _queue_depths(request, services)
    readiness = _readiness(request)
    body = await to_thread.run_sync(
        lambda: exposition([depths.collect, lambda: [readiness_family(readiness.run())]]),
        limiter=_own_threads(request),
    )
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def readiness_family(report: ReadinessReport) -> GaugeMetricFamily:
    """The readiness checks as a gauge (1 ok, 0 failing), run at each scrape: an alert
    needs no orchestrator's probe to see a dependency gone."""
    family = GaugeMetricFamily(
        "rempart_ready", "Readiness checks of GET /health/ready: 1 ok, 0 failing.", labels=["check"]
    )
    for name, result in report.checks.items():
        family.add_metric([name], 1.0 if result == OK else 0.0)
    return family


def _allow_metrics(request: Request, services: Services) -> None:
    settings = services.settings
    token = settings.metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.get_secret_value().encode()
        ):
            return
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and any(address in net for net in settings.metrics_networks):
        return
    raise MetricsForbidden(
        "the metrics are open to REMPART_METRICS_NETWORKS or to the bearer REMPART_METRICS_TOKEN"
    )


def _own_threads(request: Request) -> CapacityLimiter:
    """Threads of their own for the probes and the scrape: under load the blocking
    routes hold every thread of the default pool, and a probe queued behind them would
    read as a dead service."""
    limiter: CapacityLimiter | None = getattr(request.app.state, "ops_threads", None)
    if limiter is None:
        limiter = request.app.state.ops_threads = CapacityLimiter(2)
    return limiter


def _queue_depths(request: Request, services: Services) -> QueueDepths:
    depths: QueueDepths | None = getattr(request.app.state, "queue_depths", None)
    if depths is None:
        depths = request.app.state.queue_depths = QueueDepths(services.engine)
    return depths


def _readiness(request: Request) -> Readiness:
    readiness: Readiness | None = getattr(request.app.state, "readiness", None)
    if readiness is None:
        readiness = request.app.state.readiness = build_readiness(request.app.state)
    return readiness


def build_readiness(state: object) -> Readiness:
    """The checks this configuration needs: the databases always, Redis and the claims
    feeds where configured. Built at the first probe, after the application's start:
    the table follower is checked when the start launched it (an app served without
    its lifespan, as some tests do, has none to check)."""
    services: Services = state.services  # type: ignore[attr-defined]
    settings = services.settings
    checks = {
        "database": lambda: check_database(services.engine),
        "audit": lambda: check_audit(
            services.audit_engine, disabled=settings.audit_writer != "sql"
        ),
    }
    redis_client = services.redis_client
    if redis_client is not None:
        checks["redis"] = lambda: check_redis(redis_client)
    launched = getattr(state, "claims_follower", None)
    if settings.claims_poll_seconds > 0 and launched is not None:

        def follower() -> str:
            return OK if launched.running else "stopped"

        checks["claims_table"] = follower
    if settings.claims_amqp_url is not None:

        def stream() -> str:
            consumer = getattr(state, "claims_stream", None)
            return OK if consumer is not None and consumer.connected.is_set() else "disconnected"

        checks["claims_stream"] = stream
    return Readiness(checks, timeout_seconds=settings.ready_timeout_seconds)


@router.get("/healthz", include_in_schema=False)
async def healthz() -> Live:
    """The former liveness route, kept for the probes that still ask it."""
    return Live(status="ok")
