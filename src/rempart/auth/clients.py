"""API clients (practice software, "LGC"): OAuth 2.0 client credentials bound to an
organization, with the acting professional named on every request.

The model
---------
A practice software installed in a pharmacy or a hospital is one *client*,
bound to one ``organization_id`` (the organization of ``professionals``). It
obtains a short-lived bearer token at ``POST /api/v1/oauth/token``
(RFC 6749 §4.4, ``grant_type=client_credentials``) and names, on each request,
the professional it acts for (``X-Acting-Professional``: RPPS or account id).
That professional must belong to the client's organization and hold an active
account; otherwise every case (unknown, other organization, suspended,
ambiguous RPPS) gets the same ``403 acting_professional_invalid``, so that a
client cannot probe who works elsewhere. The request's :class:`Principal` is
that professional's account, with ``acr`` = ``client`` and ``channel`` =
``software``: the audit trail and the guard see the professional, as for a
portal lookup, and which software asked (``session_id`` =
``client:<client_id>:<token jti>``). The audit entry has no client column, so
the client is carried in the session id.

No ``auth_sessions`` row is opened for a client token: that table references
one account, while a client token acts for any professional of its
organization, and it lives one hour (``client_token_ttl_seconds``) with the
client's state checked on every request anyway. What ends a client's access at
once is its status: :meth:`ClientRegistry.revoke` sets ``revoked`` and every
request reads it, so tokens already issued stop working immediately.

Secrets
-------
A secret is 256 random bits (``secrets.token_urlsafe(32)``), shown once at
creation or rotation and never stored. The table keeps
``hmac-sha256$<hex>``: an HMAC-SHA256 under a server key
(``keys.for_purpose("client-secrets")``) of the client id and the secret.
argon2 would buy nothing here: it slows the guessing of *low-entropy*
passwords, and nobody guesses 2^256; it would only slow the token endpoint
(tens of ms of CPU and 64 MiB per call) and open a cheap denial of service.
The key still matters: a stolen copy of the table alone does not let anyone
check a candidate secret. The client id is inside the MAC, so a hash copied
onto another row verifies nothing. Comparisons use ``hmac.compare_digest``;
an unknown client id costs the same HMAC as a known one.

Rotation
--------
:meth:`ClientRegistry.rotate` makes a new secret current and keeps the former
one valid until ``previous_valid_until`` (now + grace: 24 h by default,
``client_rotation_grace_hours``, or chosen per call; 0 ends it at once, which
is what a leaked secret calls for). Only one previous secret is kept: rotating
again drops the older one at once. Each token carries ``sfp``, a fingerprint
(SHA-256 prefix) of the hash of the secret it was obtained with; a request is
accepted only while that secret is still current, or previous within its
grace. So when the grace ends (or a rotation with no grace happens), tokens
obtained with the old secret die with it instead of living out their hour.

Suspension by the guard
-----------------------
A client's lookups are decided by the guard against its own record as well as
the named professional's (:mod:`rempart.guard.inline`), and a ``deny`` through
a client suspends *the client*, never the professional it named
(:func:`suspend_client`: status ``suspended``, ``suspended_at`` and
``suspended_by`` set, ``client_suspended`` recorded in the trail). A suspended
client gets no token (``invalid_client``, reason ``client_suspended`` in the
trail) and its tokens are refused at once. Only an operator lifts it
(:meth:`ClientRegistry.restore`, ``rempart clients restore``, recorded as
``client_restored``); the tokens issued before the suspension stay dead
(each token carries the client's ``token_epoch``, which a suspension bumps), so
the software asks for a new one.
A suspended client may still have its secret rotated (a leaked secret: suspend,
rotate, restore) or be revoked.

Refusals and events
-------------------
Every token issued or refused at the token endpoint is recorded through
``record_event`` (``client_token_issued``, ``client_token_refused`` with the
precise reason in ``reasons``; the client gets only ``invalid_client``).
On resource requests, a token whose signature is valid but which is refused
(client revoked, secret rotated out, acting professional invalid) is recorded
as ``client_token_refused`` too; a token that fails its signature or expired
is refused with ``invalid_token`` and only logged, as for professionals'
tokens, so that garbage cannot flood the trail. Failures at the token endpoint
feed the login throttle under the key ``client:<client_id>`` (no login can
contain a colon) and the client's address, so a guesser is slowed down like a
password guesser.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Never

import jwt
import structlog
from sqlalchemy import and_, bindparam, exists, or_, select, update
from sqlalchemy.orm import Session

from rempart.audit.events import EventRecorder, Origin
from rempart.auth.levels import ACR_CLIENT
from rempart.auth.service import IssuedToken, Principal
from rempart.auth.throttle import LoginThrottle, Throttled
from rempart.auth.tokens import InvalidToken, TokenSigner
from rempart.errors import RempartError
from rempart.store.engine import as_utc
from rempart.store.models import Account, ApiClient, Professional

__all__ = [
    "CLIENT_TOKEN_PURPOSE",
    "ActingProfessionalInvalid",
    "ActingProfessionalRequired",
    "ClientInfo",
    "ClientNotFound",
    "ClientRegistry",
    "ClientRevoked",
    "ClientSecret",
    "ClientSuspended",
    "InvalidClient",
    "InvalidClientInput",
    "is_client_token",
    "suspend_client",
]

log = structlog.get_logger("rempart.auth.clients")

CLIENT_TOKEN_PURPOSE = "client"  # noqa: S105 - a token purpose name
CHANNEL_SOFTWARE = "software"
_HASH_SCHEME = "hmac-sha256$"
_ORGANIZATION_SHAPE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_ACTOR_SHAPE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_CLIENT_ID_SHAPE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_MAX_SECRET_LENGTH = 256
_MAX_LABEL_LENGTH = 128


# -- errors -----------------------------------------------------------------------------


class InvalidClient(RempartError):
    """RFC 6749 §5.2 ``invalid_client``: unknown client, wrong or expired secret, revoked."""

    code = "invalid_client"
    status = 401

    def __init__(self) -> None:
        super().__init__(
            "client authentication failed",
            headers={"WWW-Authenticate": 'Basic realm="rempart", charset="UTF-8"'},
        )


class ActingProfessionalRequired(RempartError):
    code = "acting_professional_required"
    status = 400

    def __init__(self) -> None:
        super().__init__(
            "name the professional the software acts for in the X-Acting-Professional header "
            "(RPPS or account id)"
        )


class ActingProfessionalInvalid(RempartError):
    code = "acting_professional_invalid"
    status = 403

    def __init__(self) -> None:
        super().__init__(
            "the acting professional is not an active professional of this client's "
            "organization (if an RPPS is shared by several accounts, send the account id)"
        )


class ClientNotFound(RempartError):
    code = "client_not_found"
    status = 404

    def __init__(self) -> None:
        super().__init__("no API client has this id")


class ClientRevoked(RempartError):
    code = "client_revoked"
    status = 409

    def __init__(self) -> None:
        super().__init__("this API client is revoked; create a new one")


class ClientSuspended(RempartError):
    """The guard suspended the practice software that made this lookup (not the
    professional it named): its tokens stop working until an operator restores it."""

    code = "client_suspended"
    status = 403

    def __init__(self) -> None:
        super().__init__(
            "the guard suspended this practice software's access; the insurer's security "
            "team must restore it"
        )


class InvalidClientInput(RempartError):
    code = "invalid_client_input"
    status = 422


# -- values -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientSecret:
    """A client's id and a secret, as shown once (creation, rotation)."""

    client_id: str
    client_secret: str
    organization_id: str
    label: str
    previous_valid_until: datetime | None = None


