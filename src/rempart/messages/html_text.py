"""An HTML e-mail as its reader sees it: the visible text, and every link with the
text it shows and whether it is hidden.

Phishing e-mails hide things from the reader and not from the machine (or the other
way round): a link under ``display:none`` or in white on white, a link with no visible
content, text in a zero-size font. What is hidden is kept out of the visible text but
its links are kept, marked ``hidden``: following them is what the sender wants.
Parsing uses the standard library's tolerant :class:`html.parser.HTMLParser`; the
message is never rendered, fetched or executed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from rempart.messages.links import link_for
from rempart.messages.model import Link

__all__ = ["RenderedHtml", "render_html"]

_SKIPPED = frozenset({"script", "style", "head", "title", "template", "noscript", "svg"})
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
_BLOCKS = frozenset(
    {
        "p", "div", "br", "li", "tr", "td", "th", "table", "h1", "h2", "h3", "h4", "h5",
        "h6", "ul", "ol", "section", "article", "header", "footer", "blockquote", "hr",
    }
)  # fmt: skip
_ZERO = re.compile(r"^\s*0+(\.0+)?\s*(px|pt|em|rem|%)?\s*$")
_NAMED_COLOURS = {"white": "#ffffff", "black": "#000000", "red": "#ff0000", "blue": "#0000ff"}


def _colour(value: str) -> str | None:
    value = value.strip().lower().replace(" ", "")
    value = _NAMED_COLOURS.get(value, value)
    if re.fullmatch(r"#[0-9a-f]{3}", value):
        value = "#" + "".join(ch * 2 for ch in value[1:])
    rgb = re.fullmatch(r"rgba?\((\d+),(\d+),(\d+)(?:,[\d.]+)?\)", value)
    if rgb:
        value = "#" + "".join(f"{min(int(n), 255):02x}" for n in rgb.groups())
    return value if re.fullmatch(r"#[0-9a-f]{6}", value) else None


def _style(text: str) -> dict[str, str]:
    declarations = {}
    for item in text.split(";"):
        name, _, value = item.partition(":")
        if value:
            declarations[name.strip().lower()] = value.split("!")[0].strip().lower()
    return declarations


@dataclass
class _Element:
    tag: str
    hidden: bool
    colour: str
    background: str


@dataclass
class _Anchor:
    href: str
    hidden: bool
    text: list[str] = field(default_factory=list)
    image: bool = False


@dataclass(frozen=True)
class RenderedHtml:
    text: str
    links: tuple[Link, ...]


class _Renderer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[_Element] = [_Element("", False, "#000000", "#ffffff")]
        self.skipping = 0
        self.chunks: list[str] = []
        self.anchor: _Anchor | None = None
        self.links: list[Link] = []

    def _hidden(self, tag: str, attrs: dict[str, str | None], parent: _Element) -> _Element:
        style = _style(attrs.get("style") or "")
        colour = _colour(style.get("color", "") or (attrs.get("color") or "")) or parent.colour
        background = (
            _colour(style.get("background-color", "") or style.get("background", ""))
            or _colour(attrs.get("bgcolor") or "")
            or parent.background
        )
        hidden = (
            parent.hidden
            or "hidden" in attrs
            or style.get("display") == "none"
            or style.get("visibility") == "hidden"
            or any(
                _ZERO.match(style.get(name, "x"))
                for name in ("font-size", "width", "height", "max-width", "max-height", "opacity")
            )
            or any(_ZERO.match(attrs.get(name) or "x") for name in ("width", "height"))
            or colour == background
        )
        return _Element(tag, hidden, colour, background)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skipping += tag not in _VOID
            return
        values = {name.lower(): value for name, value in attrs}
        element = self._hidden(tag, values, self.stack[-1])
        if tag in _BLOCKS:
            self.chunks.append("\n")
        if tag == "img" and self.anchor is not None and not element.hidden:
            self.anchor.image = True
        if tag == "a" and values.get("href"):
            self._close_anchor()
            self.anchor = _Anchor(str(values["href"]), element.hidden)
        if tag not in _VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
            return
        if tag == "a":
            self._close_anchor()
        if tag in _BLOCKS:
            self.chunks.append("\n")
        # Browsers close what is left open; so do we, up to the matching tag if any.
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                break

    def handle_data(self, data: str) -> None:
        if self.skipping or self.stack[-1].hidden:
            return
        self.chunks.append(data)
        if self.anchor is not None:
            self.anchor.text.append(data)

    def _close_anchor(self) -> None:
        anchor, self.anchor = self.anchor, None
        if anchor is None or not re.match(r"(?i)^\s*(https?:)?//", anchor.href):
            return  # mailto:, tel:, javascript:, relative: no site to go to
        text = " ".join("".join(anchor.text).split())
        hidden = anchor.hidden or (not text and not anchor.image)
        link = link_for(anchor.href, text=text, hidden=hidden)
        if link is not None:
            self.links.append(link)

    def close(self) -> None:
        super().close()
        self._close_anchor()


def render_html(html: str) -> RenderedHtml:
    """The visible text of an HTML document and its links.

    >>> page = render_html('<p>Voir <a href="https://evil.example.com/x">ameli.fr</a></p>'
    ...     '<a href="https://hid.example.net" style="display:none">x</a>')
    >>> page.text
    'Voir ameli.fr'
    >>> [(link.host, link.text, link.hidden) for link in page.links]
    [('evil.example.com', 'ameli.fr', False), ('hid.example.net', '', True)]
    """
    renderer = _Renderer()
    renderer.feed(html)
    renderer.close()
    lines = (" ".join(line.split()) for line in "".join(renderer.chunks).split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return RenderedHtml(text=text, links=tuple(renderer.links))
