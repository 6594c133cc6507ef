"""Benchmark: what each kind of attacker can read, played over real HTTP (issue 10).

Generates a world, loads it into SQLite, starts ``rempart``'s app under uvicorn on
127.0.0.1 (the insurer's reverse proxy is 127.0.0.1: ``REMPART_TRUSTED_PROXIES``)
and plays, each on an account of its own, the attackers of ``docs/security.md``:

- **password only** (a leaked password, the mailbox too): guesses TOTP codes from
  rotating addresses, tries a password reset with a code, then with nothing;
- **password + one relayed TOTP code** (real-time phishing): logs in from his own
  network, tries to enrol his own key, mint recovery codes and change the password,
  then lets a robot read strangers at machine speed;
- **a stolen session** (the owner's bearer token) used from another network and device;
- **a stolen session with the owner's address forged** in ``X-Forwarded-For``,
  connecting from outside the trusted proxy (127.0.0.2);
- **practice-software credentials** of a pharmacy, acting in turn for each of its
  professionals.

The owner of each professional account first reads two of the pharmacy's customers
from its counter, so the account has a place of its own; the guard starts cold (no
history: a fresh deployment), which is the harshest start for the owner and not the
kindest for the attacker (the replay's figures, with history, are in section
``guard``). A record read is a distinct existing person answered ``200``. Publishes
section ``takeover`` of docs/benchmarks.md.

    .venv/bin/python -m bench.bench_takeover [--insured N] [--professionals N]
        [--seeds 11,12,13] [--attempts N] [--no-write]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyotp

from bench.report import publish
from rempart.api import create_app
from rempart.api.server import running_server
from rempart.config import load_settings
from rempart.devtools.soft_authenticator import SoftAuthenticator
from rempart.logs import configure_logging
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.load_world import load_world
from rempart.store.migrate import upgrade
from rempart.store.models import Account
from rempart.world.generator import generate_world
from rempart.world.io import read_table

PASSWORD = "une phrase de passe longue et rare 7"  # noqa: S105 - a throwaway benchmark account
COUNTER_UA = "LGPI/3.9.2 (Pharmagest)"
ROBOT_UA = "python-requests/2.32.3"
ATTACKER_IP = "198.51.100.99"
WEBAUTHN_ORIGIN = "http://localhost:8000"  # the relying party's origin in the settings


@dataclass
class Outcome:
    attacker: str
    records: int = 0
    tried: int = 0
    ended: str = "-"
    escalations: list[str] = field(default_factory=list)


@dataclass
class Pharmacy:
    organization_id: str
    accounts: list[str]
    counter_ip: str
    customers: list[dict[str, Any]]
    strangers: list[dict[str, Any]]


def _pharmacies(world: Path, wanted: int) -> list[Pharmacy]:
    """Pharmacies with at least two accounts: their customers (care links) and
    strangers (people of another department, never linked to them)."""
    professionals = read_table(world, "professionals").to_pylist()
    care = read_table(world, "care", ["account_id", "nir"])
    insured = read_table(world, "insured", ["nir", "birth_date", "department"])
    by_org: dict[str, list[dict[str, Any]]] = {}
    for row in professionals:
        if row["profession"] == "pharmacie" and row["organization_id"]:
            by_org.setdefault(row["organization_id"], []).append(row)
    found: list[Pharmacy] = []
    for n, (org, members) in enumerate(sorted(by_org.items())):
        if len(members) < 2:
            continue
        ids = [m["account_id"] for m in members]
        own = care.filter(pc.is_in(care.column("account_id"), value_set=pa.array(ids)))
        own_nirs = pc.unique(own.column("nir").combine_chunks())
        customers = insured.filter(pc.is_in(insured.column("nir"), value_set=own_nirs))
        department = members[0]["department"]
        strangers = insured.filter(
            pc.and_(
                pc.invert(pc.is_in(insured.column("nir"), value_set=own_nirs)),
                pc.not_equal(insured.column("department"), department),
            )
        )
        if customers.num_rows < 20 or strangers.num_rows < 200:
            continue
        picked = list(range(0, strangers.num_rows, max(1, strangers.num_rows // 200)))[:200]
        found.append(
            Pharmacy(
                organization_id=org,
                accounts=ids,
                counter_ip=f"203.0.113.{10 + n % 200}",
                customers=customers.slice(0, 200).to_pylist(),
                strangers=strangers.take(picked).to_pylist(),
            )
        )
        if len(found) == wanted:
            break
    if len(found) < wanted:
        raise SystemExit(f"the world has only {len(found)} pharmacies with two accounts")
    return found


def _create(services: Services, account_id: str) -> pyotp.TOTP:
    with session_scope(services.sessions) as session:
        created = services.auth.create_account(
            session,
            login=f"bench.{account_id}".replace("_", "-")[:60],
            password=PASSWORD,
            profession="pharmacie",
            account_id=account_id,
            email=f"{account_id}@officine.example",
        )
    return pyotp.TOTP(pyotp.parse_uri(created.otpauth_uri).secret)


def _origin(ip: str, ua: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip, "User-Agent": ua}


def _bearer(token: str, origin: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **origin}


def _login(
    http: httpx.Client, login: str, code: str, origin: dict[str, str]
) -> tuple[httpx.Response, str]:
    first = http.post(
        "/api/v1/auth/login", json={"login": login, "password": PASSWORD}, headers=origin
    )
    first.raise_for_status()
    mfa_token = str(first.json()["mfa_token"])
    second = http.post(
        "/api/v1/auth/mfa/totp", json={"mfa_token": mfa_token, "code": code}, headers=origin
    )
    return second, mfa_token


def _token(http: httpx.Client, login: str, code: str, origin: dict[str, str]) -> str:
    response, _ = _login(http, login, code, origin)
    response.raise_for_status()
    return str(response.json()["access_token"])


def _lookup(http: httpx.Client, headers: dict[str, str], person: dict[str, Any]) -> httpx.Response:
    return http.post(
        "/api/v1/rights/lookup",
        json={"nir": person["nir"], "birth_date": person["birth_date"].isoformat()},
        headers=headers,
    )


def _robot_reads(
    outcome: Outcome,
    http: httpx.Client,
    strangers: list[dict[str, Any]],
    headers_for: Iterator[dict[str, str]],
    attempts: int,
) -> None:
    """A robot reading strangers at machine speed until refused for good (403) or
    ``attempts`` lookups: a step-up (401) does not stop it, it keeps trying."""
    read: set[str] = set()
    first_step_up = 0
    for n, person in enumerate(strangers[:attempts], start=1):
        response = _lookup(http, next(headers_for), person)
        outcome.tried = n
        if response.status_code == 200:
            read.add(person["nir"])
        elif response.status_code == 401 and not first_step_up:
            first_step_up = n
        elif response.status_code == 403:
            outcome.ended = f"{response.json()['error']} at lookup {n}"
            break
    else:
        outcome.ended = f"stopped after {outcome.tried} lookups"
    if first_step_up:
        outcome.ended = f"step-up from lookup {first_step_up}; {outcome.ended}"
    outcome.records = len(read)


def _owner_at_counter(
    http: httpx.Client, services: Services, pharmacy: Pharmacy, account_id: str
) -> tuple[str, pyotp.TOTP, str]:
    """The owner's account, and its first working minutes at the counter."""
    totp = _create(services, account_id)
    login = f"bench.{account_id}".replace("_", "-")[:60]
    counter = _origin(pharmacy.counter_ip, COUNTER_UA)
    token = _token(http, login, totp.now(), counter)
    for person in pharmacy.customers[:2]:
        _lookup(http, _bearer(token, counter), person).raise_for_status()
    return login, totp, token


