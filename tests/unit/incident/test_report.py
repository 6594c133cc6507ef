from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rempart.incident import report as report_module
from rempart.incident.charts import render_charts
from rempart.incident.report import (
    SECTIONS,
    ReportContainsNIR,
    check_no_nir,
    render_html,
    render_pdf,
    report_document,
    write_report,
)
from tests.unit.incident.facts import facts_2022, facts_small_error

AWARE = datetime(2022, 3, 13, 8, 15, tzinfo=UTC)
WITHIN = AWARE + timedelta(hours=30)
LATE = AWARE + timedelta(hours=80)
# NIR-shaped, with a wrong check key on purpose: no valid NIR in any file, and the guard
# refuses the shape, valid or not.
FAKE_NIR = "255082A07300459"


def _field(doc: dict[str, Any], section: str, key: str) -> dict[str, Any]:
    fields = doc["sections"][section]["fields"]
    found: dict[str, Any] = next(f for f in fields if f["key"] == key)
    return found


def _table(doc: dict[str, Any], section: str, key: str) -> dict[str, Any]:
    found: dict[str, Any] = next(t for t in doc["sections"][section]["tables"] if t["key"] == key)
    return found


def test_sections_follow_the_cnil_form() -> None:
    doc = report_document(facts_2022(), now=WITHIN)
    assert list(doc["sections"]) == [key for key, _ in SECTIONS]
    assert [s["number"] for s in doc["sections"].values()] == list(range(1, 10))
    assert doc["sections"]["dates"]["title"] == "Dates de la violation"
    # JSON-able as it is: report.json is this document.
    assert json.loads(json.dumps(doc)) == doc


def test_document_carries_the_facts() -> None:
    doc = report_document(facts_2022(), now=WITHIN)
    assert _field(doc, "notification", "kind")["text"] == "Notification initiale"
    assert _field(doc, "notification", "cnil_required")["value"] is True
    assert _field(doc, "organization", "dpo_email")["value"] == "dpd@cpam-demo.fr"
    assert _field(doc, "dates", "aware_at")["text"] == (
        "dimanche 13 mars 2022 à 9 h 15 (heure de Paris)"
    )
    assert _field(doc, "dates", "ongoing")["text"] == "Non"
    assert _field(doc, "nature", "confidentiality")["value"] is True
    assert _field(doc, "nature", "integrity")["value"] is False
    assert "19 compte(s)" in _field(doc, "nature", "origin")["text"]
    assert _field(doc, "data", "persons")["value"] == 510_000
    assert _field(doc, "data", "persons")["text"].startswith("510\u202f000")
    assert _field(doc, "data", "minors")["value"] == 88_000
    assert _field(doc, "data", "sensitive")["value"] == {
        "health": 93_400,
        "irregular_residence": 2_150,
    }
    categories = _table(doc, "data", "categories")["rows"]
    assert ["Données révélant la santé (ALD, prise en charge à 100 %)", "93\u202f400"] in categories
    departments = _table(doc, "data", "departments")["rows"]
    assert departments[0] == ["75", "61\u202f000"]
    assert len(departments) == 20
    assert doc["sections"]["security_before"]["items"][0].startswith("Mot de passe")
    severity = doc["sections"]["consequences"]["data"]["severity"]
    assert severity["score"] == 5.0
    assert severity["band"] == "very_high"
    factors = _table(doc, "consequences", "factors")["rows"]
    assert [row[0] for row in factors] == [
        "Contexte du traitement des données (DPC)",
        "Facilité d'identification (EI)",
        "Perte de confidentialité",
        "Perte d'intégrité",
        "Perte de disponibilité",
        "Intention malveillante",
    ]
    assert all(row[2] for row in factors)  # every factor says why
    taken = _table(doc, "measures", "taken")["rows"]
    assert len(taken) == 20
    assert taken[0][1] == "Suspension du compte"
    assert doc["sections"]["measures"]["items"][0].startswith("Prévue : Authentification")
    assert _field(doc, "communication", "status")["text"] == "Prévue"
    assert _field(doc, "communication", "required")["value"] is True
    assert (
        "courrier postal : 209\u202f000 personnes"
        in _field(doc, "communication", "channels")["text"]
    )
    assert len(_table(doc, "communication", "exceptions")["rows"]) == 3


def test_the_72_hour_clock() -> None:
    within = report_document(facts_2022(), now=WITHIN)
    assert _field(within, "dates", "late")["value"] is False
    assert _field(within, "dates", "delay_reason")["text"].startswith("Sans objet")

    late = report_document(facts_2022(), now=LATE)
    assert _field(late, "dates", "late")["value"] is True
    assert _field(late, "dates", "hours_since_awareness")["value"] == 80.0
    assert _field(late, "dates", "delay_reason")["text"].startswith("À COMPLÉTER")

    explained = report_document(
        facts_2022(delay_reason="Périmètre établi le 16 mars au soir"), now=LATE
    )
    assert _field(explained, "dates", "delay_reason")["text"] == (
        "Périmètre établi le 16 mars au soir"
    )


def test_complementary_notification_reports_the_new_persons() -> None:
    facts = facts_2022(notification="complementary")
    facts = replace(facts, scope=replace(facts.scope, version=2, new_persons=12_000))
    doc = report_document(facts, now=WITHIN)
    assert _field(doc, "notification", "kind")["text"] == "Notification complémentaire"
    assert _field(doc, "notification", "new_persons")["value"] == 12_000


