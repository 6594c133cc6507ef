"""The console's first page: what the guard sees right now (figures in
:mod:`rempart.console.activity`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from rempart.api.deps import services_of
from rempart.audit.trail import now_us
from rempart.console.activity import CHART_DAYS, CHART_HOURS, chart, overview
from rempart.console.display import number, when
from rempart.console.operators import ConsoleSession, Permission
from rempart.console.web import CONSOLE, render, require
from rempart.messages.counts import verdict_totals

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get(f"{CONSOLE}/")
def overview_page(
    request: Request, current: Annotated[ConsoleSession, Depends(require(Permission.OVERVIEW))]
) -> Response:
    services = services_of(request)
    figures = overview(services.engine, services.audit_engine, now_us=now_us())
    # The public message checker keeps only counts: its week, by verdict.
    messages = verdict_totals(services.engine, since=datetime.now(UTC).date() - timedelta(days=6))
    return render(
        request,
        current,
        "console/overview.html",
        {
            "title": "Vue d'ensemble",
            "figures": figures,
            "messages": messages,
            "hours_chart": chart(figures.hours),
            "days_chart": chart(figures.days),
            "chart_hours": CHART_HOURS,
            "chart_days": CHART_DAYS,
            "when": when,
            "number": number,
        },
    )
