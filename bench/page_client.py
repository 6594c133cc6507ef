"""What the page benchmarks share: a browser's cookies over plain HTTP, form fields read
from a page, one request timed, and the nearest-rank percentile."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from http.cookies import SimpleCookie

import httpx

__all__ = ["CSRF", "PageClient", "field_named", "form_token", "nearest_rank", "timed"]

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_NAMES = re.compile(r'name="([^"]+)"')


class PageClient:
    """One user's client over plain HTTP. The app's cookies are ``Secure`` (``__Host-``),
    which a cookie jar keeps to HTTPS: they are kept here by hand, as a browser behind the
    TLS-terminating proxy would hold them."""

    def __init__(self, base_url: str, headers: Mapping[str, str]) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=60, headers=dict(headers))
        self.cookies: dict[str, str] = {}

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        response = self.client.request(method, path, data=data, headers=headers)
        for header in response.headers.get_list("set-cookie"):
            parsed: SimpleCookie = SimpleCookie()
            parsed.load(header)
            for name, morsel in parsed.items():
                if morsel["max-age"] == "0" or not morsel.value or morsel.value == '""':
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        self.client.cookies.clear()
        return response


def form_token(html: str) -> str | None:
    """The CSRF token of the page's first form, if it has one."""
    found = CSRF.search(html)
    return found.group(1) if found else None


def field_named(html: str, *hints: str) -> str | None:
    """The name of the first form field whose name contains one of ``hints``."""
    for name in _NAMES.findall(html):
        if any(hint in name.casefold() for hint in hints):
            return str(name)
    return None


def timed(
    client: PageClient, method: str, path: str, data: dict[str, str] | None
) -> tuple[httpx.Response, float]:
    """One request, timed from sending it to the whole body read (milliseconds)."""
    began = time.perf_counter()
    response = client.request(method, path, data)
    _ = response.content
    return response, (time.perf_counter() - began) * 1000


def nearest_rank(times_ms: Sequence[float], q: float) -> float:
    """The smallest time at least ``q`` of the requests did not exceed."""
    ordered = sorted(times_ms)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
