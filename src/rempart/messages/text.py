"""Text as the phrase rules read it: folded, split into sentences, de-obfuscated.

Phrases match without regard to case or accents (``coordonnées`` = ``COORDONNEES``),
through the cheap disguises of phishing SMS: digits for letters inside words
(``c00rd0nnées``), letters spaced or dotted out (``R I B``, ``c.o.d.e``), odd
apostrophes and full-width characters. A phrase is words separated by spaces; a word
may list alternatives (``votre|vos``) and end with ``*`` (a prefix: ``suspen*``); up
to three other words may stand between two words of a phrase (``vos nouvelles
coordonnées bancaires`` matches ``vos coordonnees bancaires``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["Phrase", "PhraseError", "fold", "language_guess", "sentences"]

_GAP = r"(?: \S+){0,3} "
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b"})
_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "\u2019": "'", "\u02bc": "'", "`": "'"})
_SENTENCE_END = re.compile(r"[.!?;…]+(?=\s|$)|\n\s*\n|\n(?=\s*[-•*\u2013]\s)|\n(?=\s*\S+\s?:)")
_WORD_SHAPE = re.compile(r"^[a-z0-9*|'\- ]+$")


class PhraseError(ValueError):
    """A phrase that cannot be read (the rules file names which)."""


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _deleet(token: str) -> str:
    letters = sum(ch.isalpha() for ch in token)
    digits = sum(ch.isdigit() for ch in token)
    # ``c00rdonnees`` is a word in disguise; ``24h`` and ``k7qm`` are not worth it.
    if digits and letters >= 3 and letters > digits:
        return token.translate(_LEET)
    return token


def fold(text: str) -> str:
    """Lower case, no accents, words separated by one space, disguises undone.

    >>> fold("Vos C00RDONNÉES  b.a.n.c.a.i.r.e.s sous 24h, l\u2019IBAN")
    'vos coordonnees bancaires sous 24 h l iban'
    """
    text = _strip_accents(unicodedata.normalize("NFKC", text).casefold())
    text = re.sub(r"(?<=[a-z])[@](?=[a-z])", "a", text)
    text = re.sub(r"(?<=[a-z])[$](?=[a-z])", "s", text)
    tokens = [_deleet(token) for token in re.findall(r"[a-z0-9]+", text)]
    tokens = [part for token in tokens for part in re.findall(r"[a-z]+|[0-9]+", token)]
    # Runs of three or more single letters were one word spaced out: ``r i b``.
    merged: list[str] = []
    run: list[str] = []
    for token in [*tokens, ""]:
        if len(token) == 1 and token.isalpha():
            run.append(token)
            continue
        if len(run) >= 3:
            merged.append("".join(run))
        else:
            merged.extend(run)
        run = []
        if token:
            merged.append(token)
    return " ".join(merged)


MAX_SENTENCES = 4_000
"""The distinct sentences read at most: far more than any message a person receives,
and a bound on the work a hostile one can ask for (a quarter of a megabyte of one-word
sentences took seconds to check against every phrase)."""


def sentences(text: str, limit: int = MAX_SENTENCES) -> list[str]:
    """The text cut into sentences (and bullets, and "label: value" lines), folded, each
    once, at most ``limit`` of them. Line breaks inside a paragraph do not cut: e-mails
    are re-wrapped. A sentence of fewer than three characters says nothing."""
    found: dict[str, None] = {}
    seen: set[str] = set()
    for part in _SENTENCE_END.split(text):
        raw = part.strip()
        if len(raw) < 3 or raw in seen:
            continue
        seen.add(raw)
        folded = fold(raw)
        if folded:
            found[folded] = None
            if len(found) >= limit:
                break
    return list(found)


def _word_pattern(word: str) -> str:
    alternatives = []
    for choice in word.split("|"):
        prefix = choice.endswith("*")
        folded = fold(choice.rstrip("*"))
        if not folded:
            raise PhraseError(f"empty alternative in {word!r}")
        alternatives.append(re.escape(folded) + (r"\S*" if prefix else ""))
    return "(?:" + "|".join(alternatives) + ")"


@dataclass(frozen=True)
class Phrase:
    """One compiled phrase of the rules file."""

    source: str
    pattern: re.Pattern[str]
    compact: str | None
    """The phrase without spaces, to find it inside a word spelt out letter by letter."""

    @classmethod
    def compile(cls, source: str) -> Phrase:
        """
        >>> suspended = Phrase.compile("votre|vos compte sera suspen*")
        >>> suspended.search("votre compte ameli sera suspendu")
        True
        >>> Phrase.compile("rib").search("attribue")
        False
        """
        words = source.strip().split()
        if not words:
            raise PhraseError("empty phrase")
        if not _WORD_SHAPE.match(_strip_accents(source.casefold())):
            raise PhraseError(f"{source!r}: only letters, digits, spaces, ' - | and * are allowed")
        body = _GAP.join(_word_pattern(word) for word in words)
        pattern = re.compile(rf"(?<!\S){body}(?!\S)")
        plain = "*" not in source and "|" not in source
        compact = fold(source).replace(" ", "") if plain else None
        return cls(source, pattern, compact if compact and len(compact) >= 6 else None)

    def search(self, folded: str) -> bool:
        if self.pattern.search(folded):
            return True
        if self.compact is None:
            return False
        compact = self.compact
        return any(len(word) > len(compact) and compact in word for word in _words(folded))


@functools.lru_cache(maxsize=8)
def _words(folded: str) -> tuple[str, ...]:
    """The sentence's words, split once for all the phrases that look inside them."""
    return tuple(folded.split())


