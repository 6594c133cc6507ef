"""The portal's ending of a Pro Santé Connect login (CPS card or e-CPS).

The provider sends the browser back to the API's callback, which finishes the OIDC
checks and hands the identity here when the login was started from the portal: the
session is opened as every login's is, its cookie set, and a page leads on.

That page moves on by itself (``<meta http-equiv="refresh">``) rather than by a redirect:
the callback is the end of a navigation that started on the provider's site, and the
browser withholds ``SameSite=Strict`` cookies along such a chain; a navigation the
portal's own page starts carries them.
"""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from rempart.api.deps import services_of
from rempart.auth.levels import StepUpRequired
from rempart.auth.psc import PscIdentity
from rempart.auth.service import AccountSuspended, IssuedToken
from rempart.errors import RempartError
from rempart.nir import InvalidNIR
from rempart.portal.lookup_flow import NothingToResume, resume_pending
from rempart.portal.messages import french
from rempart.portal.routes_lookup import RESULT_PATH, clear_pending_cookie, set_result_cookie
from rempart.portal.web import PORTAL, portal_origin, render, set_session_cookie
from rempart.store.models import AuthSession

__all__ = ["after_login", "finish_portal_login"]


def after_login(issued: IssuedToken) -> str:
    """Where a new session starts: the security notices first when the login delivered
    some (a strong login shows what happened to the account since)."""
    return f"{PORTAL}/avis" if issued.notices else f"{PORTAL}/"


def _replaced(session: Session, identity: PscIdentity) -> str | None:
    """The portal session this login steps up, if it is the same account's."""
    session_id = identity.then.get("replaces", "")
    row = session.get(AuthSession, session_id) if session_id else None
    return session_id if row is not None and row.account_id == identity.account_id else None


def _refusal(request: Request, error: str, status: int) -> Response:
    return render(
        request,
        None,
        "portail/psc_refus.html",
        {"title": "Erreur : connexion refusée", "error": error},
        status=status,
    )


def finish_portal_login(request: Request, session: Session, identity: PscIdentity) -> Response:
    """Opens the portal session; when the card was asked for by the guard, resumes the
    lookup that was waiting (its handle came with the state, server-side)."""
    services = services_of(request)
    origin = portal_origin(request)
    replaced = _replaced(session, identity)
    try:
        issued = services.auth.complete_login(
            session,
            account_id=identity.account_id,
            acr=identity.acr,
            origin=origin,
            method="psc",
            replaces_session_id=replaced,
        )
        session.commit()
    except RempartError as exc:
        if exc.status >= 500:
            raise
        return _refusal(request, french(exc), exc.status)
    target, result = after_login(issued), ""
    pending = identity.then.get("pending", "")
    if pending and replaced is not None:
        target, result = _resume(request, session, issued, pending, replaced)
    response = render(
        request, None, "portail/psc_retour.html", {"title": "Connexion réussie", "target": target}
    )
    set_session_cookie(response, issued)
    if result:
        set_result_cookie(response, result)
    clear_pending_cookie(response)
    return response


def _resume(
    request: Request, session: Session, issued: IssuedToken, pending: str, replaced: str
) -> tuple[str, str]:
    """The waiting lookup, done as the new session: (where to go, the card's handle)."""
    services = services_of(request)
    principal = services.auth.authenticate(session, issued.access_token)
    try:
        handle = resume_pending(
            services,
            session,
            principal,
            pending,
            portal_origin(request),
            replaced_session_id=replaced,
        )
    except NothingToResume:
        return f"{PORTAL}/?message=attente-expiree", ""
    except StepUpRequired:
        # An e-CPS login (no card) does not pass the guard's step-up: the lookup waits
        # again, and the lookup form says what to use.
        return f"{PORTAL}/?message=carte-requise", ""
    except AccountSuspended:
        return f"{PORTAL}/", ""  # the next page shows the suspension and who to call
    except (RempartError, InvalidNIR):
        return f"{PORTAL}/?message=consultation-impossible", ""
    return RESULT_PATH, handle
