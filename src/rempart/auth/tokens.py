"""Signed, short-lived tokens (JWT, HS256), one key per purpose.

PyJWT is used rather than hand-rolled signing: it enforces the algorithm list
(so ``none`` and algorithm confusion are refused), expiry and required claims.

A session's access token comes back with every request for hours, and PyJWT's
full check costs some 70 µs of Python each time. Access tokens that passed it are
therefore remembered, keyed by the whole token string (its signature included:
a token that differs by one character is a miss and is checked in full), until
their expiry; a hit costs a dictionary lookup and a clock read. This skips no
decision: revocation and idleness live in the server-side session, which every
request reads anyway, and a remembered token is dropped at its ``exp``.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

import jwt

from rempart.errors import RempartError

__all__ = ["AccessClaims", "InvalidToken", "TokenSigner"]

_ALGORITHM = "HS256"
_ISSUER = "rempart"
_REMEMBERED_TOKENS = 20_000  # about 15 MB at most; far more than one worker's live sessions


class InvalidToken(RempartError):
    code = "invalid_token"
    status = 401

    def __init__(self, detail: str = "the token is invalid or expired") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


@dataclass(frozen=True, slots=True)
class AccessClaims:
    account_id: str
    session_id: str
    acr: str
    epoch: int
    expires_at: int
    auth_time: int


class TokenSigner:
    """Issues and checks tokens of one purpose (``access``, ``mfa``); keys never cross purposes."""

    def __init__(self, key: bytes, *, purpose: str, ttl_seconds: int) -> None:
        self._key = key
        self._purpose = purpose
        self.ttl_seconds = ttl_seconds
        self._verified: dict[str, AccessClaims] = {}
        self._verified_lock = threading.Lock()

    def issue(self, subject: str, *, now: float | None = None, **claims: object) -> str:
        issued = int(time.time() if now is None else now)
        payload = {
            "iss": _ISSUER,
            "sub": subject,
            "typ": self._purpose,
            "iat": issued,
            "exp": issued + self.ttl_seconds,
            "jti": secrets.token_urlsafe(12),
            **claims,
        }
        return jwt.encode(payload, self._key, algorithm=_ALGORITHM)

    def check(self, token: str) -> dict[str, object]:
        try:
            payload: dict[str, object] = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                issuer=_ISSUER,
                options={"require": ["exp", "iat", "sub", "typ", "iss"]},
            )
        except jwt.PyJWTError:
            raise InvalidToken() from None
        if payload.get("typ") != self._purpose:
            raise InvalidToken()
        return payload

    def issue_access(
        self,
        account_id: str,
        *,
        session_id: str,
        acr: str,
        epoch: int,
        auth_time: int,
        expires_at: int,
    ) -> str:
        """An access token bound to a server-side session; it lives until the session's
        absolute end, while idleness and revocation are checked on the session itself."""
        issued = int(time.time())
        return self.issue(
            account_id,
            now=issued,
            sid=session_id,
            acr=acr,
            epoch=epoch,
            auth_time=auth_time,
            exp=expires_at,
        )

    def check_access(self, token: str) -> AccessClaims:
        remembered = self._verified.get(token)
        if remembered is not None and remembered.expires_at > time.time():
            return remembered
        claims = self._check_access(token)
        with self._verified_lock:
            if len(self._verified) >= _REMEMBERED_TOKENS:
                now = time.time()
                self._verified = {k: v for k, v in self._verified.items() if v.expires_at > now}
                if len(self._verified) >= _REMEMBERED_TOKENS:
                    self._verified.clear()
            self._verified[token] = claims
        return claims

    def _check_access(self, token: str) -> AccessClaims:
        payload = self.check(token)
        sub, sid, acr, epoch, exp, auth_time = (
            payload.get(k) for k in ("sub", "sid", "acr", "epoch", "exp", "auth_time")
        )
        if not (
            isinstance(sub, str)
            and isinstance(sid, str)
            and isinstance(acr, str)
            and isinstance(epoch, int)
            and isinstance(exp, int)
            and isinstance(auth_time, int)
        ):
            raise InvalidToken()
        return AccessClaims(
            account_id=sub,
            session_id=sid,
            acr=acr,
            epoch=epoch,
            expires_at=exp,
            auth_time=auth_time,
        )
