"""Pro Santé Connect settings: all or nothing, https in production; the PSC client's
own rules that need no provider."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from rempart.auth.psc import EIDAS_LEVELS, PscClient, rpps_of
from rempart.config import ConfigError, load_settings
from rempart.services import Services

PSC = {
    "psc_discovery_url": "https://auth.psc.example/.well-known/openid-configuration",
    "psc_client_id": "rempart",
    "psc_client_secret": "a-client-secret-of-some-length",
    "psc_redirect_uri": "https://rempart.example/api/v1/auth/psc/callback",
}


def production_secrets() -> dict[str, str]:
    names = ("token_secret", "pseudonym_key", "data_key", "audit_signing_key", "notice_code_key")
    return {name: secrets.token_urlsafe(48) for name in names}


def test_psc_is_off_unless_configured(tmp_path: Path) -> None:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'r.db'}")
    assert not settings.psc_configured
    assert Services(settings).psc is None


def test_psc_configured(tmp_path: Path) -> None:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'r.db'}", **PSC)
    assert settings.psc_configured
    assert settings.psc_min_acr == "eidas1"
    psc = Services(settings).psc
    assert isinstance(psc, PscClient)
    assert psc.card_amr == {"sc", "hwk"}
    assert PSC["psc_client_secret"] not in repr(psc)
    assert PSC["psc_client_secret"] not in repr(settings)


def test_half_configured_psc_is_refused(tmp_path: Path) -> None:
    partial = {k: v for k, v in PSC.items() if k != "psc_client_secret"}
    with pytest.raises(ConfigError) as caught:
        load_settings(database_url=f"sqlite:///{tmp_path / 'r.db'}", **partial)
    assert "REMPART_PSC_CLIENT_SECRET" in str(caught.value)


def test_minimum_acr_cannot_be_below_eidas1(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_settings(database_url=f"sqlite:///{tmp_path / 'r.db'}", psc_min_acr="eidas0", **PSC)


@pytest.mark.parametrize("name", ["psc_discovery_url", "psc_redirect_uri"])
def test_production_needs_https(tmp_path: Path, name: str) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    load_settings(env="production", database_url=url, **production_secrets(), **PSC)
    plain = {**PSC, name: PSC[name].replace("https://", "http://")}
    with pytest.raises(ConfigError) as caught:
        load_settings(env="production", database_url=url, **production_secrets(), **plain)
    assert f"REMPART_{name.upper()}" in str(caught.value)
    load_settings(database_url=url, **plain)  # development: a local provider over http


def test_national_identifiers() -> None:
    assert rpps_of("810003456789") == "10003456789"
    for other in (
        "10003456789",
        "8100034567890",
        "81000345678x",
        "0751234567",
        "810003456789\n",
        "\uff1810003456789",  # a fullwidth digit eight
    ):
        assert rpps_of(other) is None
    assert sorted(EIDAS_LEVELS, key=EIDAS_LEVELS.__getitem__) == [
        "eidas0",
        "eidas1",
        "eidas2",
        "eidas3",
    ]
