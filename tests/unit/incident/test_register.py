from __future__ import annotations

import csv
import io
from dataclasses import replace

from rempart.incident.register import (
    CSV_HEADERS,
    csv_record,
    register_csv,
    register_json,
    register_rows,
    rows_from_json,
)
from rempart.incident.summary import IncidentFacts, Transition
from tests.unit.incident.facts import facts_2022, facts_small_error


def _facts() -> list[IncidentFacts]:
    notified = facts_2022(
        status="reported",
        transitions=[
            *facts_2022().transitions,
            Transition("reported", "2022-03-16T14:00:00+00:00", "dpo.durand"),
        ],
        # A name with the separator, quotes and a line break: the CSV must keep it whole.
        name='Pharmacies ; comptes "compromis"\n(mars 2022)',
    )
    return [facts_small_error(), notified]


def test_one_row_per_incident_notified_or_not() -> None:
    rows = register_rows(_facts())
    assert [r.incident_id for r in rows] == [7, 8]
    big, small = rows
    assert big.severity_band == "very_high"
    assert big.severity_score == 5.0
    assert big.cnil_required
    assert big.people_required
    assert big.notified_at == ("2022-03-16T14:00:00+00:00",)
    assert big.categories == (
        "identity",
        "nir",
        "treating_doctor",
        "health",
        "low_income",
        "irregular_residence",
    )
    assert big.sensitive
    assert big.minors == 88_000
    assert big.measures == "Révocation des sessions ouvertes (3) ; Suspension du compte (19)"
    assert "article 34.1" in big.people_reasoning
    assert small.severity_band == "medium"
    assert not small.people_required
    assert small.notified_at == ()
    assert small.measures == "aucune"
    assert small.people_informed == "none"


def test_a_low_incident_is_registered_without_notification() -> None:
    facts = facts_small_error()
    by_category = {k: v for k, v in facts.scope.by_category.items() if k != "nir"}
    scope = replace(facts.scope, by_category=by_category, by_reveal={})
    (row,) = register_rows([replace(facts, scope=scope)])
    assert row.severity_band == "low"
    assert not row.cnil_required
    assert "registre" in row.cnil_reasoning


def test_json_round_trip() -> None:
    rows = register_rows(_facts())
    text = register_json(rows)
    assert rows_from_json(text) == rows
    assert '"severity_band": "very_high"' in text


def test_csv_for_french_excel_round_trip() -> None:
    rows = register_rows(_facts())
    text = register_csv(rows)
    assert text.startswith("\ufeff")
    first_line = text.split("\r\n", 1)[0]
    assert first_line == "\ufeff" + ";".join(CSV_HEADERS.values())
    records = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff")), delimiter=";"))
    assert records == [csv_record(r) for r in rows]
    big = records[0]
    assert big["Intitulé"] == 'Pharmacies ; comptes "compromis"\n(mars 2022)'
    assert big["Score de gravité (ENISA)"] == "5"
    assert big["Gravité"] == "très élevée"
    assert big["Notification CNIL requise"] == "oui"
    assert big["Prise de connaissance"] == "13/03/2022 09:15"
    assert big["Notifiée à la CNIL le"] == "16/03/2022 15:00"
    assert big["Personnes concernées"] == "510000"
    assert big["Type de notification"] == "initiale"
    assert "Maladie de longue durée (ALD)" in big["Catégories de données"]
    small = records[1]
    assert small["Score de gravité (ENISA)"] == "2,25"
    assert small["Information des personnes requise"] == "non"
    assert small["Notifiée à la CNIL le"] == ""


def test_csv_bytes_decode_with_the_bom_aware_codec() -> None:
    data = register_csv(register_rows(_facts())).encode("utf-8")
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig").startswith("N° incident;")


def test_an_incident_not_yet_scoped_is_registered_with_its_decisions_pending() -> None:
    facts = facts_2022()
    facts.scope = replace(facts.scope, version=0, persons=0, records=0, by_reveal={})
    (row,) = register_rows([facts])
    assert row.severity_band == "pending"
    assert row.persons == 0
    assert not row.cnil_required
    assert "non encore établi" in row.cnil_reasoning
    assert "à évaluer" in register_csv([row])
