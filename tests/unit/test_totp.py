from __future__ import annotations

import pyotp

from rempart.auth.totp import STEP_SECONDS, new_secret, provisioning_uri, verify_totp

NOW = 1_790_000_000.0


def test_current_and_adjacent_steps_are_accepted() -> None:
    secret = new_secret()
    totp = pyotp.TOTP(secret)
    step = int(NOW // STEP_SECONDS)
    assert verify_totp(secret, totp.at(NOW), last_step=0, now=NOW) == step
    assert verify_totp(secret, totp.at(NOW - STEP_SECONDS), last_step=0, now=NOW) == step - 1
    assert verify_totp(secret, totp.at(NOW + STEP_SECONDS), last_step=0, now=NOW) == step + 1


def test_codes_two_steps_away_are_refused() -> None:
    secret = new_secret()
    totp = pyotp.TOTP(secret)
    assert verify_totp(secret, totp.at(NOW - 2 * STEP_SECONDS), last_step=0, now=NOW) is None
    assert verify_totp(secret, totp.at(NOW + 2 * STEP_SECONDS), last_step=0, now=NOW) is None


def test_a_used_step_and_older_ones_are_refused() -> None:
    secret = new_secret()
    totp = pyotp.TOTP(secret)
    used = verify_totp(secret, totp.at(NOW), last_step=0, now=NOW)
    assert used is not None
    assert verify_totp(secret, totp.at(NOW), last_step=used, now=NOW) is None
    assert verify_totp(secret, totp.at(NOW - STEP_SECONDS), last_step=used, now=NOW) is None
    assert verify_totp(secret, totp.at(NOW + STEP_SECONDS), last_step=used, now=NOW) == used + 1


def test_malformed_codes_are_refused() -> None:
    secret = new_secret()
    for code in ("", "12345", "1234567", "12 456", "abcdef", "١٢٣٤٥٦"):
        assert verify_totp(secret, code, last_step=0, now=NOW) is None


def test_provisioning_uri_round_trips() -> None:
    secret = new_secret()
    uri = provisioning_uri(secret, login="dr.martin", issuer="Rempart")
    assert uri.startswith("otpauth://totp/Rempart:dr.martin?")
    assert pyotp.parse_uri(uri).secret == secret
