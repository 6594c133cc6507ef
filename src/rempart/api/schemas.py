"""Request and response bodies. Strict: unknown fields and wrong types are refused.

Text that reaches the database, a log or a header is :data:`Text`: control characters
(C0, DEL, C1) and lone surrogates are refused with ``422 control_characters`` before any
code sees them (PostgreSQL refuses NUL, the encoders refuse surrogates). A NIR is
:data:`NirText`, refused the same way but as ``422 invalid_nir``, before the guard.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from rempart.auth.webauthn import AuthenticationCredentialJSON, RegistrationCredentialJSON

__all__ = [
    "CONTROL_CHARACTERS_ERROR",
    "INVALID_NIR_ERROR",
    "ErrorBody",
    "LoginRequest",
    "LoginResponse",
    "LookupRequest",
    "MfaWebAuthnOptionsRequest",
    "MfaWebAuthnRequest",
    "NirText",
    "PasswordChangeRequest",
    "PasswordResetRequest",
    "RecoveryCodesResponse",
    "RecoveryLoginRequest",
    "RightsResponse",
    "SessionOut",
    "StepUpWebAuthnRequest",
    "StrictBody",
    "Text",
    "TokenResponse",
    "TotpRequest",
    "TreatingDoctorOut",
    "WebAuthnCredentialList",
    "WebAuthnCredentialOut",
    "WebAuthnOptionsResponse",
    "WebAuthnRegisterRequest",
    "WebAuthnRegistered",
    "has_control_characters",
    "refuse_control_characters",
]

CONTROL_CHARACTERS_ERROR = "control_characters"
INVALID_NIR_ERROR = "invalid_nir"
_UNWANTED = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def has_control_characters(value: str) -> bool:
    return _UNWANTED.search(value) is not None


def refuse_control_characters(value: str) -> str:
    if has_control_characters(value):
        raise PydanticCustomError(CONTROL_CHARACTERS_ERROR, "control characters are not allowed")
    return value


def _nir_characters(value: str) -> str:
    if has_control_characters(value):
        raise PydanticCustomError(INVALID_NIR_ERROR, "a NIR holds digits (and 2A/2B) only")
    return value


Text = Annotated[str, AfterValidator(refuse_control_characters)]
NirText = Annotated[str, AfterValidator(_nir_characters)]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LoginRequest(StrictBody):
    login: Text = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)


class LoginResponse(BaseModel):
    mfa_token: str
    methods: list[str]


class TotpRequest(StrictBody):
    mfa_token: Text = Field(min_length=1, max_length=4096)
    code: Text = Field(min_length=1, max_length=16)


class NoticeOut(BaseModel):
    kind: str = Field(description="what happened (the e-mail's kind)")
    at: datetime
    subject: str
    text: str = Field(description="in French, as in the e-mail (without its layout)")


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the scheme name, not a secret
    expires_in: int
    notices: list[NoticeOut] | None = Field(
        default=None,
        description="At a strong login (CPS card, Pro Santé Connect, established key): the "
        "security notices not shown yet, shown this once (they were also e-mailed).",
    )


class NoticeList(BaseModel):
    notices: list[NoticeOut]


class RecoveryCodesRequest(StrictBody):
    enrolment_code: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9 -]+$",
        description="Without Pro Santé Connect or an established key: the code the insurer posted",
    )


class RecoveryLoginRequest(StrictBody):
    mfa_token: Text = Field(min_length=1, max_length=4096)
    code: Text = Field(min_length=1, max_length=64)


class PasswordResetRequest(StrictBody):
    login: Text = Field(min_length=1, max_length=256)
    new_password: Text = Field(min_length=1, max_length=1024)
    method: Literal["recovery_code", "operator_code", "totp"] = Field(
        description="recovery_code or operator_code; totp is refused "
        "(reset_method_unavailable): an authenticator code alone does not reset a password"
    )
    code: Text = Field(min_length=1, max_length=64)


class PasswordChangeRequest(StrictBody):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: Text = Field(min_length=1, max_length=1024)
    code: Text | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="a code from the authenticator app; not needed within 10 minutes of a "
        "login with a security key or the CPS card",
    )


class RecoveryCodesResponse(BaseModel):
    codes: list[str]


class SessionOut(BaseModel):
    session_id_hint: str = Field(description="the first characters of the session id")
    acr: str
    channel: str
    auth_time: str
    last_seen_at: str
    expires_at: str
    client_ip: str
    user_agent: str
    current: bool


class LookupRequest(StrictBody):
    nir: NirText = Field(
        min_length=1, max_length=64, description="15 characters; spaces and dots are ignored"
    )
    birth_date: Text = Field(min_length=1, max_length=32, description="YYYY-MM-DD")


class TreatingDoctorOut(BaseModel):
    name: str
    rpps: str | None


class RightsResponse(BaseModel):
    nir: str
    last_name: str
    first_name: str
    birth_date: str
    sex: int = Field(description="1 man, 2 woman")
    treating_doctor: TreatingDoctorOut | None
    c2s: bool
    ame: bool
    ald: bool


class ErrorBody(BaseModel):
    error: str
    detail: str


# -- WebAuthn (security keys and passkeys) ------------------------------------------------


class WebAuthnOptionsResponse(BaseModel):
    handle: str = Field(description="Send it back with the credential")
    options: dict[str, Any] = Field(
        description="For navigator.credentials.create() / .get() (binary values in base64url)"
    )


class WebAuthnRegisterRequest(StrictBody):
    handle: Text = Field(min_length=1, max_length=128)
    credential: RegistrationCredentialJSON
    label: Text = Field(default="", max_length=64, description="A name to recognise the key")
    enrolment_code: Text | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9 -]+$",
        description="For a first key without Pro Santé Connect: the code the insurer posted",
    )


class WebAuthnRegistered(BaseModel):
    credential_id: str


class WebAuthnCredentialOut(BaseModel):
    credential_id: str
    label: str
    created_at: datetime
    last_used_at: datetime | None


class WebAuthnCredentialList(BaseModel):
    credentials: list[WebAuthnCredentialOut]


class MfaWebAuthnOptionsRequest(StrictBody):
    mfa_token: Text = Field(min_length=1, max_length=4096)


class MfaWebAuthnRequest(StrictBody):
    mfa_token: Text = Field(min_length=1, max_length=4096)
    handle: Text = Field(min_length=1, max_length=128)
    credential: AuthenticationCredentialJSON


class StepUpWebAuthnRequest(StrictBody):
    handle: Text = Field(min_length=1, max_length=128)
    credential: AuthenticationCredentialJSON
