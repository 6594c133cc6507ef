"""WebAuthn (security keys and passkeys): the phishing-resistant factor, framework-free.

The relying-party id, its name and the origins ceremonies may come from are
configuration. A browser writes the page's origin into ``clientDataJSON`` and the
authenticator signs the relying-party id's hash: a relayed phishing page produces
an answer with the wrong origin (or no credential at all), which is refused here.

Ceremonies are two steps. ``*_options`` stores a random challenge (single use,
bound to the account and, when given, to the caller's session) and hands back a
handle with the options for ``navigator.credentials.create()`` / ``.get()``; the
verification takes the challenge back (it is gone after one attempt, successful
or not) and checks the answer with py_webauthn.

The answer is validated against strict, size-bounded schemas first; any failure
of the verification itself is one generic ``webauthn_invalid``, whatever the
reason, which is logged but never returned. A signature counter that does not
increase is a sign of a cloned authenticator: refused as ``webauthn_clone_suspected``
and recorded.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import structlog
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, options_to_json_dict
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from rempart.audit.events import EventRecorder, Origin
from rempart.auth.challenges import ChallengeStore
from rempart.errors import RempartError
from rempart.store.models import Account, WebAuthnCredential

__all__ = [
    "PURPOSE_LOGIN",
    "PURPOSE_PASSWORDLESS",
    "PURPOSE_REGISTER",
    "PURPOSE_STEP_UP",
    "AuthenticationCredentialJSON",
    "Ceremony",
    "RegistrationCredentialJSON",
    "RenamedKey",
    "WebAuthnAlreadyRegistered",
    "WebAuthnChallengeInvalid",
    "WebAuthnCloneSuspected",
    "WebAuthnInvalid",
    "WebAuthnLimitReached",
    "WebAuthnNotRegistered",
    "WebAuthnService",
]

log = structlog.get_logger("rempart.auth.webauthn")

PURPOSE_REGISTER = "webauthn_register"
PURPOSE_LOGIN = "webauthn_login"
PURPOSE_STEP_UP = "webauthn_step_up"
PURPOSE_PASSWORDLESS = "webauthn_passwordless"
_ASSERTION_PURPOSES = frozenset({PURPOSE_LOGIN, PURPOSE_STEP_UP})

MAX_CREDENTIALS_PER_ACCOUNT = 10
_ALGORITHMS = [
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]
_KNOWN_TRANSPORTS = frozenset(t.value for t in AuthenticatorTransport)
_DEFAULT_LABEL = "Clé de sécurité"

# Size limits, in base64url characters. WebAuthn caps a credential id at 1023 bytes
# (1364 characters, within the 1400 of the column); the rest leaves room for every real
# authenticator (an RSA-4096 signature is 683 characters) and nothing more.
_B64URL = r"^[A-Za-z0-9_-]+$"
_ID_MAX = 1364
_CLIENT_DATA_MAX = 2048
_ATTESTATION_MAX = 8192
_AUTH_DATA_MAX = 2048
_SIGNATURE_MAX = 1024
_USER_HANDLE_MAX = 88  # 64 bytes
_PUBLIC_KEY_MAX = 1024


# -- errors ---------------------------------------------------------------------------------


class WebAuthnInvalid(RempartError):
    """Any verification failure: the reason is logged, never returned."""

    code = "webauthn_invalid"
    status = 401

    def __init__(self, status: int | None = None) -> None:
        super().__init__("the security key's answer could not be verified", status=status)


class WebAuthnChallengeInvalid(RempartError):
    code = "webauthn_challenge_invalid"
    status = 400

    def __init__(self) -> None:
        super().__init__("this security key request is unknown, expired or used; start again")


class WebAuthnCloneSuspected(RempartError):
    code = "webauthn_clone_suspected"
    status = 401

    def __init__(self) -> None:
        super().__init__(
            "this security key was refused; contact the insurer's security team",
        )


class WebAuthnNotRegistered(RempartError):
    code = "webauthn_not_registered"
    status = 404

    def __init__(self) -> None:
        super().__init__("no such security key is registered for this account")


class WebAuthnAlreadyRegistered(RempartError):
    code = "webauthn_already_registered"
    status = 409

    def __init__(self) -> None:
        super().__init__("this security key is already registered")


class WebAuthnLimitReached(RempartError):
    code = "webauthn_limit_reached"
    status = 409

    def __init__(self) -> None:
        super().__init__(
            f"an account holds at most {MAX_CREDENTIALS_PER_ACCOUNT} security keys; "
            "remove one first"
        )


# -- the credential JSON a browser sends (PublicKeyCredential.toJSON()) ----------------------


class _StrictJSON(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _b64url_length(value: str) -> str:
    if len(value) % 4 == 1:  # no base64 text has this length
        raise ValueError("not base64url")
    return value


B64Url = Annotated[str, AfterValidator(_b64url_length)]


def _b64(max_length: int, alias: str | None = None, *, optional: bool = False) -> Any:
    return Field(
        default=None if optional else ...,
        min_length=1,
        max_length=max_length,
        pattern=_B64URL,
        alias=alias,
    )


class AttestationResponseJSON(_StrictJSON):
    client_data_json: B64Url = _b64(_CLIENT_DATA_MAX, "clientDataJSON")
    attestation_object: B64Url = _b64(_ATTESTATION_MAX, "attestationObject")
    transports: list[Annotated[str, Field(max_length=32)]] = Field(
        default_factory=list, max_length=8
    )
    # Also in toJSON(); not used (everything is read from the attestation object).
    authenticator_data: B64Url | None = _b64(_AUTH_DATA_MAX, "authenticatorData", optional=True)
    public_key: B64Url | None = _b64(_PUBLIC_KEY_MAX, "publicKey", optional=True)
    public_key_algorithm: int | None = Field(default=None, alias="publicKeyAlgorithm")


class AssertionResponseJSON(_StrictJSON):
    client_data_json: B64Url = _b64(_CLIENT_DATA_MAX, "clientDataJSON")
    authenticator_data: B64Url = _b64(_AUTH_DATA_MAX, "authenticatorData")
    signature: B64Url = _b64(_SIGNATURE_MAX)
    user_handle: B64Url | None = Field(
        default=None, max_length=_USER_HANDLE_MAX, pattern=r"^[A-Za-z0-9_-]*$", alias="userHandle"
    )


class _CredentialJSON(_StrictJSON):
    id: B64Url = _b64(_ID_MAX)
    raw_id: B64Url = _b64(_ID_MAX, "rawId")
    type: Literal["public-key"]
    authenticator_attachment: Literal["platform", "cross-platform"] | None = Field(
        default=None, alias="authenticatorAttachment"
    )
    client_extension_results: dict[str, Any] = Field(
        default_factory=dict, max_length=8, alias="clientExtensionResults"
    )


class RegistrationCredentialJSON(_CredentialJSON):
    """What ``navigator.credentials.create()`` gives, as JSON."""

    response: AttestationResponseJSON


class AuthenticationCredentialJSON(_CredentialJSON):
    """What ``navigator.credentials.get()`` gives, as JSON."""

    response: AssertionResponseJSON


@dataclass(frozen=True)
class Ceremony:
    """A challenge's handle and the options to hand to the browser."""

    handle: str
    options: dict[str, Any]


