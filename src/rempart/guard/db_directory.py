"""The guard's reference data read from the database, for the inline driver.

:class:`DatabaseDirectory` answers the engine's :class:`~rempart.guard.directory.Directory`
questions (an account's profession, department and unit; a person's birth date,
department, declared doctor's unit and care-linked units) from the database, with
a bounded TTL cache. The driver resolves the account and the person on the request's
own session *before* taking the engine's lock (:meth:`DatabaseDirectory.prefetch`),
so that no database I/O happens under it; the engine then finds the care links in
that cache. An in-memory copy loaded at start would cost the whole insured table in
memory and go stale after ``db load-world``; a lookup already reads the person's
row, so one more indexed query costs little (``bench/bench_guard_inline.py``).

Practice software's record (``client/<id>``) is account-like: its unit is its
organisation, its profile the organisation's most common profession and department.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any, Final, Protocol

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from rempart.guard.directory import Person, Professional
from rempart.store.models import Account, ApiClient, CareLink, Insured
from rempart.store.models import Professional as ProfessionalRow

__all__ = [
    "CLIENT_RECORD_PREFIX",
    "DECLARED_DOCTOR",
    "PERSON_COLUMNS",
    "DatabaseDirectory",
    "client_record",
    "persons_select",
]

_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
CLIENT_RECORD_PREFIX: Final = "client/"
"""The guard's record of practice software is ``client/<client_id>``: an account id
cannot hold a ``/`` (``[A-Za-z0-9._:-]``), so no professional's record is taken for it."""


def client_record(client_id: str) -> str:
    """The guard's record id of an API client (practice software)."""
    return CLIENT_RECORD_PREFIX + client_id


class PersonRows(Protocol):
    """A person's rows of :func:`persons_select`, read by someone else, with the column
    where the guard's facts begin."""

    @property
    def rows(self) -> Sequence[Sequence[Any]]: ...

    @property
    def start(self) -> int: ...


class _Cached:
    __slots__ = ("expires", "value")

    def __init__(self, value: object, expires: float) -> None:
        self.value = value
        self.expires = expires


class DatabaseDirectory:
    """The guard's reference data read from the database, with a bounded TTL cache.

    :meth:`prefetch` resolves an account and a person on the caller's session (one
    indexed query each, when not cached); the :class:`~rempart.guard.directory.Directory`
    methods then answer from the cache, or with a session of their own.

    An account with no ``professionals`` row (created with ``rempart accounts
    create`` and no world loaded) is its own unit, with the account's profession and
    no known department (every patient then counts as living far away).
    """

    def __init__(
        self, sessions: sessionmaker[Session], *, ttl_seconds: float = 300.0, size: int = 65_536
    ) -> None:
        self._sessions = sessions
        self._ttl = ttl_seconds
        self._size = size
        self._pros: OrderedDict[str, _Cached] = OrderedDict()
        self._persons: OrderedDict[str, _Cached] = OrderedDict()
        self._care: dict[int, frozenset[str]] = {}
        self._refs = itertools.count(1)
        self._lock = threading.Lock()

    # -- cache ----------------------------------------------------------------------------

    def _get(self, cache: OrderedDict[str, _Cached], key: str) -> _Cached | None:
        with self._lock:
            hit = cache.get(key)
            if hit is None or hit.expires < time.monotonic():
                return None
            cache.move_to_end(key)
            return hit

    def _put(self, cache: OrderedDict[str, _Cached], key: str, value: object) -> None:
        with self._lock:
            replaced = cache.get(key)
            if replaced is not None and isinstance(replaced.value, Person):
                self._care.pop(replaced.value.ref, None)  # an expired entry's care links
            cache[key] = _Cached(value, time.monotonic() + self._ttl)
            cache.move_to_end(key)
            while len(cache) > self._size:
                _, old = cache.popitem(last=False)
                if isinstance(old.value, Person):
                    self._care.pop(old.value.ref, None)

    # -- loading --------------------------------------------------------------------------

    def _load_professional(self, session: Session, account_id: str) -> Professional | None:
        connection = session.connection()
        if account_id.startswith(CLIENT_RECORD_PREFIX):
            return self._load_client(session, account_id)
        row = connection.execute(_PROFESSIONAL, {"account_id": account_id}).first()
        if row is not None:
            return Professional(account_id, row[0], row[1], row[2] or account_id)
        account = connection.execute(_ACCOUNT, {"account_id": account_id}).first()
        if account is None:
            return None
        return Professional(account_id, account[0] or "", "", account_id)

    @staticmethod
    def _load_client(session: Session, record_id: str) -> Professional | None:
        """A client's record is account-like: its unit is its organisation (whose care
        links and declared doctors explain its lookups), its peer group the
        organisation's most common profession and department."""
        connection = session.connection()
        client_id = record_id.removeprefix(CLIENT_RECORD_PREFIX)
        organization = connection.execute(_CLIENT, {"client_id": client_id}).scalar()
        if organization is None:
            return None
        profile = connection.execute(_ORGANIZATION_PROFILE, {"org": organization}).first()
        profession, department = profile if profile is not None else ("", "")
        return Professional(record_id, profession, department, organization)

    def _load_person(self, session: Session, nir: str) -> Person | None:
        # One query: the person, the declared doctor's unit, one row per care-linked unit.
        return self._person_of(session.connection().execute(_PERSON, {"nir": nir}).all(), 0)

    def _person_of(self, rows: Sequence[Sequence[Any]], start: int) -> Person | None:
        """The person in ``rows`` of :func:`persons_select` whose facts begin at column
        ``start`` (after the leading columns); None: no row, an unknown NIR."""
        if not rows:
            return None
        care = frozenset(row[start + 3] for row in rows if row[start + 3] is not None)
        ref = next(self._refs)
        with self._lock:
            self._care[ref] = care
        first = rows[0]
        born: date = first[start]
        return Person(born.toordinal() - _EPOCH_ORDINAL, first[start + 1], first[start + 2], ref)

    def prefetch(
        self, session: Session, account_id: str, nir: str, *, read: PersonRows | None = None
    ) -> Person | None:
        """Resolve the account and the person on ``session``; the person (None: unknown).

        ``read``: the person's rows already read with the lookup's own (one statement
        for the guard's facts and the rights, :mod:`rempart.rights.lookup`): used instead
        of a query when the person is not cached."""
        if self._get(self._pros, account_id) is None:
            self._put(self._pros, account_id, self._load_professional(session, account_id))
        hit = self._get(self._persons, nir)
        if hit is not None:
            cached: Person | None = hit.value  # type: ignore[assignment]
            return cached
        if read is not None:
            person = self._person_of(read.rows, read.start)
        else:
            person = self._load_person(session, nir)
        self._put(self._persons, nir, person)
        return person

    def account_status(self, account_id: str) -> str | None:
        """The account's status in the database now (``active``, ``suspended``; None:
        no such account), read on a session of its own: the latest commit, whatever
        the request's transaction saw."""
        with self._sessions() as session:
            if account_id.startswith(CLIENT_RECORD_PREFIX):
                client_id = account_id.removeprefix(CLIENT_RECORD_PREFIX)
                status: str | None = session.scalar(_CLIENT_STATUS, {"client_id": client_id})
            else:
                status = session.scalar(_STATUS, {"account_id": account_id})
        return status

    # -- the Directory interface ------------------------------------------------------------

    def professional(self, account_id: str) -> Professional | None:
        hit = self._get(self._pros, account_id)
        if hit is not None:
            cached: Professional | None = hit.value  # type: ignore[assignment]
            return cached
        with self._sessions() as session:
            pro = self._load_professional(session, account_id)
        self._put(self._pros, account_id, pro)
        return pro

    def person(self, nir: str) -> Person | None:
        hit = self._get(self._persons, nir)
        if hit is not None:
            cached: Person | None = hit.value  # type: ignore[assignment]
            return cached
        with self._sessions() as session:
            person = self._load_person(session, nir)
        self._put(self._persons, nir, person)
        return person

    def care_linked(self, unit: str, person: Person) -> bool:
        with self._lock:
            units = self._care.get(person.ref)
        if units is None:
            # Evicted between resolving and deciding (65,536 other persons in between):
            # never guess; the lookup fails closed.
            raise LookupError("care links of a person left the cache before the decision")
        return unit in units

    def accounts(self) -> Iterable[Professional]:
        return list(self._iter_accounts())

    def _iter_accounts(self) -> Iterator[Professional]:
        with self._sessions() as session:
            seen: set[str] = set()
            for account_id, profession, department, org in session.execute(
                select(
                    ProfessionalRow.account_id,
                    ProfessionalRow.profession,
                    ProfessionalRow.department,
                    ProfessionalRow.organization_id,
                )
            ):
                seen.add(account_id)
                yield Professional(account_id, profession, department, org or account_id)
            for other_id, other_profession in session.execute(
                select(Account.account_id, Account.profession)
            ):
                if other_id not in seen:
                    yield Professional(other_id, other_profession or "", "", other_id)


