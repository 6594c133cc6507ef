"""The alerts: a filtered list (from which an incident is opened), one alert with its
reasons in French and the account's lookups around it, and its acknowledgement."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rempart.api.deps import services_of
from rempart.console.alert_view import (
    ALERT_DECISIONS,
    STATUSES,
    AlertFilter,
    alert_detail,
    list_alerts_page,
)
from rempart.console.display import PARIS, number, when
from rempart.console.operators import ConsoleSession, Permission
from rempart.console.web import CONSOLE, checked_form, operator_origin, redirect, render, require
from rempart.guard.alerts import acknowledge
from rempart.store.engine import session_scope
from rempart.store.models import GuardAlert

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

STATUS_NAMES = {"open": "ouverte", "acknowledged": "acquittée"}
DECISION_NAMES = {
    "allow": "autorisée",
    "step_up": "authentification renforcée demandée",
    "deny": "refusée (compte suspendu)",
}
KIND_NAMES = {
    "unexplained": "non expliquée",
    "explained": "expliquée ou déjà consultée",
    "not_found": "personne introuvable",
    "unexamined": "refusée sans examen",
}
MESSAGES = {
    "acquittee": "L'alerte est acquittée.",
    "deja-acquittee": "Cette alerte était déjà acquittée : rien n'a changé.",
}


class BadFilter(ValueError):
    """A filter the page cannot use; its text is French, for the page."""


def _day(value: str, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadFilter(f"La date « {name} » doit être au format AAAA-MM-JJ.") from None


def _parse_filter(request: Request) -> tuple[AlertFilter, dict[str, str]]:
    query = request.query_params
    raw = {
        name: (query.get(name) or "").strip()[:64]
        for name in ("statut", "decision", "compte", "du", "au", "avant")
    }
    status = raw["statut"] or "open"
    if status not in (*STATUSES, "all"):
        raise BadFilter("Le statut est « ouverte », « acquittée » ou « toutes ».")
    decision = raw["decision"]
    if decision and decision not in ALERT_DECISIONS:
        raise BadFilter("La décision choisie n'existe pas.")
    since, until = _day(raw["du"], "du"), _day(raw["au"], "au")
    if since and until and until < since:
        raise BadFilter("La date « au » précède la date « du ».")
    before: int | None = None
    if raw["avant"]:
        if not raw["avant"].isdigit() or len(raw["avant"]) > 12:
            raise BadFilter("La page demandée n'existe pas.")
        before = int(raw["avant"])
    raw["statut"] = status
    return (
        AlertFilter(
            status=None if status == "all" else status,
            decision=decision or None,
            account_id=raw["compte"] or None,
            # Days of the Paris calendar, "au" included.
            since=datetime(since.year, since.month, since.day, tzinfo=PARIS) if since else None,
            until=(
                datetime(until.year, until.month, until.day, tzinfo=PARIS) + timedelta(days=1)
                if until
                else None
            ),
            before_id=before,
        ),
        raw,
    )


def _common() -> dict[str, object]:
    return {
        "when": when,
        "number": number,
        "status_names": STATUS_NAMES,
        "decision_names": DECISION_NAMES,
        "kind_names": KIND_NAMES,
    }


@router.get(f"{CONSOLE}/alertes")
def alerts_page(
    request: Request, current: Annotated[ConsoleSession, Depends(require(Permission.ALERTS))]
) -> Response:
    services = services_of(request)
    try:
        wanted, raw = _parse_filter(request)
    except BadFilter as exc:
        empty = {"statut": "open", "decision": "", "compte": "", "du": "", "au": "", "avant": ""}
        return render(
            request,
            current,
            "console/alerts.html",
            {
                "title": "Erreur : filtre incorrect — Alertes",
                "error": str(exc),
                "page": None,
                "filters": {
                    **empty,
                    **{k: v for k, v in request.query_params.items() if k in empty},
                },
                "next_query": "",
                **_common(),
            },
            status=422,
        )
    with session_scope(services.sessions) as session:
        page = list_alerts_page(session, wanted)
    next_query = ""
    if page.next_before is not None:
        kept = {k: v for k, v in raw.items() if v and k != "avant"}
        next_query = urlencode({**kept, "avant": str(page.next_before)})
    return render(
        request,
        current,
        "console/alerts.html",
        {
            "title": "Alertes",
            "error": "",
            "page": page,
            "filters": raw,
            "next_query": next_query,
            **_common(),
        },
    )


def _not_found(request: Request, current: ConsoleSession) -> Response:
    return render(
        request,
        current,
        "console/analyst_error.html",
        {
            "title": "Erreur : alerte introuvable",
            "heading": "Alerte introuvable",
            "text": "Aucune alerte ne porte ce numéro.",
            "back": f"{CONSOLE}/alertes",
            "back_label": "Retour aux alertes",
        },
        status=404,
    )


def _alert_id(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) <= 12 else None


@router.get(f"{CONSOLE}/alertes/{{alert_id}}")
def alert_page(
    request: Request,
    alert_id: str,
    current: Annotated[ConsoleSession, Depends(require(Permission.ALERTS))],
) -> Response:
    services = services_of(request)
    number_ = _alert_id(alert_id)
    detail = (
        alert_detail(services.engine, services.audit_engine, number_)
        if number_ is not None
        else None
    )
    if detail is None:
        return _not_found(request, current)
    return render(
        request,
        current,
        "console/alert.html",
        {
            "title": f"Alerte n° {detail.alert.alert_id}",
            "detail": detail,
            "message": MESSAGES.get(request.query_params.get("message", ""), ""),
            **_common(),
        },
    )


@router.post(f"{CONSOLE}/alertes/{{alert_id}}/acquitter")
async def acknowledge_alert(
    request: Request,
    alert_id: str,
    current: Annotated[ConsoleSession, Depends(require(Permission.ALERTS))],
) -> Response:
    await checked_form(request, current)
    number_ = _alert_id(alert_id)
    if number_ is None:
        return _not_found(request, current)
    services = services_of(request)
    origin = operator_origin(request, current)

    def act() -> bool | None:
        with session_scope(services.sessions) as session:
            if session.get(GuardAlert, number_) is None:
                return None
            done = acknowledge(session, number_, operator=current.login)
            if done:
                # The domain call does not audit: the operator's action is recorded here,
                # in the same transaction.
                services.operators.record_action(
                    session, current, "alert_acknowledged", target=f"alert:{number_}", origin=origin
                )
            return done

    done = await run_in_threadpool(act)
    if done is None:
        return _not_found(request, current)
    return redirect(
        f"{CONSOLE}/alertes/{number_}", message="acquittee" if done else "deja-acquittee"
    )
