"""The demo's portal chapter: a pharmacist at the counter, in the browser's place.

The portal's pages are driven over HTTP as a browser would: forms posted with their
CSRF token, the session in its ``__Host-`` cookie, the answer card behind a redirect.
The demo talks plain http to localhost, where a Python client will not send a
``Secure`` cookie (browsers do, on localhost): :class:`_Browser` carries the cookies
itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pyotp
from rich.console import Console

from rempart.services import Services
from rempart.store.engine import session_scope

__all__ = ["PORTAL_LOGIN", "PortalLogin", "chapter_portal"]

PORTAL_LOGIN = "pharmacie.des.halles"
_PASSWORD = "officine des halles, poste 1 !"  # noqa: S105 - the demo's own throwaway account
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_CARD_FIELDS = re.compile(r"<dt>([^<]+)</dt>\s*<dd>([^<]*)</dd>")


@dataclass(frozen=True)
class PortalLogin:
    """The portal pharmacy's credentials, printed by ``rempart demo --serve``."""

    login: str
    password: str
    totp_secret: str


class _Browser:
    """Cookies kept as a browser keeps them for this one site."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.cookies: dict[str, str] = {}

    def _keep(self, response: httpx.Response) -> httpx.Response:
        for header in response.headers.get_list("set-cookie"):
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    def _headers(self) -> dict[str, str]:
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return {"cookie": cookie, "user-agent": "Mozilla/5.0 (Windows NT 10.0) Chrome/131"}

    def get(self, path: str) -> httpx.Response:
        return self._keep(self.http.get(path, headers=self._headers()))

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        return self._keep(self.http.post(path, data=data, headers=self._headers()))


def _token(html: str) -> str:
    found = _CSRF.search(html)
    return found.group(1) if found else ""


def chapter_portal(
    console: Console,
    services: Services,
    http: httpx.Client,
    *,
    account_id: str,
    people: list[dict[str, Any]],
) -> PortalLogin:
    """Logs a pharmacy in through the portal's pages, looks a customer up, and shows
    what the pharmacist then sees of their own account's lookups."""
    with session_scope(services.sessions) as session:
        created = services.auth.create_account(
            session,
            login=PORTAL_LOGIN,
            password=_PASSWORD,
            profession="pharmacie",
            account_id=account_id,
            email=f"{PORTAL_LOGIN}@officine.example",
        )
    secret = pyotp.parse_uri(created.otpauth_uri).secret
    totp = pyotp.TOTP(secret)
    browser = _Browser(http)
    page = browser.get("/portail/connexion")
    first = browser.post(
        "/portail/connexion",
        {"csrf": _token(page.text), "login": PORTAL_LOGIN, "password": _PASSWORD},
    )
    factor = browser.get(first.headers.get("location", "/portail/connexion/facteur"))
    second = browser.post(
        "/portail/connexion/code", {"csrf": _token(factor.text), "code": totp.now()}
    )
    console.print(
        f"  {PORTAL_LOGIN} logs in at /portail/connexion: password → {first.status_code}, "
        f"code → {second.status_code} (session cookie __Host-rempart-portail: Secure, "
        "HttpOnly, SameSite=Strict)"
    )
    person = people[0]
    home = browser.get("/portail/")
    looked = browser.post(
        "/portail/consultation",
        {
            "csrf": _token(home.text),
            "nir": f"{person['nir'][:1]} {person['nir'][1:3]} {person['nir'][3:5]} "
            f"{person['nir'][5:7]} {person['nir'][7:10]} {person['nir'][10:13]} "
            f"{person['nir'][13:]}",
            "birth_date": person["birth_date"].isoformat(),
        },
    )
    location = looked.headers.get("location", "")
    console.print(
        f"  the lookup form (NIR typed with spaces) → {looked.status_code}, redirected to "
        f"{location or '—'} (no NIR in the address)"
    )
    card = browser.get(location) if location else looked
    fields = {label.strip(): value.strip() for label, value in _CARD_FIELDS.findall(card.text)}
    shown = {k: v for k, v in fields.items() if "NIR" not in k and "sécurité sociale" not in k}
    console.print(
        f"  the answer card → {card.status_code}: "
        + "; ".join(f"{label} {value}" for label, value in list(shown.items())[:6])
    )
    again = browser.get(location) if location else card
    console.print(
        f"  the same address again (reload, back button) → {again.status_code}: the card is "
        "shown once and kept nowhere in the browser"
    )
    mine = browser.get("/portail/consultations")
    nir_in_page = person["nir"] in mine.text
    name_in_page = str(person.get("last_name", "")).upper() in mine.text.upper()
    console.print(
        f"  « Mes consultations » → {mine.status_code}: the pharmacy's own lookups with whom "
        f"by name ({'yes' if name_in_page else 'no'}), never a NIR "
        f"(NIR in the page: {'yes' if nir_in_page else 'no'}); a button « Ce n'était pas "
        "moi » suspends the account and warns the operators at once"
    )
    return PortalLogin(PORTAL_LOGIN, _PASSWORD, secret)
