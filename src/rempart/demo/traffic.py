"""The demo's traffic chapter: a working day of honest lookups replayed over real HTTP,
with a 2022-style robot mixed in on several pharmacy accounts.

A few dozen professionals of the world get accounts (password + TOTP) and send their
own lookups of their own patients — the world's honest lookups of one evaluation day
whose person is care-linked to the professional's unit — in time order, the day
compressed into about half a minute. Three pharmacies' passwords have leaked: a robot
logs in to each from one remote network with a TOTP code relayed by a phishing page
and reads strangers at machine speed, as in 2022. Nothing here talks to the guard
directly: every decision is the live service's answer to an HTTP request.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyotp
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from rempart.auth.compromise import compromise_start
from rempart.demo.login import mail_seen_so_far, summarize_new_mail, totp_login
from rempart.guard.alerts import Alert, list_alerts
from rempart.progress import ProgressFn, progress_bar
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.world.io import read_table

__all__ = ["RobotRun", "TrafficReport", "chapter_traffic"]

HONEST_ACCOUNTS = 36
"""Professionals replayed: each account costs two argon2 hashes (create, log in)."""
PER_ACCOUNT = 8
ATTACKED = 3
ROBOT_LIST = 120
"""Strangers on the robot's list, per account (in 2022: about 27,000 per account)."""
REPLAY_SECONDS = 30.0
ROBOT_GAP = 0.005
ROBOT = {"X-Forwarded-For": "198.51.100.99", "User-Agent": "python-requests/2.32.3"}
PASSWORD = "une journee ordinaire au comptoir, mars 2025 !"  # noqa: S105 - demo accounts


@dataclass
class _Actor:
    account_id: str
    attacked: bool
    login: str
    headers: dict[str, str]
    totp: pyotp.TOTP
    token: str = ""


@dataclass
class RobotRun:
    """One attacked account: what the robot asked for and what it got."""

    account_id: str
    login: str
    people: list[dict[str, Any]]
    asked: int = 0
    read: set[str] = field(default_factory=set)
    refused: Counter[str] = field(default_factory=Counter)
    suspended_at: int | None = None
    """The robot's request number answered ``403 account_suspended`` first."""


@dataclass
class TrafficReport:
    honest_accounts: int
    honest: Counter[str]
    """Outcomes of the honest lookups of accounts the robot never touched."""
    pharmacists: Counter[str]
    """Outcomes of the honest lookups of the attacked pharmacies' own staff."""
    robots: list[RobotRun]
    alert_ids: list[int]
    honest_alerts: int


@dataclass(frozen=True)
class _Event:
    at: float
    seq: int
    actor: _Actor | None
    robot: RobotRun | None
    person: dict[str, Any] | None


