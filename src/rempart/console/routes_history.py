"""A person's access history, for the DPO: who read their record, when, and what.

The NIR is typed in a form and POSTed (never in a URL); ``access_history`` turns it into
its pseudonym and records the query itself in the audit trail with the operator named.
Every console answer is ``Cache-Control: no-store`` (the security middleware)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rempart.api.deps import services_of
from rempart.audit.history import Access, access_history
from rempart.console.dpo_texts import CATEGORY_LABELS, PARIS, french_moment, nir_error_text
from rempart.console.dpo_web import field
from rempart.console.operators import ConsoleSession, Permission
from rempart.console.web import CONSOLE, checked_form, render, require
from rempart.nir import InvalidNIR, parse_nir

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

History = Annotated[ConsoleSession, Depends(require(Permission.ACCESS_HISTORY))]

HISTORY = f"{CONSOLE}/historique"


@dataclass(frozen=True)
class AccessLine:
    at: str
    account_id: str
    professional: str
    categories: str
    result: str


def _line(access: Access) -> AccessLine:
    who = ", ".join(p for p in (access.professional, access.profession) if p)
    if access.outcome != "ok":
        result = f"refusée ({access.outcome})"
    elif access.found:
        result = "données renvoyées"
    else:
        result = "aucune donnée"
    return AccessLine(
        at=french_moment(access.at),
        account_id=access.account_id,
        professional=who,
        categories=", ".join(CATEGORY_LABELS.get(c, c) for c in access.categories) or "—",
        result=result,
    )


def _day(raw: str) -> date | None:
    return date.fromisoformat(raw) if raw else None


def _page(
    request: Request,
    current: ConsoleSession,
    *,
    error: str = "",
    lines: list[AccessLine] | None = None,
    since: str = "",
    until: str = "",
    status: int = 200,
) -> Response:
    return render(
        request,
        current,
        "console/history.html",
        {
            "title": "Erreur : historique d'accès"
            if error
            else ("Historique d'accès : résultat" if lines is not None else "Historique d'accès"),
            "error": error,
            "lines": lines,
            "since": since,
            "until": until,
        },
        status=status,
    )


@router.get(HISTORY)
def history_form(request: Request, current: History) -> Response:
    return _page(request, current)


@router.post(HISTORY)
async def history(request: Request, current: History) -> Response:
    form = await checked_form(request, current)
    raw_since, raw_until = field(form, "depuis", limit=10), field(form, "jusqu_au", limit=10)
    try:
        nir = parse_nir(field(form, "nir", limit=32))
    except InvalidNIR as exc:
        return _page(
            request,
            current,
            error=nir_error_text(exc.code),
            since=raw_since,
            until=raw_until,
            status=422,
        )
    try:
        since, until = _day(raw_since), _day(raw_until)
    except ValueError:
        since = until = None
        error = "Une date de la période n'est pas valide (jour/mois/année)."
    else:
        error = (
            "La fin de la période précède son début."
            if since is not None and until is not None and until < since
            else ""
        )
    if error:
        return _page(request, current, error=error, since=raw_since, until=raw_until, status=422)
    services = services_of(request)

    def look_up() -> list[Access]:
        return access_history(
            nir=nir,
            audit_engine=services.audit_engine,
            data_engine=services.engine,
            audit=services.audit,
            pseudonym_key=services.settings.keys.pseudonym_key,
            operator=current.login,
        )

    try:
        accesses = await run_in_threadpool(look_up)
    except OperationalError:
        return _page(
            request,
            current,
            error="Le journal d'audit est momentanément indisponible. Réessayez dans quelques "
            "minutes.",
            status=503,
        )
    start = datetime.combine(since, time(), PARIS) if since else None
    end = datetime.combine(until + timedelta(days=1), time(), PARIS) if until else None
    lines = [
        _line(a)
        for a in accesses
        if (start is None or a.at >= start) and (end is None or a.at < end)
    ]
    return _page(request, current, lines=lines, since=raw_since, until=raw_until)
