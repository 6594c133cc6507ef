"""Scoping a breach from real lookups, through the running service, on SQLite and
PostgreSQL: an honest pharmacy and a robot on a phished account (stepped up, then
denied by the guard), then ``rempart incident open/scope/add`` from the command line.

The expected set is what the service actually answered with data: the tests keep
every response and compare the scope with it, person by person (by pseudonym).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from rempart.audit.chain import CATEGORIES
from rempart.cli import app
from rempart.config import Settings
from rempart.nir import pseudonymize
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import GuardAlert, Incident, IncidentExposure, Insured
from tests.functional.conftest import Login, Person, log_in, make_login
from tests.functional.test_guard_inline import (
    PHARMACY,
    ROBOT,
    build_town,
    cli_env,
    guard_settings,
    lookup,
)

runner = CliRunner()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # The robot and the pharmacy come from their own networks (through the proxy).
    return guard_settings(database_url, tmp_path)


@dataclass
class Story:
    env: dict[str, str]
    robot_served: list[Person]
    honest_served: list[Person]
    robot_statuses: list[int]
    customers: list[Person]
    strangers: list[Person]


def pseudonyms(services: Services, persons: list[Person]) -> set[str]:
    key = services.settings.keys.pseudonym_key
    return {pseudonymize(p.nir, key) for p in persons}


@pytest.fixture
def story(client: TestClient, services: Services) -> Story:
    customers, strangers = build_town(services)
    with session_scope(services.sessions) as session:
        # What the strangers' records would reveal: an ALD, AME, C2S; a minor, an elder.
        changes: list[dict[str, Any]] = [
            {"ald": True},
            {"ame": True},
            {"c2s": True, "ald": True},
            {"birth_date": date(2015, 6, 1)},
            {"birth_date": date(1940, 2, 3)},
        ]
        for person, values in zip(strangers[:5], changes, strict=True):
            session.execute(update(Insured).where(Insured.nir == person.nir.value).values(**values))
    strangers[3] = Person(strangers[3].nir, date(2015, 6, 1), strangers[3].last_name)
    strangers[4] = Person(strangers[4].nir, date(1940, 2, 3), strangers[4].last_name)
    honest = make_login(services, "pharmacie.lilas2", account_id="ph-lilas-2")
    victim: Login = make_login(services, "pharmacie.lilas", account_id="ph-lilas")

    honest_token = log_in(client, honest)
    honest_served = []
    for person in customers[:6]:
        response = lookup(client, honest_token, person, PHARMACY)
        if response.status_code == 200:
            honest_served.append(person)
    assert honest_served, "the honest pharmacy must be served"

    robot = log_in(client, victim)
    # A wrong birth date first: not found, intent without exposure.
    wrong = Person(strangers[0].nir, date(1999, 9, 9), strangers[0].last_name)
    assert lookup(client, robot, wrong, ROBOT).status_code == 404
    statuses = []
    served = []
    for person in strangers:
        response = lookup(client, robot, person, ROBOT)
        statuses.append(response.status_code)
        if response.status_code == 200:
            assert response.json()["nir"]  # data left the service
            served.append(person)
        if response.status_code == 403:
            break
    assert 401 in statuses, statuses
    assert statuses[-1] == 403, statuses
    assert served, statuses
    return Story(cli_env(services), served, honest_served, statuses, customers, strangers)


def report_field(document: dict[str, Any], section: str, key: str) -> Any:
    fields = document["sections"][section]["fields"]
    return next(f["value"] for f in fields if f["key"] == key)


def report_table(document: dict[str, Any], section: str, key: str) -> list[list[str]]:
    tables = document["sections"][section]["tables"]
    rows: list[list[str]] = next(t["rows"] for t in tables if t["key"] == key)
    return rows


def cli(env: dict[str, str], *args: str) -> Any:
    return runner.invoke(app, list(args), env=env)


def scope_json(env: dict[str, str], incident: str) -> dict[str, Any]:
    result = cli(env, "incident", "scope", incident, "--json", "--operator", "dpo")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def stored(services: Services, incident: int) -> dict[str, IncidentExposure]:
    with session_scope(services.sessions) as session:
        return {
            e.pseudonym: e
            for e in session.scalars(
                select(IncidentExposure).where(IncidentExposure.incident_id == incident)
            )
        }


def test_scope_is_exactly_what_was_served_and_grows_by_union(
    services: Services, story: Story
) -> None:
    env = story.env
    opened = cli(env, "incident", "open", "--name", "Robot officine", "--accounts", "ph-lilas")
    assert opened.exit_code == 0, opened.output
    incident = opened.stdout.strip()
    assert incident.isdigit()

    scope = scope_json(env, incident)
    served = pseudonyms(services, story.robot_served)
    assert scope["persons"] == len(served)
    assert scope["records"] == len(story.robot_served)
    assert scope["by_category"] == dict.fromkeys(CATEGORIES, len(served))
    exposures = stored(services, int(incident))
    assert set(exposures) == served
    # Stepped-up and denied lookups, and the wrong birth date, are intent, not exposure.
    refused = scope["refused"]
    assert refused["not_found"] == 1
    assert refused["insufficient_user_authentication"] == story.robot_statuses.count(401)
    assert refused["account_suspended"] == 1
    # What the exposure reveals, from what each served person's record holds.
    reveal = {r: scope["by_reveal"].get(r, 0) for r in ("health", "minor", "over_75")}
    key = services.settings.keys.pseudonym_key
    specials = {pseudonymize(p.nir, key): i for i, p in enumerate(story.strangers[:5])}
    expected_health = sum(1 for s in served if specials.get(s) in (0, 2))
    assert reveal["health"] == expected_health
    assert reveal["minor"] == sum(1 for s in served if specials.get(s) == 3)
    assert reveal["over_75"] == sum(1 for s in served if specials.get(s) == 4)
    assert scope["by_reveal"]["nir"] == len(served)
    for pseudonym, exposure in exposures.items():
        assert exposure.accounts == "ph-lilas"
        assert exposure.version == 1
        assert exposure.resolved
        assert exposure.department == "13"
        assert pseudonym not in pseudonyms(services, story.honest_served)

    # Scoping again gives the same result, and the same version.
    again = scope_json(env, incident)
    assert {k: again[k] for k in ("persons", "records", "by_category", "version")} == {
        k: scope[k] for k in ("persons", "records", "by_category", "version")
    }
    assert again["new_persons"] == 0

    # A second compromised account found later: the union, the new ones apart.
    grown = cli(env, "incident", "add", incident, "--accounts", "ph-lilas-2", "--operator", "dpo")
    assert grown.exit_code == 0, grown.output
    union = scope_json(env, incident)
    honest = pseudonyms(services, story.honest_served)
    assert union["persons"] == len(served | honest)
    assert union["new_persons"] == len(honest - served)
    assert union["version"] == 2
    after = stored(services, int(incident))
    assert set(after) == served | honest
    assert {p for p, e in after.items() if e.version == 2} == honest - served

    # The lifecycle is in the register and in the trail, with its operator.
    shown = cli(env, "incident", "show", incident, "--json")
    assert shown.exit_code == 0, shown.output
    details = json.loads(shown.stdout)
    assert details["status"] == "scoped"
    assert [t["status"] for t in details["transitions"]] == ["open", "scoped", "scoped", "scoped"]
    assert {t["operator"] for t in details["transitions"][1:]} == {"dpo"}


def test_alerts_networks_and_sessions_define_the_same_breach(
    services: Services, story: Story
) -> None:
    env = story.env
    with session_scope(services.sessions) as session:
        alert_id = session.scalar(
            select(GuardAlert.alert_id).where(GuardAlert.account_id == "ph-lilas")
        )
    assert alert_id is not None
    served = pseudonyms(services, story.robot_served)
    for args in (
        ["--from-alerts", str(alert_id)],
        ["--network", "198.51.100.0/24"],
    ):
        opened = cli(env, "incident", "open", "--name", "Robot", *args)
        assert opened.exit_code == 0, opened.output
        scope = scope_json(env, opened.stdout.strip())
        assert scope["persons"] == len(served), args
        assert set(stored(services, int(opened.stdout.strip()))) == served
    # The pharmacy's own network holds only the honest pharmacy's lookups.
    opened = cli(env, "incident", "open", "--name", "Officine", "--network", "203.0.113.0/24")
    scope = scope_json(env, opened.stdout.strip())
    assert scope["persons"] == len(pseudonyms(services, story.honest_served))


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--accounts", "nobody"], "unknown_account"),
        (
            [
                "--accounts",
                "ph-lilas",
                "--since",
                "2026-03-13T00:00:00Z",
                "--until",
                "2026-03-11T00:00:00Z",
            ],
            "invalid_time_range",
        ),
        (
            [
                "--accounts",
                "ph-lilas",
                "--since",
                "2026-03-11T00:00:00Z",
                "--until",
                "2026-03-11T00:00:00Z",
            ],
            "invalid_time_range",
        ),
        (["--network", "10.0.0.1/8"], "invalid_network"),
        (["--network", "not-a-network"], "invalid_network"),
        (["--from-alerts", "999999"], "unknown_alert"),
        ([], "empty_definition"),
        (["--accounts", "ph-lilas", "--aware-at", "2999-01-01T00:00:00Z"], "invalid_aware_at"),
    ],
)
def test_bad_definitions_are_refused_and_nothing_is_stored(
    services: Services, story: Story, args: list[str], code: str
) -> None:
    result = cli(story.env, "incident", "open", "--name", "Mauvais", *args)
    assert result.exit_code != 0
    assert f"[{code}]" in result.output
    assert result.stdout.strip() == ""
    with session_scope(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Incident)) == 0


def test_an_export_gives_the_same_scope_and_a_tampered_one_is_refused(
    services: Services, story: Story, tmp_path: Path
) -> None:
    """The operator exports the trail (``rempart audit checkpoint`` then ``export``) and
    scopes from it: the same persons as from the live trail. An export altered after the
    fact is refused, unless the operator accepts it explicitly, and the scope says so."""
    env = story.env
    assert cli(env, "audit", "checkpoint").exit_code == 0
    export = tmp_path / "export"
    exported = cli(env, "audit", "export", "--out", str(export))
    assert exported.exit_code == 0, exported.output
    live_id = cli(env, "incident", "open", "--name", "Live", "--accounts", "ph-lilas").stdout
    live = scope_json(env, live_id.strip())
    from_export_id = cli(
        env, "incident", "open", "--name", "Export", "--accounts", "ph-lilas"
    ).stdout.strip()
    result = cli(env, "incident", "scope", from_export_id, "--json", "--export", str(export))
    assert result.exit_code == 0, result.output
    from_export = json.loads(result.stdout)
    assert from_export["verified"] is True
    for key in ("persons", "records", "by_category", "by_reveal", "refused", "by_department"):
        assert from_export[key] == live[key], key
    assert set(stored(services, int(from_export_id))) == set(stored(services, int(live_id)))

    # Someone edits the export: who read the first person becomes someone else.
    part = sorted(export.glob("day=*/*.parquet"))[0]
    table = pq.read_table(part)
    accounts = table.column("account_id").to_pylist()
    accounts[0] = "PS-innocent"
    pq.write_table(
        table.set_column(
            table.schema.get_field_index("account_id"),
            table.schema.field("account_id"),
            pa.array(accounts, pa.string()),
        ),
        part,
    )
    refused = cli(env, "incident", "scope", from_export_id, "--export", str(export))
    assert refused.exit_code != 0
    assert "[export_unverified]" in refused.output
    accepted = cli(
        env,
        "incident",
        "scope",
        from_export_id,
        "--json",
        "--export",
        str(export),
        "--accept-unverified-export",
    )
    assert accepted.exit_code == 0, accepted.output
    assert json.loads(accepted.stdout)["verified"] is False


def test_the_report_and_the_register_tell_what_the_scope_found(
    services: Services, story: Story, tmp_path: Path
) -> None:
    env = story.env
    incident = cli(
        env, "incident", "open", "--name", "Robot officine", "--accounts", "ph-lilas"
    ).stdout.strip()
    # Before scoping: in the register already, its decisions pending; no report yet.
    listed = cli(env, "incident", "list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    (pending,) = json.loads(listed.stdout)
    assert pending["severity_band"] == "pending"
    early = cli(env, "incident", "report", incident, "--out", str(tmp_path / "early"))
    assert early.exit_code != 0
    assert "[not_scoped]" in early.output
    assert not (tmp_path / "early").exists()

    scope = scope_json(env, incident)
    out = tmp_path / "cnil"
    reported = cli(env, "incident", "report", incident, "--out", str(out), "--operator", "dpo")
    assert reported.exit_code == 0, reported.output
    document = json.loads((out / "report.json").read_text(encoding="utf-8"))
    text = json.dumps(document, ensure_ascii=False)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    # No NIR anywhere: not the served persons', not any.
    for person in [*story.robot_served, *story.strangers]:
        assert person.nir.value not in text
        assert person.nir.value not in html
        assert person.nir.value[:13] not in html
    assert f"{scope['persons']}" in html
    assert report_field(document, "notification", "kind") == "initial"
    assert "Notification initiale" in html
    # The measures taken are read from the trail: the guard's suspension is there.
    measures = report_table(document, "measures", "taken")
    assert any(row[1] == "Suspension du compte" for row in measures), measures
    shown = json.loads(cli(env, "incident", "show", incident, "--json").stdout)
    assert shown["status"] == "reported"
    assert shown["transitions"][-1]["operator"] == "dpo"

    # A compromised account found later: the re-scope finds new persons, and the next
    # report is a complementary notification of them.
    assert cli(env, "incident", "add", incident, "--accounts", "ph-lilas-2").exit_code == 0
    stale = cli(env, "incident", "report", incident, "--out", str(tmp_path / "stale"))
    assert "[definition_changed]" in stale.output
    union = scope_json(env, incident)
    assert union["new_persons"] > 0
    second = tmp_path / "cnil-2"
    assert cli(env, "incident", "report", incident, "--out", str(second)).exit_code == 0
    complementary = json.loads((second / "report.json").read_text(encoding="utf-8"))
    assert report_field(complementary, "notification", "kind") == "complementary"

    register = cli(env, "incident", "list", "--format", "csv")
    assert register.exit_code == 0, register.output
    assert register.stdout.startswith("\ufeff")
    assert "Robot officine" in register.stdout


def test_persons_are_found_through_the_stored_pseudonym_not_recomputed(
    services: Services, story: Story
) -> None:
    """The scope joins the trail to persons through ``insured.pseudonym`` (indexed):
    nothing recomputes the population's pseudonyms. A person whose stored pseudonym is
    not the trail's stays exposed (counted) but unresolved, which only happens this way."""
    env = story.env
    key = services.settings.keys.pseudonym_key
    first = story.robot_served[0]
    incident = cli(env, "incident", "open", "--name", "Robot", "--accounts", "ph-lilas").stdout
    # Scoping backfills the persons added without one (the test town), then joins.
    scope_json(env, incident.strip())
    with session_scope(services.sessions) as session:
        assert session.scalar(select(func.count()).where(Insured.pseudonym.is_(None))) == 0
        session.execute(
            update(Insured).where(Insured.nir == first.nir.value).values(pseudonym="0" * 32)
        )
    other = cli(env, "incident", "open", "--name", "Robot 2", "--accounts", "ph-lilas").stdout
    scope = scope_json(env, other.strip())
    assert scope["persons"] == len(story.robot_served)
    assert scope["unresolved"] == 1
    exposure = stored(services, int(other))[pseudonymize(first.nir, key)]
    assert not exposure.resolved
    assert exposure.department is None
