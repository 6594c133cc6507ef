"""Incidents: the register, opening one from the guard's alerts (or accounts), growing
its definition, scoping it, and the CNIL notification (read, download, the register as
CSV). The same domain calls as ``rempart incident``, with the operator's login."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import Response

from rempart.api.deps import services_of
from rempart.console.dpo_texts import CATEGORY_LABELS, CIRCUMSTANCE_LABELS, error_text
from rempart.console.dpo_web import confirmation, data_dir, field, fields, refusal
from rempart.console.incident_views import (
    CIRCUMSTANCES,
    ClosingForm,
    DescriptionForm,
    IncidentDetail,
    describe_incident,
    incident_detail,
    incident_rows,
    notification_dir,
    notification_document,
    parse_accounts,
    parse_closing,
    parse_description,
    parse_ids,
    planned_count,
    produce_notification,
)
from rempart.console.operators import ConsoleSession, Permission
from rempart.console.web import CONSOLE, checked_form, redirect, render, require
from rempart.errors import RempartError
from rempart.incident.charts import REVEAL_LABELS
from rempart.incident.live_source import LiveSource
from rempart.incident.register import register_csv, register_rows
from rempart.incident.service import IncidentError, build_definition
from rempart.store.engine import session_scope

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

Incidents = Annotated[ConsoleSession, Depends(require(Permission.INCIDENTS))]
Reports = Annotated[ConsoleSession, Depends(require(Permission.REPORTS))]

INCIDENTS = f"{CONSOLE}/incidents"
_UNAVAILABLE = IncidentError("audit_unavailable", "database unavailable", 503)


def _back(incident_id: int) -> tuple[str, str]:
    return (f"{INCIDENTS}/{incident_id}", f"Retour à l'incident n° {incident_id}")


def _list_page(
    request: Request,
    current: ConsoleSession,
    *,
    error: str = "",
    name: str = "",
    accounts: str = "",
    status: int = 200,
) -> Response:
    services = services_of(request)
    with services.sessions() as session:
        rows = incident_rows(session)
    return render(
        request,
        current,
        "console/incidents.html",
        {
            "title": "Erreur : incidents" if error else "Incidents",
            "rows": rows,
            "error": error,
            "name": name,
            "accounts": accounts,
            "can_report": current.can(Permission.REPORTS),
            "message": confirmation(request),
        },
        status=status,
    )


@router.get(INCIDENTS)
def incidents(request: Request, current: Incidents) -> Response:
    return _list_page(request, current)


@router.post(f"{INCIDENTS}/ouvrir")
async def open_incident(request: Request, current: Incidents) -> Response:
    """From the alerts page (``alert`` repeated) or this page's form (``comptes``)."""
    form = await checked_form(request, current)
    name = field(form, "name")
    accounts_text = field(form, "comptes", limit=2000)
    alert_ids = parse_ids(fields(form, "alert"))
    accounts = parse_accounts(accounts_text)
    error = ""
    if alert_ids is None:
        error = "Une alerte sélectionnée n'est pas un numéro d'alerte."
    elif not alert_ids and not accounts:
        error = "Sélectionnez au moins une alerte (ou indiquez au moins un compte)."
    elif not name:
        error = "Donnez un nom à l'incident : il figurera au registre."
    if error:
        return _list_page(
            request, current, error=error, name=name, accounts=accounts_text, status=422
        )
    services = services_of(request)

    def open_it() -> int:
        with session_scope(services.sessions) as session:
            definition = build_definition(session, accounts=accounts, alert_ids=alert_ids or [])
            return services.incidents.open(
                session, name=name, definition=definition, operator=current.login
            )

    try:
        incident_id = await run_in_threadpool(open_it)
    except RempartError as exc:
        return _list_page(
            request,
            current,
            error=error_text(exc),
            name=name,
            accounts=accounts_text,
            status=exc.status if exc.status < 500 else 409,
        )
    return redirect(f"{INCIDENTS}/{incident_id}", message="incident_ouvert")


