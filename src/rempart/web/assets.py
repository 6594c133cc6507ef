"""The pages' stylesheet and the portal's one script, served from our own origin (the CSP
allows nothing else)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import Response

from rempart.web.pages import SCRIPT_PATH, STYLESHEET_PATH

__all__ = ["router"]

_STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)


@cache
def _stylesheet() -> bytes:
    return (_STATIC / "rempart.css").read_bytes()


@cache
def _script() -> bytes:
    return (_STATIC / "portail.js").read_bytes()


@router.get(SCRIPT_PATH)
def script() -> Response:
    return Response(
        _script(),
        media_type="text/javascript; charset=utf-8",
        headers={"cache-control": "public, max-age=3600"},
    )


@router.get(STYLESHEET_PATH)
def stylesheet() -> Response:
    # Public and the same for everyone: caching it is fine (pages stay no-store).
    return Response(
        _stylesheet(),
        media_type="text/css; charset=utf-8",
        headers={"cache-control": "public, max-age=3600"},
    )
