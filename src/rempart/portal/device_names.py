"""A browser's user agent as a professional would name the device: "Firefox 128 sur
Windows", "Safari sur iPhone", "Logiciel métier".

Only for display: the user agent is whatever the client sent (an intruder chooses it),
so the name is a hint, never evidence; the raw value stays in the trail.
"""

from __future__ import annotations

import re

__all__ = ["device_name"]

# Most specific first: Edge and Opera announce Chrome too, Chrome announces Safari.
_BROWSERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Edge", re.compile(r"\bEdg(?:e|A|iOS)?/(\d+)")),
    ("Opera", re.compile(r"\b(?:OPR|Opera)/(\d+)")),
    ("Samsung Internet", re.compile(r"\bSamsungBrowser/(\d+)")),
    ("Firefox", re.compile(r"\b(?:Firefox|FxiOS)/(\d+)")),
    ("Chrome", re.compile(r"\b(?:Chrome|CriOS)/(\d+)")),
    ("Safari", re.compile(r"\bVersion/(\d+)[.\d]* (?:Mobile/\S+ )?Safari/")),
)
_SYSTEMS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("iPhone", re.compile(r"\biPhone\b")),
    ("iPad", re.compile(r"\biPad\b")),
    ("Android", re.compile(r"\bAndroid\b")),
    ("ChromeOS", re.compile(r"\bCrOS\b")),
    ("Windows", re.compile(r"\bWindows\b")),
    ("macOS", re.compile(r"\bMac OS X\b|\bMacintosh\b")),
    ("Linux", re.compile(r"\bLinux\b")),
)
# Programs rather than browsers: practice software, scripts.
_PROGRAMS = re.compile(r"^(?:python-httpx|python-requests|curl|Wget|okhttp|Java|Go-http-client)\b")


def device_name(user_agent: str) -> str:
    """A short French name for the device behind ``user_agent``.

    >>> device_name("Mozilla/5.0 (Windows NT 10.0; rv:128.0) Gecko/20100101 Firefox/128.0")
    'Firefox 128 sur Windows'
    >>> device_name("curl/8.5.0"), device_name("")
    ('Programme (curl)', 'Appareil inconnu')
    """
    agent = " ".join(user_agent.split())[:256]
    if not agent:
        return "Appareil inconnu"
    program = _PROGRAMS.match(agent)
    if program:
        return f"Programme ({program.group(0)})"
    browser = ""
    for name, pattern in _BROWSERS:
        if found := pattern.search(agent):
            browser = f"{name} {found.group(1)}"
            break
    system = next((name for name, pattern in _SYSTEMS if pattern.search(agent)), "")
    if browser and system:
        return f"{browser} sur {system}"
    if browser or system:
        return browser or f"Navigateur sur {system}"
    # Unrecognised: the start of what it said, shortened.
    return agent[:60] + ("…" if len(agent) > 60 else "")