@router.get(f"{INCIDENTS}/registre.csv")
def register_download(request: Request, _current: Reports) -> Response:
    services = services_of(request)
    with services.sessions() as session:
        text = register_csv(register_rows(services.incidents.register(session)))
    return Response(
        text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="registre-violations.csv"'},
    )


def _detail(request: Request, incident_id: int) -> IncidentDetail:
    services = services_of(request)
    with services.sessions() as session:
        return incident_detail(session, services.incidents, incident_id)


def _incident_page(
    request: Request,
    current: ConsoleSession,
    incident_id: int,
    *,
    described: DescriptionForm | None = None,
    closing: ClosingForm | None = None,
    status: int = 200,
) -> Response:
    """The incident's page; on a refused form, that form shows what was typed and why."""
    try:
        detail = _detail(request, incident_id)
    except RempartError as exc:
        return refusal(request, current, exc, back=(INCIDENTS, "Retour aux incidents"))
    failed = (described is not None and described.problems) or (
        closing is not None and closing.problems
    )
    if failed and detail.closed:
        # A closed page has no form to show the problems in: the reason that matters.
        closed = IncidentError("incident_closed", f"incident {incident_id} is closed")
        return refusal(request, current, closed, back=_back(incident_id))
    return render(
        request,
        current,
        "console/incident.html",
        {
            "title": f"{'Erreur : ' if failed else ''}Incident n° {incident_id}",
            "incident": detail,
            "categories": CATEGORY_LABELS,
            "reveals": REVEAL_LABELS,
            "circumstance_labels": CIRCUMSTANCE_LABELS,
            "described": described,
            "closing": closing,
            "can_report": current.can(Permission.REPORTS),
            "can_campaign": current.can(Permission.CAMPAIGNS),
            "message": confirmation(request),
        },
        status=status,
    )


@router.get(f"{INCIDENTS}/{{incident_id:int}}")
def incident_page(request: Request, current: Incidents, incident_id: int) -> Response:
    return _incident_page(request, current, incident_id)


