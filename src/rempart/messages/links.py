"""Links written in a message's text, and the host a link leads to.

People write links with a scheme (``https://…``), with ``www.``, or bare
(``ameli-remboursement.com/suivi``): phishing SMS use the bare form a lot, since
phones turn it into a link. A bare name counts only when it ends with a real public
suffix (the Public Suffix List shipped by ``publicsuffixlist``), so that ``M.Dupont``
or ``1,49`` are not links.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from urllib.parse import urlsplit

import idna
from publicsuffixlist import PublicSuffixList

from rempart.messages.model import Link

__all__ = ["hosts_of", "link_for", "links_in_text", "registrable_domain"]

# Stops at spaces, quotes, angle brackets and French quotation marks.
_URL = re.compile(r"""(?i)\b(?:https?://|www\.)[^\s<>"'«»]+""")
_BARE = re.compile(
    r"""(?<![@\w.\-/])(?:[\w](?:[\w-]{0,62})\.)+[^\W\d_]{2,24}(?![\w@-])(?:/[^\s<>"'«»]*)?"""
)
_TRAILING = ".,;:!?)]}'\"»…"
_MAX_LINKS = 200  # a message with more is already odd; the checker needs a handful


@cache
def _psl() -> PublicSuffixList:
    # accept_unknown=False: an unknown ending (``.example``, ``.pdf``) is no suffix.
    return PublicSuffixList(accept_unknown=False)


def _ascii(host: str) -> str:
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        return host


def _unicode(host: str) -> str:
    if "xn--" not in host:
        return host
    try:
        return idna.decode(host)
    except idna.IDNAError:
        return host


def link_for(url: str, *, text: str | None = None, hidden: bool = False) -> Link | None:
    """The :class:`Link` of a URL as written, or None when it names no host."""
    raw = url.strip()
    target = raw if re.match(r"(?i)^[a-z][a-z0-9+.-]*://", raw) else "http://" + raw
    try:
        host = urlsplit(target).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = unicodedata.normalize("NFKC", host).rstrip(".").lower()
    ascii_host = _ascii(host).lower()
    return Link(
        url=raw,
        host=_unicode(ascii_host) if host.isascii() else host,
        ascii_host=ascii_host,
        text=text,
        hidden=hidden,
    )


def _has_public_suffix(host: str) -> bool:
    return _psl().publicsuffix(_ascii(host)) is not None


def links_in_text(text: str) -> list[Link]:
    """Every link written in ``text``: with a scheme, with ``www.``, or bare with a
    public suffix.

    >>> [link.host for link in links_in_text("Voir https://bit.ly/x, ameli.fr et M.Dupont.")]
    ['bit.ly', 'ameli.fr']
    """
    found: list[Link] = []
    taken: list[tuple[int, int]] = []
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(_TRAILING)
        taken.append((match.start(), match.start() + len(url)))
        link = link_for(url)
        if link is not None:
            found.append(link)
    for match in _BARE.finditer(text):
        start = match.start()
        if any(a <= start < b for a, b in taken):
            continue
        url = match.group(0).rstrip(_TRAILING)
        suffix = url.split("/", 1)[0].rsplit(".", 1)[-1]
        if suffix[:1].isupper() and suffix[1:].islower():
            continue  # ``M.Dupont``: a capitalised word, not a domain (brand TLDs exist)
        link = link_for(url)
        if link is not None and _has_public_suffix(link.host):
            found.append(link)
        if len(found) >= _MAX_LINKS:
            break
    return found[:_MAX_LINKS]


def registrable_domain(host: str) -> str:
    """The part of a host its owner registered (``ameli.fr.exemple.net`` →
    ``exemple.net``); for an unknown ending, the last two labels.

    >>> registrable_domain("ameli.fr.exemple.net"), registrable_domain("www.rempart.example")
    ('exemple.net', 'rempart.example')
    """
    ascii_host = _ascii(host)
    private = _psl().privatesuffix(ascii_host)
    if private is None:
        private = ".".join(ascii_host.split(".")[-2:])
    return _unicode(private)


def hosts_of(links: tuple[Link, ...]) -> list[str]:
    """The distinct hosts, in order of appearance."""
    return list(dict.fromkeys(link.host for link in links))
