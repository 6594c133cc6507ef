"""The console's first page: what the guard sees right now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from rempart.console.operators import ConsoleSession, Permission
from rempart.console.web import CONSOLE, render, require

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get(f"{CONSOLE}/")
def overview(
    request: Request, current: Annotated[ConsoleSession, Depends(require(Permission.OVERVIEW))]
) -> Response:
    return render(request, current, "console/overview.html", {"title": "Vue d'ensemble"})