def _posted(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


@router.post(f"{INCIDENTS}/{{incident_id:int}}/decrire")
async def describe(request: Request, current: Incidents, incident_id: int) -> Response:
    """What the trail cannot tell, as ``rempart incident describe`` states it."""
    form = await checked_form(request, current)
    services = services_of(request)
    try:
        with services.sessions() as session:
            stored = planned_count(session, services.incidents, incident_id)
    except RempartError as exc:
        return refusal(request, current, exc, back=(INCIDENTS, "Retour aux incidents"))
    names = ("cause", "discovery", "delay_reason", "planned", *CIRCUMSTANCES)
    described = parse_description(
        {name: _posted(form, name) for name in names}, stored_measures=stored
    )
    if described.problems:
        return _incident_page(request, current, incident_id, described=described, status=422)

    def write() -> None:
        with session_scope(services.sessions) as session:
            describe_incident(session, services.incidents, incident_id, described, current.login)

    try:
        await run_in_threadpool(write)
    except RempartError as exc:
        return refusal(request, current, exc, back=_back(incident_id))
    return redirect(f"{INCIDENTS}/{incident_id}", message="incident_decrit")


@router.post(f"{INCIDENTS}/{{incident_id:int}}/clore")
async def close(request: Request, current: Incidents, incident_id: int) -> Response:
    """Closing is final: the incident stays in the register and refuses any change."""
    form = await checked_form(request, current)
    closing = parse_closing(_posted(form, "note"), _posted(form, "confirmer"))
    if closing.problems:
        return _incident_page(request, current, incident_id, closing=closing, status=422)
    services = services_of(request)

    def write() -> None:
        with session_scope(services.sessions) as session:
            services.incidents.close(
                session, incident_id, operator=current.login, note=closing.note
            )

    try:
        await run_in_threadpool(write)
    except RempartError as exc:
        return refusal(request, current, exc, back=_back(incident_id))
    return redirect(f"{INCIDENTS}/{incident_id}", message="incident_clos")


@router.post(f"{INCIDENTS}/{{incident_id:int}}/ajouter")
async def grow_incident(request: Request, current: Incidents, incident_id: int) -> Response:
    form = await checked_form(request, current)
    accounts = parse_accounts(field(form, "comptes", limit=2000))
    alert_ids = parse_ids(fields(form, "alert"))
    if alert_ids is None or not (accounts or alert_ids):
        return refusal(
            request,
            current,
            "Indiquez au moins un compte (ou une alerte) à ajouter à la définition.",
            status=422,
            back=_back(incident_id),
        )
    services = services_of(request)

    def grow() -> None:
        with session_scope(services.sessions) as session:
            more = build_definition(session, accounts=accounts, alert_ids=alert_ids or [])
            services.incidents.add(session, incident_id, more, operator=current.login)

    try:
        await run_in_threadpool(grow)
    except RempartError as exc:
        return refusal(request, current, exc, back=_back(incident_id))
    return redirect(f"{INCIDENTS}/{incident_id}", message="definition_agrandie")


@router.post(f"{INCIDENTS}/{{incident_id:int}}/evaluer")
async def scope_incident(request: Request, current: Incidents, incident_id: int) -> Response:
    """Scoping reads the live trail in the request: a few thousand persons take seconds."""
    await checked_form(request, current)
    services = services_of(request)

    def scope() -> None:
        services.incidents.scope(
            incident_id, LiveSource(services.audit_engine), operator=current.login
        )

    try:
        await run_in_threadpool(scope)
    except RempartError as exc:
        return refusal(request, current, exc, back=_back(incident_id))
    except OperationalError:
        return refusal(request, current, _UNAVAILABLE, back=_back(incident_id))
    return redirect(f"{INCIDENTS}/{incident_id}", message="perimetre_evalue")


# -- the CNIL notification ----------------------------------------------------------------


@router.get(f"{INCIDENTS}/{{incident_id:int}}/notification")
def notification_page(request: Request, current: Reports, incident_id: int) -> Response:
    try:
        detail = _detail(request, incident_id)
    except RempartError as exc:
        return refusal(request, current, exc, back=(INCIDENTS, "Retour aux incidents"))
    document = notification_document(data_dir(request), incident_id)
    return render(
        request,
        current,
        "console/notification.html",
        {
            "title": f"Notification à la CNIL — incident n° {incident_id}",
            "incident": detail,
            "document": document,
            "message": confirmation(request),
        },
    )


@router.post(f"{INCIDENTS}/{{incident_id:int}}/notification")
async def produce(request: Request, current: Reports, incident_id: int) -> Response:
    """Writes the notification of the latest scope and marks the incident reported, as
    ``rempart incident report`` does (one transaction: a failure records nothing)."""
    await checked_form(request, current)
    services = services_of(request)
    folder = data_dir(request)

    def write() -> None:
        with session_scope(services.sessions) as session:
            produce_notification(session, services.incidents, incident_id, folder, current.login)

    try:
        await run_in_threadpool(write)
    except RempartError as exc:
        return refusal(request, current, exc, back=_back(incident_id))
    return redirect(f"{INCIDENTS}/{incident_id}/notification", message="notification_etablie")


def _download(
    request: Request, current: ConsoleSession, incident_id: int, suffix: str, media_type: str
) -> Response:
    path = notification_dir(data_dir(request), incident_id) / f"report.{suffix}"
    if not path.is_file():
        return refusal(
            request,
            current,
            "Aucune notification n'a encore été établie pour cet incident : "
            "établissez-la depuis la page de la notification.",
            status=404,
            back=(f"{INCIDENTS}/{incident_id}/notification", "Aller à la notification"),
        )
    filename = f"notification-cnil-incident-{incident_id}.{suffix}"
    return Response(
        path.read_bytes(),
        media_type=media_type,
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


@router.get(f"{INCIDENTS}/{{incident_id:int}}/notification.pdf")
def notification_pdf(request: Request, current: Reports, incident_id: int) -> Response:
    return _download(request, current, incident_id, "pdf", "application/pdf")


@router.get(f"{INCIDENTS}/{{incident_id:int}}/notification.json")
def notification_json(request: Request, current: Reports, incident_id: int) -> Response:
    return _download(request, current, incident_id, "json", "application/json")
