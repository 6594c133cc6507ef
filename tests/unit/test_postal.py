"""The address block (NF Z10-011): the standard's rules on any input, and the layouts."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.notify.breach.postal import (
    ABBREVIATED,
    MAX_LINE,
    MAX_LINES,
    MINOR_LINE,
    TRUNCATED,
    AddressBlock,
    AddressError,
    address_block,
    postal_text,
)

ERROR_CODES = {"missing_name", "missing_street", "invalid_postcode", "missing_city"}
LAST_LINE = re.compile(r"^\d{5} [A-Z0-9 ]+$")
POSTAL_LINE = re.compile(r"^[A-Z0-9 ]+$")


def block(**overrides: object) -> AddressBlock:
    values: dict[str, object] = {
        "sex": 2,
        "first_name": "Hélène",
        "last_name": "Lefèvre",
        "street": "12 rue des Lilas",
        "postcode": "69003",
        "city": "Lyon",
    }
    values.update(overrides)
    return address_block(**values)  # type: ignore[arg-type]


def check_rules(result: AddressBlock, *, minor: bool) -> None:
    assert 1 <= len(result.lines) <= MAX_LINES
    assert all(0 < len(line) <= MAX_LINE for line in result.lines)
    street_from = 2 if minor else 1
    for line in result.lines[street_from:]:
        assert POSTAL_LINE.match(line), line
    assert LAST_LINE.match(result.lines[-1]), result.lines[-1]
    assert set(result.flags) <= {ABBREVIATED, TRUNCATED}


def test_plain_address_is_left_as_it_is() -> None:
    result = block()
    assert result.lines == ("Madame Hélène LEFÈVRE", "12 RUE DES LILAS", "69003 LYON")
    assert result.flags == ()


def test_man_and_unknown_sex() -> None:
    assert block(sex=1, first_name="Jean").lines[0] == "Monsieur Jean LEFÈVRE"
    assert block(sex=0, first_name="Camille").lines[0] == "Camille LEFÈVRE"


def test_street_and_city_lose_accents_punctuation_and_ligatures() -> None:
    result = block(street="4, chemin de l'Œuvre-Saint-Éloi", city="Saint-Étienne")
    assert result.lines[1:] == ("4 CHEMIN DE L OEUVRE SAINT ELOI", "69003 SAINT ETIENNE")
    assert result.flags == ()


def test_minor_keeps_the_child_name_on_its_own_line() -> None:
    result = block(minor=True, first_name="Marie-Christine", last_name="de La Tour-Dupin")
    assert result.lines[0] == MINOR_LINE
    assert result.lines[1] == "Marie-Christine DE LA TOUR-DUPIN"
    assert len(result.lines) == 4
    check_rules(result, minor=True)


def test_long_street_abbreviates_the_type_first_and_only_what_is_needed() -> None:
    result = block(street="145 boulevard du Maréchal de Lattre de Tassigny")
    assert result.lines[1] == "145 BD DU MAL DE LATTRE DE TASSIGNY"
    assert result.flags == (ABBREVIATED,)
    # A short street with an abbreviable type is not touched.
    assert block(street="2 avenue Foch").lines[1] == "2 AVENUE FOCH"


def test_street_still_too_long_is_cut_and_flagged() -> None:
    result = block(street="7 impasse des Très Longues Herbes Folles du Grand Marais Salant")
    assert result.lines[1].startswith("7 IMP DES TRES LONGUES")
    assert len(result.lines[1]) <= MAX_LINE
    assert result.flags == (ABBREVIATED, TRUNCATED)


def test_long_city_uses_saint_abbreviation_and_keeps_cedex() -> None:
    result = block(postcode="38000", city="Saint-Martin-d'Uriage-les-Bains-de-Grésivaudan Cedex 9")
    last = result.lines[-1]
    assert last.startswith("38000 ST MARTIN D URIAGE")
    assert last.endswith(" CEDEX 9")
    assert len(last) <= MAX_LINE
    assert ABBREVIATED in result.flags


def test_long_name_shortens_civility_then_first_names() -> None:
    result = block(first_name="Marie-Bernadette", last_name="de Montmorency-Laval")
    assert result.lines[0] == "MME M-B DE MONTMORENCY-LAVAL"
    assert result.flags == (ABBREVIATED,)
    shorter = block(first_name="Anne-Sophie", last_name="de Montmorency-Laval")
    assert shorter.lines[0] == "MME Anne-Sophie DE MONTMORENCY-LAVAL"


def test_postcode_with_a_space_is_accepted() -> None:
    assert block(postcode="75 001").lines[-1] == "75001 LYON"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"street": "  "}, "missing_street"),
        ({"street": ", - '"}, "missing_street"),
        ({"postcode": "7500"}, "invalid_postcode"),
        ({"postcode": "75O01"}, "invalid_postcode"),
        ({"postcode": ""}, "invalid_postcode"),
        ({"city": ""}, "missing_city"),
        ({"city": "--"}, "missing_city"),
        ({"last_name": " \t"}, "missing_name"),
    ],
)
def test_addresses_that_cannot_be_laid_out(overrides: dict[str, str], code: str) -> None:
    with pytest.raises(AddressError) as caught:
        block(**overrides)
    assert caught.value.code == code


@settings(max_examples=400, deadline=None)
@given(
    sex=st.integers(min_value=-1, max_value=3),
    first_name=st.text(max_size=80),
    last_name=st.text(max_size=80),
    street=st.text(max_size=120),
    postcode=st.one_of(st.from_regex(r"\A[0-9]{5}\Z"), st.text(max_size=7)),
    city=st.text(max_size=80),
    minor=st.booleans(),
)
def test_any_input_gives_a_valid_block_or_a_coded_error(
    sex: int,
    first_name: str,
    last_name: str,
    street: str,
    postcode: str,
    city: str,
    minor: bool,
) -> None:
    error: AddressError | None = None
    try:
        result = address_block(
            sex=sex,
            first_name=first_name,
            last_name=last_name,
            street=street,
            postcode=postcode,
            city=city,
            minor=minor,
        )
    except AddressError as caught:
        error = caught
    if error is not None:
        assert error.code in ERROR_CODES
    else:
        check_rules(result, minor=minor)


@settings(max_examples=200, deadline=None)
@given(
    street=st.lists(
        st.sampled_from(["avenue", "Saint", "Général", "de", "la", "Résidence", "12", "Œuvre"]),
        min_size=1,
        max_size=12,
    ).map(" ".join),
    city=st.lists(st.sampled_from(["Saint", "Sainte", "sur", "Mer", "Cedex"]), min_size=1).map(
        "-".join
    ),
)
def test_realistic_words_fit_and_flag_exactly_when_changed(street: str, city: str) -> None:
    result = block(street=street, city=city)
    check_rules(result, minor=False)
    fits = len(postal_text(street)) <= MAX_LINE and len(postal_text(city)) <= MAX_LINE - 6
    assert (result.flags == ()) == fits
    if fits:
        assert result.lines[1:] == (postal_text(street), f"69003 {postal_text(city)}")
