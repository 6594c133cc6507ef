"""One claim, parsed from untrusted input (a file's row, a stream's message) into a typed
value, with one stable code per way of being wrong.

>>> claim = parse_claim(
...     ts="2025-03-10T09:15:00+01:00",
...     account_id="ph-0001",
...     nir="1 85 03 75 056 012 70",
...     now_us=1_800_000_000_000_000,
... )
>>> claim.ts_us, claim.nir, claim.claim_id == claim_key("ph-0001", "185037505601270", claim.ts_us)
(1741594500000000, '185037505601270', True)
>>> parse_claim(ts="2025-03-10 09:15", account_id="ph-0001", nir="185037505601270", now_us=0)
... # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
rempart.claims.records.ClaimProblem: claims_bad_timestamp: ts needs a UTC offset ...
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from rempart.nir import InvalidNIR, parse_nir

__all__ = [
    "FUTURE_TOLERANCE_US",
    "ClaimCode",
    "ClaimProblem",
    "ClaimRecord",
    "Problem",
    "claim_key",
    "parse_claim",
    "timestamp_us",
]

FUTURE_TOLERANCE_US = 300_000_000
"""A claim may be stamped up to five minutes ahead of this host's clock (clock skew
between the billing system and us); later, it is refused as in the future."""

MAX_CLAIM_ID = 128
MAX_ACCOUNT_ID = 64


class ClaimCode(StrEnum):
    """Stable codes, one per way a claims file, row or message can be wrong."""

    UNSUPPORTED_FORMAT = "claims_unsupported_format"
    UNREADABLE_FILE = "claims_unreadable_file"
    MISSING_COLUMN = "claims_missing_column"
    MISSING_VALUE = "claims_missing_value"
    BAD_TIMESTAMP = "claims_bad_timestamp"
    BAD_NIR = "claims_bad_nir"
    BAD_ACCOUNT = "claims_bad_account"
    BAD_CLAIM_ID = "claims_bad_claim_id"
    UNKNOWN_ACCOUNT = "claims_unknown_account"
    DUPLICATE_IN_FILE = "claims_duplicate_in_file"
    CONFLICTS_WITH_KNOWN = "claims_conflicts_with_known"
    FUTURE = "claims_future"
    BAD_JSON = "claims_bad_json"
    MISSING_FIELD = "claims_missing_field"
    TOO_LARGE = "claims_message_too_large"


class ClaimProblem(ValueError):
    """A claim that cannot be taken, for the reason named by :attr:`code`. Its detail
    never carries a NIR (the message and the logs may be read by anyone)."""

    def __init__(self, code: ClaimCode, detail: str, *, column: str | None = None) -> None:
        self.code = code
        self.detail = detail
        self.column = column
        super().__init__(f"{code.value}: {detail}")


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem of a file: its data row (1 is the first row after a CSV's header, the
    first row of a Parquet file; None: the whole file), column and code."""

    row: int | None
    column: str | None
    code: ClaimCode
    detail: str

    def to_json(self) -> dict[str, object]:
        return {
            "row": self.row,
            "column": self.column,
            "code": self.code.value,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    """A valid claim: care billed by ``account_id`` for the person ``nir`` (compact form)
    at ``ts_us`` (µs since the epoch, UTC). ``repr`` hides the NIR."""

    claim_id: str
    ts_us: int
    account_id: str
    nir: str

    def __repr__(self) -> str:
        return (
            f"ClaimRecord(claim_id={self.claim_id!r}, ts_us={self.ts_us}, "
            f"account_id={self.account_id!r}, nir=<redacted>)"
        )

    def same_content(self, ts_us: int, account_id: str, nir: str) -> bool:
        return (self.ts_us, self.account_id, self.nir) == (ts_us, account_id, nir)


def claim_key(account_id: str, nir: str, ts_us: int) -> str:
    """The idempotency key of a claim without an id of its own: SHA-256 (hex) of the
    account, the NIR (compact) and the time (µs), joined by ``|``. The same claim
    exported twice gets the same key; two claims differ in one of the three.

    >>> claim_key("ph-0001", "185037505601270", 0)[:16]
    '92d4538d4104f57a'
    """
    return hashlib.sha256(f"{account_id}|{nir}|{ts_us}".encode()).hexdigest()


def timestamp_us(value: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact: no float)."""
    delta = value.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _timestamp(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # already µs (a Parquet timestamp column, read as integers)
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ClaimProblem(
                ClaimCode.BAD_TIMESTAMP,
                "ts is not an ISO-8601 date and time (e.g. 2025-03-10T09:15:00+01:00)",
                column="ts",
            ) from None
    else:
        raise ClaimProblem(ClaimCode.BAD_TIMESTAMP, "ts is not a timestamp", column="ts")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ClaimProblem(
            ClaimCode.BAD_TIMESTAMP,
            "ts needs a UTC offset (e.g. 2025-03-10T09:15:00+01:00)",
            column="ts",
        )
    return timestamp_us(parsed)


def _text(value: object, column: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ClaimProblem(ClaimCode.MISSING_VALUE, f"{column} is empty", column=column)
    if not isinstance(value, str):
        raise ClaimProblem(_NOT_TEXT[column], f"{column} must be text", column=column)
    return value


_NOT_TEXT = {
    "account_id": ClaimCode.BAD_ACCOUNT,
    "nir": ClaimCode.BAD_NIR,
    "claim_id": ClaimCode.BAD_CLAIM_ID,
}


def _printable(value: str) -> bool:
    return value.isascii() and value.isprintable()


def _identifier(value: object, column: str, limit: int, code: ClaimCode) -> str:
    """An account or claim id: text of at most ``limit`` printable ASCII characters."""
    text = _text(value, column)
    if len(text) > limit or not _printable(text):
        raise ClaimProblem(
            code, f"{column} has at most {limit} printable ASCII characters", column=column
        )
    return text


def parse_claim(
    *, ts: object, account_id: object, nir: object, now_us: int, claim_id: object = None
) -> ClaimRecord:
    """Parse one claim's fields, or raise :class:`ClaimProblem` for the first wrong one.

    ``ts``: an aware datetime, an ISO-8601 string with an offset, or µs since the epoch;
    ``claim_id`` None or empty: the key is :func:`claim_key`."""
    if ts is None or (isinstance(ts, str) and not ts.strip()):
        raise ClaimProblem(ClaimCode.MISSING_VALUE, "ts is empty", column="ts")
    ts_us = _timestamp(ts)
    if ts_us > now_us + FUTURE_TOLERANCE_US:
        raise ClaimProblem(ClaimCode.FUTURE, "ts is in the future", column="ts")
    account = _identifier(account_id, "account_id", MAX_ACCOUNT_ID, ClaimCode.BAD_ACCOUNT)
    raw_nir = _text(nir, "nir")
    try:
        value = parse_nir(raw_nir).value
    except InvalidNIR as exc:
        # The code and its meaning, never the number.
        raise ClaimProblem(
            ClaimCode.BAD_NIR, f"{exc.code.value}: {exc.detail}", column="nir"
        ) from None
    key: str
    if claim_id is None or (isinstance(claim_id, str) and not claim_id.strip()):
        key = claim_key(account, value, ts_us)
    else:
        key = _identifier(claim_id, "claim_id", MAX_CLAIM_ID, ClaimCode.BAD_CLAIM_ID)
    return ClaimRecord(claim_id=key, ts_us=ts_us, account_id=account, nir=value)
