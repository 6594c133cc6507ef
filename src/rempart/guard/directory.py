"""The reference data the guard's signals read: accounts, insured persons, care links.

:class:`Directory` is the interface (string keys, as the database has them);
:class:`MemoryDirectory` holds a world's reference data compactly (a dict from
NIR to a row number, and typed ``array`` columns indexed by it: about 150 MB
for a million insured persons with three care links each).

A *unit* is who treats a patient: the organisation (pharmacy, hospital,
group practice) when the account has one, else the account itself. Care
links and treating doctors explain a lookup for the whole unit.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rempart.world.geography import DEPARTMENT_CODES, neighbours
from rempart.world.io import WorldFormatError, read_table

__all__ = [
    "Directory",
    "MemoryDirectory",
    "Person",
    "Professional",
    "department_distance",
]

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@dataclass(frozen=True, slots=True)
class Professional:
    account_id: str
    profession: str
    department: str
    unit: str
    """``organization_id`` when the account has one, else ``account_id``."""


class Person(NamedTuple):
    birth_day: int
    """Days since 1970-01-01."""
    department: str
    doctor_unit: str | None
    """Unit of the declared treating doctor, if any."""
    ref: int
    """The directory's own handle for :meth:`Directory.care_linked` (opaque)."""


class Directory(Protocol):
    """What the guard needs to know about accounts and persons."""

    def professional(self, account_id: str) -> Professional | None: ...

    def person(self, nir: str) -> Person | None: ...

    def care_linked(self, unit: str, person: Person) -> bool:
        """Whether a care link known before the data ties ``person`` to ``unit``."""
        ...

    def accounts(self) -> Iterable[Professional]: ...


_DEPT_POS = {code: i for i, code in enumerate(DEPARTMENT_CODES)}
_NEAR: frozenset[tuple[str, str]] = frozenset(
    (code, other) for code in DEPARTMENT_CODES for other in neighbours(code)
)


def department_distance(a: str, b: str) -> int:
    """0 for the same department, 1 for neighbours (shared land border), 2 otherwise.

    >>> [department_distance("75", other) for other in ("75", "92", "13")]
    [0, 1, 2]
    """
    if a == b:
        return 0
    return 1 if (a, b) in _NEAR else 2


def _positions(
    values: pa.ChunkedArray, keys: pa.Array, file: str, column: str, what: str
) -> np.ndarray[tuple[int], np.dtype[np.int64]]:
    """Row of each value in ``keys``; -1 for nulls; an error for a value not there."""
    found = pc.index_in(values, value_set=keys)
    unknown = pc.and_(pc.is_null(found), pc.is_valid(values))
    if pc.any(unknown).as_py():
        row = pc.index(unknown, True).as_py()
        raise WorldFormatError(
            "world_unknown_key", f"{file} row {row}: column {column} names an unknown {what}"
        )
    filled = pc.fill_null(found, -1)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.int64)


def birth_day(text: str | None) -> int | None:
    """Days since the epoch of a ``YYYY-MM-DD`` string, None when it is not a date."""
    if not text:
        return None
    try:
        return date.fromisoformat(text).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None


class MemoryDirectory:
    """A world's reference data, in memory."""

    def __init__(
        self,
        professionals: pa.Table,
        insured: pa.Table,
        care: pa.Table,
    ) -> None:
        ids: list[str] = professionals.column("account_id").to_pylist()
        orgs: list[str | None] = professionals.column("organization_id").to_pylist()
        self._professionals: dict[str, Professional] = {}
        for account_id, profession, department, org in zip(
            ids,
            professionals.column("profession").to_pylist(),
            professionals.column("department").to_pylist(),
            orgs,
            strict=True,
        ):
            self._professionals[account_id] = Professional(
                account_id, profession, department, org or account_id
            )
        units = sorted({p.unit for p in self._professionals.values()})
        self._units: list[str] = units
        unit_pos = {u: i for i, u in enumerate(units)}

        nirs: list[str] = insured.column("nir").to_pylist()
        self._rows: dict[str, int] = {nir: row for row, nir in enumerate(nirs)}
        if len(self._rows) != len(nirs):
            raise WorldFormatError("world_duplicate_key", "insured.parquet repeats a nir")
        days = pc.cast(insured.column("birth_date"), pa.int32()).to_numpy(zero_copy_only=False)
        self._birth = array("i", days.astype(np.int32).tobytes())
        self._departments: list[str] = sorted(set(insured.column("department").to_pylist()))
        dept_pos = {d: i for i, d in enumerate(self._departments)}
        self._dept = array("H", [dept_pos[d] for d in insured.column("department").to_pylist()])
        account_unit = np.array([unit_pos[self._professionals[a].unit] for a in ids], np.int64)
        account_ids = professionals.column("account_id").combine_chunks()
        doctor_rows = _positions(
            insured.column("treating_doctor"),
            account_ids,
            "insured.parquet",
            "treating_doctor",
            "account",
        )
        doctor_unit = np.where(doctor_rows >= 0, account_unit[np.maximum(doctor_rows, 0)], -1)
        self._doctor = array("i", doctor_unit.astype(np.int32).tobytes())

        # Care links as compressed rows: the units of person r are
        # _care_unit[_care_ptr[r]:_care_ptr[r + 1]].
        care_rows = _positions(
            care.column("nir"),
            insured.column("nir").combine_chunks(),
            "care.parquet",
            "nir",
            "insured person",
        )
        care_accounts = _positions(
            care.column("account_id"), account_ids, "care.parquet", "account_id", "account"
        )
        care_units = account_unit[care_accounts]
        order = np.argsort(care_rows, kind="stable")
        counts = np.bincount(care_rows, minlength=len(nirs))
        ptr = np.zeros(len(nirs) + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        self._care_ptr = array("q", ptr.tobytes())
        self._care_unit = array("i", care_units[order].astype(np.int32).tobytes())
        self._unit_pos = unit_pos

    @classmethod
    def from_world(cls, world_dir: Path) -> MemoryDirectory:
        return cls(
            read_table(world_dir, "professionals"),
            read_table(world_dir, "insured"),
            read_table(world_dir, "care"),
        )

    def professional(self, account_id: str) -> Professional | None:
        return self._professionals.get(account_id)

    def accounts(self) -> Iterable[Professional]:
        return self._professionals.values()

    def person(self, nir: str) -> Person | None:
        row = self._rows.get(nir)
        if row is None:
            return None
        doctor = self._doctor[row]
        return Person(
            self._birth[row],
            self._departments[self._dept[row]],
            self._units[doctor] if doctor >= 0 else None,
            row,
        )

    def care_linked(self, unit: str, person: Person) -> bool:
        pos = self._unit_pos.get(unit)
        if pos is None:
            return False
        row = person.ref
        return pos in self._care_unit[self._care_ptr[row] : self._care_ptr[row + 1]]

    def __len__(self) -> int:
        return len(self._rows)
