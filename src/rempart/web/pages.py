"""Rendering a page: the Jinja environment (autoescaped, strict) and the response headers.

Templates live under ``web/templates/<feature>/`` and extend ``base.html``. The layout
takes a ``title`` (the page's ``<title>`` and nothing else: RGAA asks that it tell the
page and its state apart, e.g. « Erreur : … »), and each page fills ``main``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

__all__ = [
    "PAGE_CSP",
    "SCRIPTED_PAGE_CSP",
    "SCRIPT_PATH",
    "STYLESHEET_PATH",
    "PageRenderer",
    "page_response",
    "wait_in_words",
]

TEMPLATES = Path(__file__).parent / "templates"
STYLESHEET_PATH = "/assets/rempart.css"
# The one script any page runs: the security-key ceremonies of the portal.
SCRIPT_PATH = "/assets/portail.js"

# Only what this origin serves (the stylesheet, a logo one day), forms posted here, no
# script at all, no plugin, no framing; no inline style either ('self' does not allow it).
PAGE_CSP = (
    "default-src 'self'; script-src 'none'; object-src 'none'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
# The portal's pages run one script, served by this origin (``SCRIPT_PATH``): WebAuthn
# needs ``navigator.credentials``. Still no inline script, no eval, nothing from elsewhere.
SCRIPTED_PAGE_CSP = PAGE_CSP.replace("script-src 'none'", "script-src 'self'")


class PageRenderer:
    """One environment for every page, with what the layout always needs."""

    def __init__(self, globals_: Mapping[str, object] | None = None) -> None:
        self._env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self._env.globals.update({"stylesheet": STYLESHEET_PATH, **(globals_ or {})})

    def render(self, template: str, context: Mapping[str, object]) -> str:
        return self._env.get_template(template).render(context)


def page_response(
    html: str, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    """An HTML page with the pages' policy (the API's security middleware adds the rest
    and keeps this one)."""
    return HTMLResponse(
        html,
        status_code=status,
        headers={"content-security-policy": PAGE_CSP, **(headers or {})},
    )


def wait_in_words(seconds: int) -> str:
    """A ``Retry-After`` as a page says it: « 45 secondes », « 2 minutes »."""
    if seconds < 60:
        return "1 seconde" if seconds <= 1 else f"{seconds} secondes"
    minutes = math.ceil(seconds / 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"