@dataclass(frozen=True)
class RenamedKey:
    credential_id: str
    previous: str
    label: str


@dataclass(frozen=True)
class VerifiedAssertion:
    credential_id: str
    account_id: str
    sign_count: int
    user_verified: bool


def _now() -> datetime:
    return datetime.now(UTC)


class WebAuthnService:
    def __init__(
        self,
        *,
        rp_id: str,
        rp_name: str,
        origins: Sequence[str],
        challenges: ChallengeStore,
        events: EventRecorder,
        user_handle_key: bytes,
        challenge_ttl_seconds: int = 300,
    ) -> None:
        if not origins:
            raise ValueError("at least one WebAuthn origin is required")
        self.rp_id = rp_id
        self.rp_name = rp_name
        self.origins = list(origins)
        self.challenges = challenges
        self.events = events
        self._user_handle_key = user_handle_key
        self.challenge_ttl_seconds = challenge_ttl_seconds

    # -- what an account holds ---------------------------------------------------------------

    def user_handle(self, account_id: str) -> bytes:
        """The WebAuthn user id of an account: stable, opaque (no login, no name)."""
        return hmac.new(
            self._user_handle_key, b"webauthn-user:" + account_id.encode(), hashlib.sha256
        ).digest()

    def credentials(self, session: Session, account_id: str) -> list[WebAuthnCredential]:
        return list(
            session.scalars(
                select(WebAuthnCredential)
                .where(WebAuthnCredential.account_id == account_id)
                .order_by(WebAuthnCredential.created_at, WebAuthnCredential.credential_id)
            )
        )

    def has_credentials(self, session: Session, account_id: str) -> bool:
        count = session.scalar(
            select(func.count())
            .select_from(WebAuthnCredential)
            .where(WebAuthnCredential.account_id == account_id)
        )
        return bool(count)

    @staticmethod
    def _descriptors(rows: Sequence[WebAuthnCredential]) -> list[PublicKeyCredentialDescriptor]:
        return [
            PublicKeyCredentialDescriptor(
                id=base64url_to_bytes(row.credential_id),
                transports=[AuthenticatorTransport(t) for t in row.transports.split(",") if t]
                or None,
            )
            for row in rows
        ]

    # -- registration ------------------------------------------------------------------------

    def registration_options(
        self, session: Session, *, account_id: str, session_id: str | None = None
    ) -> Ceremony:
        account = session.get(Account, account_id)
        if account is None:
            raise WebAuthnNotRegistered()
        existing = self.credentials(session, account_id)
        if len(existing) >= MAX_CREDENTIALS_PER_ACCOUNT:
            raise WebAuthnLimitReached()
        options = generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.rp_name,
            user_name=account.login,
            user_id=self.user_handle(account_id),
            user_display_name=account.login,
            timeout=self.challenge_ttl_seconds * 1000 // 2,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=self._descriptors(existing),
            supported_pub_key_algs=_ALGORITHMS,
        )
        handle = self._put(session, PURPOSE_REGISTER, account_id, options.challenge, session_id)
        return Ceremony(handle=handle, options=dict(options_to_json_dict(options)))

    def register(
        self,
        session: Session,
        *,
        account_id: str,
        handle: str,
        credential: RegistrationCredentialJSON,
        label: str = "",
        session_id: str | None = None,
        origin: Origin | None = None,
        new_network: bool = False,
    ) -> WebAuthnCredential:
        """Verifies the answer to :meth:`registration_options` and stores the credential.

        ``new_network``: the enrolling request came from a network the account had not
        used before (the key will never answer the guard's step-up)."""
        challenge = self._take(session, handle, PURPOSE_REGISTER, account_id, session_id)
        try:
            verified = verify_registration_response(
                credential=credential.model_dump(by_alias=True, exclude_none=True),
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origins,
                require_user_verification=False,
                supported_pub_key_algs=_ALGORITHMS,
            )
        except Exception as exc:  # noqa: BLE001 - every failure is the same refusal
            self._refused("webauthn_register_failed", account_id, origin, exc)
            raise WebAuthnInvalid(status=400) from None
        if bytes_to_base64url(verified.credential_id) != credential.raw_id:
            self._refused("webauthn_register_failed", account_id, origin, "credential id mismatch")
            raise WebAuthnInvalid(status=400)
        if len(self.credentials(session, account_id)) >= MAX_CREDENTIALS_PER_ACCOUNT:
            raise WebAuthnLimitReached()
        if session.get(WebAuthnCredential, credential.raw_id) is not None:
            raise WebAuthnAlreadyRegistered()
        transports = [t for t in credential.response.transports if t in _KNOWN_TRANSPORTS]
        row = WebAuthnCredential(
            credential_id=credential.raw_id,
            account_id=account_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=",".join(sorted(set(transports)))[:128],
            aaguid=verified.aaguid,
            label=_clean_label(label),
            created_at=_now(),
            new_network=new_network,
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            raise WebAuthnAlreadyRegistered() from None
        log.info("webauthn_registered", account_id=account_id, aaguid=verified.aaguid)
        self.events.record_event(
            "webauthn_registered",
            outcome="ok",
            account_id=account_id,
            session_id=session_id or "",
            reasons=f"aaguid={verified.aaguid}" + (",new_network" if new_network else ""),
            origin=origin,
            session=session,
        )
        return row

    def remove(
        self,
        session: Session,
        *,
        account_id: str,
        credential_id: str,
        session_id: str | None = None,
        origin: Origin | None = None,
    ) -> WebAuthnCredential:
        row = session.get(WebAuthnCredential, credential_id)
        if row is None or row.account_id != account_id:
            raise WebAuthnNotRegistered()
        session.execute(
            delete(WebAuthnCredential).where(
                WebAuthnCredential.credential_id == credential_id,
                WebAuthnCredential.account_id == account_id,
            )
        )
        log.info("webauthn_removed", account_id=account_id)
        self.events.record_event(
            "webauthn_removed",
            outcome="ok",
            account_id=account_id,
            session_id=session_id or "",
            origin=origin,
            session=session,
        )
        return row

    def rename(
        self,
        session: Session,
        account_id: str,
        credential_id: str,
        label: str,
        origin: Origin | None = None,
        *,
        session_id: str | None = None,
    ) -> RenamedKey:
        """Gives one of the account's keys a new name (what the login and the e-mails call
        it). Recorded; the labels stay out of the trail (free text typed by anyone holding
        the session), the e-mail to the professional carries both."""
        row = session.get(WebAuthnCredential, credential_id)
        if row is None or row.account_id != account_id:
            raise WebAuthnNotRegistered()
        previous, row.label = row.label, _clean_label(label)
        session.flush()
        log.info("webauthn_renamed", account_id=account_id)
        self.events.record_event(
            "webauthn_renamed",
            outcome="ok",
            account_id=account_id,
            session_id=session_id or "",
            origin=origin,
            session=session,
        )
        return RenamedKey(credential_id=credential_id, previous=previous, label=row.label)

    # -- authentication (login second factor, step-up) ---------------------------------------

    def authentication_options(
        self,
        session: Session,
        *,
        account_id: str,
        purpose: str = PURPOSE_LOGIN,
        session_id: str | None = None,
    ) -> Ceremony:
        if purpose not in _ASSERTION_PURPOSES:
            raise ValueError(f"not an assertion purpose: {purpose}")
        rows = self.credentials(session, account_id)
        if not rows:
            raise WebAuthnNotRegistered()
        options = generate_authentication_options(
            rp_id=self.rp_id,
            timeout=self.challenge_ttl_seconds * 1000 // 2,
            allow_credentials=self._descriptors(rows),
            user_verification=UserVerificationRequirement.PREFERRED,
        )
        handle = self._put(session, purpose, account_id, options.challenge, session_id)
        return Ceremony(handle=handle, options=dict(options_to_json_dict(options)))

    def authenticate(
        self,
        session: Session,
        *,
        account_id: str,
        handle: str,
        credential: AuthenticationCredentialJSON,
        purpose: str = PURPOSE_LOGIN,
        session_id: str | None = None,
        origin: Origin | None = None,
    ) -> VerifiedAssertion:
        """Verifies an assertion of one of the account's credentials; updates its counter.

        The challenge is consumed (and committed) first: it cannot be tried twice.
        """
        if purpose not in _ASSERTION_PURPOSES:
            raise ValueError(f"not an assertion purpose: {purpose}")
        challenge = self._take(session, handle, purpose, account_id, session_id)
        row = session.get(WebAuthnCredential, credential.raw_id)
        if row is None or row.account_id != account_id:
            # Unknown, or another account's: the same refusal.
            log.info("webauthn_refused", account_id=account_id, reason="credential not of account")
            raise WebAuthnInvalid()
        user_handle = credential.response.user_handle
        if user_handle and not hmac.compare_digest(
            base64url_to_bytes(user_handle), self.user_handle(account_id)
        ):
            log.info("webauthn_refused", account_id=account_id, reason="user handle mismatch")
            raise WebAuthnInvalid()
        return self._verify(
            session, row, challenge, credential, origin=origin, require_user_verification=False
        )

    # -- a key alone (passwordless: a passkey that verifies its user) ------------------------

    def passwordless_options(self, session: Session) -> Ceremony:
        """Options for ``navigator.credentials.get()`` before anyone is known: no list of
        keys (the authenticator offers its discoverable credentials for this RP) and user
        verification required — the key is then two factors by itself (something held,
        and the PIN or fingerprint that unlocks it), as the password + key login is."""
        options = generate_authentication_options(
            rp_id=self.rp_id,
            timeout=self.challenge_ttl_seconds * 1000 // 2,
            allow_credentials=[],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        handle = self.challenges.put(
            session,
            purpose=PURPOSE_PASSWORDLESS,
            payload={"challenge": bytes_to_base64url(options.challenge)},
            ttl_seconds=self.challenge_ttl_seconds,
        )
        return Ceremony(handle=handle, options=dict(options_to_json_dict(options)))

    def authenticate_passwordless(
        self,
        session: Session,
        *,
        handle: str,
        credential: AuthenticationCredentialJSON,
        origin: Origin | None = None,
    ) -> VerifiedAssertion:
        """Verifies a discoverable credential's answer and says whose it is. The answer
        must carry the account's user handle and the authenticator must have verified its
        user (a key that only proves presence is one factor: it does not log in alone)."""
        if not handle or len(handle) > 128:
            raise WebAuthnChallengeInvalid()
        taken = self.challenges.take(session, handle=handle, purpose=PURPOSE_PASSWORDLESS)
        session.commit()
        value = taken.payload.get("challenge") if taken is not None else None
        if not isinstance(value, str):
            raise WebAuthnChallengeInvalid()
        row = session.get(WebAuthnCredential, credential.raw_id)
        user_handle = credential.response.user_handle
        if (
            row is None
            or not user_handle
            or not hmac.compare_digest(
                base64url_to_bytes(user_handle), self.user_handle(row.account_id)
            )
        ):
            log.info("webauthn_refused", reason="passwordless: unknown key or user handle")
            raise WebAuthnInvalid()
        return self._verify(
            session,
            row,
            base64url_to_bytes(value),
            credential,
            origin=origin,
            require_user_verification=True,
        )

    def _verify(
        self,
        session: Session,
        row: WebAuthnCredential,
        challenge: bytes,
        credential: AuthenticationCredentialJSON,
        *,
        origin: Origin | None,
        require_user_verification: bool,
    ) -> VerifiedAssertion:
        """The signature over the challenge, the origin and RP ID, then the counter."""
        account_id = row.account_id
        stored = row.sign_count
        try:
            verified = verify_authentication_response(
                credential=credential.model_dump(by_alias=True, exclude_none=True),
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origins,
                credential_public_key=row.public_key,
                # 0 turns py_webauthn's own counter check off: a counter that goes back is
                # told apart (and recorded) below, once the signature is known to be good.
                credential_current_sign_count=0,
                require_user_verification=require_user_verification,
            )
        except Exception as exc:  # noqa: BLE001 - every failure is the same refusal
            log.info("webauthn_refused", account_id=account_id, reason=_reason(exc))
            raise WebAuthnInvalid() from None
        reported = verified.new_sign_count
        # WebAuthn §6.1.1: if either counter is non-zero, the new one must be greater.
        if (reported > 0 or stored > 0) and reported <= stored:
            self._clone_suspected(account_id, row.credential_id, stored, reported, origin)
        # Conditional update: two answers racing with one counter value cannot both pass.
        condition = (
            WebAuthnCredential.sign_count < reported
            if reported > 0
            else WebAuthnCredential.sign_count == 0
        )
        claimed = session.execute(
            update(WebAuthnCredential)
            .where(WebAuthnCredential.credential_id == row.credential_id, condition)
            .values(sign_count=reported, last_used_at=_now())
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            session.rollback()
            self._clone_suspected(account_id, row.credential_id, stored, reported, origin)
        return VerifiedAssertion(
            credential_id=row.credential_id,
            account_id=account_id,
            sign_count=reported,
            user_verified=verified.user_verified,
        )

    # -- helpers -----------------------------------------------------------------------------

    def _put(
        self,
        session: Session,
        purpose: str,
        account_id: str,
        challenge: bytes,
        session_id: str | None,
    ) -> str:
        payload: dict[str, object] = {"challenge": bytes_to_base64url(challenge)}
        if session_id is not None:
            payload["session_id"] = session_id
        return self.challenges.put(
            session,
            purpose=purpose,
            payload=payload,
            ttl_seconds=self.challenge_ttl_seconds,
            account_id=account_id,
        )

    def _take(
        self,
        session: Session,
        handle: str,
        purpose: str,
        account_id: str,
        session_id: str | None,
    ) -> bytes:
        """The expected challenge; the stored one is deleted and that deletion committed,
        so that a refused answer cannot be retried with it either."""
        if not handle or len(handle) > 128:
            raise WebAuthnChallengeInvalid()
        taken = self.challenges.take(session, handle=handle, purpose=purpose)
        session.commit()
        if taken is None or taken.account_id != account_id:
            raise WebAuthnChallengeInvalid()
        if session_id is not None and taken.payload.get("session_id") != session_id:
            raise WebAuthnChallengeInvalid()
        value = taken.payload.get("challenge")
        if not isinstance(value, str):
            raise WebAuthnChallengeInvalid()
        return base64url_to_bytes(value)

    def _refused(
        self, event: str, account_id: str, origin: Origin | None, why: Exception | str
    ) -> None:
        reason = why if isinstance(why, str) else _reason(why)
        log.info(event, account_id=account_id, reason=reason)
        self.events.record_event(
            event, outcome="webauthn_invalid", account_id=account_id, origin=origin
        )

    def _clone_suspected(
        self,
        account_id: str,
        credential_id: str,
        stored: int,
        reported: int,
        origin: Origin | None,
    ) -> None:
        log.warning(
            "webauthn_clone_suspected",
            account_id=account_id,
            stored_count=stored,
            reported_count=reported,
        )
        self.events.record_event(
            "webauthn_clone_suspected",
            outcome="webauthn_clone_suspected",
            account_id=account_id,
            reasons=f"credential={credential_id[:24]};stored={stored};reported={reported}",
            origin=origin,
        )
        raise WebAuthnCloneSuspected()


def _reason(exc: Exception) -> str:
    """A short, log-safe reason (py_webauthn's messages carry no secret)."""
    return f"{type(exc).__name__}: {str(exc)[:160]}"


def _clean_label(label: str) -> str:
    cleaned = "".join(ch for ch in label if ch.isprintable()).strip()
    return cleaned[:64] or _DEFAULT_LABEL
