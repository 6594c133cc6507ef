from __future__ import annotations

import time

import jwt
import pytest

from rempart.auth.tokens import AccessClaims, InvalidToken, TokenSigner

KEY = b"k" * 32


def _access(signer: TokenSigner, *, expires_at: int | None = None) -> str:
    now = int(time.time())
    return signer.issue_access(
        "acct-1",
        session_id="sess-1",
        acr="password+totp",
        epoch=3,
        auth_time=now,
        expires_at=now + 3600 if expires_at is None else expires_at,
    )


def test_access_token_round_trips() -> None:
    signer = TokenSigner(KEY, purpose="access", ttl_seconds=60)
    claims = signer.check_access(_access(signer))
    assert (claims.account_id, claims.acr, claims.epoch) == ("acct-1", "password+totp", 3)
    assert claims.session_id == "sess-1"
    assert claims.expires_at - claims.auth_time == 3600  # the session's end, not the signer's ttl


def test_expired_tampered_foreign_and_cross_purpose_tokens_are_refused() -> None:
    access = TokenSigner(KEY, purpose="access", ttl_seconds=60)
    mfa = TokenSigner(KEY, purpose="mfa", ttl_seconds=60)
    expired = access.issue("acct-1", now=1_000_000, sid="s", acr="a", epoch=0, auth_time=1)
    past_session = _access(access, expires_at=int(time.time()) - 10)
    good = _access(access)
    header, payload, signature = good.split(".")
    tampered = f"{header}.{payload[:-2]}AA.{signature}"
    foreign = _access(TokenSigner(b"x" * 32, purpose="access", ttl_seconds=60))
    unsigned = jwt.encode({"sub": "acct-1", "typ": "access"}, key="", algorithm="none")
    wrong_alg = jwt.encode({"sub": "acct-1", "typ": "access", "iss": "rempart"}, KEY, "HS512")
    no_auth_time = access.issue("acct-1", sid="s", acr="a", epoch=0)
    for token in (
        expired,
        past_session,
        tampered,
        foreign,
        unsigned,
        wrong_alg,
        no_auth_time,
        "garbage",
        "",
    ):
        with pytest.raises(InvalidToken):
            access.check_access(token)
    with pytest.raises(InvalidToken):
        access.check(mfa.issue("acct-1"))


def test_a_remembered_token_is_the_exact_string_and_only_until_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    access = TokenSigner(KEY, purpose="access", ttl_seconds=60)
    full_checks: list[str] = []
    check = access._check_access

    def counted(token: str) -> AccessClaims:
        full_checks.append(token)
        return check(token)

    monkeypatch.setattr(access, "_check_access", counted)
    now = int(time.time())
    good = _access(access, expires_at=now + 100)
    assert access.check_access(good).session_id == "sess-1"
    assert access.check_access(good).session_id == "sess-1"
    assert full_checks == [good]  # the second use was remembered
    header, payload, signature = good.split(".")
    for altered in (f"{header}.{payload}.{signature[:-2]}AA", f"{good} ", good[:-1]):
        with pytest.raises(InvalidToken):
            access.check_access(altered)  # any other string is checked in full
    assert len(full_checks) == 4

    class Later:
        @staticmethod
        def time() -> float:
            return now + 101.0

    monkeypatch.setattr("rempart.auth.tokens.time", Later)
    access.check_access(good)
    assert full_checks[-1] == good  # past its exp, it is not served from memory
    assert len(full_checks) == 5
