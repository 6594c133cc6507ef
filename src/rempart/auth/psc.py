"""Pro Santé Connect (PSC) login: OpenID Connect authorization code flow with PKCE.

``start`` stores a single-use state, a nonce, the PKCE verifier and a hash of the
browser's binding (a random value the API keeps in an HttpOnly cookie), and returns
the provider's authorization URL. ``finish`` spends the state (whatever happens
next), refuses it unless the callback comes from the browser that started the login
(login CSRF: an attacker's own code and state, sent to a victim as a link, would
otherwise log the victim into the attacker's account), exchanges the code with the
verifier, checks the ID token (signature against the provider's JWKS, issuer,
audience, expiry, nonce, ``acr`` at least the configured eIDAS level), reads the
professional's national identifier (``SubjectNameID``: "8" + RPPS) from the ID
token or the userinfo endpoint and finds the Rempart account of that professional.

The provider is whatever the discovery document names: the PSC sandbox,
production, or a local provider in tests and the demo. Errors carry stable
codes and generic details; the precise reason goes to the event trail only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session

from rempart.auth.challenges import ChallengeStore
from rempart.auth.levels import ACR_CPS, ACR_PSC
from rempart.errors import RempartError
from rempart.store.models import Account, Professional

with warnings.catch_warnings():
    # Authlib prefers the httpx2 fork and warns once when it falls back to httpx,
    # which is the client this project uses everywhere.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.base_client import OAuthError  # type: ignore[import-untyped]
    from authlib.integrations.httpx_client import OAuth2Client  # type: ignore[import-untyped]

__all__ = [
    "EIDAS_LEVELS",
    "PscAcrTooLow",
    "PscBrowserMismatch",
    "PscCallbackInvalid",
    "PscClient",
    "PscError",
    "PscIdentity",
    "PscNotConfigured",
    "PscStateInvalid",
    "PscTokenInvalid",
    "PscUnavailable",
    "PscUnknownProfessional",
    "rpps_of",
]

log = structlog.get_logger("rempart.auth.psc")

PURPOSE = "psc_login"
EIDAS_LEVELS = {"eidas0": 0, "eidas1": 1, "eidas2": 2, "eidas3": 3}
# Asymmetric signatures only: an HMAC signed with the client secret, or "none", is refused.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
_NATIONAL_ID_CLAIM = "SubjectNameID"
_RPPS_NATIONAL_ID = re.compile(r"8([0-9]{11})")
_MAX_RESPONSE_BYTES = 256 * 1024


class PscError(RempartError):
    """A refused PSC login. ``reason`` is for the event trail, never for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(self.public_detail)
        self.reason = reason

    public_detail = "the Pro Santé Connect login failed"


class PscStateInvalid(PscError):
    code = "psc_state_invalid"
    status = 400
    public_detail = "this login attempt is unknown, expired or already used; start again"


class PscBrowserMismatch(PscError):
    code = "psc_browser_mismatch"
    status = 400
    public_detail = "this login was not started in this browser; start again"


class PscCallbackInvalid(PscError):
    code = "psc_callback_invalid"
    status = 400
    public_detail = "the Pro Santé Connect answer is malformed or reports an error; start again"


class PscTokenInvalid(PscError):
    code = "psc_token_invalid"
    status = 401
    public_detail = "the Pro Santé Connect login could not be verified; start again"


class PscAcrTooLow(PscError):
    code = "psc_acr_too_low"
    status = 403
    public_detail = "this login method is not strong enough; use e-CPS or the CPS card"


class PscUnknownProfessional(PscError):
    code = "psc_unknown_professional"
    status = 403
    public_detail = "no Rempart account is linked to this health professional"


class PscNotConfigured(RempartError):
    code = "psc_not_configured"
    status = 404

    def __init__(self) -> None:
        super().__init__("Pro Santé Connect login is not enabled on this service")


class PscUnavailable(PscError):
    code = "psc_unavailable"
    status = 503
    public_detail = "Pro Santé Connect cannot be reached; try again later"


@dataclass(frozen=True)
class PscIdentity:
    """A verified PSC login, matched to a Rempart account."""

    account_id: str
    rpps: str
    subject: str
    acr: str  # Rempart's level: ACR_CPS or ACR_PSC
    provider_acr: str  # the eIDAS level the provider asserted
    amr: tuple[str, ...]
    # What the login was started for, as ``start`` was told (e.g. the portal, and the
    # lookup it should resume): kept server-side with the state, never from the browser.
    then: dict[str, str] = field(default_factory=dict)


