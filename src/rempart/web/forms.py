"""What every page's form handler checks first (the request comes from this site, with
the token the page gave it), and how it answers (a 303, post/redirect/get)."""

from __future__ import annotations

import hmac
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse

__all__ = ["form_token", "redirect", "same_site", "token_accepted"]


def same_site(request: Request) -> bool:
    """Whether a state-changing request comes from this site. Browsers send
    ``Sec-Fetch-Site`` and ``Origin`` on a form post; a client that sends neither (a
    script) still needs the CSRF token.

    A browser that sends ``Sec-Fetch-Site`` (no page can set it) is taken at its word:
    under the pages' ``Referrer-Policy: no-referrer`` it sends ``Origin: null`` even on a
    post from the site's own page, so ``Origin`` is read only from older browsers."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    return urlsplit(origin).netloc == request.headers.get("host", "")


def form_token(key: bytes, value: str) -> str:
    """A form's token, derived from what the browser holds in a ``__Host-`` cookie (a
    session, a login nonce): a page of another site can neither read it nor compute it."""
    return hmac.new(key, value.encode(), "sha256").hexdigest()


def token_accepted(request: Request, expected: str, submitted: object) -> bool:
    """The request comes from this site and carries the expected token."""
    return (
        same_site(request)
        and bool(expected)
        and isinstance(submitted, str)
        and hmac.compare_digest(expected, submitted)
    )


def redirect(path: str, **query: str | int) -> RedirectResponse:
    """303 to a page (after a form: the browser then GETs it, and a reload does not post
    again). ``query`` carries a message code, never personal data."""
    target = path + (f"?{urlencode(query)}" if query else "")
    return RedirectResponse(target, status_code=303)
