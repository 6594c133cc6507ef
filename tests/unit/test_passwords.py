from __future__ import annotations

import pytest

from rempart.auth.passwords import PasswordHasher, WeakPassword, check_password_policy


@pytest.mark.parametrize(
    "password",
    [
        "short",
        "azertyuiop123",
        "password1234",
        "motdepasse123",
        "aaaaaaaaaaaaaaaa",
        "pharmacie.lilas1",
    ],
)
def test_weak_passwords_are_refused(password: str) -> None:
    with pytest.raises(WeakPassword) as caught:
        check_password_policy(password, min_length=12, user_inputs=["pharmacie.lilas"])
    assert caught.value.code == "weak_password"
    assert password not in caught.value.detail


def test_a_long_passphrase_is_accepted() -> None:
    check_password_policy("violet tram sous la pluie 1987", min_length=12, user_inputs=[])


def test_hash_verify_and_rehash_when_parameters_change() -> None:
    cheap = PasswordHasher(time_cost=1, memory_kib=8192, parallelism=1)
    stored = cheap.hash("violet tram sous la pluie 1987")
    assert stored.startswith("$argon2id$")
    assert cheap.verify(stored, "violet tram sous la pluie 1987")
    assert not cheap.verify(stored, "violet tram sous la pluie 1988")
    assert not cheap.verify("not-a-hash", "anything")
    assert not cheap.needs_rehash(stored)
    stronger = PasswordHasher(time_cost=2, memory_kib=16384, parallelism=1)
    assert stronger.needs_rehash(stored)
    assert stronger.verify(stored, "violet tram sous la pluie 1987")
