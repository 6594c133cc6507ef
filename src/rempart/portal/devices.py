"""A user agent as a professional recognises their own device: « Chrome sur Windows ».

Only the common browsers and systems are named; anything else (a practice software, a
script such as ``python-requests/2.32``) is shown as sent, cut to :data:`RAW_LIMIT`
characters: an unfamiliar string is precisely what the owner should notice.
"""

from __future__ import annotations

import re

__all__ = ["RAW_LIMIT", "device_label"]

RAW_LIMIT = 80

# Order matters: Edge and Opera also say "Chrome", Chrome also says "Safari".
_BROWSERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bEdg(?:e|A|iOS)?/"), "Edge"),
    (re.compile(r"\bOPR/"), "Opera"),
    (re.compile(r"\bSamsungBrowser/"), "Samsung Internet"),
    (re.compile(r"\b(?:Firefox|FxiOS)/"), "Firefox"),
    (re.compile(r"\b(?:Chrome|Chromium|CriOS)/"), "Chrome"),
    (re.compile(r"\bVersion/[\d.]+ (?:Mobile/\w+ )?Safari/"), "Safari"),
)
_SYSTEMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\biPhone\b"), "iPhone"),
    (re.compile(r"\biPad\b"), "iPad"),
    (re.compile(r"\bAndroid\b"), "Android"),
    (re.compile(r"\bWindows\b"), "Windows"),
    (re.compile(r"\bMac OS X\b|\bMacintosh\b"), "Mac"),
    (re.compile(r"\bCrOS\b"), "ChromeOS"),
    (re.compile(r"\bLinux\b"), "Linux"),
)


def _first(patterns: tuple[tuple[re.Pattern[str], str], ...], text: str) -> str:
    return next((name for pattern, name in patterns if pattern.search(text)), "")


def device_label(user_agent: str) -> str:
    """« Firefox sur Android », « Chrome » (system unknown), or the raw string cut short;
    « appareil inconnu » when there is none."""
    text = " ".join(user_agent.split())
    if not text:
        return "appareil inconnu"
    browser = _first(_BROWSERS, text) if text.startswith("Mozilla/") else ""
    if not browser:
        return text if len(text) <= RAW_LIMIT else text[: RAW_LIMIT - 1] + "…"
    system = _first(_SYSTEMS, text)
    return f"{browser} sur {system}" if system else browser
