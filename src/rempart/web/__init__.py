"""The server-rendered pages' shared layer: one Jinja environment, one base layout, one
stylesheet served from our own origin, and the headers every page carries.

Pages load nothing from anywhere else (no font, no CDN, no analytics) and run no
script: their Content-Security-Policy says so (:data:`PAGE_CSP`). The verification
page uses it first; the console and the professionals' portal build on it.
"""

from rempart.web.assets import router as assets_router
from rempart.web.pages import (
    PAGE_CSP,
    STYLESHEET_PATH,
    PageRenderer,
    page_response,
    wait_in_words,
)

__all__ = [
    "PAGE_CSP",
    "STYLESHEET_PATH",
    "PageRenderer",
    "assets_router",
    "page_response",
    "wait_in_words",
]