_Doctor = aliased(ProfessionalRow)
_Carer = aliased(ProfessionalRow)
DECLARED_DOCTOR: Final = _Doctor
"""The person's declared doctor as :func:`persons_select` joins it: leading columns
about that doctor must name this alias (another would join the table twice)."""
PERSON_COLUMNS: Final = 4
"""How many columns :func:`persons_select` adds after the leading ones."""
_PROFESSIONAL = select(
    ProfessionalRow.profession, ProfessionalRow.department, ProfessionalRow.organization_id
).where(ProfessionalRow.account_id == bindparam("account_id"))
_ACCOUNT = select(Account.profession).where(Account.account_id == bindparam("account_id"))
_STATUS = select(Account.status).where(Account.account_id == bindparam("account_id"))
_CLIENT = select(ApiClient.organization_id).where(ApiClient.client_id == bindparam("client_id"))
_CLIENT_STATUS = select(ApiClient.status).where(ApiClient.client_id == bindparam("client_id"))
_ORGANIZATION_PROFILE = (
    select(ProfessionalRow.profession, ProfessionalRow.department)
    .where(ProfessionalRow.organization_id == bindparam("org"))
    .group_by(ProfessionalRow.profession, ProfessionalRow.department)
    .order_by(func.count().desc(), ProfessionalRow.profession, ProfessionalRow.department)
    .limit(1)
)


def persons_select(*leading: Any) -> Select[Any]:
    """A person's facts for the guard (birth date, department, the declared doctor's
    unit, one row per care-linked unit), after ``leading`` columns; add the ``where``."""
    return (
        select(
            *leading,
            Insured.birth_date,
            Insured.department,
            func.coalesce(_Doctor.organization_id, Insured.treating_doctor),
            func.coalesce(_Carer.organization_id, CareLink.account_id),
        )
        .select_from(Insured)
        .outerjoin(_Doctor, _Doctor.account_id == Insured.treating_doctor)
        .outerjoin(CareLink, CareLink.nir == Insured.nir)
        .outerjoin(_Carer, _Carer.account_id == CareLink.account_id)
    )


_PERSON = persons_select().where(Insured.nir == bindparam("nir"))
