"""The demo's guard chapters: inline against a robot over HTTP, offline on the world."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow.compute as pc
import pyotp
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from rempart.auth.compromise import compromise_start
from rempart.demo.login import deliver_and_list_mail, totp_login
from rempart.guard.alerts import list_alerts
from rempart.guard.replay import replay_world
from rempart.guard.scoring import score_decisions
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.world.io import read_table

__all__ = ["chapter_guard_inline", "chapter_guard_replay"]

ROBOT = {"X-Forwarded-For": "198.51.100.99", "User-Agent": "python-requests/2.32.3"}
COUNTER = {"X-Forwarded-For": "203.0.113.20", "User-Agent": "LGPI/3.9.2 (Pharmagest)"}
ROBOT_LOOKUPS = 25
_PASSWORD = "preparateur du port, reserve 3 !"  # noqa: S105 - the demo's throwaway account


def _login(http: httpx.Client, login: str, code: str, headers: dict[str, str]) -> str:
    response = totp_login(http, login, _PASSWORD, code, headers)
    response.raise_for_status()
    return str(response.json()["access_token"])


def _lookup(
    http: httpx.Client, token: str, person: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    return http.post(
        "/api/v1/rights/lookup",
        json={"nir": person["nir"], "birth_date": person["birth_date"].isoformat()},
        headers={"Authorization": f"Bearer {token}", **headers},
    )


def chapter_guard_inline(
    console: Console,
    services: Services,
    http: httpx.Client,
    *,
    world_dir: Path,
    organization_id: str,
    busy_account: str,
) -> None:
    """A colleague's password leaked and a TOTP code is relayed: the robot that logs in
    reads strangers fast and is contained within a handful, the account suspended, an
    alert stored, the colleague told; an operator restores the account."""
    professionals = read_table(world_dir, "professionals")
    colleagues = professionals.filter(
        pc.and_(
            pc.equal(professionals.column("organization_id"), organization_id),
            pc.not_equal(professionals.column("account_id"), busy_account),
        )
    )
    account_id = str(colleagues.column("account_id")[0])
    with session_scope(services.sessions) as session:
        created = services.auth.create_account(
            session,
            login="preparateur.du.port",
            password=_PASSWORD,
            profession="pharmacie",
            account_id=account_id,
            email="preparateur.du.port@officine.example",
        )
    totp = pyotp.TOTP(pyotp.parse_uri(created.otpauth_uri).secret)
    # Earlier chapters' mail is theirs: only this chapter's is listed below.
    services.outbox.deliver_pending(services.sessions, services.mail_sender)
    outbox = services.settings.resolved_data_dir / "outbox"
    mail_seen = {p.name for p in outbox.glob("*.eml")} if outbox.is_dir() else set()
    care = read_table(world_dir, "care", ["account_id", "nir"])
    members = professionals.filter(
        pc.equal(professionals.column("organization_id"), organization_id)
    ).column("account_id")
    own = pc.unique(
        care.filter(pc.is_in(care.column("account_id"), value_set=members.combine_chunks()))
        .column("nir")
        .combine_chunks()
    )
    insured = read_table(world_dir, "insured", ["nir", "birth_date", "department"])
    customers = insured.filter(pc.is_in(insured.column("nir"), value_set=own)).slice(0, 2)
    strangers = insured.filter(pc.invert(pc.is_in(insured.column("nir"), value_set=own)))
    strangers = strangers.take(list(range(0, strangers.num_rows, 97))[:ROBOT_LOOKUPS])

    console.print(
        f"  A colleague at the same pharmacy, account [bold]{account_id}[/] "
        f"({created.login}), reads two customers at the counter:"
    )
    counter = _login(http, created.login, totp.now(), COUNTER)
    for person in customers.to_pylist():
        response = _lookup(http, counter, person, COUNTER)
        console.print(f"    a customer → {response.status_code}")
    console.print(
        "  Then the colleague's leaked password and a relayed TOTP code log a robot in "
        f"(from {ROBOT['X-Forwarded-For']}, python-requests). It reads strangers, fast:"
    )
    robot = _login(http, created.login, totp.at(_next_step()), ROBOT)
    outcomes: list[str] = []
    challenge = ""
    for n, person in enumerate(strangers.to_pylist(), start=1):
        response = _lookup(http, robot, person, ROBOT)
        if response.status_code == 200:
            outcomes.append(f"#{n} 200")
        elif response.status_code == 401:
            challenge = challenge or response.headers.get("www-authenticate", "")
            outcomes.append(f"#{n} 401")
        else:
            outcomes.append(f"#{n} {response.status_code} {response.json().get('error', '')}")
            if response.status_code == 403:
                break
    console.print("    " + ", ".join(outcomes))
    read = sum(o.endswith(" 200") for o in outcomes)
    console.print(
        f"  {read} stranger(s) read before the guard asked for a phishing-resistant login "
        "(which a robot holding a password and a relayed code cannot give); it kept "
        "trying, so the account was suspended and every session of it ended."
    )
    if challenge:
        console.print(f"    WWW-Authenticate: {challenge}")
    with session_scope(services.sessions) as session:
        alerts = list_alerts(session, account_id=account_id, limit=5)
    for alert in alerts:
        console.print(
            f"  rempart guard alerts → #{alert.alert_id} {alert.status} {alert.account_id} "
            f"{alert.decision} {','.join(alert.reasons)}"
        )
    deliver_and_list_mail(console, services, mail_seen)
    with session_scope(services.sessions) as session, Session(services.audit_engine) as audit:
        start = compromise_start(session, audit, account_id)
        report = services.recovery.restore_account(
            session, account_id, operator="demo-operator", since=start.at
        )
    console.print(
        "  An operator checks and restores the account (rempart accounts restore): the "
        f"compromise is taken to begin at {report.since:%H:%M:%S} ({start.evidence}); "
        f"{len(report.keys_removed)} key(s) and {report.recovery_codes_removed} recovery "
        f"code(s) added since are removed, {report.sessions_ended} session(s) ended, "
        f"{report.networks_forgotten} network(s) or device(s) forgotten; the leaked password "
        "and the phished TOTP seed no longer log in. A reset code and a new TOTP seed go "
        "to the pharmacy by post."
    )
    retry = http.post(
        "/api/v1/auth/login", json={"login": created.login, "password": _PASSWORD}, headers=ROBOT
    )
    console.print(
        f"  The robot tries the leaked password again → {retry.status_code} "
        f"{retry.json().get('error', '')}"
    )


def _next_step() -> float:
    """The next TOTP time step: a code serves once, and ±1 step is accepted."""
    return time.time() + 30


def chapter_guard_replay(console: Console, world_dir: Path) -> None:
    """The same engine offline: the world's 28 days replayed and scored."""
    with tempfile.TemporaryDirectory(prefix="rempart-demo-replay-") as tmp:
        out = Path(tmp) / "decisions.parquet"
        summary = replay_world(world_dir, out)
        score = score_decisions(world_dir, out)
    console.print(
        f"  rempart guard replay: {summary.lookups:,} lookups and {summary.claims:,} claims in "
        f"time order, {summary.lookups / summary.seconds:,.0f} lookups/s; the world's "
        "labels (never read by the guard) then score the decisions:"
    )
    table = Table("attack family", "accounts", "median exposure", "max exposure", "contained")
    for family in score.families.values():
        table.add_row(
            family.family,
            str(family.accounts),
            f"{family.median_exposure:g}",
            str(family.max_exposure),
            f"{family.contained:.0%}",
        )
    console.print(table)
    console.print(
        f"  honest professionals: {score.friction_uncompromised:.2%} of account-days with a "
        f"step-up, {score.blocks_uncompromised:.2%} with a deny (outside compromise; "
        f"{score.uncompromised_days:,} account-days). Exposure: distinct people read before "
        "containment. In 2022 each account read about 27,000."
    )
