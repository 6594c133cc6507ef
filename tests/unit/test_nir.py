"""NIR parsing: properties over generated NIRs, and one test per error code."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.fr import nir as stdnum_nir

from rempart.nir import NIR, InvalidNIR, NIRError, make_nir, parse_nir, pseudonymize

departments = st.one_of(
    st.integers(1, 95).filter(lambda d: d != 20).map(lambda d: f"{d:02d}"),
    st.sampled_from(["2A", "2B", "20", "98", "99"]),
)


@st.composite
def valid_nirs(draw: st.DrawFn) -> NIR:
    overseas = draw(st.booleans())
    if overseas:
        department = f"97{draw(st.integers(1, 6))}"
        commune = f"{draw(st.integers(0, 99)):02d}"
    else:
        department = draw(departments)
        commune = f"{draw(st.integers(1, 999)):03d}"
    return make_nir(
        sex=draw(st.sampled_from([1, 2])),
        year=draw(st.integers(0, 99)),
        month=draw(st.integers(1, 12)),
        department=department,
        commune=commune,
        order=draw(st.integers(1, 999)),
    )


@given(valid_nirs())
def test_every_valid_nir_round_trips(nir: NIR) -> None:
    assert parse_nir(nir.value) == nir
    spaced = " ".join(
        [nir.value[:1], nir.value[1:3], nir.value[3:5], nir.value[5:10], nir.value[10:]]
    )
    assert parse_nir(spaced) == nir
    assert parse_nir(nir.value.lower()) == nir
    assert parse_nir(nir.value.replace("", ".")[1:-1]) == nir


@given(valid_nirs(), st.data())
def test_every_single_character_corruption_is_rejected(nir: NIR, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, 14))
    original = nir.value[position]
    replacement = data.draw(
        st.sampled_from(string.digits + string.ascii_letters).filter(
            lambda c: c.upper() != original
        )
    )
    corrupted = nir.value[:position] + replacement + nir.value[position + 1 :]
    with pytest.raises(InvalidNIR):
        parse_nir(corrupted)


@given(valid_nirs())
def test_parts_are_exposed(nir: NIR) -> None:
    assert nir.sex in (1, 2)
    assert nir.birth_month is not None
    assert 1 <= nir.birth_month <= 12
    assert 0 <= nir.birth_year_2d <= 99
    place = nir.birth_place
    assert len(place.department) + len(place.commune) == 5
    assert place.overseas == place.department.startswith("97")


def test_corsica_abroad_and_overseas() -> None:
    corsica = make_nir(sex=2, year=55, month=8, department="2B", commune="033", order=4)
    assert corsica.birth_place.department == "2B"
    abroad = make_nir(sex=1, year=90, month=1, department="99", commune="352", order=7)
    assert abroad.birth_place.abroad
    assert abroad.birth_place.commune == "352"
    reunion = make_nir(sex=1, year=70, month=6, department="974", commune="11", order=2)
    assert reunion.birth_place.department == "974"
    assert reunion.birth_place.overseas


def _with_key(body13: str) -> str:
    return body13 + stdnum_nir.calc_check_digits(body13 + "00")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("18503750560127", NIRError.LENGTH),
        ("", NIRError.LENGTH),
        ("1850375056012700", NIRError.LENGTH),
        ("18503750X601270", NIRError.CHARACTERS),
        ("185032C05601270", NIRError.CHARACTERS),
        ("18503750560127é", NIRError.CHARACTERS),
        ("185037505601271", NIRError.KEY),
        (_with_key("3850375056012"), NIRError.SEX),
        (_with_key("1851375056012"), NIRError.MONTH),
        (_with_key("1850075056012"), NIRError.MONTH),
        (_with_key("1850300056012"), NIRError.DEPARTMENT),
        (_with_key("1850397956012"), NIRError.DEPARTMENT),
    ],
)
def test_each_way_of_being_wrong_has_its_code(raw: str, code: NIRError) -> None:
    with pytest.raises(InvalidNIR) as caught:
        parse_nir(raw)
    assert caught.value.code is code
    assert raw not in str(caught.value) or raw == ""


def test_unknown_birth_month_is_valid_but_none() -> None:
    nir = parse_nir(_with_key("1853075056012"))
    assert nir.birth_month is None


def test_repr_never_shows_the_number() -> None:
    nir = make_nir(sex=1, year=85, month=3, department="75", commune="056", order=12)
    assert nir.value not in repr(nir)
    assert nir.value not in repr([nir])


def test_pseudonym_is_keyed_stable_and_normalised() -> None:
    nir = make_nir(sex=1, year=85, month=3, department="75", commune="056", order=12)
    key_a, key_b = b"a" * 32, b"b" * 32
    assert pseudonymize(nir, key_a) == pseudonymize(nir.value, key_a)
    assert pseudonymize(" ".join(nir.value), key_a) == pseudonymize(nir, key_a)
    assert pseudonymize(nir, key_a) != pseudonymize(nir, key_b)
    assert nir.value not in pseudonymize(nir, key_a)
    assert len(pseudonymize(nir, key_a)) == 32
