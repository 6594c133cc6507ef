r"""The hash chain: canonical encoding of an entry, entry hashes, signed checkpoints.

Each entry's hash commits to the previous entry's hash, to its own sequence
number and to every field, so that altering, deleting, inserting or
reordering an entry breaks the chain at that entry. Checkpoints sign
(sequence, hash) with Ed25519, in the spirit of Certificate Transparency's
signed tree heads: whoever holds the public key can check a copy of the trail
without trusting the database it came from.

>>> entry = AuditEntry(seq=1, ts_us=1_767_605_400_000_000, event="lookup")
>>> canonical(entry.row())[:42]
b'rempart-audit-v1\x1f1\x1f1767605400000000\x1flookup'
>>> entry_hash(GENESIS, entry.row()).hex()[:16]
'fc0410567d495d05'

A database that assigns the sequence number itself hashes the bytes around it:

>>> before, after = canonical_parts(entry.row())
>>> before + b"1" + after == canonical(entry.row())
True
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "CATEGORIES",
    "GENESIS",
    "LABEL",
    "SEPARATOR",
    "AuditEntry",
    "CheckpointSigner",
    "CheckpointVerifier",
    "canonical",
    "canonical_parts",
    "clean",
    "entry_hash",
]

GENESIS = bytes(32)
"""The hash before the first entry."""

CATEGORIES = ("nir", "identity", "treating_doctor", "c2s", "ame", "ald")
"""Data categories a lookup can return (DESIGN.md); stored comma-separated, in this order."""

LABEL = "rempart-audit-v1"
"""The first field of every canonical encoding: the version of the encoding."""
SEPARATOR = "\x1f"
"""Between the fields of a canonical encoding (ASCII unit separator); no field holds it."""

_PREFIX = LABEL + SEPARATOR


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One event of the trail. Never holds a raw NIR: ``subject`` is its keyed pseudonym.

    Every field is a non-null string or integer (absent = ``""``, ``found`` = -1 when it
    does not apply): the canonical encoding then needs no escape for null.
    """

    seq: int
    ts_us: int
    """Microseconds since the Unix epoch, UTC."""
    event: str
    """``lookup``, or an authentication event (``login_succeeded``, ``login_failed``, ...)."""
    account_id: str = ""
    session_id: str = ""
    acr: str = ""
    client_ip: str = ""
    user_agent: str = ""
    channel: str = ""
    subject: str = ""
    found: int = -1
    """1 found, 0 not found, -1 does not apply."""
    categories: str = ""
    decision: str = ""
    reasons: str = ""
    outcome: str = ""
    """What the caller was answered: ``ok`` or an error code."""

    def row(self) -> tuple[int | str, ...]:
        return tuple(getattr(self, name) for name in FIELD_NAMES)


FIELD_NAMES = tuple(f.name for f in fields(AuditEntry))
_SEQ = FIELD_NAMES.index("seq")
# The separator would make the encoding ambiguous; a NUL cannot be stored in PostgreSQL
# text and a lone surrogate cannot be encoded in UTF-8: either would make the append
# fail, and with it the request it records (fail closed, but for a byte of a field).
_UNSTORABLE = re.compile("[\x00\x1f\ud800-\udfff]")


def clean(value: str, limit: int = 512) -> str:
    r"""A text field as stored: bounded length, no separator, NUL or lone surrogate.

    >>> clean("a\x1fb\x00c\ud800d", 6) == "a\ufffdb\ufffdc\ufffd"
    True
    """
    return _UNSTORABLE.sub("\ufffd", value[:limit])


def canonical(row: tuple[int | str, ...]) -> bytes:
    """The bytes an entry's hash covers: every field, in declaration order, unit-separated.

    No field holds the separator (:func:`clean`), so the encoding is unambiguous; it is
    simple enough for a verifier written in any language.
    """
    return (_PREFIX + SEPARATOR.join(map(str, row))).encode("utf-8")


def canonical_parts(row: tuple[int | str, ...]) -> tuple[bytes, bytes]:
    """The canonical encoding of ``row`` around its sequence number, which is left out:
    ``before + str(seq).encode() + after == canonical(row)`` for the row with that
    ``seq``. The PostgreSQL append hashes these bytes with the number it assigns."""
    before = _PREFIX + "".join(f"{value}{SEPARATOR}" for value in row[:_SEQ])
    after = "".join(f"{SEPARATOR}{value}" for value in row[_SEQ + 1 :])
    return before.encode("utf-8"), after.encode("utf-8")


def entry_hash(previous: bytes, row: tuple[int | str, ...]) -> bytes:
    return hashlib.sha256(previous + canonical(row)).digest()


def _checkpoint_message(shard: int, seq: int, chain_hash: bytes, ts_us: int) -> bytes:
    return b"rempart-audit-checkpoint-v1|%d|%d|%b|%d" % (
        shard,
        seq,
        chain_hash.hex().encode(),
        ts_us,
    )


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class CheckpointSigner:
    def __init__(self, seed: bytes) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest())
        self.public_key = self._key.public_key()
        self.key_id = key_id(self.public_key)

    def sign(self, seq: int, chain_hash: bytes, ts_us: int, *, shard: int) -> bytes:
        return self._key.sign(_checkpoint_message(shard, seq, chain_hash, ts_us))

    def verifier(self) -> CheckpointVerifier:
        return CheckpointVerifier(self.public_key)


class CheckpointVerifier:
    def __init__(self, public_key: Ed25519PublicKey) -> None:
        self.public_key = public_key
        self.key_id = key_id(public_key)

    @classmethod
    def from_hex(cls, public_hex: str) -> CheckpointVerifier:
        return cls(Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex)))

    def public_hex(self) -> str:
        return self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    def valid(
        self, seq: int, chain_hash: bytes, ts_us: int, signature: bytes, *, shard: int
    ) -> bool:
        try:
            self.public_key.verify(signature, _checkpoint_message(shard, seq, chain_hash, ts_us))
        except InvalidSignature:
            return False
        return True
