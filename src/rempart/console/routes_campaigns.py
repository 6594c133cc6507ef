"""Campaigns: planning one from a scoped incident, previewing its messages, starting it
in the background and following it. The same domain calls as ``rempart notify``, with
the operator's login."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rempart.api.deps import services_of
from rempart.console.campaign_views import (
    batches,
    campaign_rows,
    letters_dir,
    preview_dir,
    preview_file,
    preview_files,
    unreachable_text,
)
from rempart.console.dpo_texts import CAMPAIGN_STATUS, error_text, french_moment
from rempart.console.dpo_web import confirmation, data_dir, refusal
from rempart.console.jobs import CampaignJobs
from rempart.console.operators import ConsoleSession, Permission
from rempart.console.web import CONSOLE, checked_form, redirect, render, require
from rempart.errors import RempartError
from rempart.notify.breach.preview import write_preview
from rempart.notify.breach.runner import RunReport

__all__ = ["campaign_jobs", "router"]

router = APIRouter(include_in_schema=False)

Campaigns = Annotated[ConsoleSession, Depends(require(Permission.CAMPAIGNS))]

CAMPAIGNS = f"{CONSOLE}/campagnes"
_JOBS_LOCK = threading.Lock()


def campaign_jobs(request: Request) -> CampaignJobs:
    """The app's registry of background runs (one per process, made on first use)."""
    state = request.app.state
    with _JOBS_LOCK:
        jobs: CampaignJobs | None = getattr(state, "console_campaign_jobs", None)
        if jobs is None:
            jobs = CampaignJobs()
            state.console_campaign_jobs = jobs
    return jobs


def _back(campaign_id: int) -> tuple[str, str]:
    return (f"{CAMPAIGNS}/{campaign_id}", f"Retour à la campagne n° {campaign_id}")


@router.get(CAMPAIGNS)
def campaigns(request: Request, current: Campaigns) -> Response:
    services = services_of(request)
    with services.sessions() as session:
        rows = campaign_rows(session)
    return render(
        request,
        current,
        "console/campaigns.html",
        {"title": "Campagnes", "rows": rows, "message": confirmation(request)},
    )


@router.post(f"{CONSOLE}/incidents/{{incident_id:int}}/campagne")
async def plan_campaign(request: Request, current: Campaigns, incident_id: int) -> Response:
    await checked_form(request, current)
    services = services_of(request)
    try:
        plan = await run_in_threadpool(
            lambda: services.campaigns.plan(incident_id, operator=current.login)
        )
    except RempartError as exc:
        return refusal(
            request,
            current,
            exc,
            back=(f"{CONSOLE}/incidents/{incident_id}", f"Retour à l'incident n° {incident_id}"),
        )
    return redirect(f"{CAMPAIGNS}/{plan.campaign_id}", message="campagne_planifiee")


@router.get(f"{CAMPAIGNS}/{{campaign_id:int}}")
def campaign_page(request: Request, current: Campaigns, campaign_id: int) -> Response:
    services = services_of(request)
    try:
        status = services.campaigns.status(campaign_id)
    except RempartError as exc:
        return refusal(request, current, exc, back=(CAMPAIGNS, "Retour aux campagnes"))
    with services.sessions() as session:
        printed = batches(session, campaign_id)
    job = campaign_jobs(request).get(campaign_id)
    unreachable = sum(status.unreachable.values())
    handled = status.reached_email + status.reached_letter + unreachable
    return render(
        request,
        current,
        "console/campaign.html",
        {
            "title": f"Campagne n° {campaign_id}",
            "status": status,
            "status_text": CAMPAIGN_STATUS.get(status.status, status.status),
            "unreachable": [
                (unreachable_text(reason), count)
                for reason, count in sorted(status.unreachable.items())
            ],
            "unreachable_total": unreachable,
            "handled": handled,
            "percent": round(100 * handled / status.persons) if status.persons else 100,
            "failed": status.messages.get("email", {}).get("failed", 0),
            "batches": printed,
            "job": job,
            "job_started": french_moment(job.started_at) if job else "",
            "job_finished": french_moment(job.finished_at) if job and job.finished_at else "",
            "job_error": _job_error(job.error_code) if job and job.error_code else "",
            "message": confirmation(request),
        },
    )


