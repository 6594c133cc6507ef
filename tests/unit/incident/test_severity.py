from __future__ import annotations

import json
from dataclasses import replace

import pytest

from rempart.incident.severity import (
    Band,
    InvalidCircumstances,
    assess,
    band_of,
    cnil_decision,
    people_decision,
)
from rempart.incident.summary import IncidentFacts
from tests.unit.incident.facts import facts_2022, facts_small_error, with_reveals


def _without_nir(facts: IncidentFacts) -> IncidentFacts:
    by_category = {k: v for k, v in facts.scope.by_category.items() if k != "nir"}
    facts = with_reveals(facts, nir=0)
    return replace(facts, scope=replace(facts.scope, by_category=by_category))


def test_2022_case_is_very_high_and_people_are_told() -> None:
    facts = facts_2022()
    severity = assess(facts)
    assert severity.dpc.value == 4
    assert severity.ei.value == 1
    assert [f.value for f in severity.cb] == [0.5, 0.0, 0.0, 0.5]
    assert severity.score == 5.0
    assert severity.band is Band.VERY_HIGH
    assert severity.band_label == "très élevée"
    assert "ALD" in severity.dpc.why or "AME" in severity.dpc.why or "C2S" in severity.dpc.why
    assert [c.key for c in severity.categories] == [
        "identity",
        "treating_doctor",
        "low_income",
        "health",
        "irregular_residence",
    ]
    assert cnil_decision(severity).required
    people = people_decision(severity, facts)
    assert people.required
    assert [e.key for e in people.exceptions] == ["34.3.a", "34.3.b", "34.3.c"]
    assert all(e.value == 0 for e in people.exceptions)
    assert "510" in people.exceptions[2].why.replace(" ", "").replace("\u202f", "")


def test_small_internal_error_is_medium_without_telling_the_people() -> None:
    facts = facts_small_error()
    severity = assess(facts)
    # identity (simple, 1) + NIR (+1) = 2; EI maximum; known recipients +0.25, no malice.
    assert severity.dpc.value == 2
    assert severity.score == 2.25
    assert severity.band is Band.MEDIUM
    assert cnil_decision(severity).required
    decision = people_decision(severity, facts)
    assert not decision.required
    assert decision.exceptions == ()
    assert "n'est pas susceptible d'engendrer un risque élevé" in decision.reasoning


def test_the_nir_adds_one_to_the_context() -> None:
    facts = _without_nir(facts_small_error())
    severity = assess(facts)
    assert severity.dpc.value == 1
    assert severity.score == 1.25
    assert severity.band is Band.LOW
    decision = cnil_decision(severity)
    assert not decision.required
    assert "registre" in decision.reasoning


def test_vulnerable_persons_add_one() -> None:
    for reveal in ("minor", "over_75"):
        severity = assess(with_reveals(facts_small_error(), **{reveal: 1}))
        assert severity.dpc.value == 3, reveal
        assert severity.band is Band.HIGH
        assert [a.key for a in severity.categories[0].adjustments] == ["nir", "vulnerable"]


def test_each_kind_of_data_takes_its_class_when_present() -> None:
    base = facts_small_error()
    # Without the NIR adjustment, to see the bare class scores.
    bare = _without_nir(base)
    assert assess(with_reveals(bare, low_income=1)).dpc.value == 3
    assert assess(with_reveals(bare, health=1)).dpc.value == 4
    assert assess(with_reveals(bare, irregular_residence=1)).dpc.value == 4
    # A kind with zero persons does not count.
    assert assess(with_reveals(bare, health=0)).dpc.value == 1


def test_scores_are_bounded_to_four() -> None:
    severity = assess(facts_2022())
    health = next(c for c in severity.categories if c.key == "health")
    assert health.base == 4
    assert len(health.adjustments) == 2
    assert health.score == 4
    assert "borné" in health.why


def test_circumstances_move_the_score_as_documented() -> None:
    facts = facts_small_error()
    known = assess(facts).score

    def circ(**c: object) -> float:
        merged = {"recipients": "known", "malicious": False, **c}
        return assess(replace(facts, extra={"circumstances": merged})).score

    assert circ(recipients="unknown") == known + 0.25
    assert circ(malicious=True) == known + 0.5
    assert circ(integrity="recoverable") == known + 0.25
    assert circ(integrity="lost") == known + 0.5
    assert circ(availability="temporary") == known + 0.25
    assert circ(availability="permanent") == known + 0.5


def test_compromised_accounts_mean_unknown_recipients_and_malice_by_default() -> None:
    facts = replace(facts_small_error(), extra={})
    severity = assess(facts)
    assert severity.cb[0].value == 0.5
    assert severity.cb[3].value == 0.5


def test_no_exposure_means_no_data_and_a_low_band() -> None:
    facts = facts_2022()
    empty = replace(
        facts.scope,
        persons=0,
        records=0,
        by_category={},
        by_reveal={},
        by_department={},
        series=[],
    )
    severity = assess(replace(facts, scope=empty))
    assert severity.categories == ()
    assert severity.dpc.value == 0
    assert severity.cb[0].value == 0  # nothing left the service
    assert severity.score == 0.5  # the attempt was malicious all the same
    assert not cnil_decision(severity).required


@pytest.mark.parametrize(
    "circumstances",
    [{"recipients": "everyone"}, {"colour": "red"}, {"malicious": "yes"}, ["known"]],
)
def test_bad_circumstances_are_refused(circumstances: object) -> None:
    facts = replace(facts_small_error(), extra={"circumstances": circumstances})
    with pytest.raises(InvalidCircumstances) as caught:
        assess(facts)
    assert caught.value.code == "invalid_circumstances"


def test_bands() -> None:
    assert band_of(0)[0] is Band.LOW
    assert band_of(1.999)[0] is Band.LOW
    assert band_of(2)[0] is Band.MEDIUM
    assert band_of(3)[0] is Band.HIGH
    assert band_of(3.99)[0] is Band.HIGH
    assert band_of(4)[0] is Band.VERY_HIGH


def test_to_dict_is_json_able() -> None:
    data = assess(facts_2022()).to_dict()
    again = json.loads(json.dumps(data))
    assert again["band"] == "very_high"
    assert again["cb_total"] == 1.0
    assert again["dpc"]["value"] == 4.0
