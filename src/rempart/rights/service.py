"""An audited lookup: parse, read, write the audit entry, and only then hand the data over.

No audit, no data: the entry (who, when, from where, whose pseudonym, whether
found, which data categories) is committed before the caller gets anything; if
it cannot be, the lookup fails with ``audit_unavailable``. Refused lookups
(malformed NIR or date, not found) are recorded too: they are what
enumeration looks like.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from rempart.audit.chain import CATEGORIES, AuditEntry
from rempart.audit.trail import AuditTrail, AuditUnavailable, now_us
from rempart.errors import RempartError
from rempart.nir import NIR, InvalidNIR, compact, keyed_pseudonym, parse_nir
from rempart.rights.lookup import NotFound, PersonRead, RightsRecord

__all__ = [
    "Caller",
    "InvalidBirthDate",
    "LookupInput",
    "audited_lookup",
    "lookup_entry",
    "parse_birth_date",
]

ALL_CATEGORIES = ",".join(CATEGORIES)
_DATE_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EARLIEST_BIRTH = date(1890, 1, 1)


class InvalidBirthDate(RempartError):
    code = "invalid_birth_date"
    status = 422


def parse_birth_date(raw: str) -> date:
    if not _DATE_SHAPE.match(raw):
        raise InvalidBirthDate("birth_date must be a date written YYYY-MM-DD")
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise InvalidBirthDate("birth_date is not a calendar date") from None
    if not _EARLIEST_BIRTH <= value <= date.today():  # noqa: DTZ011 - a birth date is a civil date
        raise InvalidBirthDate("birth_date is out of range")
    return value


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks, and from where: what the audit entry records about the request."""

    account_id: str
    session_id: str
    acr: str
    client_ip: str
    user_agent: str
    channel: str
    client_id: str | None = None
    """The practice software the lookup comes through (OAuth client), if any: the guard
    decides against its record too, and suspends it rather than the professional."""
    # The session's factor answers the guard's step-up (the card, or an established key).
    factor_established: bool = False


@dataclass(frozen=True, slots=True)
class LookupInput:
    """A lookup's two fields as typed, parsed once for the guard, the read and the trail."""

    raw_nir: str
    raw_birth_date: str
    nir: NIR | None
    birth_date: date | None
    key: str
    """The NIR as the guard keys it and the trail pseudonymises it: the parsed value,
    else the compacted input (at most 32 characters)."""
    failure: InvalidNIR | InvalidBirthDate | None
    """Why the input cannot be looked up (the NIR's fault first), if it cannot."""

    def __repr__(self) -> str:
        return "LookupInput(<redacted>)"

    @classmethod
    def parse(cls, raw_nir: str, raw_birth_date: str) -> LookupInput:
        nir: NIR | None = None
        birth_date: date | None = None
        failure: InvalidNIR | InvalidBirthDate | None = None
        try:
            nir = parse_nir(raw_nir)
            birth_date = parse_birth_date(raw_birth_date)
        except (InvalidNIR, InvalidBirthDate) as exc:
            failure = exc
        key = nir.value if nir is not None else compact(raw_nir)[:32]
        return cls(raw_nir, raw_birth_date, nir, birth_date, key, failure)


def lookup_entry(
    caller: Caller,
    raw_nir: str,
    pseudonym_key: bytes,
    *,
    found: int,
    categories: str,
    outcome: str,
    decision: str = "",
    reasons: str = "",
    nir_key: str | None = None,
) -> AuditEntry:
    """The audit entry of one lookup, answered or refused (here or by the guard): the
    NIR as typed is kept only as its keyed pseudonym. ``nir_key``: the input already
    normalised (:attr:`LookupInput.key`), which spares normalising it again."""
    normalised = nir_key if nir_key is not None else compact(raw_nir)[:32]
    return AuditEntry(
        seq=0,
        ts_us=now_us(),
        event="lookup",
        account_id=caller.account_id,
        session_id=caller.session_id,
        acr=caller.acr,
        client_ip=caller.client_ip,
        user_agent=caller.user_agent,
        channel=caller.channel,
        subject=keyed_pseudonym(normalised, pseudonym_key),
        found=found,
        categories=categories,
        decision=decision,
        reasons=reasons,
        outcome=outcome,
    )


def audited_lookup(
    session: Session,
    audit: AuditTrail,
    caller: Caller,
    lookup: LookupInput,
    read: PersonRead,
    *,
    pseudonym_key: bytes,
    guard_decision: str = "",
    guard_reasons: str = "",
    returned: Collection[str] = CATEGORIES,
) -> RightsRecord:
    """``read``: the person's rows, read with the guard's facts
    (:func:`~rempart.rights.lookup.read_person`). ``returned``: the data categories the
    door hands over when the person is found (every one, but for a door that answers
    part of the record, as the FHIR facade's Patient search): what the entry records."""
    record: RightsRecord | None = None
    failure: RempartError | InvalidNIR | None = lookup.failure
    outcome = "ok" if failure is None else _outcome(failure)
    if failure is None:
        assert lookup.birth_date is not None
        try:
            record = read.record(lookup.birth_date)
        except RempartError as exc:
            failure, outcome = exc, exc.code
    entry = lookup_entry(
        caller,
        lookup.raw_nir,
        pseudonym_key,
        nir_key=lookup.key,
        found=1 if record is not None else (0 if isinstance(failure, NotFound) else -1),
        categories=_categories(returned) if record is not None else "",
        outcome=outcome,
        decision=guard_decision,
        reasons=guard_reasons,
    )
    # Committed here, durably recorded before anything, data or refusal, goes back to the
    # caller: on PostgreSQL the lookup's connection is in autocommit
    # (:func:`rempart.store.engine.lookup_scope`) and the append is one statement, so the
    # entry and its commit are one round trip; elsewhere, the request's transaction.
    audit.append([entry], session=session)
    try:
        session.commit()
    except SQLAlchemyError:
        raise AuditUnavailable() from None
    if failure is not None:
        raise failure
    assert record is not None
    return record


def _categories(returned: Collection[str]) -> str:
    if returned is CATEGORIES:
        return ALL_CATEGORIES
    unknown = set(returned).difference(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown data categories: {sorted(unknown)}")
    return ",".join(c for c in CATEGORIES if c in returned)


def _outcome(failure: RempartError | InvalidNIR) -> str:
    return "invalid_nir" if isinstance(failure, InvalidNIR) else failure.code
