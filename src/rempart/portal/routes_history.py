"""« Mes consultations » and « Ce n'était pas moi » (:mod:`rempart.portal.own_lookups`,
:mod:`rempart.portal.disown`).

Showing the list is itself a display of personal data (who the account looked up, by
name): each view is recorded in the trail (``own_lookups_viewed``, with how many rows
and which page) before the page leaves, as a lookup is; if it cannot be, the page is
refused. The persons are not listed in that entry: the trail already holds the lookups
the page was drawn from.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rempart.api.deps import services_of
from rempart.auth.levels import passes_step_up
from rempart.errors import RempartError
from rempart.portal.disown import Disowned, disown_lookups
from rempart.portal.messages import french
from rempart.portal.own_lookups import OwnLookups, own_lookups
from rempart.portal.web import (
    PORTAL,
    PortalSession,
    PortalSuspended,
    checked_form,
    clear_session_cookie,
    current_professional,
    portal_origin,
    redirect,
    render,
)
from rempart.store.engine import session_scope

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

HISTORY = f"{PORTAL}/consultations"
REPORT = f"{HISTORY}/signaler"
REPORTED = f"{HISTORY}/signale"
VIEWED = "own_lookups_viewed"

Current = Annotated[PortalSession, Depends(current_professional)]


def _cursor(request: Request) -> int | None:
    raw = request.query_params.get("avant", "")
    return int(raw) if raw.isdigit() and len(raw) <= 19 else None


def _named_session(current: PortalSession) -> str | None:
    """Whose lookups the page names: all of them for a phishing-resistant session (the
    CPS card, an established key); otherwise only this session's own."""
    principal = current.principal
    if passes_step_up(principal.acr, principal.factor_established):
        return None
    return principal.session_id


def _read_and_record(
    request: Request, current: PortalSession, before_us: int | None, page: str
) -> OwnLookups:
    """The lookups, then their display recorded (committed) before anything is shown."""
    services = services_of(request)
    found = own_lookups(
        services.audit_engine,
        services.engine,
        current.account_id,
        named_session=_named_session(current),
        before_us=before_us,
    )
    origin = portal_origin(request)
    with session_scope(services.sessions) as session:
        services.auth.record_for(
            VIEWED,
            current.principal,
            origin,
            session=session,
            reasons=f"page:{page},rows:{len(found.lookups)},"
            + ("names:all" if _named_session(current) is None else "names:session")
            + (f",before_us:{before_us}" if before_us is not None else ""),
        )
    return found


def _refused(request: Request, current: PortalSession, error: RempartError) -> Response:
    return render(
        request,
        current,
        "portail/consultations_erreur.html",
        {"title": "Erreur : Mes consultations", "error": french(error)},
        status=error.status if error.status >= 500 else 409,
    )


@router.get(HISTORY)
async def history_page(request: Request, current: Current) -> Response:
    before_us = _cursor(request)
    try:
        found = await run_in_threadpool(_read_and_record, request, current, before_us, "list")
    except RempartError as exc:
        return _refused(request, current, exc)
    return render(
        request,
        current,
        "portail/consultations.html",
        {
            "title": "Mes consultations",
            "found": found,
            "paged": before_us is not None,
            "names_masked": any(lookup.masked for lookup in found.lookups),
            "history": HISTORY,
            "report": REPORT,
        },
    )


@router.get(REPORT)
async def report_page(request: Request, current: Current) -> Response:
    """The confirmation step: what the report does, and which lookups (optional)."""
    try:
        found = await run_in_threadpool(_read_and_record, request, current, None, "report")
    except RempartError as exc:
        return _refused(request, current, exc)
    return render(
        request,
        current,
        "portail/consultations_signaler.html",
        {"title": "Ce n'était pas moi", "found": found, "history": HISTORY, "report": REPORT},
    )


@router.post(REPORT)
async def report(request: Request) -> Response:
    try:
        current = await current_professional(request)
    except PortalSuspended:
        # A second submission (a double click, a reload): the first one suspended the
        # account; the same page says so, and nothing is done twice.
        response = redirect(REPORTED)
        clear_session_cookie(response)
        return response
    form = await checked_form(request, current)
    refs = [v for v in form.getlist("consultation") if isinstance(v, str)]
    services = services_of(request)
    origin = portal_origin(request)

    def report_now() -> Disowned:
        with session_scope(services.sessions) as session:
            return disown_lookups(
                session,
                auth=services.auth,
                incidents=services.incidents,
                audit_engine=services.audit_engine,
                principal=current.principal,
                origin=origin,
                refs=refs,
            )

    try:
        await run_in_threadpool(report_now)
    except RempartError as exc:
        return _refused(request, current, exc)
    response = redirect(REPORTED)
    clear_session_cookie(response)
    return response


@router.get(REPORTED)
def reported_page(request: Request) -> Response:
    """After the report: no session any more (the account is suspended), so a page
    without personal data — what happened, who to call, what to do."""
    return render(
        request, None, "portail/consultations_signale.html", {"title": "Signalement reçu"}
    )