def test_an_unverified_export_is_said_so() -> None:
    facts = facts_2022()
    scope = replace(
        facts.scope,
        source="export:/srv/audit",
        verified=False,
        verification_problems=["checkpoint 12 signature"],
    )
    doc = report_document(replace(facts, scope=scope), now=WITHIN)
    assert "ATTENTION" in _field(doc, "data", "source")["text"]
    assert "checkpoint 12 signature" in _field(doc, "data", "source")["text"]


def test_small_error_tells_nobody_but_is_still_notified() -> None:
    doc = report_document(facts_small_error(), now=WITHIN)
    assert _field(doc, "notification", "cnil_required")["value"] is True
    assert _field(doc, "communication", "required")["value"] is False
    assert doc["sections"]["communication"]["tables"] == []
    assert _field(doc, "nature", "malicious")["value"] is False


def test_html_is_self_contained_with_sections_and_inline_charts() -> None:
    facts = facts_2022(name="Pharmacies <b>compromises</b>")
    doc = report_document(facts, now=WITHIN)
    html = render_html(doc, render_charts(facts))
    assert html.startswith("<!DOCTYPE html>")
    assert '<html lang="fr">' in html
    for _, title in SECTIONS:
        assert title in html.replace("&#39;", "'")
    assert html.count("<svg") == 3
    assert "Pharmacies &lt;b&gt;compromises&lt;/b&gt;" in html
    # No external resource: no script, link, image or remote URL outside SVG namespaces.
    assert "<script" not in html
    assert "<link" not in html
    assert "<img" not in html
    without_namespaces = re.sub(r'xmlns(:\w+)?="[^"]*"|rdf:resource="[^"]*"', "", html)
    without_namespaces = re.sub(r"<metadata>.*?</metadata>", "", without_namespaces, flags=re.S)
    assert "http://" not in without_namespaces
    assert "https://" not in without_namespaces
    assert "@media print" in html
    check_no_nir(html, "test")


def test_pdf_has_pages_and_is_deterministic() -> None:
    facts = facts_2022()
    doc = report_document(facts, now=WITHIN)
    charts = render_charts(facts)
    pdf = render_pdf(doc, charts)
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    pages = len(re.findall(rb"/Type /Page\b(?!s)", pdf))
    assert pages >= 4
    assert b"DejaVuSans" in pdf
    assert render_pdf(doc, charts) == pdf


def test_nir_shapes_are_refused() -> None:
    for text in (FAKE_NIR, FAKE_NIR[:13], "2 55 08 2A 073 004 59", "185017512345678"):
        with pytest.raises(ReportContainsNIR) as caught:
            check_no_nir(f"cause : {text}.", "test")
        assert caught.value.code == "report_contains_nir"
        assert text not in caught.value.detail
    # Numbers that are not NIRs: a SIRET (14 digits), a µs timestamp (16), counts.
    for text in ("18003502400016", "1646956800000000", "510 000", "514213", "01 23 45 67 89"):
        check_no_nir(text, "test")


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_write_report_writes_the_three_files(tmp_path: Path) -> None:
    out = tmp_path / "rapport"
    files = write_report(facts_2022(), out, now=WITHIN)
    assert _listing(out) == ["report.html", "report.json", "report.pdf"]
    assert files.json == out / "report.json"
    doc = json.loads(files.json.read_text(encoding="utf-8"))
    assert doc == report_document(facts_2022(), now=WITHIN)
    assert files.pdf.read_bytes().startswith(b"%PDF-")
    assert "<svg" in files.html.read_text(encoding="utf-8")


def test_a_report_with_a_nir_is_not_written(tmp_path: Path) -> None:
    facts = facts_2022(cause=f"l'assuré {FAKE_NIR} a signalé un appel")
    with pytest.raises(ReportContainsNIR):
        write_report(facts, tmp_path, now=WITHIN)
    assert _listing(tmp_path) == []


def test_a_failure_while_rendering_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_report(facts_small_error(), tmp_path, now=WITHIN)
    before = {name: (tmp_path / name).read_bytes() for name in _listing(tmp_path)}

    def broken(document: dict[str, Any], charts: object) -> bytes:
        raise RuntimeError("font file missing")

    monkeypatch.setattr(report_module, "render_pdf", broken)
    with pytest.raises(RuntimeError):
        write_report(facts_2022(), tmp_path, now=WITHIN)
    # Nothing half-written, and the previous report is untouched.
    assert {name: (tmp_path / name).read_bytes() for name in _listing(tmp_path)} == before


def test_a_failure_while_writing_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_report(facts_small_error(), tmp_path, now=WITHIN)
    old_json = (tmp_path / "report.json").read_bytes()

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        write_report(facts_2022(), tmp_path, now=WITHIN)
    assert _listing(tmp_path) == ["report.html", "report.json", "report.pdf"]
    assert (tmp_path / "report.json").read_bytes() == old_json


def test_pdf_font_has_every_french_glyph(caplog: pytest.LogCaptureFixture) -> None:
    facts = facts_2022(
        cause="Cœur de l\N{RIGHT SINGLE QUOTATION MARK}attaque : « 1 000 € » — Œuvre, Ÿ, ç, à, î"
    )
    doc = report_document(facts, now=WITHIN)
    with caplog.at_level(logging.WARNING, logger="fpdf"):
        render_pdf(doc, [])
    assert not [r for r in caplog.records if "missing" in r.getMessage()]
    # The check itself works: a glyph DejaVu Sans lacks is reported.
    with caplog.at_level(logging.WARNING, logger="fpdf"):
        render_pdf(report_document(facts_2022(cause="漢"), now=WITHIN), [])
    assert [r for r in caplog.records if "missing" in r.getMessage()]
