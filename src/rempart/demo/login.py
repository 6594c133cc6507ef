"""The demo's login chapters: a stolen password and mailbox are not enough, a phished
TOTP code cannot pass a step-up, and Pro Santé Connect through a local provider.

The demo plays the attacker from another network by sending ``X-Forwarded-For``: the
demo server trusts it from 127.0.0.1 only (``REMPART_TRUSTED_PROXIES``), where the
demo's client stands in for the insurer's reverse proxy.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import httpx
import pyotp
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console
from rich.table import Table
from sqlalchemy import select, update

from rempart.audit.models import AuditEvent
from rempart.devtools.oidc_provider import LocalProvider, log_in_at_provider
from rempart.devtools.soft_authenticator import SoftAuthenticator
from rempart.fhir.systems import INS_NIR
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Account, WebAuthnCredential

__all__ = [
    "RECEIVED_MAIL",
    "chapter_practice_software",
    "chapter_psc",
    "chapter_stolen_mailbox",
    "deliver_and_list_mail",
    "mail_folder",
    "mail_seen_so_far",
    "summarize_new_mail",
]

ATTACKER = {"X-Forwarded-For": "198.51.100.23", "User-Agent": "python-requests/2.32.3"}
PHISHING_ORIGIN = "https://ameli-pro-securite.example"


def _bearer(token: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **(extra or {})}


def _header(value: str) -> str:
    return str(make_header(decode_header(value)))


RECEIVED_MAIL = "courriels-recus"
"""The demo's local SMTP server saves what it receives here, in the demo's folder."""


def mail_folder(services: Services) -> Path:
    """Where the demo's e-mails end up: the local SMTP server's folder, or the ``.eml``
    outbox folder when no SMTP server is configured."""
    data_dir = services.settings.resolved_data_dir
    if services.settings.smtp_url is not None:
        return data_dir.parent / RECEIVED_MAIL
    return data_dir / "outbox"


def _new_mail(services: Services, seen: set[str]) -> list[Path]:
    services.outbox.deliver_pending(services.sessions, services.mail_sender)
    folder = mail_folder(services)
    fresh = (
        [p for p in sorted(folder.glob("*.eml")) if p.name not in seen] if folder.is_dir() else []
    )
    seen.update(p.name for p in fresh)
    return fresh


def mail_seen_so_far(services: Services) -> set[str]:
    """Sends what the outbox holds; the names of the e-mails so far (a chapter lists
    only its own after that)."""
    seen: set[str] = set()
    _new_mail(services, seen)
    return seen


def deliver_and_list_mail(console: Console, services: Services, seen: set[str]) -> None:
    """Sends what the outbox holds and prints the new e-mails."""
    for path in _new_mail(services, seen):
        message = message_from_bytes(path.read_bytes())
        console.print(
            f"  ✉ to {message['To']}: [italic]{_header(message['Subject'])}[/]"
            f"  ({path.relative_to(services.settings.resolved_data_dir.parent)})"
        )


def summarize_new_mail(console: Console, services: Services, seen: set[str]) -> None:
    """Sends what the outbox holds and prints the new e-mails by subject, with counts."""
    fresh = _new_mail(services, seen)
    subjects = Counter(_header(message_from_bytes(p.read_bytes())["Subject"]) for p in fresh)
    for subject, count in sorted(subjects.items()):
        console.print(f"  ✉ {count} e-mail(s): [italic]{subject}[/]")


def _password_step(http: httpx.Client, login: str, password: str, **headers: str) -> Any:
    return http.post(
        "/api/v1/auth/login", json={"login": login, "password": password}, headers=headers
    )


def totp_login(
    http: httpx.Client, login: str, password: str, code: str, headers: dict[str, str]
) -> httpx.Response:
    mfa_token = _password_step(http, login, password, **headers).json()["mfa_token"]
    return http.post(
        "/api/v1/auth/mfa/totp", json={"mfa_token": mfa_token, "code": code}, headers=headers
    )


def _key_login(
    http: httpx.Client, login: str, password: str, key: SoftAuthenticator, headers: dict[str, str]
) -> httpx.Response:
    mfa_token = _password_step(http, login, password, **headers).json()["mfa_token"]
    options = http.post(
        "/api/v1/auth/mfa/webauthn/options", json={"mfa_token": mfa_token}, headers=headers
    ).json()
    return http.post(
        "/api/v1/auth/mfa/webauthn",
        json={
            "mfa_token": mfa_token,
            "handle": options["handle"],
            "credential": key.get(options["options"]),
        },
        headers=headers,
    )


def _step_up(
    http: httpx.Client, token: str, key: SoftAuthenticator, origin: str | None = None
) -> httpx.Response:
    options = http.post("/api/v1/auth/step-up/webauthn/options", headers=_bearer(token)).json()
    return http.post(
        "/api/v1/auth/step-up/webauthn",
        json={
            "handle": options["handle"],
            "credential": key.get(options["options"], origin=origin),
        },
        headers=_bearer(token),
    )


def _next_code(totp: pyotp.TOTP) -> str:
    """The next time step's code (±1 step is accepted; a code serves once, and chapter 4
    used the current one)."""
    return totp.at(time.time() + 30)


def _said(response: httpx.Response) -> str:
    body = response.json() if response.content else {}
    if isinstance(body, dict) and "error" in body:
        return f"{response.status_code} {body['error']}"
    return str(response.status_code)


def chapter_stolen_mailbox(
    console: Console,
    services: Services,
    http: httpx.Client,
    *,
    login: str,
    password: str,
    totp: pyotp.TOTP,
    counter_session: str,
    origin: str,
    mail_seen: set[str],
) -> None:
    """The 2022 attacker holds the password and the mailbox; then phishes a TOTP code.

    ``counter_session`` is the pharmacist's password + TOTP session from chapter 4.
    """
    console.print("  [bold]The attacker has the password and the mailbox.[/]")
    console.print("  There is no 'forgot password? we e-mail you a link' in Rempart. Guessing:")
    for method, code, what in (
        ("totp", "123456", "an authenticator code"),
        ("recovery_code", "ABCD-EFGH-JKMN", "a guessed recovery code"),
    ):
        reset = http.post(
            "/api/v1/auth/password/reset",
            json={
                "login": login,
                "new_password": "j'ai ta boite mail 2022!",
                "method": method,
                "code": code,
            },
            headers=ATTACKER,
        )
        console.print(f"  POST /api/v1/auth/password/reset ({what}) → {_said(reset)}")
    guessed = totp_login(http, login, password, "654321", ATTACKER)
    console.print(f"  password ✓ then a guessed TOTP code → {_said(guessed)}")

    console.print(
        "\n  [bold]The pharmacist adds a security key[/] (a software authenticator "
        "plays the key here):"
    )
    key = SoftAuthenticator.security_key(origin=origin)
    account_id = _account_id(services, login)
    with session_scope(services.sessions) as session:
        posted = services.recovery.issue_enrolment_code(session, account_id, operator="demo")
    console.print(
        "  A first key needs a proof a mailbox thief cannot have: Pro Santé Connect, or the "
        "enrolment code the insurer posts (rempart accounts issue-enrolment-code)."
    )
    options = http.post(
        "/api/v1/auth/webauthn/register/options", headers=_bearer(counter_session)
    ).json()
    registered = http.post(
        "/api/v1/auth/webauthn/register",
        json={
            "handle": options["handle"],
            "credential": key.create(options["options"]),
            "label": "Clé du comptoir",
            "enrolment_code": posted,
        },
        headers=_bearer(counter_session),
    )
    console.print(
        f"  POST /api/v1/auth/webauthn/register with the posted code → {_said(registered)}"
    )
    deliver_and_list_mail(console, services, mail_seen)
    # The demo does not wait a day: it dates her key back past its probation.
    with session_scope(services.sessions) as session:
        session.execute(
            update(WebAuthnCredential)
            .where(WebAuthnCredential.account_id == account_id)
            .values(created_at=datetime.now(UTC) - timedelta(days=1, minutes=1))
        )
    console.print(
        "  (a day later: her key is past its 24 h probation; until then it could not "
        "answer the guard's step-up, so a key planted by an attacker gains nothing at once)"
    )
    stolen = _phished_code(
        console,
        services,
        http,
        login=login,
        password=password,
        totp=totp,
        key=key,
        mail_seen=mail_seen,
    )
    _step_up_at_the_counter(
        console,
        services,
        http,
        login=login,
        password=password,
        counter_session=counter_session,
        stolen=stolen,
        key=key,
        mail_seen=mail_seen,
    )


def _account_id(services: Services, login: str) -> str:
    with session_scope(services.sessions) as session:
        account_id = session.scalar(select(Account.account_id).where(Account.login == login))
    if account_id is None:
        raise LookupError(login)
    return account_id


def _phished_code(
    console: Console,
    services: Services,
    http: httpx.Client,
    *,
    login: str,
    password: str,
    totp: pyotp.TOTP,
    key: SoftAuthenticator,
    mail_seen: set[str],
) -> str:
    """The relayed code; returns the attacker's session token."""
    console.print(
        "\n  [bold]A phishing page relays a real TOTP code in real time[/] "
        "(from 198.51.100.23, python-requests)."
    )
    relayed = _next_code(totp)
    services.auth.new_origin_requires_phishing_resistant = True
    refused = totp_login(http, login, password, relayed, ATTACKER)
    services.auth.new_origin_requires_phishing_resistant = False
    console.print(
        "  with REMPART_NEW_ORIGIN_REQUIRES_PHISHING_RESISTANT=true, a network never seen "
        f"for the account must use the key → {_said(refused)}"
    )
    phished = totp_login(http, login, password, relayed, ATTACKER)
    stolen: str = phished.json()["access_token"]
    console.print(
        f"  with the default (notify only) → {_said(phished)}: a 'password+totp' session, "
        "and the pharmacist is told at once:"
    )
    deliver_and_list_mail(console, services, mail_seen)
    planted = http.post("/api/v1/auth/webauthn/register/options", headers=_bearer(stolen))
    console.print(f"  the attacker tries to add a key of his own → {_said(planted)}")
    console.print(f"    WWW-Authenticate: {planted.headers['www-authenticate']}")
    # Credential ids are not secret: the attacker presents the pharmacist's key id,
    # signed with a key of his own.
    victim_id, victim = next(iter(key.credentials.items()))
    impostor = SoftAuthenticator.security_key(origin=key.origin)
    impostor.credentials[victim_id] = replace(
        victim, private_key=ec.generate_private_key(ec.SECP256R1())
    )
    own_key = _step_up(http, stolen, impostor)
    console.print(f"  step-up with a key of his own (claiming hers) → {_said(own_key)}")
    through_phish = _step_up(http, stolen, key, origin=PHISHING_ORIGIN)
    console.print(
        f"  the pharmacist's real key, used through the phishing site → {_said(through_phish)} "
        "(the key signs the origin it was used on)"
    )
    return stolen