def _next_code(totp: pyotp.TOTP) -> str:
    return totp.at(time.time() + 30)  # a code serves once; the next step is accepted


def _said(response: httpx.Response) -> str:
    try:
        return f"{response.status_code} {response.json().get('error', 'ok')}"
    except ValueError:
        return str(response.status_code)


def _plant_key(http: httpx.Client, headers: dict[str, str]) -> httpx.Response:
    """The attacker registers a security key of his own (a software authenticator)."""
    options = http.post("/api/v1/auth/webauthn/register/options", json={}, headers=headers)
    if options.status_code != 200:
        return options
    key = SoftAuthenticator.security_key(origin=WEBAUTHN_ORIGIN)
    body = {
        "handle": options.json()["handle"],
        "credential": key.create(options.json()["options"]),
        "label": "Clé",
    }
    return http.post("/api/v1/auth/webauthn/register", json=body, headers=headers)


def password_only(http: httpx.Client, services: Services, pharmacy: Pharmacy) -> Outcome:
    outcome = Outcome("password (and mailbox) only")
    login, _totp, _ = _owner_at_counter(http, services, pharmacy, pharmacy.accounts[0])
    guesses = 0
    for n in range(40):
        origin = _origin(f"198.18.{n}.7", ROBOT_UA)
        first = http.post(
            "/api/v1/auth/login", json={"login": login, "password": PASSWORD}, headers=origin
        )
        if first.status_code != 200:
            outcome.escalations.append(f"guess #{n + 1}: password step {_said(first)}")
            break
        if "totp" not in first.json()["methods"]:
            methods = ", ".join(first.json()["methods"]) or "none (the account has no key)"
            outcome.escalations.append(f"then the password step offers only: {methods}")
            break
        answer = http.post(
            "/api/v1/auth/mfa/totp",
            json={"mfa_token": first.json()["mfa_token"], "code": f"{n:06d}"},
            headers=origin,
        )
        guesses += 1
        if answer.status_code not in (401,) or answer.json()["error"] != "invalid_mfa_code":
            outcome.escalations.append(f"guess #{n + 1}: {_said(answer)}")
            break
    outcome.escalations.insert(0, f"{guesses} TOTP guesses checked from 40 addresses")
    reset = http.post(
        "/api/v1/auth/password/reset",
        json={
            "login": login,
            "new_password": "mot de passe de l attaquant 99",
            "method": "totp",
            "code": "123456",
        },
        headers=_origin(ATTACKER_IP, ROBOT_UA),
    )
    outcome.escalations.append(f"password reset with a TOTP code: {_said(reset)}")
    outcome.ended = "no session"
    return outcome


