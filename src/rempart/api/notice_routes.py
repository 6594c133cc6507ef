"""The public check of a breach notice: the page ``/verifier`` and its API.

Both doors hand the raw body to :mod:`rempart.notify.breach.verify`, which parses,
throttles, answers and audits; these routes only translate to JSON or to the French
page. The page is a plain form (no script), posted to itself.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse

from rempart.api.deps import ERROR_RESPONSES, origin_of, services_of
from rempart.auth.throttle import Throttled
from rempart.errors import RempartError
from rempart.notify.breach.verify import (
    MAX_LAST_NAME,
    InvalidNoticeCheck,
    NoticeCheck,
    parse_form_check,
    parse_json_check,
)
from rempart.web import PageRenderer, page_response, wait_in_words

__all__ = ["NOTICE_ROUTES", "NoticeCheckRequest", "NoticeCheckResponse", "router"]

VERIFY_PATH = "/api/v1/notices/verify"
PAGE_PATH = "/verifier"
NOTICE_ROUTES = frozenset({VERIFY_PATH, PAGE_PATH})
"""The public notice check's two doors (anonymous, shed in their own lane)."""

router = APIRouter()

_pages = PageRenderer()


class NoticeCheckRequest(BaseModel):
    """The body the API reads (documented here; parsed by ``parse_json_check``)."""

    model_config = ConfigDict(extra="forbid")

    code: str
    """As printed on the notice, e.g. ``K7QM-4XPD-9TRW``; separators and case are ignored."""
    last_name: str
    """The addressee's last name; accents, case, spaces, hyphens and apostrophes are ignored."""


class NoticeCheckResponse(BaseModel):
    genuine: bool


_REQUEST_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": NoticeCheckRequest.model_json_schema()}},
    }
}


@router.post(
    VERIFY_PATH,
    response_model=NoticeCheckResponse,
    responses=ERROR_RESPONSES,
    tags=["notices"],
    openapi_extra=_REQUEST_SCHEMA,
)
async def verify_notice(request: Request) -> NoticeCheckResponse:
    """Whether a verification code belongs to a genuine notice sent to a person of this
    last name. A code that matches no notice and a notice of someone else answer alike:
    ``{"genuine": false}``. Rate-limited (429 with ``Retry-After``); every check audited.
    """
    body = await request.body()
    parsed: NoticeCheck | InvalidNoticeCheck
    try:
        parsed = parse_json_check(body)
    except InvalidNoticeCheck as exc:
        parsed = exc
    verifier = services_of(request).notice_verifier
    genuine = await run_in_threadpool(verifier.check, parsed, origin=origin_of(request), via="api")
    return NoticeCheckResponse(genuine=genuine)


# -- the page --------------------------------------------------------------------------------

_FIELD_MESSAGES = {
    "code": {
        "missing_field": "saisissez le code de vérification.",
        "invalid_code": "ce n'est pas un code de vérification. Il compte 12 lettres et "
        "chiffres, par exemple K7QM-4XPD-9TRW, et ne contient ni O, ni 0, ni I, ni L, ni 1, "
        "ni U.",
    },
    "last_name": {
        "missing_field": "saisissez votre nom de famille.",
        "invalid_last_name": f"saisissez votre nom de famille ({MAX_LAST_NAME} caractères "
        "au plus).",
    },
}
_FIELD_FALLBACK = {
    "code": "ce code ne peut pas être lu ; saisissez-le tel qu'il figure sur l'avis.",
    "last_name": "ce nom ne peut pas être lu ; saisissez-le tel qu'il figure sur l'avis.",
}
_BODY_MESSAGE = "le formulaire envoyé n'a pas pu être lu ; réessayez depuis cette page."


def _french_errors(exc: InvalidNoticeCheck) -> dict[str, str]:
    errors: dict[str, str] = {}
    for field, code in exc.problems.items():
        if field in _FIELD_MESSAGES:
            errors[field] = _FIELD_MESSAGES[field].get(code, _FIELD_FALLBACK[field])
        else:
            errors["body"] = _BODY_MESSAGE
    return errors


def _typed(body: bytes) -> dict[str, str]:
    """What the person typed, to give it back on an error (bounded; escaped by Jinja)."""
    try:
        pairs = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=8)
    except ValueError:
        pairs = {}
    return {name: (pairs.get(name) or [""])[0][:MAX_LAST_NAME] for name in ("code", "last_name")}


def _page(
    request: Request,
    *,
    status: int = 200,
    result: str = "",
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    retry: str = "",
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    settings = services_of(request).settings
    errors = errors or {}
    if result == "genuine":
        title = "Avis authentique"
    elif result == "not_genuine":
        title = "Aucun avis ne correspond"
    elif result == "throttled":
        title = "Trop de vérifications"
    elif result == "unavailable":
        title = "Service indisponible"
    elif errors:
        title = "Erreur : vérifier un avis"
    else:
        title = "Vérifier un avis"
    html = _pages.render(
        "notices/verifier.html",
        {
            "title": title,
            "organization": settings.organization_name,
            "website": settings.organization_website,
            "sender": parseaddr(settings.mail_from)[1],
            "form": form or {"code": "", "last_name": ""},
            "errors": errors,
            "result": result,
            "retry": retry,
        },
    )
    return page_response(html, status=status, headers=headers)


@router.get(PAGE_PATH, include_in_schema=False)
def verifier_page(request: Request) -> HTMLResponse:
    return _page(request)


@router.post(PAGE_PATH, include_in_schema=False)
async def verifier_form(request: Request) -> HTMLResponse:
    body = await request.body()
    parsed: NoticeCheck | InvalidNoticeCheck
    try:
        parsed = parse_form_check(body)
    except InvalidNoticeCheck as exc:
        parsed = exc
    verifier = services_of(request).notice_verifier
    try:
        genuine = await run_in_threadpool(
            verifier.check, parsed, origin=origin_of(request), via="page"
        )
    except InvalidNoticeCheck as exc:
        return _page(request, status=exc.status, form=_typed(body), errors=_french_errors(exc))
    except Throttled as exc:
        return _page(
            request,
            status=429,
            result="throttled",
            retry=wait_in_words(exc.retry_after),
            headers={"Retry-After": str(exc.retry_after)},
        )
    except (RempartError, OperationalError) as exc:
        # The audit trail, the database or the throttle's store is unreachable: no
        # answer goes out unaudited, and the page says so in French.
        if isinstance(exc, RempartError) and exc.status < 500:
            raise
        return _page(request, status=503, result="unavailable")
    if genuine:
        return _page(request, result="genuine")
    return _page(request, result="not_genuine", form=_typed(body))
