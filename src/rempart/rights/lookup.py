"""Reading one insured person's identity and rights.

A lookup needs both the NIR and the birth date: an unknown NIR and a wrong
birth date give the same answer, so the service cannot be used to test which
NIRs exist.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import date

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, aliased

from rempart.errors import RempartError
from rempart.nir import NIR
from rempart.store.models import Insured, Professional

__all__ = ["NotFound", "RightsRecord", "TreatingDoctor", "lookup_rights"]


class NotFound(RempartError):
    code = "not_found"
    status = 404

    def __init__(self) -> None:
        super().__init__("no insured person matches this NIR and birth date")


@dataclass(frozen=True, slots=True)
class TreatingDoctor:
    name: str
    rpps: str | None


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


_doctor = aliased(Professional)


_LOOKUP = (
    select(
        Insured.nir,
        Insured.last_name,
        Insured.first_name,
        Insured.birth_date,
        Insured.sex,
        Insured.c2s,
        Insured.ame,
        Insured.ald,
        Insured.treating_doctor,
        _doctor.first_name.label("doctor_first_name"),
        _doctor.last_name.label("doctor_last_name"),
        _doctor.rpps.label("doctor_rpps"),
    )
    .outerjoin(_doctor, _doctor.account_id == Insured.treating_doctor)
    .where(Insured.nir == bindparam("nir"))
)


def lookup_rights(session: Session, nir: NIR, birth_date: date) -> RightsRecord:
    """One query, NIR by primary key, the treating doctor joined in; raises :class:`NotFound`."""
    row = session.connection().execute(_LOOKUP, {"nir": nir.value}).one_or_none()
    # Compare the birth date even when the NIR is unknown, so both cases cost the same.
    stored = row.birth_date.isoformat() if row is not None else "0000-00-00"
    if not hmac.compare_digest(stored, birth_date.isoformat()) or row is None:
        raise NotFound()
    doctor = None
    if row.treating_doctor is not None:
        name = " ".join(p for p in (row.doctor_first_name, row.doctor_last_name) if p)
        doctor = TreatingDoctor(name=name or row.treating_doctor, rpps=row.doctor_rpps)
    return RightsRecord(
        nir=row.nir,
        last_name=row.last_name,
        first_name=row.first_name,
        birth_date=row.birth_date,
        sex=row.sex,
        treating_doctor=doctor,
        c2s=row.c2s,
        ame=row.ame,
        ald=row.ald,
    )