def relayed_code(
    http: httpx.Client, services: Services, pharmacy: Pharmacy, attempts: int
) -> Outcome:
    outcome = Outcome("password + one relayed TOTP code")
    login, totp, _ = _owner_at_counter(http, services, pharmacy, pharmacy.accounts[1])
    robot = _origin(ATTACKER_IP, ROBOT_UA)
    response, mfa_token = _login(http, login, _next_code(totp), robot)
    response.raise_for_status()
    token = str(response.json()["access_token"])
    reuse = http.post(
        "/api/v1/auth/mfa/totp", json={"mfa_token": mfa_token, "code": totp.now()}, headers=robot
    )
    outcome.escalations.append(f"MFA token used again: {_said(reuse)}")
    headers = _bearer(token, robot)
    outcome.escalations.append(f"enrol his own key: {_said(_plant_key(http, headers))}")
    codes = http.post("/api/v1/auth/recovery-codes", headers=headers)
    outcome.escalations.append(f"mint recovery codes: {_said(codes)}")
    change = http.post(
        "/api/v1/auth/password/change",
        json={"current_password": PASSWORD, "new_password": "mot de passe de l attaquant 99"},
        headers=headers,
    )
    outcome.escalations.append(f"change the password: {_said(change)}")
    _robot_reads(outcome, http, pharmacy.strangers, itertools.repeat(headers), attempts)
    return outcome


def relayed_code_own_patients(
    http: httpx.Client, services: Services, pharmacy: Pharmacy, attempts: int
) -> Outcome:
    """The same attacker, reading the pharmacy's own customers (care links): lookups
    the guard finds explained, the hardest case for it."""
    outcome = Outcome("password + one relayed TOTP code, reading the pharmacy's own customers")
    login, totp, _ = _owner_at_counter(http, services, pharmacy, pharmacy.accounts[1])
    robot = _origin(ATTACKER_IP, ROBOT_UA)
    token = _token(http, login, _next_code(totp), robot)
    _robot_reads(
        outcome, http, pharmacy.customers[2:], itertools.repeat(_bearer(token, robot)), attempts
    )
    return outcome


def stolen_session(
    http: httpx.Client,
    services: Services,
    pharmacy: Pharmacy,
    attempts: int,
    *,
    forged: httpx.Client | None = None,
) -> Outcome:
    name = "stolen session, owner's address forged" if forged else "stolen session"
    outcome = Outcome(name)
    account = pharmacy.accounts[0]
    _, _, token = _owner_at_counter(http, services, pharmacy, account)
    if forged is not None:
        # Straight to the service, not through the proxy, claiming the counter's
        # address and device: the service must see the real peer.
        origin = _origin(pharmacy.counter_ip, COUNTER_UA)
        reader = forged
    else:
        origin = _origin(ATTACKER_IP, ROBOT_UA)
        reader = http
    _robot_reads(
        outcome, reader, pharmacy.strangers, itertools.repeat(_bearer(token, origin)), attempts
    )
    return outcome


