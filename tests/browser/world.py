"""The data the browser tests look at, made through the real service: a robot that the
guard stops (over real HTTP), operators of each role, a scoped incident and its campaign."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from rempart.guard.alerts import list_alerts
from rempart.services import Services
from rempart.store.engine import session_scope
from tests.functional.breach_world import build_breach, open_and_scope
from tests.functional.conftest import Login, Person, make_login, totp_code
from tests.functional.test_guard_inline import build_town

# The robot's network and tool, given through the reverse proxy's X-Forwarded-For.
ROBOT = {"X-Forwarded-For": "198.51.100.66", "User-Agent": "python-requests/2.32.3"}
ROBOT_ACCOUNT = "ph-lilas"


@dataclass(frozen=True)
class Attack:
    login: Login
    token: str
    statuses: list[int]


def robot_attack(services: Services, server: str) -> Attack:
    """A pharmacy and its strangers; a robot logged in to one of its accounts with the
    password and a relayed TOTP code reads strangers until the guard denies (the
    account suspended, an alert stored). Real HTTP, from the robot's own network."""
    _customers, strangers = build_town(services)
    login = make_login(services, "pharmacie.lilas", account_id=ROBOT_ACCOUNT)
    # The API on the loopback address: the robot's requests come through "the proxy".
    api = server.replace("localhost", "127.0.0.1")
    with httpx.Client(base_url=api, headers=ROBOT, timeout=30) as http:
        first = http.post(
            "/api/v1/auth/login", json={"login": login.login, "password": login.password}
        )
        assert first.status_code == 200, first.text
        second = http.post(
            "/api/v1/auth/mfa/totp",
            json={"mfa_token": first.json()["mfa_token"], "code": totp_code(login)},
        )
        assert second.status_code == 200, second.text
        token = str(second.json()["access_token"])
        statuses = _until_denied(http, token, strangers)
    return Attack(login, token, statuses)


def _until_denied(http: httpx.Client, token: str, strangers: list[Person]) -> list[int]:
    """The answers to the robot's lookups, the last one a refusal (account suspended)."""
    statuses = []
    for person in strangers:
        statuses.append(_lookup(http, token, person))
        if statuses[-1] == 403:
            return statuses
    raise AssertionError(f"the guard never denied the robot: {statuses}")


def _lookup(http: httpx.Client, token: str, person: Person) -> int:
    response = http.post(
        "/api/v1/rights/lookup",
        json={"nir": person.nir.value, "birth_date": person.birth_date.isoformat()},
        headers={"Authorization": f"Bearer {token}"},
    )
    return response.status_code


def first_alert(services: Services) -> int:
    with session_scope(services.sessions) as session:
        alerts = list_alerts(session, limit=1)
    assert alerts, "no alert"
    return alerts[0].alert_id


@dataclass(frozen=True)
class Breach:
    incident: int
    campaign: int
    nir: str
    """One exposed person's NIR."""


def notified_breach(services: Services) -> Breach:
    """A breach by another robot (breach_world: persons reachable by e-mail, by letter,
    or not at all), its incident scoped, its campaign planned and run to the end."""
    persons = build_breach(services)
    incident = open_and_scope(services)
    plan = services.campaigns.plan(incident, operator="dora.dpo")
    letters = services.settings.resolved_data_dir / "courriers" / f"campagne-{plan.campaign_id}"
    services.campaign_runner(letters).run(plan.campaign_id, operator="dora.dpo")
    return Breach(incident, plan.campaign_id, persons[0].nir)
