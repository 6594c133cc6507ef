"""What every page's form handler checks first: the request comes from this site."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request

__all__ = ["same_site"]


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
