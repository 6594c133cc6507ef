from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rempart.notify.breach.channels import usable_email


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("camille.durand@gmail.example", "camille.durand@gmail.example"),
        ("  Camille.Durand@Orange.EXAMPLE\n", "Camille.Durand@orange.example"),
        ("jean-luc+notices@free.example", "jean-luc+notices@free.example"),
        # An internationalized domain is carried in its ASCII form.
        ("marie@exämple.fr", "marie@xn--exmple-cua.fr"),
        ("marie@XN--EXMPLE-CUA.FR", "marie@xn--exmple-cua.fr"),
        # A non-ASCII local part stays (the server must offer SMTPUTF8, else a letter).
        ("élodie@exemple.fr", "élodie@exemple.fr"),
        ("e\u0301lodie@exemple.fr", "élodie@exemple.fr"),  # NFC
    ],
)
def test_valid_addresses_are_normalized(raw: str, expected: str) -> None:
    assert usable_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "camille durand@gmail.example",
        "camille@@gmail.example",
        "camille@durand@gmail.example",
        "camille.gmail.example",
        "camille@",
        "@gmail.example",
        "camille..durand@gmail.example",
        ".camille@gmail.example",
        "camille@gmail",
        "camille@-gmail.example",
        "camille@gmail..example",
        "camille@localhost",
        "camille@adresse.invalid",
        "camille@1.2.3.4",
        "camille@[192.0.2.1]",
        '"camille durand"@gmail.example',
        "Camille <camille@gmail.example>",
        "<camille@gmail.example>",
        "camille@gmail.example>",
        "camille\u200b@gmail.example",  # an invisible character
        "camille@gmail.example, jean@free.example",
        "x" * 65 + "@gmail.example",  # local part over 64
        "camille@" + "a" * 64 + ".example",  # a label over 63
        "camille@" + ".".join(["a" * 60] * 5) + ".example",  # over 254 in all
        "camille@gmail.example" + " " * 10_000 + "x",
    ],
)
def test_addresses_that_cannot_be_valid_are_absent(raw: str | None) -> None:
    assert usable_email(raw) is None


@given(st.text(max_size=300))
def test_never_raises_and_what_it_keeps_is_stable(raw: str) -> None:
    result = usable_email(raw)
    if result is not None:
        assert "@" in result
        assert len(result.encode()) <= 254
        assert usable_email(result) == result