def _day_plan(
    world_dir: Path, exclude: set[str]
) -> tuple[date, dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    """The busiest evaluation day's honest, care-linked lookups of the chosen accounts."""
    professionals = {p["account_id"]: p for p in read_table(world_dir, "professionals").to_pylist()}
    unit = {a: p["organization_id"] or a for a, p in professionals.items()}
    care = read_table(world_dir, "care", ["account_id", "nir"])
    linked = {
        (unit[a], n)
        for a, n in zip(
            care.column("account_id").to_pylist(), care.column("nir").to_pylist(), strict=True
        )
    }
    labels = read_table(world_dir, "labels")
    honest_ids = labels.filter(pc.is_null(labels.column("attack"))).column("event_id")
    lookups = read_table(
        world_dir,
        "lookups",
        ["event_id", "ts", "account_id", "nir", "birth_date", "ip", "user_agent"],
    )
    lookups = lookups.filter(
        pc.and_(
            pc.is_in(lookups.column("event_id"), value_set=honest_ids.combine_chunks()),
            pc.is_valid(lookups.column("birth_date")),
        )
    )
    rows = [
        r
        for r in lookups.to_pylist()
        if r["account_id"] not in exclude and (unit[r["account_id"]], r["nir"]) in linked
    ]
    day = Counter(r["ts"].date() for r in rows).most_common(1)[0][0]
    by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in sorted((r for r in rows if r["ts"].date() == day), key=lambda r: r["ts"]):
        by_account[r["account_id"]].append(r)
    busy = sorted(
        (a for a, rs in by_account.items() if len(rs) >= PER_ACCOUNT),
        key=lambda a: (-len(by_account[a]), a),
    )
    pharmacies = [
        a
        for a in busy
        if professionals[a]["profession"] == "pharmacie" and professionals[a]["organization_id"]
    ]
    # One attacked account per pharmacy: the three are three victims, not one.
    attacked: list[str] = []
    for a in pharmacies:
        if all(unit[a] != unit[b] for b in attacked):
            attacked.append(a)
    attacked = attacked[:ATTACKED]
    chosen = attacked + [a for a in busy if a not in attacked][: HONEST_ACCOUNTS - len(attacked)]
    plan: dict[str, list[dict[str, Any]]] = {}
    for a in chosen:
        rs = by_account[a]
        step = len(rs) / PER_ACCOUNT
        plan[a] = [rs[int(i * step)] for i in range(PER_ACCOUNT)]  # the whole day, not its morning
    return day, plan, {a: professionals[a] | {"attacked": a in attacked} for a in chosen}


def _strangers(world_dir: Path, professional: dict[str, Any], offset: int) -> list[dict[str, Any]]:
    """People who have nothing to do with the pharmacy, far from it: the robot's list."""
    members = {
        p["account_id"]
        for p in read_table(world_dir, "professionals").to_pylist()
        if p["organization_id"] == professional["organization_id"]
    }
    care = read_table(world_dir, "care", ["account_id", "nir"])
    own = set(
        care.filter(pc.is_in(care.column("account_id"), value_set=pa.array(sorted(members))))
        .column("nir")
        .to_pylist()
    )
    insured = read_table(world_dir, "insured", ["nir", "birth_date", "department"]).to_pylist()
    far = [
        p for p in insured if p["nir"] not in own and p["department"] != professional["department"]
    ]
    return far[offset::41][:ROBOT_LIST]


def _outcome(response: httpx.Response) -> str:
    if response.status_code == 200:
        return "answered"
    error = str(response.json().get("error", "")) if response.content else ""
    if response.status_code == 404:
        return "not_found"
    if error == "insufficient_user_authentication":
        return "step_up"
    if error == "account_suspended":
        return "suspended"
    if response.status_code == 401:
        return "session_ended"
    return f"{response.status_code} {error}".strip()


def _lookup(
    http: httpx.Client, token: str, person: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    birth = person["birth_date"]
    return http.post(
        "/api/v1/rights/lookup",
        json={
            "nir": person["nir"],
            "birth_date": birth if isinstance(birth, str) else birth.isoformat(),
        },
        headers={"Authorization": f"Bearer {token}", **headers},
    )


def chapter_traffic(
    console: Console,
    services: Services,
    http: httpx.Client,
    *,
    world_dir: Path,
    exclude: set[str],
) -> TrafficReport:
    mail_seen = mail_seen_so_far(services)
    day, plan, who = _day_plan(world_dir, exclude)
    console.print(
        f"  {len(plan)} professionals of the world get an account (password + TOTP); their "
        f"own lookups of their own patients on {day:%d/%m/%Y} (the world's honest lookups "
        f"of the evaluation window, care-linked to their unit; {PER_ACCOUNT} each, spread "
        f"over the day) are sent in time order over HTTP, the day compressed into "
        f"{REPLAY_SECONDS:.0f} s. From {REPLAY_SECONDS * 0.3:.0f} s on, a robot logs in to "
        f"{ATTACKED} pharmacies in turn ({ROBOT['X-Forwarded-For']}, python-requests) with "
        "their leaked passwords and TOTP codes relayed by a phishing page, and reads "
        f"{ROBOT_LIST} strangers per account as fast as the service answers."
    )
    with progress_bar(console, "  ") as progress:
        actors = _open_accounts(services, http, plan, who, progress)
        robots = [
            RobotRun(a, actors[a].login, _strangers(world_dir, who[a], i))
            for i, a in enumerate(a for a in plan if who[a]["attacked"])
        ]
        honest, pharmacists = _replay(http, _schedule(plan, actors, robots), actors, progress)

    with session_scope(services.sessions) as session:
        alerts: list[Alert] = list_alerts(session)
    robot_accounts = {r.account_id for r in robots}
    for alert in sorted(alerts, key=lambda a: a.alert_id):
        if alert.account_id in robot_accounts:
            console.print(
                f"  rempart guard alerts → #{alert.alert_id} {alert.status} {alert.account_id} "
                f"{alert.decision} {','.join(alert.reasons)}"
            )
    report = TrafficReport(
        honest_accounts=len(plan) - len(robots),
        honest=honest,
        pharmacists=pharmacists,
        robots=robots,
        alert_ids=sorted(a.alert_id for a in alerts if a.account_id in robot_accounts),
        honest_alerts=sum(a.account_id not in robot_accounts for a in alerts),
    )
    _print_tables(console, report)
    summarize_new_mail(console, services, mail_seen)
    if robots:
        _restore(console, services, http, robots[0])
    return report


def _open_accounts(
    services: Services,
    http: httpx.Client,
    plan: dict[str, list[dict[str, Any]]],
    who: dict[str, dict[str, Any]],
    progress: ProgressFn,
) -> dict[str, _Actor]:
    """Each professional's account, then the morning's login over HTTP."""
    actors: dict[str, _Actor] = {}
    for n, (account_id, rows) in enumerate(plan.items(), start=1):
        with session_scope(services.sessions) as session:
            created = services.auth.create_account(
                session,
                login=f"demo.{account_id.lower()}",
                password=PASSWORD,
                profession=who[account_id]["profession"],
                account_id=account_id,
                email=who[account_id]["email"],
            )
        actors[account_id] = _Actor(
            account_id=account_id,
            attacked=bool(who[account_id]["attacked"]),
            login=created.login,
            # One place and one device for the day: the practice's own network.
            headers={"X-Forwarded-For": rows[0]["ip"], "User-Agent": rows[0]["user_agent"]},
            totp=pyotp.TOTP(pyotp.parse_uri(created.otpauth_uri).secret),
        )
        progress("accounts (argon2id)", n, len(plan))
    for n, actor in enumerate(actors.values(), start=1):
        response = totp_login(http, actor.login, PASSWORD, actor.totp.now(), actor.headers)
        response.raise_for_status()
        actor.token = str(response.json()["access_token"])
        progress("morning logins", n, len(actors))
    return actors


def _schedule(
    plan: dict[str, list[dict[str, Any]]], actors: dict[str, _Actor], robots: list[RobotRun]
) -> list[_Event]:
    """Every request at its moment of the compressed day: the honest lookups where the
    world has them, each robot's login then its list at machine speed."""
    first = min(rows[0]["ts"] for rows in plan.values())
    last = max(rows[-1]["ts"] for rows in plan.values())
    span = max((last - first).total_seconds(), 1.0)
    events: list[_Event] = []
    for account_id, rows in plan.items():
        for r in rows:
            at = (r["ts"] - first).total_seconds() / span * REPLAY_SECONDS
            events.append(_Event(at, len(events), actors[account_id], None, r))
    for i, robot in enumerate(robots):
        start = REPLAY_SECONDS * (0.3 + 0.2 * i)
        events.append(_Event(start, len(events), None, robot, None))  # its login
        for k, person in enumerate(robot.people, start=1):
            events.append(_Event(start + k * ROBOT_GAP, len(events), None, robot, person))
    events.sort(key=lambda e: (e.at, e.seq))
    return events


def _replay(
    http: httpx.Client, events: list[_Event], actors: dict[str, _Actor], progress: ProgressFn
) -> tuple[Counter[str], Counter[str]]:
    """Sends the events in order, each not before its moment; returns the outcomes of
    the honest lookups (other accounts, the attacked pharmacies' own staff)."""
    honest: Counter[str] = Counter()
    pharmacists: Counter[str] = Counter()
    totals = Counter("honest lookups" if e.actor else "robot lookups" for e in events if e.person)
    done: Counter[str] = Counter()
    robot_tokens: dict[str, str] = {}
    t0 = time.monotonic()
    for event in events:
        delay = t0 + event.at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if event.actor is not None and event.person is not None:
            actor = event.actor
            outcome = _outcome(_lookup(http, actor.token, event.person, actor.headers))
            (pharmacists if actor.attacked else honest)[outcome] += 1
            step = "honest lookups"
        elif event.robot is not None and event.person is None:
            # The pharmacist's own code, relayed in real time by a phishing page: the
            # next step's (the current one served the pharmacist's login this morning).
            code = actors[event.robot.account_id].totp.at(time.time() + 30)
            response = totp_login(http, event.robot.login, PASSWORD, code, ROBOT)
            response.raise_for_status()
            robot_tokens[event.robot.account_id] = str(response.json()["access_token"])
            continue
        elif event.robot is not None and event.person is not None:
            robot = event.robot
            response = _lookup(http, robot_tokens[robot.account_id], event.person, ROBOT)
            robot.asked += 1
            outcome = _outcome(response)
            if outcome == "answered":
                robot.read.add(event.person["nir"])
            else:
                robot.refused[outcome] += 1
                if outcome == "suspended" and robot.suspended_at is None:
                    robot.suspended_at = robot.asked
            step = "robot lookups"
        else:
            continue
        done[step] += 1
        progress(step, done[step], totals[step])
    return honest, pharmacists


def _print_tables(console: Console, report: TrafficReport) -> None:
    table = Table(
        "attacked account",
        "requests",
        "read (exposed)",
        "unguarded",
        "refused",
        "suspended at",
        title="The robot, per account: what it read against what an unguarded service leaks",
    )
    for robot in report.robots:
        table.add_row(
            robot.account_id,
            str(robot.asked),
            str(len(robot.read)),
            str(len({p["nir"] for p in robot.people})),
            ", ".join(f"{k.replace('_', '-')} {v}" for k, v in sorted(robot.refused.items())),
            f"#{robot.suspended_at}" if robot.suspended_at else "—",
        )
    total_read = sum(len(r.read) for r in report.robots)
    total_unguarded = sum(len({p["nir"] for p in r.people}) for r in report.robots)
    table.add_row(
        "total",
        str(sum(r.asked for r in report.robots)),
        str(total_read),
        str(total_unguarded),
        "",
        "",
    )
    console.print(table)
    console.print(
        f"  exposed: {total_read} person(s) in all, against {total_unguarded} an unguarded "
        "service would have leaked — counted as every distinct person on the robot's lists "
        "who exists in the insurer's files with that birth date (an unguarded service "
        "answers each of them), in the same run."
    )
    honest = report.honest
    console.print(
        f"  honest side, {report.honest_accounts} accounts: {sum(honest.values())} lookups, "
        f"{honest['answered']} answered, {honest['not_found']} not found (a typed birth "
        f"date that does not match), {honest['step_up']} step-up(s), "
        f"{honest['suspended']} deny(ies); {report.honest_alerts} alert(s) on honest accounts"
        + (f"; other: {_other(honest)}" if _other(honest) else "")
    )
    own = report.pharmacists
    console.print(
        f"  the attacked pharmacies' own staff: {sum(own.values())} lookups, "
        f"{own['answered']} answered; {own['session_ended'] + own['suspended']} refused after "
        "the suspension ended every session of the account (the pharmacist is told by "
        "e-mail and calls the insurer)"
    )


def _other(outcomes: Counter[str]) -> str:
    known = {"answered", "not_found", "step_up", "suspended"}
    return ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()) if k not in known)


def _restore(console: Console, services: Services, http: httpx.Client, robot: RobotRun) -> None:
    with session_scope(services.sessions) as session, Session(services.audit_engine) as audit:
        start = compromise_start(session, audit, robot.account_id)
        report = services.recovery.restore_account(
            session, robot.account_id, operator="demo-operator", since=start.at
        )
    console.print(
        f"  An operator checks {robot.account_id} and restores it (rempart accounts restore): "
        f"the compromise is taken to begin at {report.since:%H:%M:%S} ({start.evidence}); "
        f"{report.sessions_ended} session(s) ended, {report.networks_forgotten} network(s) "
        "or device(s) forgotten; the leaked password and the phished TOTP seed no longer "
        "log in (a reset code and a new TOTP seed go to the pharmacy by post)."
    )
    retry = http.post(
        "/api/v1/auth/login", json={"login": robot.login, "password": PASSWORD}, headers=ROBOT
    )
    console.print(
        f"  The robot tries the leaked password again → {retry.status_code} "
        f"{retry.json().get('error', '')}"
    )
