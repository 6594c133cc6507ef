"""Password policy and argon2id hashing, with a dummy hash for unknown logins."""

from __future__ import annotations

from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn
from zxcvbn.matching import RANKED_DICTIONARIES

from rempart.errors import RempartError

__all__ = ["PasswordHasher", "WeakPassword", "check_password_policy"]

_MAX_LENGTH = 256
_MIN_SCORE = 3


class WeakPassword(RempartError):
    code = "weak_password"
    status = 422


def check_password_policy(password: str, *, min_length: int, user_inputs: list[str]) -> None:
    """Refuse short, common or easily guessed passwords (NIST SP 800-63B style)."""
    if len(password) < min_length:
        raise WeakPassword(f"the password must hold at least {min_length} characters")
    if len(password) > _MAX_LENGTH:
        raise WeakPassword(f"the password must hold at most {_MAX_LENGTH} characters")
    if password.lower() in RANKED_DICTIONARIES["passwords"]:
        raise WeakPassword("this password is in a list of commonly used passwords")
    # zxcvbn is quadratic on long inputs; the first 100 characters decide anyway.
    result = zxcvbn(password[:100], user_inputs=user_inputs)
    if result["score"] < _MIN_SCORE:
        raise WeakPassword("this password is too easy to guess; use a longer passphrase")


class PasswordHasher:
    """argon2id with configurable cost; verification never raises on a bad hash."""

    def __init__(
        self, *, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4
    ) -> None:
        self._argon = Argon2Hasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        # Verified against when the login is unknown, so that timing matches a real account.
        self._dummy = self._argon.hash("rempart-dummy-password-for-timing")

    def hash(self, password: str) -> str:
        return self._argon.hash(password)

    def verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self._argon.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def verify_dummy(self, password: str) -> None:
        self.verify(self._dummy, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self._argon.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True
