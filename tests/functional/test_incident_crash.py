"""A scoping killed (SIGKILL) part-way leaves the previous scope whole: never half a
scope. On SQLite and PostgreSQL, with a trail large enough for the kill to land
while the scoping reads, resolves or writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, insert, select

from rempart.audit.chain import AuditEntry
from rempart.incident.definition import AccountElement, Definition
from rempart.incident.live_source import LiveSource
from rempart.nir import make_nir, pseudonymize
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Incident, IncidentExposure, Insured, Professional
from tests.functional.test_guard_inline import cli_env

PERSONS = 40_000
"""Each robot reads half of them."""


def _populate(services: Services) -> list[str]:
    key = services.settings.keys.pseudonym_key
    rows = []
    pseudonyms = []
    for i in range(PERSONS):
        nir = make_nir(
            sex=1 + i % 2,
            year=1940 + i % 60,
            month=1 + i % 12,
            department=f"{1 + i % 95:02d}" if 1 + i % 95 != 20 else "2A",
            commune=f"{i // 95 % 1000:03d}",
            order=1 + i // 95_000,
        )
        rows.append(
            {
                "nir": nir.value,
                "birth_date": date(1940 + i % 60, 1 + i % 12, 1),
                "sex": 1 + i % 2,
                "last_name": "Nom",
                "first_name": "Camille",
                "department": nir.value[5:7],
                "treating_doctor": None,
                "c2s": i % 7 == 0,
                "ame": i % 11 == 0,
                "ald": i % 5 == 0,
                "email": None if i % 3 else f"p{i}@example.fr",
                "street": "1 rue des Lilas",
                "postcode": "75011",
                "city": "Paris",
                "pseudonym": pseudonymize(nir, key),
            }
        )
        pseudonyms.append(pseudonymize(nir, key))
    with session_scope(services.sessions) as session:
        for account in ("robot-a", "robot-b"):
            session.add(
                Professional(
                    account_id=account,
                    rpps=None,
                    profession="pharmacie",
                    department="75",
                    organization_id=None,
                    last_name="Robot",
                    first_name="X",
                    email="x@example.fr",
                )
            )
        session.execute(insert(Insured), rows)
    start = int(datetime(2026, 3, 11, tzinfo=UTC).timestamp() * 1_000_000)
    entries = [
        AuditEntry(
            seq=0,
            ts_us=start + i * 1_000_000,
            event="lookup",
            account_id="robot-a" if i % 2 == 0 else "robot-b",
            session_id=f"s-{i % 2}",
            acr="pwd+otp",
            client_ip="198.51.100.66",
            user_agent="python-requests/2.32",
            channel="portal",
            subject=pseudonym,
            found=1,
            categories="nir,identity,treating_doctor,c2s,ame,ald",
            decision="allow",
            outcome="ok",
        )
        for i, pseudonym in enumerate(pseudonyms)
    ]
    for offset in range(0, len(entries), 5_000):
        services.audit.append(entries[offset : offset + 5_000])
    return pseudonyms


def _state(services: Services, incident_id: int) -> tuple[int, int]:
    with session_scope(services.sessions) as session:
        version = session.scalar(
            select(Incident.scope_version).where(Incident.incident_id == incident_id)
        )
        count = session.scalar(
            select(func.count())
            .select_from(IncidentExposure)
            .where(IncidentExposure.incident_id == incident_id)
        )
    return int(version or 0), int(count or 0)


@pytest.mark.parametrize("delay", [1.0, 2.0, 3.5])
def test_a_killed_scoping_leaves_the_previous_scope_whole(services: Services, delay: float) -> None:
    _populate(services)
    with session_scope(services.sessions) as session:
        incident_id = services.incidents.open(
            session,
            name="Robots",
            definition=Definition(accounts=(AccountElement("robot-a"),)),
            operator="dpo",
        )
    first = services.incidents.scope(incident_id, LiveSource(services.audit_engine), operator="dpo")
    assert first.persons == PERSONS // 2
    with session_scope(services.sessions) as session:
        services.incidents.add(
            session,
            incident_id,
            Definition(accounts=(AccountElement("robot-b"),)),
            operator="dpo",
        )
    scoper = subprocess.Popen(
        [sys.executable, "-m", "rempart", "incident", "scope", str(incident_id)],
        env={**os.environ, **cli_env(services)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    scoper.send_signal(signal.SIGKILL)
    scoper.wait(timeout=60)
    # Either the whole new scope landed, or nothing of it did.
    assert _state(services, incident_id) in {(1, PERSONS // 2), (2, PERSONS)}
    # And scoping again completes it.
    final = services.incidents.scope(incident_id, LiveSource(services.audit_engine), operator="dpo")
    assert final.persons == PERSONS
    assert _state(services, incident_id) == (2, PERSONS)
