"""Assurance levels (``acr``) and step-up, as RFC 9470 describes them.

Every session records how it was authenticated. A route (or, later, the guard)
states what it needs as an :class:`AuthRequirement`; a caller below it gets
``401`` with ``WWW-Authenticate: Bearer error="insufficient_user_authentication"``
and the ``acr_values`` (and ``max_age``) that would do, re-authenticates with one
of them and retries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from rempart.errors import RempartError

__all__ = [
    "ACR_CLIENT",
    "ACR_CPS",
    "ACR_PASSWORD_RECOVERY",
    "ACR_PASSWORD_TOTP",
    "ACR_PSC",
    "ACR_WEBAUTHN",
    "KNOWN_ACRS",
    "LOOKUP_REQUIREMENT",
    "PHISHING_RESISTANT",
    "PHISHING_RESISTANT_REQUIREMENT",
    "AuthRequirement",
    "StepUpRequired",
]

ACR_PASSWORD_TOTP = "password+totp"  # noqa: S105 - an assurance level name
ACR_PASSWORD_RECOVERY = "password+recovery"  # noqa: S105 - an assurance level name
ACR_WEBAUTHN = "webauthn"
ACR_PSC = "psc"  # Pro Santé Connect with e-CPS (a phone app: phishable in real time)
ACR_CPS = "cps"  # Pro Santé Connect with the CPS smart card
ACR_CLIENT = "client"  # practice software, OAuth 2.0 client credentials

KNOWN_ACRS = frozenset(
    {ACR_PASSWORD_TOTP, ACR_PASSWORD_RECOVERY, ACR_WEBAUTHN, ACR_PSC, ACR_CPS, ACR_CLIENT}
)
# Factors bound to the origin or to a card: a relayed phishing page cannot replay them.
PHISHING_RESISTANT = frozenset({ACR_WEBAUTHN, ACR_CPS})


class Authenticated(Protocol):
    @property
    def acr(self) -> str: ...

    @property
    def auth_time(self) -> int: ...


class StepUpRequired(RempartError):
    """RFC 9470's challenge: authenticate again with one of ``acr_values``, then retry."""

    code = "insufficient_user_authentication"
    status = 401

    def __init__(
        self,
        acr_values: tuple[str, ...],
        *,
        max_age: int | None = None,
        detail: str = "a stronger authentication is required for this request",
    ) -> None:
        parts = [
            'Bearer error="insufficient_user_authentication"',
            f'error_description="{detail}"',
            f'acr_values="{" ".join(acr_values)}"',
        ]
        if max_age is not None:
            parts.append(f'max_age="{max_age}"')
        super().__init__(detail, headers={"WWW-Authenticate": ", ".join(parts)})
        self.acr_values = acr_values
        self.max_age = max_age


@dataclass(frozen=True, slots=True)
class AuthRequirement:
    """What a request needs: one of ``acr_values`` and, if set, an authentication
    no older than ``max_age`` seconds."""

    acr_values: tuple[str, ...]
    max_age: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.acr_values) - KNOWN_ACRS
        if not self.acr_values or unknown:
            raise ValueError(f"unknown or missing acr values: {sorted(unknown)}")

    def is_met_by(self, caller: Authenticated, *, now: float | None = None) -> bool:
        if caller.acr not in self.acr_values:
            return False
        if self.max_age is None:
            return True
        return (time.time() if now is None else now) - caller.auth_time <= self.max_age

    def check(self, caller: Authenticated, *, now: float | None = None) -> None:
        if not self.is_met_by(caller, now=now):
            raise StepUpRequired(self.acr_values, max_age=self.max_age)


PHISHING_RESISTANT_REQUIREMENT = AuthRequirement(tuple(sorted(PHISHING_RESISTANT)))
# Reading rights: any two-factor login, or practice software acting for a professional.
# The guard raises this per lookup when an account's behaviour calls for more.
LOOKUP_REQUIREMENT = AuthRequirement(
    (ACR_PASSWORD_TOTP, ACR_PASSWORD_RECOVERY, ACR_WEBAUTHN, ACR_PSC, ACR_CPS, ACR_CLIENT)
)
