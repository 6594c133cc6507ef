"""NIR (French social security number): parsing, validation and keyed pseudonyms.

Normalisation and the check key come from python-stdnum (``stdnum.fr.nir``);
this module adds the typed value and one stable error code for each way a NIR
can be wrong, so that the API, the loader and the guard all speak the same
language about bad input.

>>> nir = parse_nir("2 55 08 2a 073 004 58")
>>> nir.sex, nir.birth_year_2d, nir.birth_month, nir.birth_place.department
(2, 55, 8, '2A')
>>> parse_nir("255082A07300459")
Traceback (most recent call last):
    ...
rempart.nir.InvalidNIR: nir_key: the check key does not match the number
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

from stdnum import exceptions as stdnum_errors
from stdnum.fr import nir as stdnum_nir

__all__ = [
    "NIR",
    "BirthPlace",
    "InvalidNIR",
    "NIRError",
    "compact",
    "is_valid_nir",
    "keyed_pseudonym",
    "make_nir",
    "parse_nir",
    "pseudonymize",
]

NIR_LENGTH = 15


class NIRError(StrEnum):
    """Stable codes, one per way a NIR can be wrong."""

    LENGTH = "nir_length"
    CHARACTERS = "nir_characters"
    SEX = "nir_sex"
    MONTH = "nir_month"
    DEPARTMENT = "nir_department"
    KEY = "nir_key"


_DETAILS: dict[NIRError, str] = {
    NIRError.LENGTH: "a NIR has 15 characters (13 digits and a 2-digit key)",
    NIRError.CHARACTERS: "a NIR holds digits only, except 2A/2B for Corsica",
    NIRError.SEX: "the first digit must be 1 or 2 (7 or 8 for a temporary number)",
    NIRError.MONTH: "the birth month must be 01-12, or 20-42 or 50-99 when unknown",
    NIRError.DEPARTMENT: "the place of birth is not a known department, overseas or abroad code",
    NIRError.KEY: "the check key does not match the number",
}


class InvalidNIR(ValueError):
    """A NIR that is wrong in a way named by :attr:`code`. Never carries the NIR itself."""

    def __init__(self, code: NIRError) -> None:
        self.code = code
        self.detail = _DETAILS[code]
        super().__init__(f"{code.value}: {self.detail}")


@dataclass(frozen=True, slots=True)
class BirthPlace:
    """Where a person was born, as encoded in positions 6-10 of the NIR."""

    department: str
    """``01``-``95``, ``2A``/``2B`` (``20`` before 1976), ``971``-``976``, ``98`` or ``99``."""
    commune: str
    """INSEE commune code within the department, or the country code when abroad."""

    @property
    def abroad(self) -> bool:
        return self.department == "99"

    @property
    def overseas(self) -> bool:
        return self.department.startswith("97")


@dataclass(frozen=True, slots=True)
class NIR:
    """A valid NIR. ``repr`` hides the number so that it cannot slip into a log."""

    value: str

    def __repr__(self) -> str:
        return "NIR(<redacted>)"

    def __str__(self) -> str:
        return self.value

    @property
    def sex(self) -> int:
        """1 for a man, 2 for a woman (temporary numbers 7/8 map to 1/2)."""
        return 1 if self.value[0] in "17" else 2

    @property
    def temporary(self) -> bool:
        return self.value[0] in "78"

    @property
    def birth_year_2d(self) -> int:
        return int(self.value[1:3])

    @property
    def birth_month(self) -> int | None:
        """1-12, or None when the month was unknown at registration."""
        month = int(self.value[3:5])
        return month if 1 <= month <= 12 else None

    @property
    def birth_place(self) -> BirthPlace:
        if self.value[5:7] == "97":
            return BirthPlace(department=self.value[5:8], commune=self.value[8:10])
        return BirthPlace(department=self.value[5:7], commune=self.value[7:10])

    @property
    def order_number(self) -> int:
        return int(self.value[10:13])

    @property
    def key(self) -> str:
        return self.value[13:15]


def compact(raw: str) -> str:
    """Normalise as python-stdnum does: strip spaces and dots, upper-case ``2a``/``2b``."""
    return str(stdnum_nir.compact(raw))


def _valid_month(month: int) -> bool:
    return 1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99


def _valid_department(value: str) -> bool:
    department = value[5:7]
    if department in ("2A", "2B"):
        return True
    number = int(department)
    if number == 97:
        return value[7] in "123456"
    return number != 0


def parse_nir(raw: str) -> NIR:
    """Parse untrusted input into a :class:`NIR`, or raise :class:`InvalidNIR`."""
    value = compact(raw)
    if len(value) != NIR_LENGTH:
        raise InvalidNIR(NIRError.LENGTH)
    if not value.isascii():
        raise InvalidNIR(NIRError.CHARACTERS)
    try:
        stdnum_nir.validate(value)
    except stdnum_errors.InvalidChecksum:
        raise InvalidNIR(NIRError.KEY) from None
    except stdnum_errors.ValidationError:
        raise InvalidNIR(NIRError.CHARACTERS) from None
    if value[0] not in "1278":
        raise InvalidNIR(NIRError.SEX)
    if not _valid_month(int(value[3:5])):
        raise InvalidNIR(NIRError.MONTH)
    if not _valid_department(value):
        raise InvalidNIR(NIRError.DEPARTMENT)
    return NIR(value)


def is_valid_nir(raw: str) -> bool:
    try:
        parse_nir(raw)
    except InvalidNIR:
        return False
    return True


def make_nir(*, sex: int, year: int, month: int, department: str, commune: str, order: int) -> NIR:
    """Build a valid NIR from its parts; the key comes from python-stdnum.

    ``department`` is 2 characters (or 3 for overseas ``97x``) and ``commune``
    fills the place of birth to 5 characters.

    >>> str(make_nir(sex=1, year=85, month=3, department="75", commune="056", order=12))
    '185037505601270'
    """
    place = department + commune
    if len(place) != 5:
        raise ValueError("department and commune must make 5 characters")
    body = f"{sex}{year % 100:02d}{month:02d}{place}{order:03d}"
    return parse_nir(body + stdnum_nir.calc_check_digits(body + "00"))


def pseudonymize(nir: NIR | str, key: bytes) -> str:
    """Keyed pseudonym of a NIR for logs and the audit trail (HMAC-SHA256, 128 bits, hex).

    Without the key, the 10^13 possible NIRs cannot be enumerated back from it.
    """
    return keyed_pseudonym(nir.value if isinstance(nir, NIR) else compact(nir), key)


def keyed_pseudonym(normalised: str, key: bytes) -> str:
    """:func:`pseudonymize` of a value already normalised (a parsed NIR's, or
    :func:`compact`'s output): the lookup path normalises its input once."""
    return hmac.new(key, normalised.encode("ascii", "replace"), hashlib.sha256).hexdigest()[:32]
