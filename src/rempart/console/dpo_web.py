"""Small helpers shared by the DPO's and administrator's routes: a refused action's
French page, the confirmation named by ``?message=``, fields of a checked form."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse

from rempart.api.deps import services_of
from rempart.console.dpo_texts import CONFIRMATIONS, error_text
from rempart.console.operators import ConsoleSession
from rempart.console.web import render
from rempart.errors import RempartError

__all__ = ["confirmation", "data_dir", "field", "fields", "refusal"]


def refusal(
    request: Request,
    current: ConsoleSession,
    error: RempartError | str,
    *,
    status: int | None = None,
    back: tuple[str, str] | None = None,
) -> HTMLResponse:
    """The page saying why an action was refused (a 4xx, never the English detail)."""
    if isinstance(error, RempartError):
        text = error_text(error)
        code = error.status if error.status < 500 else 409
    else:
        text, code = error, 400
    return render(
        request,
        current,
        "console/action_error.html",
        {"title": "Erreur : action refusée", "error": text, "back": back},
        status=status or code,
    )


def confirmation(request: Request) -> str:
    """The confirmation a redirect asked for (a code from our own list, nothing else)."""
    return CONFIRMATIONS.get(request.query_params.get("message", ""), "")


def field(form: FormData, name: str, *, limit: int = 200) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def fields(form: FormData, name: str, *, limit: int = 200) -> list[str]:
    """A repeated field's values (e.g. the selected alerts' checkboxes)."""
    return [v.strip() for v in form.getlist(name)[:limit] if isinstance(v, str) and v.strip()]


def data_dir(request: Request) -> Path:
    return services_of(request).settings.resolved_data_dir
