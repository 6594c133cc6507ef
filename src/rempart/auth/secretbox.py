"""Encryption at rest of small secrets (TOTP seeds) with AES-256-GCM.

A copy of the database alone must not let anyone generate a professional's codes.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["SecretBox"]

_NONCE = 12


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, *, context: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def open(self, sealed: bytes, *, context: str) -> str:
        """Decrypt; ``context`` (the account id) binds a seed to its account."""
        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], context.encode()).decode()
        except InvalidTag as exc:
            raise ValueError("sealed secret does not open with this key and context") from exc
