"""The message checker's public doors: ``POST /api/v1/messages/check`` and the page
``/verifier/message``, beside the notice check ``/verifier``.

Both hand the raw message to :class:`rempart.messages.service.MessageCheckService`,
which bounds the caller, judges, and counts; these routes only translate to JSON or to
the French page. No authentication: the public and the call centre use them. The page
is a plain form (no script), posted to itself; like ``/verifier`` it sets no cookie and
needs no CSRF token: it changes nothing, and a page of another site that posts to it
cannot read the answer.
"""

from __future__ import annotations

from email.utils import parseaddr
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse

from rempart.api.deps import ERROR_RESPONSES, client_address, services_of
from rempart.auth.throttle import Throttled
from rempart.config import Settings
from rempart.errors import RempartError
from rempart.messages import InvalidMessage, Verdict
from rempart.web import PageRenderer, page_response, wait_in_words

__all__ = [
    "MESSAGE_ROUTES",
    "MessageCheckRequest",
    "MessageCheckResponse",
    "ReasonOut",
    "message_body_limit",
    "router",
]

CHECK_PATH = "/api/v1/messages/check"
PAGE_PATH = "/verifier/message"
MESSAGE_ROUTES = frozenset({CHECK_PATH, PAGE_PATH})
"""Routes whose callers' addresses the access log leaves out: nothing of a check is kept."""

router = APIRouter()


def message_body_limit(settings: Settings) -> int:
    """The body limit of these routes: room for a message of ``messages_max_bytes`` once
    encoded. JSON's escapes (``\\u00e9`` for the two bytes of ``é``) and a form's
    percent-encoding take at most three bytes per byte of text; the rest is the other
    fields. A message over its own limit is then refused as such (413
    ``message_too_large``), not as a body."""
    return max(settings.max_body_bytes, 3 * settings.messages_max_bytes + 16 * 1024)


_pages = PageRenderer()


class MessageCheckRequest(BaseModel):
    """A message to judge."""

    model_config = ConfigDict(extra="forbid")

    channel: str = Field(examples=["sms"])
    """``sms`` or ``email``."""
    sender: str = Field(examples=["36XX"])
    """Who the message claims to come from: a number, a name, an address (may be empty)."""
    subject: str | None = None
    """The e-mail's subject, if any."""
    text: str = Field(
        examples=["Votre carte Vitale est disponible, frais de livraison 1,49 EUR : ..."]
    )
    """The message's text, or a whole e-mail (``.eml``, RFC 5322): its headers then give
    the channel, sender and subject unless they are given here."""


class ReasonOut(BaseModel):
    code: str
    """Stable, e.g. ``lookalike_domain``, ``notice_code_genuine``, ``genuine_channel``."""
    text: str
    """In plain French, for the person who received the message."""


class MessageCheckResponse(BaseModel):
    verdict: str = Field(examples=["phishing"])
    """``phishing``, ``suspicious`` or ``genuine-looking``."""
    score: int = Field(ge=0, le=100)
    """0 to 100: the higher, the more likely a fraud."""
    reasons: list[ReasonOut]
    """Strongest first; the last says what the insurer's genuine channel would be."""


_CHECK_DOC: dict[int, dict[str, str]] = {
    413: {"description": "``message_too_large``: the message is over the configured size"},
    422: {
        "description": "``empty_message``, ``binary_message``, ``invalid_channel``, "
        "``invalid_field`` (sender or subject), or the body's shape"
    },
    429: {"description": "``too_many_attempts``, with ``Retry-After``"},
}


@router.post(
    CHECK_PATH,
    response_model=MessageCheckResponse,
    responses={
        code: {**ERROR_RESPONSES.get(code, {}), **_CHECK_DOC.get(code, {})}
        for code in (400, 413, 415, 422, 429, 503)
    },
    tags=["messages"],
)
async def check_message(request: Request, body: MessageCheckRequest) -> MessageCheckResponse:
    """Is this SMS or e-mail really from the insurer? An explained verdict, with the
    reasons in French. No authentication; rate-limited per address and across the
    service (429 with ``Retry-After``); a notice verification code in the message also
    counts against ``/api/v1/notices/verify``'s limits. Nothing of the message is kept.
    """
    checks = services_of(request).message_checks
    verdict = await run_in_threadpool(
        checks.check,
        # A lone surrogate (valid JSON, not text) becomes "?" rather than an error.
        body.text.encode("utf-8", "replace"),
        channel=body.channel,
        sender=body.sender,
        subject=body.subject,
        door="api",
        address=client_address(request),
    )
    return MessageCheckResponse.model_validate(verdict.to_json())