def practice_software(
    http: httpx.Client, services: Services, pharmacy: Pharmacy, attempts: int
) -> Outcome:
    outcome = Outcome(f"practice-software credentials ({len(pharmacy.accounts)} professionals)")
    for account in pharmacy.accounts:
        _create(services, account)
    with session_scope(services.sessions) as session:
        creds = services.clients.create(session, organization_id=pharmacy.organization_id)
    answer = http.post(
        "/api/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
        },
        headers=_origin(ATTACKER_IP, ROBOT_UA),
    )
    answer.raise_for_status()
    token = str(answer.json()["access_token"])
    robot = _origin(ATTACKER_IP, ROBOT_UA)
    acting = itertools.cycle(
        {"X-Acting-Professional": account, **_bearer(token, robot)} for account in pharmacy.accounts
    )
    _robot_reads(outcome, http, pharmacy.strangers, acting, attempts)
    again = http.post(
        "/api/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
        },
        headers=robot,
    )
    outcome.escalations.append(f"a new token afterwards: {_said(again)}")
    with session_scope(services.sessions) as session:
        statuses = [session.get(Account, a) for a in pharmacy.accounts]
        suspended = sum(1 for a in statuses if a is not None and a.status != "active")
    outcome.escalations.append(f"professional accounts suspended: {suspended}")
    return outcome


def play(args: argparse.Namespace, seed: int) -> list[Outcome]:
    """Every attacker once, on a world of its own seed."""
    with tempfile.TemporaryDirectory(prefix="rempart-bench-takeover-") as tmp_name:
        tmp = Path(tmp_name)
        world = tmp / "world"
        generate_world(
            world,
            insured=args.insured,
            professionals=args.professionals,
            days=7,
            seed=seed,
            attacks=[],
        )
        settings = load_settings(
            database_url=f"sqlite:///{tmp / 'rempart.db'}",
            data_dir=tmp / "data",
            trusted_proxies="127.0.0.1",
            webauthn_rp_id="localhost",
            webauthn_origins=[WEBAUTHN_ORIGIN],
        )
        services = Services(settings)
        upgrade(services.engine, schema="data")
        upgrade(services.audit_engine, schema="audit")
        load_world(services.engine, world, pseudonym_key=services.settings.keys.pseudonym_key)
        # The biggest pharmacy for the practice software: the most professionals to name.
        pharmacies = sorted(_pharmacies(world, 6), key=lambda p: -len(p.accounts))
        outcomes: list[Outcome] = []
        with (
            running_server(create_app(services=services)) as base,
            httpx.Client(base_url=base, timeout=30) as http,
            httpx.Client(
                base_url=base,
                timeout=30,
                # Straight to the service from outside the trusted proxy (127.0.0.1).
                transport=httpx.HTTPTransport(local_address="127.0.0.2"),
            ) as forged,
        ):
            outcomes.append(password_only(http, services, pharmacies[5]))
            outcomes.append(relayed_code(http, services, pharmacies[1], args.attempts))
            outcomes.append(relayed_code_own_patients(http, services, pharmacies[4], args.attempts))
            outcomes.append(stolen_session(http, services, pharmacies[2], args.attempts))
            outcomes.append(
                stolen_session(http, services, pharmacies[3], args.attempts, forged=forged)
            )
            outcomes.append(practice_software(http, services, pharmacies[0], args.attempts))
        services.close()
    return outcomes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--insured", type=int, default=20_000)
    parser.add_argument("--professionals", type=int, default=300)
    parser.add_argument("--seeds", default="11,12,13", help="one world per seed")
    parser.add_argument("--attempts", type=int, default=150, help="lookups a robot tries at most")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("warning")
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = [play(args, seed) for seed in seeds]
    lines = [
        "## What each attacker can read (issue 10, played over HTTP)",
        "",
        f"`.venv/bin/python -m bench.bench_takeover` — one world per seed ({args.seeds}) of "
        f"{args.insured:,} insured and {args.professionals} professionals, SQLite, the app "
        "under uvicorn on 127.0.0.1 behind a trusted proxy (127.0.0.1), the guard cold (no "
        "history: a fresh deployment). Each attacker on an account (or a pharmacy) of its "
        "own whose owner has read two customers at the counter; a robot tries up to "
        f"{args.attempts} persons at machine speed and keeps going after a step-up. Records: "
        "distinct existing persons answered 200. How it ended and what else it tried: on "
        f"the first seed ({seeds[0]}).",
        "",
        "| attacker | records read, per seed | most | how it ended | what else it tried |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in zip(*runs, strict=True):
        first = row[0]
        per_seed = " / ".join(str(o.records) for o in row)
        lines.append(
            f"| {first.attacker} | {per_seed} | {max(o.records for o in row)} | {first.ended} | "
            f"{'; '.join(first.escalations) or '-'} |"
        )
    publish("takeover", "\n".join(lines), dry_run=args.no_write)


if __name__ == "__main__":
    main()