def _job_error(code: str) -> str:
    known = error_text(RempartError("", code=code))
    if "code «" not in known:
        return known
    return (
        f"L'envoi s'est interrompu sur une erreur ({code}). Lancez-le de nouveau : "
        "il reprend où il s'est arrêté, sans prévenir personne deux fois."
    )


@router.post(f"{CAMPAIGNS}/{{campaign_id:int}}/lancer")
async def start_campaign(request: Request, current: Campaigns, campaign_id: int) -> Response:
    """Starts the run in a background thread; the page follows it."""
    await checked_form(request, current)
    services = services_of(request)
    try:
        status = await run_in_threadpool(services.campaigns.status, campaign_id)
    except RempartError as exc:
        return refusal(request, current, exc, back=(CAMPAIGNS, "Retour aux campagnes"))
    if status.status == "done":
        return redirect(f"{CAMPAIGNS}/{campaign_id}")
    folder = letters_dir(data_dir(request), campaign_id)

    def run() -> RunReport:
        return services.campaign_runner(folder).run(campaign_id, operator=current.login)

    try:
        campaign_jobs(request).start(campaign_id, current.login, run)
    except RempartError as exc:
        return refusal(request, current, exc, back=_back(campaign_id))
    return redirect(f"{CAMPAIGNS}/{campaign_id}", message="campagne_lancee")


# -- the preview ----------------------------------------------------------------------------


def _write_preview(request: Request, campaign_id: int) -> None:
    services = services_of(request)
    folder = preview_dir(data_dir(request), campaign_id)
    write_preview(services.campaigns, services.campaign_runner(folder), campaign_id, folder)


def _preview_page(request: Request, current: ConsoleSession, campaign_id: int) -> Response:
    files = preview_files(preview_dir(data_dir(request), campaign_id))
    return render(
        request,
        current,
        "console/preview.html",
        {
            "title": f"Aperçu de la campagne n° {campaign_id}",
            "campaign_id": campaign_id,
            "files": files,
            "message": confirmation(request),
        },
    )


@router.get(f"{CAMPAIGNS}/{{campaign_id:int}}/apercu")
def preview(request: Request, current: Campaigns, campaign_id: int) -> Response:
    """The samples of every variant; written on the first visit (fictitious persons)."""
    if not preview_files(preview_dir(data_dir(request), campaign_id)):
        try:
            _write_preview(request, campaign_id)
        except RempartError as exc:
            return refusal(request, current, exc, back=(CAMPAIGNS, "Retour aux campagnes"))
    return _preview_page(request, current, campaign_id)


@router.post(f"{CAMPAIGNS}/{{campaign_id:int}}/apercu")
async def preview_again(request: Request, current: Campaigns, campaign_id: int) -> Response:
    await checked_form(request, current)
    try:
        await run_in_threadpool(_write_preview, request, campaign_id)
    except RempartError as exc:
        return refusal(request, current, exc, back=_back(campaign_id))
    return redirect(f"{CAMPAIGNS}/{campaign_id}/apercu", message="apercu_ecrit")


@router.get(f"{CAMPAIGNS}/{{campaign_id:int}}/apercu/{{name}}")
def preview_sample(request: Request, current: Campaigns, campaign_id: int, name: str) -> Response:
    path = preview_file(preview_dir(data_dir(request), campaign_id), name)
    if path is None:
        return refusal(
            request,
            current,
            "Cet exemple n'existe pas dans l'aperçu de la campagne.",
            status=404,
            back=(f"{CAMPAIGNS}/{campaign_id}/apercu", "Retour à l'aperçu"),
        )
    if path.suffix == ".pdf":
        return Response(
            path.read_bytes(),
            media_type="application/pdf",
            headers={
                "content-disposition": f'attachment; filename="campagne-{campaign_id}-{path.name}"'
            },
        )
    # Shown as text, never as a page of ours: the HTML sample is read, not rendered.
    return Response(
        path.read_bytes(),
        media_type="text/plain; charset=utf-8",
        headers={"content-disposition": f'inline; filename="{path.name}"'},
    )