# -- the page --------------------------------------------------------------------------------

_FIELDS = ("channel", "sender", "subject", "text")
_LABELS = {
    "channel": "Type de message",
    "sender": "Expéditeur",
    "subject": "Objet",
    "text": "Texte du message",
}


def _field_errors(exc: InvalidMessage, max_bytes: int) -> dict[str, str]:
    """The refusal in French, on the field at fault."""
    if exc.code == "invalid_channel":
        return {"channel": "choisissez SMS ou courriel."}
    if exc.code == "invalid_field":
        return {exc.field or "text": "trop long, ou contient des caractères invisibles."}
    if exc.code == "message_too_large":
        return {
            "text": f"ce message est trop long (plus de {max_bytes // 1024} Ko) ; collez "
            "seulement son texte, sans les pièces jointes."
        }
    if exc.code == "binary_message":
        return {"text": "ce contenu n'est pas du texte ; collez le texte du message reçu."}
    if exc.code == "empty_message":
        return {"text": "collez le texte du message reçu."}
    return {"body": "le message n'a pas pu être lu ; réessayez depuis cette page."}


def _parse_form(body: bytes) -> dict[str, str] | None:
    """The form's fields (missing ones empty), or None when it is not this form."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        return None
    if set(pairs) - set(_FIELDS) or any(len(values) != 1 for values in pairs.values()):
        return None
    return {name: (pairs.get(name) or [""])[0] for name in _FIELDS}


_TITLES = {
    "phishing": "Message frauduleux",
    "suspicious": "Message suspect",
    "genuine-looking": "Aucun signe de fraude",
    "throttled": "Trop de vérifications",
    "unavailable": "Service indisponible",
}


def _page(
    request: Request,
    *,
    status: int = 200,
    verdict: Verdict | None = None,
    result: str = "",
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    retry: str = "",
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    settings = services_of(request).settings
    errors = errors or {}
    if verdict is not None:
        result = verdict.verdict
    if result:
        title = _TITLES[result]
    elif errors:
        title = "Erreur : vérifier un message"
    else:
        title = "Vérifier un message"
    reasons = [r for r in verdict.reasons if r.code != "genuine_channel"] if verdict else []
    channel = [r.text for r in verdict.reasons if r.code == "genuine_channel"] if verdict else []
    html = _pages.render(
        "messages/verifier.html",
        {
            "title": title,
            "organization": settings.organization_name,
            "website": settings.organization_website,
            "sender": parseaddr(settings.mail_from)[1],
            "form": form or {"channel": "sms", "sender": "", "subject": "", "text": ""},
            "labels": _LABELS,
            "errors": errors,
            "result": result,
            "score": verdict.score if verdict else None,
            "reasons": [r.text for r in reasons],
            "genuine_channel": channel,
            "retry": retry,
        },
    )
    return page_response(html, status=status, headers=headers)


@router.get(PAGE_PATH, include_in_schema=False)
def message_page(request: Request) -> HTMLResponse:
    return _page(request)


@router.post(PAGE_PATH, include_in_schema=False)
async def message_form(request: Request) -> HTMLResponse:
    body = await request.body()
    form = _parse_form(body)
    if form is None:
        return _page(
            request,
            status=400,
            errors={
                "body": "le formulaire envoyé n'a pas pu être lu ; réessayez depuis cette page."
            },
        )
    checks = services_of(request).message_checks
    try:
        verdict = await run_in_threadpool(
            checks.check,
            form["text"].encode("utf-8", "replace"),
            channel=form["channel"],
            sender=form["sender"],
            subject=form["subject"] or None,
            door="page",
            address=client_address(request),
        )
    except InvalidMessage as exc:
        errors = _field_errors(exc, checks.max_bytes)
        if "text" in errors and exc.code == "message_too_large":
            form = {**form, "text": ""}  # not given back: too large to be sent again as is
        return _page(request, status=exc.status, form=form, errors=errors)
    except Throttled as exc:
        return _page(
            request,
            status=429,
            result="throttled",
            form=form,
            retry=wait_in_words(exc.retry_after),
            headers={"Retry-After": str(exc.retry_after)},
        )
    except (RempartError, OperationalError) as exc:
        # The database (a notice code to look up) or the throttle's store is away.
        if isinstance(exc, RempartError) and exc.status < 500:
            raise
        return _page(request, status=503, result="unavailable", form=form)
    return _page(request, verdict=verdict)
