"""The canonical encoding's pieces, without a database: what the PostgreSQL append hashes
around the sequence number is what ``canonical`` encodes, for any cleaned row."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.audit.chain import FIELD_NAMES, canonical, canonical_parts, clean

# Every code point, lone surrogates included, and the ones the encoding cares about.
_CHARS = st.one_of(
    st.characters(),
    st.integers(0xD800, 0xDFFF).map(chr),
    st.sampled_from("\x1f\x00\U0001f600\U0010ffff\ufffd\n"),
)
_TEXT = st.text(_CHARS, max_size=40)
_BIGINT = st.integers(-(2**63), 2**63 - 1)


@st.composite
def rows(draw: st.DrawFn) -> tuple[int | str, ...]:
    """A row as ``_stored_row`` makes it: integers as they are, text fields cleaned."""
    ints = {"seq", "ts_us", "found"}
    return tuple(
        draw(_BIGINT) if name in ints else clean(draw(_TEXT), draw(st.integers(0, 64)))
        for name in FIELD_NAMES
    )


@settings(max_examples=300)
@given(rows())
def test_the_bytes_around_the_sequence_number_are_the_canonical_encoding(
    row: tuple[int | str, ...],
) -> None:
    seq = row[FIELD_NAMES.index("seq")]
    before, after = canonical_parts(row)
    assert before + str(seq).encode() + after == canonical(row)


@settings(max_examples=300)
@given(_TEXT, st.integers(0, 64))
def test_a_cleaned_field_is_bounded_and_storable(value: str, limit: int) -> None:
    cleaned = clean(value, limit)
    assert len(cleaned) == min(len(value), limit)
    assert "\x1f" not in cleaned
    assert "\x00" not in cleaned
    cleaned.encode("utf-8")  # no lone surrogate left
    # Only what cannot be stored is replaced, one character for one.
    assert all(c in {v, "\ufffd"} for c, v in zip(cleaned, value, strict=False))
