from __future__ import annotations

from dataclasses import dataclass

import pytest

from rempart.auth.levels import (
    ACR_CPS,
    ACR_PASSWORD_TOTP,
    ACR_PSC,
    ACR_WEBAUTHN,
    PHISHING_RESISTANT_REQUIREMENT,
    AuthRequirement,
    StepUpRequired,
    is_strong_login,
    passes_step_up,
)


@dataclass(frozen=True)
class Caller:
    acr: str
    auth_time: int


def test_a_phishable_session_gets_the_rfc_9470_challenge() -> None:
    with pytest.raises(StepUpRequired) as caught:
        PHISHING_RESISTANT_REQUIREMENT.check(Caller(ACR_PASSWORD_TOTP, auth_time=0))
    error = caught.value
    assert (error.status, error.code) == (401, "insufficient_user_authentication")
    header = error.headers["WWW-Authenticate"]
    assert header.startswith('Bearer error="insufficient_user_authentication"')
    assert 'acr_values="cps webauthn"' in header
    assert "max_age" not in header


def test_max_age_asks_for_a_recent_authentication() -> None:
    fresh = AuthRequirement((ACR_PASSWORD_TOTP, ACR_WEBAUTHN), max_age=600)
    assert fresh.is_met_by(Caller(ACR_WEBAUTHN, auth_time=1_000), now=1_500)
    assert not fresh.is_met_by(Caller(ACR_WEBAUTHN, auth_time=1_000), now=1_601)
    with pytest.raises(StepUpRequired) as caught:
        fresh.check(Caller(ACR_PASSWORD_TOTP, auth_time=0), now=10_000)
    assert 'max_age="600"' in caught.value.headers["WWW-Authenticate"]


def test_requirements_name_known_levels_only() -> None:
    with pytest.raises(ValueError, match="unknown"):
        AuthRequirement(("password",))
    with pytest.raises(ValueError, match="missing"):
        AuthRequirement(())


def test_only_the_card_or_an_established_key_passes_a_step_up() -> None:
    assert passes_step_up(ACR_CPS, established=False)
    assert passes_step_up(ACR_WEBAUTHN, established=True)
    assert not passes_step_up(ACR_WEBAUTHN, established=False)  # young, or from a new network
    assert not passes_step_up(ACR_PSC, established=True)  # e-CPS can be relayed
    assert not passes_step_up(ACR_PASSWORD_TOTP, established=True)
    assert is_strong_login(ACR_PSC, established=False)
    assert not is_strong_login(ACR_WEBAUTHN, established=False)