def _step_up_at_the_counter(
    console: Console,
    services: Services,
    http: httpx.Client,
    *,
    login: str,
    password: str,
    counter_session: str,
    stolen: str,
    key: SoftAuthenticator,
    mail_seen: set[str],
) -> None:
    console.print(
        "\n  [bold]At her counter, the pharmacist asks for new recovery codes[/] "
        "(a password + TOTP session cannot: it needs her established key, Pro Santé Connect "
        "or a posted code):"
    )
    first = http.post("/api/v1/auth/recovery-codes", headers=_bearer(counter_session))
    console.print(f"  with her password + TOTP session → {_said(first)}")
    stepped = _step_up(http, counter_session, key)
    console.print(f"  step-up with her key → {_said(stepped)} (a new session replaces the old)")
    strong = stepped.json()["access_token"]
    retry = http.post("/api/v1/auth/recovery-codes", headers=_bearer(strong))
    console.print(
        f"  the same request again → {_said(retry)}: {len(retry.json()['codes'])} single-use "
        "recovery codes, shown once, kept as keyed hashes"
    )
    console.print("\n  [bold]She ends every session[/], the attacker's included:")
    ended = http.post("/api/v1/auth/sessions/revoke-all", headers=_bearer(strong))
    after = http.get("/api/v1/auth/sessions", headers=_bearer(stolen, ATTACKER))
    console.print(
        f"  POST /api/v1/auth/sessions/revoke-all → {_said(ended)}; "
        f"the stolen session → {_said(after)}"
    )
    services.auth.new_origin_requires_phishing_resistant = True
    travelling = _key_login(
        http, login, password, key, {"X-Forwarded-For": "192.0.2.78", "User-Agent": "Firefox/128"}
    )
    services.auth.new_origin_requires_phishing_resistant = False
    console.print(
        f"  travelling, on a network never seen, with her key (hardened setting) → "
        f"{_said(travelling)}"
    )
    deliver_and_list_mail(console, services, mail_seen)


