"""Where a link leads, measured against the insurer's own domains: its own, a trusted
public service, a link shortener, a look-alike, or simply somebody else's.

A look-alike borrows the insurer's name: with letters of another alphabet
(``\u0430meli.fr`` with a Cyrillic ``\u0430``, which travels as punycode ``xn--``), inside a
domain that belongs to someone else (``ameli.fr.exemple.net``,
``ameli-remboursement.com``), or with a typing slip (``amelli.fr``, ``arneli.fr``).
Homoglyphs are mapped to Latin with the Unicode confusables table
(``confusable_homoglyphs``); typos are measured with the optimal string alignment
distance (``rapidfuzz``), which counts a swap of two letters as one slip.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from confusable_homoglyphs import confusables
from rapidfuzz.distance import OSA

from rempart.messages.links import registrable_domain

__all__ = ["Lookalike", "lookalike", "skeleton", "within"]

# Letters people (and fonts) confuse within ASCII: ``rn`` reads as ``m``.
_ASCII_TRICKS = (("rn", "m"), ("vv", "w"), ("0", "o"), ("1", "l"), ("3", "e"), ("5", "s"))


def within(host: str, domains: Iterable[str]) -> bool:
    """The host is one of the domains or a subdomain of one.

    >>> within("forum.ameli.fr", ["ameli.fr"]), within("ameli.fr.exemple.net", ["ameli.fr"])
    (True, False)
    """
    return any(host == domain or host.endswith("." + domain) for domain in domains)


@lru_cache(maxsize=4096)
def _latin(ch: str) -> str:
    if ch.isascii():
        return ch
    found = confusables.is_confusable(ch, preferred_aliases=["latin"], greedy=True) or []
    for entry in found:
        for glyph in entry["homoglyphs"]:
            if glyph["c"].isascii():
                return str(glyph["c"]).lower()
    stripped = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    return stripped.lower() if stripped.isascii() else ch


def skeleton(host: str) -> str:
    """The host with every letter that imitates a Latin one replaced by it.

    >>> skeleton("\u0430meli.fr"), skeleton("amél\u0456.fr")
    ('ameli.fr', 'ameli.fr')
    """
    return "".join(_latin(ch) for ch in host)


@dataclass(frozen=True)
class Lookalike:
    kind: Literal["homoglyph", "brand", "typo"]
    brand: str
    """The name imitated (``ameli``)."""
    owner: str
    """The domain that really owns the host (``exemple.net``)."""


def _tokens(host: str) -> list[str]:
    return [token for label in host.split(".") for token in label.split("-") if token]


def _untrick(token: str) -> str:
    for seen, meant in _ASCII_TRICKS:
        token = token.replace(seen, meant)
    return token


def lookalike(host: str, ascii_host: str, brands: Iterable[str]) -> Lookalike | None:
    """How the host imitates one of the brands, or None. The caller has already ruled
    out the insurer's own domains.

    >>> lookalike("ameli-remboursement.com", "ameli-remboursement.com", ["ameli"]).kind
    'brand'
    >>> lookalike("amelli.fr", "amelli.fr", ["ameli"]).kind
    'typo'
    >>> lookalike("camelia-fleurs.fr", "camelia-fleurs.fr", ["ameli"]) is None
    True
    """
    shape = skeleton(host)
    foreign_letters = not host.isascii() or "xn--" in ascii_host
    tokens = _tokens(shape)
    owner = registrable_domain(host)
    for brand in brands:
        parts = brand.split("-")
        joined = "".join(parts)
        windows = (tokens[i : i + len(parts)] for i in range(len(tokens) - len(parts) + 1))
        if joined in tokens or any(window == parts for window in windows):
            return Lookalike("homoglyph" if foreign_letters else "brand", brand, owner)
    for brand in brands:
        joined = brand.replace("-", "")
        if len(joined) < 5:
            continue  # a short name is one slip away from too many words
        allowed = 1 if len(joined) < 10 else 2
        for token in tokens:
            if len(token) < 4 or token == joined:
                continue
            if min(OSA.distance(token, joined), OSA.distance(_untrick(token), joined)) <= allowed:
                return Lookalike("homoglyph" if foreign_letters else "typo", brand, owner)
    return None
