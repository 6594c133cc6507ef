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
from rempart.ops.metrics import count_step_up

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
    "STRONG_PROOF_MAX_AGE",
    "YOUNG_KEY_DETAIL",
    "AuthRequirement",
    "StepUpRequired",
    "is_strong_login",
    "passes_step_up",
    "require_established_factor",
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
            count_step_up("requirement")
            raise StepUpRequired(self.acr_values, max_age=self.max_age)


# How recent a Pro Santé Connect login must be to enrol a first key or mint recovery codes.
STRONG_PROOF_MAX_AGE = 600


def passes_step_up(acr: str, established: bool) -> bool:
    """Whether a session answers the guard's step-up (and may manage keys).

    The CPS card is issued by the state, never enrolled through Rempart: always enough.
    A WebAuthn key is enough only when *established* (past its probation and not
    enrolled from a network new to the account): a key planted through a phished or
    relayed session would otherwise turn a handful of reads into the deny threshold.
    """
    return acr == ACR_CPS or (acr == ACR_WEBAUTHN and established)


YOUNG_KEY_DETAIL = (
    "this security key was added recently or from a network new to the account and cannot "
    "answer this yet: use the CPS card, or wait until the key is established"
)


def require_established_factor(acr: str, established: bool) -> None:
    """Key management (a further key, removing one) needs what the guard's step-up needs;
    a young key is told apart so that its holder knows to wait or use the card."""
    if passes_step_up(acr, established):
        return
    acr_values = tuple(sorted(PHISHING_RESISTANT))
    if acr == ACR_WEBAUTHN:
        raise StepUpRequired(acr_values, detail=YOUNG_KEY_DETAIL)
    raise StepUpRequired(acr_values)


def is_strong_login(acr: str, established: bool) -> bool:
    """A login a mailbox thief with a relayed TOTP code cannot produce: the card, Pro Santé
    Connect, or an established key. Pending security notices are shown at such a login."""
    return acr in (ACR_PSC, ACR_CPS) or passes_step_up(acr, established)


PHISHING_RESISTANT_REQUIREMENT = AuthRequirement(tuple(sorted(PHISHING_RESISTANT)))
# Reading rights: any two-factor login, or practice software acting for a professional.
# The guard raises this per lookup when an account's behaviour calls for more.
LOOKUP_REQUIREMENT = AuthRequirement(
    (ACR_PASSWORD_TOTP, ACR_PASSWORD_RECOVERY, ACR_WEBAUTHN, ACR_PSC, ACR_CPS, ACR_CLIENT)
)
