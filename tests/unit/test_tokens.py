from __future__ import annotations

import jwt
import pytest

from rempart.auth.tokens import InvalidToken, TokenSigner

KEY = b"k" * 32


def test_access_token_round_trips() -> None:
    signer = TokenSigner(KEY, purpose="access", ttl_seconds=60)
    token, session_id = signer.issue_access("acct-1", acr="password+totp", epoch=3)
    claims = signer.check_access(token)
    assert (claims.account_id, claims.acr, claims.epoch) == ("acct-1", "password+totp", 3)
    assert claims.session_id == session_id


def test_expired_tampered_foreign_and_cross_purpose_tokens_are_refused() -> None:
    access = TokenSigner(KEY, purpose="access", ttl_seconds=60)
    mfa = TokenSigner(KEY, purpose="mfa", ttl_seconds=60)
    expired = access.issue("acct-1", now=1_000_000, sid="s", acr="a", epoch=0)
    good, _ = access.issue_access("acct-1", acr="password+totp", epoch=0)
    header, payload, signature = good.split(".")
    tampered = f"{header}.{payload[:-2]}AA.{signature}"
    foreign, _ = TokenSigner(b"x" * 32, purpose="access", ttl_seconds=60).issue_access(
        "acct-1", acr="password+totp", epoch=0
    )
    unsigned = jwt.encode({"sub": "acct-1", "typ": "access"}, key="", algorithm="none")
    wrong_alg = jwt.encode({"sub": "acct-1", "typ": "access", "iss": "rempart"}, KEY, "HS512")
    for token in (expired, tampered, foreign, unsigned, wrong_alg, "garbage", ""):
        with pytest.raises(InvalidToken):
            access.check_access(token)
    with pytest.raises(InvalidToken):
        access.check(mfa.issue("acct-1"))