def chapter_psc(
    console: Console,
    services: Services,
    http: httpx.Client,
    *,
    provider: LocalProvider | None,
    account: str | None,
    nir: str,
    birth_date: str,
) -> None:
    """A doctor logs in with Pro Santé Connect (a local OpenID Connect provider)."""
    if provider is None or account is None:
        console.print(
            "  [yellow]skipped:[/] the local OpenID Connect provider needs Node.js "
            "and `make oidc-provider`."
        )
        return
    console.print(
        f"  provider: npm's oidc-provider at {provider.issuer} (discovery from "
        "REMPART_PSC_DISCOVERY_URL)"
    )
    start = http.get("/api/v1/auth/psc/start", headers={"Accept": "application/json"})
    url = start.json()["authorization_url"]
    shown = url.split("?")[0]
    console.print(
        f"  GET /api/v1/auth/psc/start → {start.status_code}, to {shown} with "
        "state, nonce and a PKCE challenge"
    )
    answer = log_in_at_provider(url, account)
    callback = http.get("/api/v1/auth/psc/callback", params=answer)
    token = callback.json()["access_token"]
    acr = services.auth.access_tokens.check_access(token).acr
    console.print(
        f"  the doctor logs in at the provider with the CPS card; callback → "
        f"{callback.status_code}, level '{acr}'"
    )
    lookup = http.post(
        "/api/v1/rights/lookup", json={"nir": nir, "birth_date": birth_date}, headers=_bearer(token)
    )
    console.print(f"  a rights lookup with that session → {lookup.status_code}")
    replay = http.get("/api/v1/auth/psc/callback", params=answer)
    console.print(f"  the same callback replayed → {replay.status_code} {replay.json()['error']}")
    table = Table("checked on every PSC login")
    for line in (
        "ID token signature against the provider's JWKS",
        "issuer, audience, expiry",
        "nonce (single use, kept server-side)",
        "acr ≥ eidas1",
        "the RPPS in SubjectNameID matches an account",
    ):
        table.add_row(line)
    console.print(table)


