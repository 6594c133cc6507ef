"""TOTP second factor (RFC 6238 via pyotp): ±1 step, a code is never accepted twice."""

from __future__ import annotations

import hmac
import time

import pyotp

__all__ = ["STEP_SECONDS", "new_secret", "provisioning_uri", "verify_totp"]

STEP_SECONDS = 30
_WINDOW = 1


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, *, login: str, issuer: str) -> str:
    return pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(
        name=login, issuer_name=issuer
    )


def verify_totp(secret: str, code: str, *, last_step: int, now: float | None = None) -> int | None:
    """The time step the code belongs to, or None if wrong or already used.

    Only steps after ``last_step`` count, so a code (or an older one) cannot be
    replayed once a login has consumed it. Every candidate step is compared, in
    constant time, so the answer's timing does not tell which one matched.
    """
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    current = int((time.time() if now is None else now) // STEP_SECONDS)
    matched = None
    for step in range(current - _WINDOW, current + _WINDOW + 1):
        expected = totp.at(step * STEP_SECONDS)
        if hmac.compare_digest(expected, code) and step > last_step and matched is None:
            matched = step
    return matched