def _then(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _browser_hash(browser: str) -> str:
    # The cookie's value never sits in the database: a row read there cannot forge it.
    return hashlib.sha256(b"rempart-psc-browser:" + browser.encode()).hexdigest()


def rpps_of(national_id: str) -> str | None:
    """The RPPS number in a PSC national identifier ("8" + 11 digits), else None.

    >>> rpps_of("810003456789")
    '10003456789'
    >>> rpps_of("0123456789") is None
    True
    """
    match = _RPPS_NATIONAL_ID.fullmatch(national_id)
    return match.group(1) if match else None


class PscClient:
    def __init__(
        self,
        *,
        discovery_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        scopes: str = "openid scope_all",
        min_acr: str = "eidas1",
        card_amr: tuple[str, ...] = ("sc", "hwk"),
        timeout_seconds: float = 5.0,
        challenges: ChallengeStore | None = None,
        state_ttl_seconds: int = 600,
        leeway_seconds: int = 60,
        metadata_ttl_seconds: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if min_acr not in EIDAS_LEVELS:
            raise ValueError(f"unknown eIDAS level {min_acr!r}")
        self.discovery_url = discovery_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.scopes = scopes
        self.min_acr = min_acr
        self.card_amr = frozenset(card_amr)
        self.timeout_seconds = timeout_seconds
        self.challenges = challenges or ChallengeStore()
        self.state_ttl_seconds = state_ttl_seconds
        self.leeway_seconds = leeway_seconds
        self.metadata_ttl_seconds = metadata_ttl_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: KeySet | None = None
        self._jwks_at = 0.0

    def __repr__(self) -> str:
        return f"PscClient(discovery_url={self.discovery_url!r}, client_id={self.client_id!r})"

    # -- the provider's documents ------------------------------------------------------

    def _get_json(self, url: str, *, what: str) -> dict[str, Any]:
        try:
            response = httpx.get(url, timeout=self.timeout_seconds, follow_redirects=False)
        except httpx.HTTPError as exc:
            log.warning("psc_unreachable", what=what, error=type(exc).__name__)
            raise PscUnavailable(f"{what}_unreachable") from None
        if response.status_code != 200 or len(response.content) > _MAX_RESPONSE_BYTES:
            log.warning("psc_bad_document", what=what, status=response.status_code)
            raise PscUnavailable(f"{what}_http_{response.status_code}")
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise PscUnavailable(f"{what}_not_json")
        return document

    def metadata(self) -> dict[str, Any]:
        """The discovery document, fetched once and kept for ``metadata_ttl_seconds``."""
        with self._lock:
            fresh = time.monotonic() - self._metadata_at < self.metadata_ttl_seconds
            if self._metadata is not None and fresh:
                return self._metadata
        document = self._get_json(self.discovery_url, what="discovery")
        for name in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(document.get(name), str) or not document[name]:
                log.warning("psc_bad_discovery", missing=name)
                raise PscUnavailable("discovery_incomplete")
        with self._lock:
            self._metadata, self._metadata_at = document, time.monotonic()
        return document

    def key_set(self, *, refresh: bool = False) -> KeySet:
        """The provider's signing keys; ``refresh`` fetches them again (at most every 10 s)."""
        with self._lock:
            cached = self._jwks
            recent = time.monotonic() - self._jwks_at < 10
            if cached is not None and (not refresh or recent):
                return cached
        document = self._get_json(self.metadata()["jwks_uri"], what="jwks")
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise PscUnavailable("jwks_invalid") from None
        with self._lock:
            self._jwks, self._jwks_at = keys, time.monotonic()
        return keys

    def _algorithms(self) -> list[str]:
        advertised = self.metadata().get("id_token_signing_alg_values_supported")
        if isinstance(advertised, list):
            allowed = [alg for alg in SIGNING_ALGORITHMS if alg in advertised]
            if allowed:
                return allowed
        return ["RS256"]

    def _oauth_client(self) -> OAuth2Client:
        return OAuth2Client(
            client_id=self.client_id,
            client_secret=self._client_secret,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
            scope=self.scopes,
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            timeout=self.timeout_seconds,
            follow_redirects=False,
        )

    # -- the flow ----------------------------------------------------------------------

    def start(
        self, session: Session, *, browser: str, then: Mapping[str, str] | None = None
    ) -> str:
        """Stores state, nonce, PKCE verifier and the hash of ``browser`` (the random value
        the browser keeps in a cookie), and ``then`` (what the login is for, handed back by
        :meth:`finish`); returns the URL to send the browser to."""
        if len(browser) < 16:
            raise ValueError("the browser binding must be a random value of 16 characters or more")
        endpoint = self.metadata()["authorization_endpoint"]
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        self.challenges.put(
            session,
            purpose=PURPOSE,
            payload={
                "nonce": nonce,
                "verifier": verifier,
                "browser": _browser_hash(browser),
                "then": dict(then or {}),
            },
            ttl_seconds=self.state_ttl_seconds,
            handle=state,
        )
        with self._oauth_client() as client:
            url, _ = client.create_authorization_url(
                endpoint,
                state=state,
                code_verifier=verifier,
                nonce=nonce,
                acr_values=self.min_acr,
            )
        return str(url)

    def abandon(self, session: Session, *, state: str) -> None:
        """Spends a state the provider answered with an error: it cannot serve again."""
        self.challenges.take(session, handle=state, purpose=PURPOSE)
        session.commit()

    def finish(
        self, session: Session, *, code: str, state: str, browser: str, iss: str | None = None
    ) -> PscIdentity:
        """Completes the login the provider redirected back with, in ``browser`` (the
        value of the cookie set at ``start``; empty when the browser sent none).

        The state is spent and committed first, so that a failure later on (a wrong
        browser, a wrong nonce, a rejected code) cannot be retried with the same state.
        """
        challenge = self.challenges.take(session, handle=state, purpose=PURPOSE)
        session.commit()
        if challenge is None:
            raise PscStateInvalid("unknown_or_spent_state")
        nonce, verifier = challenge.payload.get("nonce"), challenge.payload.get("verifier")
        bound = challenge.payload.get("browser")
        if (
            not isinstance(nonce, str)
            or not isinstance(verifier, str)
            or not isinstance(bound, str)
        ):
            raise PscStateInvalid("malformed_state")
        # Before the code is exchanged: a link holding someone else's code goes no further.
        if not browser:
            raise PscBrowserMismatch("no_browser_cookie")
        if not hmac.compare_digest(_browser_hash(browser), bound):
            raise PscBrowserMismatch("other_browser")
        metadata = self.metadata()
        # RFC 9207: the answer names its issuer, which defeats mix-up between providers.
        if iss is not None and iss != metadata["issuer"]:
            raise PscCallbackInvalid("issuer_mismatch")
        if iss is None and metadata.get("authorization_response_iss_parameter_supported"):
            raise PscCallbackInvalid("issuer_missing")

        token = self._exchange(metadata["token_endpoint"], code=code, verifier=verifier)
        id_token, access_token = token.get("id_token"), token.get("access_token")
        if not isinstance(id_token, str) or not isinstance(access_token, str):
            raise PscTokenInvalid("no_id_token")
        claims = self.validate_id_token(id_token, nonce=nonce, access_token=access_token)

        provider_acr = claims.get("acr")
        level = EIDAS_LEVELS.get(provider_acr) if isinstance(provider_acr, str) else None
        if level is None or level < EIDAS_LEVELS[self.min_acr]:
            raise PscAcrTooLow(f"acr_{provider_acr if level is not None else 'unknown'}")
        amr_claim = claims.get("amr")
        amr = tuple(str(v) for v in amr_claim) if isinstance(amr_claim, list) else ()

        subject = str(claims["sub"])
        national_id = claims.get(_NATIONAL_ID_CLAIM)
        if national_id is None:
            national_id = self._userinfo(metadata, access_token, subject).get(_NATIONAL_ID_CLAIM)
        if not isinstance(national_id, str):
            raise PscUnknownProfessional("no_national_id")
        rpps = rpps_of(national_id)
        if rpps is None:
            raise PscUnknownProfessional("not_an_rpps_id")
        account_id = self._account_of(session, rpps)
        return PscIdentity(
            account_id=account_id,
            rpps=rpps,
            subject=subject,
            acr=ACR_CPS if amr and self.card_amr.intersection(amr) else ACR_PSC,
            provider_acr=str(provider_acr),
            amr=amr,
            then=_then(challenge.payload.get("then")),
        )

    def _exchange(self, endpoint: str, *, code: str, verifier: str) -> Mapping[str, Any]:
        try:
            with self._oauth_client() as client:
                token: Mapping[str, Any] = client.fetch_token(
                    endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=verifier,
                )
        except OAuthError as exc:
            log.info("psc_code_rejected", error=str(exc.error)[:64])
            raise PscTokenInvalid("code_rejected") from None
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("psc_token_endpoint_failed", error=type(exc).__name__)
            raise PscUnavailable("token_endpoint_failed") from None
        return token

    def validate_id_token(
        self, id_token: str, *, nonce: str, access_token: str | None = None
    ) -> dict[str, Any]:
        """Signature (the provider's JWKS; once refreshed on an unknown key id), issuer,
        audience and authorized party, expiry, issue time, nonce and ``at_hash``."""
        metadata = self.metadata()
        registry = JWSRegistry(algorithms=self._algorithms())
        try:
            try:
                decoded = jwt.decode(id_token, self.key_set(), registry=registry)
            except InvalidKeyIdError:
                decoded = jwt.decode(id_token, self.key_set(refresh=True), registry=registry)
        except JoseError as exc:
            raise PscTokenInvalid(f"signature:{type(exc).__name__}") from None
        except (ValueError, TypeError):
            raise PscTokenInvalid("malformed") from None
        params: dict[str, Any] = {"nonce": nonce, "client_id": self.client_id}
        if access_token is not None:
            params["access_token"] = access_token
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {
                "iss": {"essential": True, "value": metadata["issuer"]},
                "aud": {"essential": True, "value": self.client_id},
                "sub": {"essential": True},
                "nonce": {"essential": True},
            },
            params,
        )
        try:
            claims.validate(now=int(self.clock()), leeway=self.leeway_seconds)
        except ExpiredTokenError:
            raise PscTokenInvalid("expired") from None
        except JoseError as exc:
            reason = getattr(exc, "claim", "") or type(exc).__name__
            raise PscTokenInvalid(f"claim:{reason}") from None
        return dict(claims)

    def _userinfo(
        self, metadata: Mapping[str, Any], access_token: str, subject: str
    ) -> dict[str, Any]:
        endpoint = metadata.get("userinfo_endpoint")
        if not isinstance(endpoint, str):
            return {}
        try:
            response = httpx.get(
                endpoint,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                timeout=self.timeout_seconds,
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            log.warning("psc_userinfo_unreachable", error=type(exc).__name__)
            raise PscUnavailable("userinfo_unreachable") from None
        if response.status_code != 200 or len(response.content) > _MAX_RESPONSE_BYTES:
            raise PscUnavailable(f"userinfo_http_{response.status_code}")
        if response.headers.get("content-type", "").startswith("application/jwt"):
            info = self._signed_userinfo(response.text, metadata)
        else:
            try:
                info = response.json()
            except ValueError:
                info = None
        if not isinstance(info, dict):
            raise PscUnavailable("userinfo_not_json")
        # OpenID Connect Core 5.3.2: the userinfo sub must be the ID token's.
        if info.get("sub") != subject:
            raise PscTokenInvalid("userinfo_subject_mismatch")
        return info

    def _signed_userinfo(self, value: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
        registry = JWSRegistry(algorithms=list(SIGNING_ALGORITHMS))
        try:
            try:
                decoded = jwt.decode(value, self.key_set(), registry=registry)
            except InvalidKeyIdError:
                decoded = jwt.decode(value, self.key_set(refresh=True), registry=registry)
        except (JoseError, ValueError, TypeError):
            raise PscTokenInvalid("userinfo_signature") from None
        claims = decoded.claims
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if claims.get("iss") != metadata["issuer"] or self.client_id not in audiences:
            raise PscTokenInvalid("userinfo_issuer_or_audience")
        return dict(claims)

    @staticmethod
    def _account_of(session: Session, rpps: str) -> str:
        accounts = (
            session.execute(
                select(Account.account_id)
                .join(Professional, Professional.account_id == Account.account_id)
                .where(Professional.rpps == rpps)
                .limit(2)
            )
            .scalars()
            .all()
        )
        if not accounts:
            raise PscUnknownProfessional("no_account_for_rpps")
        if len(accounts) > 1:
            raise PscUnknownProfessional("several_accounts_for_rpps")
        return accounts[0]