@dataclass(frozen=True)
class ClientInfo:
    client_id: str
    organization_id: str
    label: str
    status: str
    created_at: datetime | None
    rotated_at: datetime | None
    previous_valid_until: datetime | None
    suspended_at: datetime | None = None
    suspended_by: str | None = None


def _fingerprint(secret_hash: str) -> str:
    return hashlib.sha256(secret_hash.encode()).hexdigest()[:16]


def is_client_token(token: str) -> bool:
    """Whether a bearer token *claims* to be a client token. Unverified: only picks
    which signer checks it (and that signer checks the purpose again)."""
    try:
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    return isinstance(payload, dict) and payload.get("typ") == CLIENT_TOKEN_PURPOSE


# One round trip per request: the client's state and the acting professional's rows.
_CLIENT_AND_ACTOR = (
    select(
        ApiClient.status,
        ApiClient.organization_id,
        ApiClient.secret_hash,
        ApiClient.previous_secret_hash,
        ApiClient.previous_valid_until,
        ApiClient.token_epoch,
        Professional.account_id,
        Account.status.label("account_status"),
    )
    .select_from(ApiClient)
    .outerjoin(
        Professional,
        and_(
            Professional.organization_id == ApiClient.organization_id,
            or_(
                Professional.rpps == bindparam("actor"),
                Professional.account_id == bindparam("actor"),
            ),
        ),
    )
    .outerjoin(Account, Account.account_id == Professional.account_id)
    .where(ApiClient.client_id == bindparam("client_id"))
)


