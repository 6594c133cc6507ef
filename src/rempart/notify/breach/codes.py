"""Verification codes and stable references of breach notices.

Every notice shows a personal code (``Code de vérification : K7QM-4XPD-9TRW``) that the
public page checks against the person's last name. The code is derived from a secret
key, the campaign and the person's pseudonym, so that a notice rendered again after a
crash carries the same code and the same ``Message-ID`` as the copy that may already
have left; the database keeps only its keyed hash (:func:`code_hash`).

The alphabet leaves out the characters people confuse when typing a code from paper
(0/O, 1/I/L, U/V is kept apart by dropping U). 12 symbols of 30 give about 59 bits:
with 500,000 genuine codes in circulation, one guess in about 10^12 lands on one, and
it must still come with that person's last name, under a rate limit.
"""

from __future__ import annotations

import hmac
import unicodedata

__all__ = [
    "ALPHABET",
    "CODE_LENGTH",
    "NoticeKeys",
    "code_hash",
    "derive_code",
    "format_code",
    "message_id",
    "normalize_code",
    "normalize_name",
    "person_reference",
]

ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
CODE_LENGTH = 12
_GROUP = 4


class NoticeKeys:
    """Sub-keys of ``REMPART_NOTICE_CODE_KEY``, one per use."""

    def __init__(self, secret: bytes) -> None:
        self._code = hmac.new(secret, b"rempart-notice:code", "sha256").digest()
        self._hash = hmac.new(secret, b"rempart-notice:hash", "sha256").digest()
        self._ref = hmac.new(secret, b"rempart-notice:reference", "sha256").digest()

    def __repr__(self) -> str:
        return "NoticeKeys(<redacted>)"


def derive_code(keys: NoticeKeys, campaign_id: int, pseudonym: str, channel: str) -> str:
    """The code of one person's notice in one campaign and channel, formatted."""
    digest = hmac.new(
        keys._code, f"{campaign_id}:{pseudonym}:{channel}".encode(), "sha256"
    ).digest()
    number = int.from_bytes(digest[:16], "big")  # 128 bits: the modulo bias is nil
    symbols = []
    for _ in range(CODE_LENGTH):
        number, index = divmod(number, len(ALPHABET))
        symbols.append(ALPHABET[index])
    return format_code("".join(symbols))


def format_code(code: str) -> str:
    """``K7QM4XPD9TRW`` → ``K7QM-4XPD-9TRW``."""
    return "-".join(code[i : i + _GROUP] for i in range(0, len(code), _GROUP))


def normalize_code(text: str) -> str | None:
    """What a person typed, as the bare code, or None if it cannot be one.

    Separators and spaces are ignored, case too; the look-alikes people type by mistake
    are mapped (O→0 is not in the alphabet, so O is refused rather than guessed)."""
    if len(text) > 64:
        return None
    bare = "".join(ch for ch in text.upper() if ch not in " -._\t")
    if len(bare) != CODE_LENGTH or any(ch not in ALPHABET for ch in bare):
        return None
    return bare


def code_hash(keys: NoticeKeys, code: str) -> str:
    """The keyed hash stored for a code (formatted or bare); hex, 64 characters."""
    bare = normalize_code(code)
    if bare is None:
        raise ValueError("not a verification code")
    return hmac.new(keys._hash, bare.encode(), "sha256").hexdigest()


def person_reference(keys: NoticeKeys, campaign_id: int, pseudonym: str) -> str:
    """A short reference for one person in one campaign (print manifest, letters):
    traceable by the insurer, meaningless to anyone else."""
    digest = hmac.new(keys._ref, f"{campaign_id}:{pseudonym}".encode(), "sha256").hexdigest()
    return f"C{campaign_id}-{digest[:12].upper()}"


def message_id(keys: NoticeKeys, campaign_id: int, pseudonym: str, domain: str) -> str:
    """The e-mail's ``Message-ID``: the same for one campaign and person, every time."""
    reference = person_reference(keys, campaign_id, pseudonym).lower()
    return f"<notice.{reference}@{domain}>"


def normalize_name(name: str) -> str:
    """A last name compared without case, accents, spaces, hyphens or apostrophes:
    ``Lefèvre-D'Arc`` and ``LEFEVRE D ARC`` match."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return "".join(ch for ch in decomposed if ch.isalnum() and not unicodedata.combining(ch))
