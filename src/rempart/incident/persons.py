"""From the trail's pseudonyms to the persons exposed, and what each exposure reveals.

Persons are found through the indexed ``insured.pseudonym`` (``store/pseudonyms.py``),
in batches: the cost follows the persons exposed, not the population.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, String, any_, literal, select
from sqlalchemy.dialects.postgresql import ARRAY

from rempart.incident.reading import SubjectExposure
from rempart.store.models import Insured

__all__ = ["Person", "age_at", "resolve", "reveals"]

_SQLITE_BATCH = 10_000  # under SQLite's 32,766 bound parameters
_PG_BATCH = 50_000  # one array parameter


@dataclass(frozen=True, slots=True)
class Person:
    pseudonym: str
    birth_date: date
    department: str
    c2s: bool
    ame: bool
    ald: bool
    has_email: bool


def _chunks(values: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def resolve(connection: Connection, pseudonyms: Iterable[str]) -> dict[str, Person]:
    wanted = sorted(set(pseudonyms))
    postgres = connection.dialect.name == "postgresql"
    columns = (
        Insured.pseudonym,
        Insured.birth_date,
        Insured.department,
        Insured.c2s,
        Insured.ame,
        Insured.ald,
        Insured.email,
    )
    found: dict[str, Person] = {}
    for batch in _chunks(wanted, _PG_BATCH if postgres else _SQLITE_BATCH):
        condition = Insured.pseudonym == _any(batch) if postgres else Insured.pseudonym.in_(batch)
        for pseudonym, birth, department, c2s, ame, ald, email in connection.execute(
            select(*columns).where(condition)
        ):
            found[str(pseudonym)] = Person(
                pseudonym=str(pseudonym),
                birth_date=birth,
                department=department,
                c2s=bool(c2s),
                ame=bool(ame),
                ald=bool(ald),
                has_email=bool(email),
            )
    return found


def _any(batch: list[str]) -> ColumnElement[Any]:
    return any_(literal(batch, ARRAY(String(32))))


def age_at(birth: date, moment_us: int) -> int:
    day = datetime.fromtimestamp(moment_us / 1_000_000, UTC).date()
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def reveals(exposure: SubjectExposure, person: Person | None) -> tuple[str, ...]:
    """What this exposure told its reader beyond identity (``summary.REVEALS`` order).

    A right is revealed only when it was returned and the person has it: a C2S field
    saying "no" reveals no low income. Without a person (no longer insured), only what
    the categories alone say: the NIR."""
    categories = set(exposure.categories)
    out = []
    if person is not None:
        if person.ald and "ald" in categories:
            out.append("health")
        if person.ame and "ame" in categories:
            out.append("irregular_residence")
        if person.c2s and "c2s" in categories:
            out.append("low_income")
    if "nir" in categories:
        out.append("nir")
    if person is not None and categories & {"identity", "nir"}:
        age = age_at(person.birth_date, exposure.first_us)
        if age < 18:
            out.append("minor")
        elif age >= 75:
            out.append("over_75")
    return tuple(out)
