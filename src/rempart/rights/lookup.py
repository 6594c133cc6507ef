"""Reading one insured person's identity and rights.

A lookup needs both the NIR and the birth date: an unknown NIR and a wrong
birth date give the same answer, so the service cannot be used to test which
NIRs exist.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.orm import Session

from rempart.errors import RempartError
from rempart.guard.db_directory import DECLARED_DOCTOR, persons_select
from rempart.nir import NIR
from rempart.store.direct import DirectStatement
from rempart.store.models import Insured

__all__ = [
    "NotFound",
    "PersonRead",
    "RightsRecord",
    "TreatingDoctor",
    "read_person",
]


class NotFound(RempartError):
    code = "not_found"
    status = 404

    def __init__(self) -> None:
        super().__init__("no insured person matches this NIR and birth date")


@dataclass(frozen=True, slots=True)
class TreatingDoctor:
    name: str
    rpps: str | None
    first_name: str = ""
    last_name: str = ""


@dataclass(frozen=True, slots=True)
class RightsRecord:
    nir: str
    last_name: str
    first_name: str
    birth_date: date
    sex: int
    treating_doctor: TreatingDoctor | None
    c2s: bool
    ame: bool
    ald: bool

    def __repr__(self) -> str:
        return "RightsRecord(<redacted>)"


# The rights' columns (as ``_LOOKUP`` names them), then the guard's facts about the person:
# one row per care-linked unit, the rights repeated on each.
_RIGHTS_COLUMNS = (
    Insured.nir,
    Insured.last_name,
    Insured.first_name,
    Insured.birth_date,
    Insured.sex,
    Insured.c2s,
    Insured.ame,
    Insured.ald,
    Insured.treating_doctor,
    DECLARED_DOCTOR.first_name.label("doctor_first_name"),
    DECLARED_DOCTOR.last_name.label("doctor_last_name"),
    DECLARED_DOCTOR.rpps.label("doctor_rpps"),
)
_READ = DirectStatement(persons_select(*_RIGHTS_COLUMNS).where(Insured.nir == bindparam("nir")))


@dataclass(frozen=True, slots=True)
class PersonRead:
    """One person's rows, read once for both the guard and the answer (no row: unknown).

    Read before the guard decides, so that a lookup costs one round trip for both; the
    rights leave this object only through :meth:`record`, which the lookup calls once
    the guard has let it go on (:func:`rempart.rights.guarded.guarded_lookup`)."""

    rows: Sequence[Any]
    start: int = len(_RIGHTS_COLUMNS)
    """The column where the guard's facts begin (``db_directory.PersonRows``)."""

    def __repr__(self) -> str:
        return f"PersonRead(<redacted>, {len(self.rows)} rows)"

    def record(self, birth_date: date) -> RightsRecord:
        return _record(self.rows[0] if self.rows else None, birth_date)


def read_person(session: Session, nir: NIR) -> PersonRead:
    """The person's rights and the guard's facts about them, in one statement."""
    return PersonRead(_READ.rows(session, {"nir": nir.value}))


def _record(row: Sequence[Any] | None, birth_date: date) -> RightsRecord:
    # Compare the birth date even when the NIR is unknown, so both cases cost the same.
    stored = row[3].isoformat() if row is not None else "0000-00-00"
    if not hmac.compare_digest(stored, birth_date.isoformat()) or row is None:
        raise NotFound()
    (nir, last_name, first_name, born, sex, c2s, ame, ald, doctor_id) = row[:9]
    doctor_first_name, doctor_last_name, doctor_rpps = row[9:12]
    doctor = None
    if doctor_id is not None:
        name = " ".join(p for p in (doctor_first_name, doctor_last_name) if p)
        doctor = TreatingDoctor(
            name=name or doctor_id,
            rpps=doctor_rpps,
            first_name=doctor_first_name or "",
            last_name=doctor_last_name or "",
        )
    return RightsRecord(
        nir=nir,
        last_name=last_name,
        first_name=first_name,
        birth_date=born,
        sex=sex,
        treating_doctor=doctor,
        c2s=c2s,
        ame=ame,
        ald=ald,
    )
