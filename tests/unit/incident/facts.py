"""Realistic incident facts for the report's tests: the 2022 case, and a small mistake.

Aggregates only, as a scoping stores them: no NIR and no pseudonym anywhere.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rempart.incident.summary import (
    IncidentFacts,
    Measure,
    Organization,
    ScopeSummary,
    Transition,
)

HOUR_US = 3600 * 1_000_000
# 11 March 2022, 00:00 UTC: the first scraping night of the 2022 case.
START_US = 1_646_956_800 * 1_000_000

ORGANIZATION = Organization(
    name="Caisse primaire d'assurance maladie de démonstration",
    siren="180035024",
    address="1 rue de la Santé, 75014 Paris",
    dpo_name="Claire Dupré",
    dpo_email="dpd@cpam-demo.fr",
    dpo_phone="01 23 45 67 89",
)

DEPARTMENTS = {
    "75": 61_000, "13": 48_500, "69": 41_200, "59": 39_800, "33": 30_100, "31": 27_400,
    "44": 22_000, "67": 21_300, "06": 20_700, "34": 19_900, "2A": 4_100, "2B": 3_900,
    "971": 12_600, "974": 18_200, "976": 9_000, "93": 35_500, "92": 28_800, "94": 24_000,
    "91": 22_600, "95": 19_400,
}  # fmt: skip


def accounts_2022(n: int = 19) -> list[str]:
    return [f"pharma-{i:02d}" for i in range(1, n + 1)]


def scope_2022(incident_id: int = 7) -> ScopeSummary:
    accounts = accounts_2022()
    persons = sum(DEPARTMENTS.values())
    per_account = persons // len(accounts)
    series: list[tuple[str, int, int]] = []
    for i, account in enumerate(accounts):
        # Each account scraped for a few nights, a robot's flat rate per hour.
        for h in range(0, 48, 2):
            series.append((account, START_US + (i % 5 + h) * HOUR_US, 1_100 + 10 * i))
    series.sort()
    return ScopeSummary(
        incident_id=incident_id,
        version=1,
        scoped_at="2022-03-14T09:30:00+00:00",
        source="live",
        verified=True,
        verification_problems=[],
        persons=persons,
        records=persons + 4_213,
        new_persons=persons,
        unresolved=0,
        by_category={
            "nir": persons,
            "identity": persons,
            "treating_doctor": 431_000,
            "c2s": persons,
            "ame": persons,
            "ald": persons,
        },
        by_reveal={
            "nir": persons,
            "health": 93_400,
            "low_income": 41_700,
            "irregular_residence": 2_150,
            "minor": 88_000,
            "over_75": 52_300,
        },
        by_combination={"nir": 300_000, "health+nir": 80_000, "low_income+nir": 35_000},
        by_department=dict(DEPARTMENTS),
        by_account={
            a: {
                "records": per_account + 200,
                "persons": per_account,
                "first_us": START_US,
                "last_us": START_US + 50 * HOUR_US,
            }
            for a in accounts
        },
        refused={"not_found": 1_250, "denied": 310},
        intent_subjects=1_480,
        first_us=START_US,
        last_us=START_US + 50 * HOUR_US,
        series=series,
        reachable={"email": 301_000, "letter": persons - 301_000},
        rows_scanned=2_400_000,
        seconds=3.2,
    )


def facts_2022(**changes: Any) -> IncidentFacts:
    """The 2022 case: 19 pharmacy accounts, about 510,000 persons, ALD/C2S/AME revealed."""
    accounts = accounts_2022()
    facts = IncidentFacts(
        incident_id=7,
        name="Comptes de pharmacies compromis (mars 2022)",
        status="scoped",
        notification="initial",
        opened_at="2022-03-13T10:00:00+00:00",
        aware_at="2022-03-13T08:15:00+00:00",
        discovery="Alertes du garde (volume et cadence anormaux) sur 19 comptes de pharmacie",
        cause="Identifiants de professionnels obtenus par hameçonnage, puis consultations "
        "automatisées par un robot",
        delay_reason="",
        planned_measures=[
            "Authentification forte obligatoire (carte CPS ou e-CPS) pour tous les comptes",
            "Information des personnes concernées par courrier et par courriel",
        ],
        definition={
            "accounts": [{"account_id": a, "since_us": None, "until_us": None} for a in accounts],
            "networks": [],
            "sessions": [],
            "alerts": [],
        },
        transitions=[
            Transition("open", "2022-03-13T10:00:00+00:00", "analyste.martin"),
            Transition("scoped", "2022-03-14T09:30:00+00:00", "analyste.martin"),
        ],
        scope=scope_2022(),
        measures=[
            Measure("2022-03-13T08:20:00+00:00", "account_suspended", a, "guard") for a in accounts
        ]
        + [Measure("2022-03-13T11:00:00+00:00", "sessions_revoked", "pharma-01", "admin", 3)],
        organization=ORGANIZATION,
        ongoing=False,
        security_before=[
            "Mot de passe et code à usage unique (TOTP) pour chaque compte professionnel",
            "Journal d'audit chaîné de toutes les consultations",
        ],
        communication={
            "status": "planned",
            "date": "2022-03-24T08:00:00+00:00",
            "channels": {"email": 301_000, "letter": 209_000},
        },
    )
    return replace(facts, **changes)


def facts_small_error(**changes: Any) -> IncidentFacts:
    """A professional's mistake: three adults' identity seen by a known colleague."""
    base = facts_2022()
    scope = replace(
        base.scope,
        incident_id=8,
        persons=3,
        records=3,
        new_persons=3,
        by_category={"nir": 3, "identity": 3, "treating_doctor": 3},
        by_reveal={"nir": 3},
        by_combination={"nir": 3},
        by_department={"75": 2, "92": 1},
        by_account={
            "gp-01": {"records": 3, "persons": 3, "first_us": START_US, "last_us": START_US}
        },
        refused={},
        intent_subjects=0,
        first_us=START_US,
        last_us=START_US + 600_000_000,
        series=[("gp-01", START_US, 3)],
        reachable={"email": 2, "letter": 1},
    )
    facts = replace(
        base,
        incident_id=8,
        name="Consultation par erreur (cabinet médical)",
        definition={
            "accounts": [{"account_id": "gp-01", "since_us": None, "until_us": None}],
            "networks": [],
            "sessions": [],
            "alerts": [],
        },
        scope=scope,
        measures=[],
        communication={"status": "none", "date": None, "channels": {}},
        extra={"circumstances": {"recipients": "known", "malicious": False}},
    )
    return replace(facts, **changes)


def with_reveals(facts: IncidentFacts, **reveals: int) -> IncidentFacts:
    """The same facts with some ``by_reveal`` counts changed (0 removes one)."""
    by_reveal = {**facts.scope.by_reveal, **reveals}
    return replace(facts, scope=replace(facts.scope, by_reveal=by_reveal))