def any_phrase(phrases: Iterable[Phrase], folded: str) -> bool:
    return any(phrase.search(folded) for phrase in phrases)


_STOP_WORDS = {
    "fr": frozenset(
        [
            "a",
            "au",
            "aux",
            "avec",
            "ce",
            "cette",
            "dans",
            "de",
            "des",
            "du",
            "elle",
            "en",
            "est",
            "et",
            "il",
            "la",
            "le",
            "les",
            "ne",
            "nous",
            "ou",
            "par",
            "pas",
            "pour",
            "que",
            "qui",
            "sont",
            "sur",
            "un",
            "une",
            "vos",
            "votre",
            "vous",
        ]
    ),
    "en": frozenset(
        [
            "an",
            "and",
            "are",
            "be",
            "for",
            "has",
            "have",
            "in",
            "is",
            "it",
            "of",
            "on",
            "our",
            "please",
            "that",
            "the",
            "this",
            "to",
            "we",
            "will",
            "with",
            "you",
            "your",
        ]
    ),
    "es": frozenset(
        [
            "con",
            "del",
            "el",
            "en",
            "es",
            "las",
            "los",
            "para",
            "por",
            "que",
            "su",
            "sus",
            "una",
            "usted",
            "y",
        ]
    ),
    "de": frozenset(
        [
            "bitte",
            "das",
            "der",
            "die",
            "ein",
            "eine",
            "fur",
            "ihr",
            "ihre",
            "ist",
            "mit",
            "nicht",
            "sie",
            "und",
            "wir",
        ]
    ),
    "it": frozenset(
        [
            "che",
            "con",
            "della",
            "di",
            "e",
            "gli",
            "il",
            "lo",
            "per",
            "questo",
            "sono",
            "tua",
            "tuo",
            "una",
        ]
    ),
}


@lru_cache(maxsize=256)
def language_guess(folded: str) -> str | None:
    """``fr``, another language's code, or None when the text is too short to tell.

    >>> language_guess(fold("Your health insurance card is ready, please confirm your details"))
    'en'
    >>> language_guess(fold("Votre carte Vitale est prête, vous la recevrez par la poste"))
    'fr'
    """
    words = folded.split()
    if len(words) < 6:
        return None
    counts = {lang: sum(word in stop for word in words) for lang, stop in _STOP_WORDS.items()}
    best = max(counts, key=lambda lang: counts[lang])
    if counts[best] < 2 or counts[best] == counts["fr"]:
        return "fr" if counts["fr"] else None
    return best