def psc_provider_config(
    client_id: str, client_secret: str, redirect_uri: str, rpps: str
) -> dict[str, Any]:
    return {
        "clients": [
            {
                "client_id": client_id,
                "client_secret": client_secret,
                "redirect_uris": [redirect_uri],
            },
        ],
        "accounts": [
            {
                "id": "docteur-carte",
                "acr": "eidas1",
                "amr": ["sc", "pin"],
                "claims": {"SubjectNameID": f"8{rpps}", "family_name": "Médecin"},
            },
        ],
        "id_token_ttl": 300,
    }


def chapter_practice_software(
    console: Console,
    services: Services,
    http: httpx.Client,
    *,
    organization_id: str | None,
    acting_account: str,
    outsider_account: str,
    nir: str,
    birth_date: str,
) -> None:
    """The pharmacy's software looks rights up for the pharmacist at the counter."""
    if organization_id is None:
        console.print("  [yellow]skipped:[/] the demo pharmacist belongs to no organization")
        return
    with session_scope(services.sessions) as session:
        created = services.clients.create(
            session, organization_id=organization_id, label="Logiciel d'officine"
        )
    console.print(
        f"  rempart clients create --organization {organization_id} → client "
        f"{created.client_id} (the secret is shown once, stored as a keyed hash)"
    )
    issued = http.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(created.client_id, created.client_secret),
    )
    token = issued.json()["access_token"]
    console.print(
        f"  POST /api/v1/oauth/token (client_credentials, HTTP Basic) → {_said(issued)}, "
        f"valid {issued.json()['expires_in']} s"
    )
    for who, account in (
        ("the pharmacist at the counter", acting_account),
        ("a doctor of another practice", outsider_account),
    ):
        response = http.post(
            "/api/v1/rights/lookup",
            json={"nir": nir, "birth_date": birth_date},
            headers=_bearer(token, {"X-Acting-Professional": account}),
        )
        console.print(f"  lookup acting as {who} → {_said(response)}")
    wrong = http.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(created.client_id, "not-the-secret"),
    )
    console.print(f"  a wrong secret → {_said(wrong)}")
    _fhir_facade(
        console,
        services,
        http,
        token=token,
        acting_account=acting_account,
        nir=nir,
        birth_date=birth_date,
    )