def suspend_client(
    session: Session, events: EventRecorder, client_id: str, *, by: str, now: datetime
) -> bool:
    """Suspends an active client in the caller's transaction: every token it holds stops
    working, it gets no new one. ``by`` says who decided (``guard:RULE``,
    ``operator:NAME``), for the trail. False if it was not active."""
    result = session.execute(
        update(ApiClient)
        .where(ApiClient.client_id == client_id, ApiClient.status == "active")
        .values(
            status="suspended",
            suspended_at=now,
            suspended_by=by[:128],
            token_epoch=ApiClient.token_epoch + 1,
        )
    )
    if not getattr(result, "rowcount", 0):
        return False
    log.warning("client_suspended", client_id=client_id, by=by)
    events.record_event(
        "client_suspended",
        outcome="ok",
        reasons=by,
        acr=ACR_CLIENT,
        session_id=f"client:{client_id}",
        session=session,
    )
    return True


class ClientRegistry:
    """Creates, rotates, revokes and lists API clients; issues and checks their tokens."""

    def __init__(
        self,
        *,
        secret_key: bytes,
        tokens: TokenSigner,
        events: EventRecorder,
        throttle: LoginThrottle,
        default_grace_hours: int = 24,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if len(secret_key) < 32:
            raise ValueError("the client-secret key must hold at least 32 bytes")
        self._key = secret_key
        self.tokens = tokens
        self.events = events
        self.throttle = throttle
        self.default_grace_hours = default_grace_hours
        self.clock = clock

    # -- secrets ------------------------------------------------------------------------

    def _hash(self, client_id: str, secret: str) -> str:
        message = client_id.encode() + b"\x00" + secret.encode("utf-8", "replace")
        return _HASH_SCHEME + hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _matches(self, client_id: str, secret: str, stored: str | None) -> bool:
        computed = self._hash(client_id, secret)
        return stored is not None and hmac.compare_digest(computed, stored)

    # -- administration -----------------------------------------------------------------

    def create(self, session: Session, *, organization_id: str, label: str = "") -> ClientSecret:
        """A new client for an organization known from ``professionals``; its secret is
        in the answer and nowhere else."""
        if not _ORGANIZATION_SHAPE.match(organization_id):
            raise InvalidClientInput("an organization id has 1-64 letters, digits or . _ : -")
        if len(label) > _MAX_LABEL_LENGTH or not label.isprintable():
            raise InvalidClientInput(f"a label has at most {_MAX_LABEL_LENGTH} printable chars")
        known = session.scalar(
            select(exists().where(Professional.organization_id == organization_id))
        )
        if not known:
            raise InvalidClientInput(
                "no professional belongs to this organization: check the id (or load the "
                "professionals first)"
            )
        client_id = f"lgc-{secrets.token_hex(8)}"
        secret = secrets.token_urlsafe(32)
        session.add(
            ApiClient(
                client_id=client_id,
                organization_id=organization_id,
                label=label,
                secret_hash=self._hash(client_id, secret),
                status="active",
            )
        )
        session.flush()
        log.info("client_created", client_id=client_id, organization_id=organization_id)
        self.events.record_event(
            "client_created",
            outcome="ok",
            session_id=f"client:{client_id}",
            reasons=f"organization={organization_id}",
            session=session,
        )
        return ClientSecret(client_id, secret, organization_id, label)

    def rotate(
        self, session: Session, client_id: str, *, grace_hours: float | None = None
    ) -> ClientSecret:
        """A new current secret; the former one works until now + ``grace_hours``."""
        grace = self.default_grace_hours if grace_hours is None else grace_hours
        if not 0 <= grace <= 24 * 30:
            raise InvalidClientInput("the grace period is 0 to 720 hours")
        client = session.get(ApiClient, client_id, with_for_update=True)
        if client is None:
            raise ClientNotFound()
        if client.status == "revoked":
            raise ClientRevoked()
        now = self.clock()
        secret = secrets.token_urlsafe(32)
        client.previous_secret_hash = client.secret_hash
        client.previous_valid_until = now + timedelta(hours=grace)
        client.secret_hash = self._hash(client_id, secret)
        client.rotated_at = now
        session.flush()
        log.info("client_secret_rotated", client_id=client_id, grace_hours=grace)
        self.events.record_event(
            "client_secret_rotated",
            outcome="ok",
            session_id=f"client:{client_id}",
            reasons=f"grace_hours={grace:g}",
            session=session,
        )
        return ClientSecret(
            client_id,
            secret,
            client.organization_id,
            client.label,
            previous_valid_until=client.previous_valid_until,
        )

    def revoke(self, session: Session, client_id: str) -> bool:
        """Revokes a client and, at once, every token it holds. False if already revoked."""
        client = session.get(ApiClient, client_id, with_for_update=True)
        if client is None:
            raise ClientNotFound()
        if client.status == "revoked":
            return False
        client.status = "revoked"
        client.previous_secret_hash = None
        client.previous_valid_until = None
        session.flush()
        log.info("client_revoked", client_id=client_id)
        self.events.record_event(
            "client_revoked", outcome="ok", session_id=f"client:{client_id}", session=session
        )
        return True

    def suspend(self, session: Session, client_id: str, *, by: str) -> bool:
        """Suspends an active client (see :func:`suspend_client`). False if not active."""
        if session.get(ApiClient, client_id) is None:
            raise ClientNotFound()
        return suspend_client(session, self.events, client_id, by=by, now=self.clock())

    def restore(self, session: Session, client_id: str, *, operator: str) -> bool:
        """An operator lifts a suspension. Tokens issued before it stay refused. False if
        the client is not suspended (a revoked client stays revoked)."""
        client = session.get(ApiClient, client_id, with_for_update=True)
        if client is None:
            raise ClientNotFound()
        if client.status != "suspended":
            return False
        client.status = "active"
        session.flush()
        log.info("client_restored", client_id=client_id, operator=operator)
        self.events.record_event(
            "client_restored",
            outcome="ok",
            reasons=f"operator:{operator}",
            acr=ACR_CLIENT,
            session_id=f"client:{client_id}",
            session=session,
        )
        return True

    def list(self, session: Session) -> list[ClientInfo]:
        rows = session.scalars(
            select(ApiClient).order_by(ApiClient.organization_id, ApiClient.client_id)
        ).all()
        return [
            ClientInfo(
                client_id=row.client_id,
                organization_id=row.organization_id,
                label=row.label,
                status=row.status,
                created_at=as_utc(row.created_at),
                rotated_at=as_utc(row.rotated_at),
                previous_valid_until=as_utc(row.previous_valid_until),
                suspended_at=as_utc(row.suspended_at),
                suspended_by=row.suspended_by,
            )
            for row in rows
        ]

    # -- the token endpoint -------------------------------------------------------------

    def refuse(self, reason: str, *, origin: Origin, client_id: str = "", code: str) -> None:
        """Records a refusal at the token endpoint (the caller raises the error)."""
        log.info("client_token_refused", reason=reason, client_id=client_id[:64])
        self.events.record_event(
            "client_token_refused",
            outcome=code,
            reasons=reason,
            acr=ACR_CLIENT,
            session_id=f"client:{client_id}" if _CLIENT_ID_SHAPE.match(client_id) else "",
            origin=origin,
        )

    def reject_request(self, code: str, *, origin: Origin, client_id: str = "") -> None:
        """Records a malformed token request (the caller raises ``code``). It counts as an
        attempt for the throttle, so that junk cannot flood the trail."""
        try:
            self.throttle.check(f"client:{client_id[:64]}", origin.client_ip)
        except Throttled:
            self.refuse("throttled", origin=origin, client_id=client_id, code="too_many_attempts")
            raise
        self.refuse(code, origin=origin, client_id=client_id, code=code)

    def issue_token(
        self, session: Session, *, client_id: str, client_secret: str, origin: Origin
    ) -> IssuedToken:
        """Client credentials grant: checks the throttle, then the secret (current, or
        previous within its grace); answers a bearer token or :class:`InvalidClient`."""
        throttle_key = f"client:{client_id[:64]}"
        try:
            self.throttle.check(throttle_key, origin.client_ip)
        except Throttled:
            self.refuse("throttled", origin=origin, client_id=client_id, code="too_many_attempts")
            raise
        if (
            not _CLIENT_ID_SHAPE.match(client_id)
            or not client_secret
            or len(client_secret) > _MAX_SECRET_LENGTH
        ):
            return self._bad_secret(session, "malformed_credentials", client_id, origin)
        client = session.get(ApiClient, client_id)
        if client is None:
            self._hash(client_id, client_secret)  # the same work as for a known client
            return self._bad_secret(session, "unknown_client", client_id, origin)
        now = self.clock()
        used: str | None = None
        if self._matches(client_id, client_secret, client.secret_hash):
            used = client.secret_hash
        elif self._matches(client_id, client_secret, client.previous_secret_hash):
            until = as_utc(client.previous_valid_until)
            if until is None or now >= until:
                return self._bad_secret(session, "expired_secret", client_id, origin)
            used = client.previous_secret_hash
        if used is None:
            return self._bad_secret(session, "wrong_secret", client_id, origin)
        if client.status != "active":
            reason = "client_suspended" if client.status == "suspended" else "client_revoked"
            return self._bad_secret(session, reason, client_id, origin)
        self.throttle.success(throttle_key, origin.client_ip)
        token = self.tokens.issue(
            client_id,
            now=now.timestamp(),
            org=client.organization_id,
            sfp=_fingerprint(used),
            cep=client.token_epoch,
        )
        log.info("client_token_issued", client_id=client_id)
        self.events.record_event(
            "client_token_issued",
            outcome="ok",
            reasons="previous_secret" if used != client.secret_hash else "",
            acr=ACR_CLIENT,
            session_id=f"client:{client_id}",
            origin=origin,
        )
        return IssuedToken(access_token=token, expires_in=self.tokens.ttl_seconds)

    def _bad_secret(self, session: Session, reason: str, client_id: str, origin: Origin) -> Never:
        session.rollback()
        self.throttle.failure(f"client:{client_id[:64]}", origin.client_ip)
        self.refuse(reason, origin=origin, client_id=client_id, code="invalid_client")
        raise InvalidClient()

    # -- resource requests --------------------------------------------------------------

    def authenticate(
        self, session: Session, token: str, *, acting: str | None, origin: Origin
    ) -> Principal:
        """Checks a client token, its client (active, secret not rotated out) and the
        acting professional; the principal is that professional, acting through it."""
        payload = self.tokens.check(token)  # signature, expiry, issuer, purpose
        client_id, org, sfp, jti, iat = (
            payload.get(k) for k in ("sub", "org", "sfp", "jti", "iat")
        )
        if not (
            isinstance(client_id, str)
            and isinstance(org, str)
            and isinstance(sfp, str)
            and isinstance(jti, str)
            and isinstance(iat, int)
        ):
            raise InvalidToken()
        session_id = f"client:{client_id}:{jti}"[:64]
        actor = (acting or "").strip()
        rows = (
            session.connection()
            .execute(
                _CLIENT_AND_ACTOR,
                {"client_id": client_id, "actor": actor if _ACTOR_SHAPE.match(actor) else " "},
            )
            .all()
        )
        if not rows:
            self._refuse_request(session, "unknown_client", session_id, origin)
            raise InvalidToken()
        first = rows[0]
        if first.status != "active":
            reason = "client_suspended" if first.status == "suspended" else "client_revoked"
            self._refuse_request(session, reason, session_id, origin)
            raise InvalidToken()
        if payload.get("cep", 0) != first.token_epoch:
            # Issued before a suspension since lifted: revoked with it.
            self._refuse_request(session, "issued_before_suspension", session_id, origin)
            raise InvalidToken()
        if first.organization_id != org:
            self._refuse_request(session, "organization_changed", session_id, origin)
            raise InvalidToken()
        current = sfp == _fingerprint(first.secret_hash)
        until = as_utc(first.previous_valid_until)
        previous = (
            first.previous_secret_hash is not None
            and sfp == _fingerprint(first.previous_secret_hash)
            and until is not None
            and self.clock() < until
        )
        if not (current or previous):
            self._refuse_request(session, "secret_rotated_out", session_id, origin)
            raise InvalidToken()
        if not actor:
            raise ActingProfessionalRequired()
        actors = {row.account_id: row.account_status for row in rows if row.account_id}
        if len(actors) != 1 or next(iter(actors.values())) != "active":
            self._refuse_request(session, "acting_professional_invalid", session_id, origin)
            raise ActingProfessionalInvalid()
        (account_id,) = actors
        return Principal(
            account_id=account_id,
            session_id=session_id,
            acr=ACR_CLIENT,
            auth_time=iat,
            channel=CHANNEL_SOFTWARE,
            client_id=client_id,
        )

    def _refuse_request(
        self, session: Session, reason: str, session_id: str, origin: Origin
    ) -> None:
        session.rollback()  # a refusal is recorded in a transaction of its own
        log.info("client_request_refused", reason=reason)
        self.events.record_event(
            "client_token_refused",
            outcome="acting_professional_invalid"
            if reason == "acting_professional_invalid"
            else "invalid_token",
            reasons=reason,
            acr=ACR_CLIENT,
            session_id=session_id,
            origin=origin,
        )
