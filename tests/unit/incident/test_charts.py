from __future__ import annotations

from dataclasses import replace

import matplotlib as mpl

from rempart.incident.charts import render_charts
from tests.unit.incident.facts import facts_2022


def test_three_charts_as_inline_svg_and_png() -> None:
    charts = render_charts(facts_2022())
    assert [c.key for c in charts] == ["timeline", "reveals", "departments"]
    for chart in charts:
        assert chart.svg.startswith("<svg")
        assert "<?xml" not in chart.svg
        assert "<!DOCTYPE" not in chart.svg
        assert chart.png.startswith(b"\x89PNG\r\n\x1a\n")
        assert chart.title


def test_two_renders_are_identical() -> None:
    first = render_charts(facts_2022())
    second = render_charts(facts_2022())
    assert [c.svg for c in first] == [c.svg for c in second]
    assert [c.png for c in first] == [c.png for c in second]
    assert "<dc:date>" not in first[0].svg


def test_labels_are_french_and_departments_are_grouped() -> None:
    timeline, reveals, departments = render_charts(facts_2022())
    assert "Heure de Paris" in timeline.svg
    # 19 accounts: the 10 busiest are drawn, the 9 others summed.
    assert "9 autres comptes" in timeline.svg
    assert "Maladie de longue durée (ALD)" in reveals.svg
    assert "Séjour irrégulier (AME)" in reveals.svg
    assert "Dép. 75" in departments.svg
    assert "autres (5 dép.)" in departments.svg
    assert "61\u202f000" in departments.svg


def test_no_global_matplotlib_state_changes() -> None:
    before = dict(mpl.rcParams)
    render_charts(facts_2022())
    assert dict(mpl.rcParams) == before


def test_account_names_are_text_not_math_nor_markup() -> None:
    facts = facts_2022()
    start = facts.scope.series[0][1]
    scope = replace(facts.scope, series=[("a$b$c<x>", start, 5)])
    timeline = render_charts(replace(facts, scope=scope))[0]
    assert "a$b$c&lt;x&gt;" in timeline.svg
    assert "<x>" not in timeline.svg


def test_empty_scope_draws_a_message() -> None:
    facts = facts_2022()
    scope = replace(facts.scope, series=[], by_department={}, by_category={}, by_reveal={})
    charts = render_charts(replace(facts, scope=scope))
    assert "Aucune consultation" in charts[0].svg
    assert "Aucune personne" in charts[1].svg
    assert "Aucune personne" in charts[2].svg