def _fhir_facade(
    console: Console,
    services: Services,
    http: httpx.Client,
    *,
    token: str,
    acting_account: str,
    nir: str,
    birth_date: str,
) -> None:
    """The same software speaking FHIR R4 (FR Core, INS): the same lookup, the same guard,
    the same audit entry, with the channel ``fhir``."""
    headers = _bearer(
        token,
        {
            "X-Acting-Professional": acting_account,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    metadata = http.get("/fhir/metadata")
    kinds = [r["type"] for r in metadata.json()["rest"][0]["resource"]]
    console.print(f"  GET /fhir/metadata → {metadata.status_code}, searches: {', '.join(kinds)}")
    response = http.post(
        "/fhir/Coverage/_search",
        content=(
            f"beneficiary.identifier={INS_NIR}|{nir}&birthdate={birth_date}"
            "&_include=Coverage:beneficiary&_include=Patient:general-practitioner"
        ),
        headers=headers,
    )
    bundle = response.json()
    found = [e["resource"] for e in bundle.get("entry", [])]
    rights = [c["type"]["text"] for c in found if c["resourceType"] == "Coverage"]
    others = sorted({r["resourceType"] for r in found} - {"Coverage"})
    console.print(
        f"  POST /fhir/Coverage/_search (a form: INS-NIR and birth date, _include the "
        f"Patient and the treating doctor) → {response.status_code} "
        f"{response.headers['content-type']}: {bundle.get('total')} Coverage(s) "
        f"({'; '.join(rights)}), and {', '.join(others)}"
        + ("" if "Practitioner" in others else " (no treating doctor declared)")
    )
    by_get = http.get("/fhir/Patient", headers=_bearer(token, {}))
    code = by_get.json()["issue"][0]["details"]["coding"][0]["code"]
    console.print(
        f"  GET /fhir/Patient?identifier=… → {by_get.status_code} OperationOutcome {code} "
        "(a NIR never travels in a URL)"
    )
    with session_scope(services.sessions) as session:
        entry = session.execute(
            select(AuditEvent.channel, AuditEvent.categories, AuditEvent.decision)
            .where(AuditEvent.event == "lookup")
            .order_by(AuditEvent.ts_us.desc())
            .limit(1)
        ).one()
    console.print(
        f"  its audit entry: channel {entry.channel}, categories {entry.categories}, "
        f"guard {entry.decision or '-'} (as any lookup: the scoping counts it alike)"
    )
