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
from rempart.auth.psc import PscIdentity
from rempart.auth.service import IssuedToken
from rempart.errors import RempartError
from rempart.portal.messages import french
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


def finish_portal_login(request: Request, session: Session, identity: PscIdentity) -> Response:
    services = services_of(request)
    try:
        issued = services.auth.complete_login(
            session,
            account_id=identity.account_id,
            acr=identity.acr,
            origin=portal_origin(request),
            method="psc",
            replaces_session_id=_replaced(session, identity),
        )
    except RempartError as exc:
        if exc.status >= 500:
            raise
        return render(
            request,
            None,
            "portail/psc_refus.html",
            {"title": "Erreur : connexion refusée", "error": french(exc)},
            status=exc.status,
        )
    target = after_login(issued)
    response = render(
        request, None, "portail/psc_retour.html", {"title": "Connexion réussie", "target": target}
    )
    set_session_cookie(response, issued)
    return response
