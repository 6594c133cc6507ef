"""From the trail's pseudonyms to the persons exposed, and what each exposure reveals.

Persons are found through the indexed ``insured.pseudonym`` (``store/pseudonyms.py``):
the pseudonyms to resolve go into a temporary table joined to ``insured`` in one
query, so the database chooses between one index probe per person and one pass
(whichever is cheaper); the cost follows the persons exposed, not the population.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Column, Connection, MetaData, String, Table, insert, select

from rempart.incident.reading import SubjectExposure
from rempart.store.models import Insured

__all__ = ["Person", "age_at", "resolve", "reveals"]

_SQLITE_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class Person:
    pseudonym: str
    birth_date: date
    department: str
    c2s: bool
    ame: bool
    ald: bool
    has_email: bool


_wanted = Table(
    "scope_subjects",
    MetaData(),
    Column("subject", String(32), primary_key=True),
    prefixes=["TEMPORARY"],
)
"""The pseudonyms to resolve, joined to ``insured`` in one query (created and dropped in
the caller's transaction)."""


def resolve(connection: Connection, pseudonyms: Iterable[str]) -> dict[str, Person]:
    wanted = sorted(set(pseudonyms))
    if not wanted:
        return {}
    _wanted.create(connection)
    if connection.dialect.name == "postgresql":
        raw: Any = connection.connection.dbapi_connection
        with raw.cursor() as cursor:
            with cursor.copy("COPY scope_subjects (subject) FROM STDIN") as copy:
                for subject in wanted:
                    copy.write_row((subject,))
            # Its size lets the planner choose between index probes and one hash join.
            cursor.execute("ANALYZE scope_subjects")
    else:
        for start in range(0, len(wanted), _SQLITE_BATCH):
            connection.execute(
                insert(_wanted), [{"subject": s} for s in wanted[start : start + _SQLITE_BATCH]]
            )
    rows = connection.execute(
        select(
            Insured.pseudonym,
            Insured.birth_date,
            Insured.department,
            Insured.c2s,
            Insured.ame,
            Insured.ald,
            Insured.email,
        ).select_from(_wanted.join(Insured, Insured.pseudonym == _wanted.c.subject))
    ).all()
    _wanted.drop(connection)
    return {
        str(pseudonym): Person(
            pseudonym=str(pseudonym),
            birth_date=birth,
            department=department,
            c2s=bool(c2s),
            ame=bool(ame),
            ald=bool(ald),
            has_email=bool(email),
        )
        for pseudonym, birth, department, c2s, ame, ald, email in rows
    }


_EPOCH = date(1970, 1, 1).toordinal()
_DAY_US = 86_400_000_000


def age_at(birth: date, moment_us: int) -> int:
    """Age in whole years on the (UTC) day of ``moment_us``."""
    day = date.fromordinal(_EPOCH + moment_us // _DAY_US)
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def reveals(exposure: SubjectExposure, person: Person | None) -> tuple[str, ...]:
    """What this exposure told its reader beyond identity (``summary.REVEALS`` order).

    A right is revealed only when it was returned and the person has it: a C2S field
    saying "no" reveals no low income. Without a person (no longer insured), only what
    the categories alone say: the NIR."""
    categories = exposure.categories
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
    if person is not None and ("identity" in categories or "nir" in categories):
        age = age_at(person.birth_date, exposure.first_us)
        if age < 18:
            out.append("minor")
        elif age >= 75:
            out.append("over_75")
    return tuple(out)
