"""The pages' shared layer: the stylesheet's colours and the layout's basics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from jinja2 import UndefinedError

from rempart.web import PAGE_CSP, PageRenderer

CSS = Path(__file__).parents[2] / "src/rempart/web/static/rempart.css"

# Every pair the stylesheet draws text with: (text, background).
TEXT_PAIRS = [
    ("text", "page"),
    ("muted", "page"),
    ("accent", "page"),
    ("page", "accent"),  # the button, the skip link
    ("ok", "ok-panel"),
    ("error", "error-panel"),
    ("error", "page"),
    ("text", "panel"),
    ("text", "ok-panel"),
    ("text", "error-panel"),
    ("accent", "panel"),
]


def _colours() -> dict[str, str]:
    root = re.search(r":root\s*\{([^}]*)\}", CSS.read_text(encoding="utf-8"))
    assert root is not None
    return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})\s*;", root.group(1)))


def _luminance(colour: str) -> float:
    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_contrast_formula_matches_wcag() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize(("text", "background"), TEXT_PAIRS)
def test_every_text_colour_reaches_aa_contrast(text: str, background: str) -> None:
    colours = _colours()
    assert contrast(colours[text], colours[background]) >= 4.5


def test_the_stylesheet_fetches_nothing() -> None:
    css = CSS.read_text(encoding="utf-8")
    assert "url(" not in css
    assert "@import" not in css
    assert "@font-face" not in css


def test_the_layout_is_french_and_escapes_what_it_is_given() -> None:
    html = PageRenderer().render(
        "notices/verifier.html",
        {
            "title": "Vérifier",
            "organization": "Caisse <script>x</script> & Co",
            "website": "",
            "sender": "no-reply@caisse.example",
            "form": {"code": '"><img src=x>', "last_name": ""},
            "errors": {},
            "result": "",
            "retry": "",
        },
    )
    assert html.startswith("<!DOCTYPE html>")
    assert '<html lang="fr">' in html
    assert "<script>" not in html
    assert "<img" not in html
    assert "Caisse &lt;script&gt;x&lt;/script&gt; &amp; Co" in html


def test_a_missing_value_is_an_error_not_a_blank() -> None:
    with pytest.raises(UndefinedError):
        PageRenderer().render("notices/verifier.html", {"title": "Vérifier"})


def test_the_policy_allows_no_script_and_no_elsewhere() -> None:
    directives = dict(d.strip().partition(" ")[::2] for d in PAGE_CSP.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert "unsafe" not in PAGE_CSP
