"""The software authenticator produces what py_webauthn accepts from real browsers.

These checks use py_webauthn directly (no Rempart code): if they pass, the
functional tests drive Rempart with genuine WebAuthn payloads.
"""

from __future__ import annotations

import json

import pytest
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import PublicKeyCredentialDescriptor

from rempart.devtools.soft_authenticator import NotAllowed, SoftAuthenticator, from_b64url

RP_ID = "localhost"
ORIGIN = "http://localhost:8000"


def _register(key: SoftAuthenticator) -> tuple[dict[str, object], bytes, bytes]:
    options = generate_registration_options(rp_id=RP_ID, rp_name="Rempart", user_name="ph")
    answer = key.create(json.loads(options_to_json(options)))
    verified = verify_registration_response(
        credential=answer,
        expected_challenge=options.challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
    )
    return answer, verified.credential_id, verified.credential_public_key


def _assert(
    key: SoftAuthenticator, credential_id: bytes, public_key: bytes, stored: int, **get: object
) -> int:
    options = generate_authentication_options(
        rp_id=RP_ID, allow_credentials=[PublicKeyCredentialDescriptor(id=credential_id)]
    )
    answer = key.get(json.loads(options_to_json(options)), **get)  # type: ignore[arg-type]
    verified = verify_authentication_response(
        credential=answer,
        expected_challenge=options.challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        credential_public_key=public_key,
        credential_current_sign_count=stored,
    )
    return verified.new_sign_count


def test_security_key_registers_and_signs_with_an_increasing_counter() -> None:
    key = SoftAuthenticator.security_key()
    answer, credential_id, public_key = _register(key)
    assert answer["authenticatorAttachment"] == "cross-platform"
    assert from_b64url(str(answer["id"])) == credential_id
    assert _assert(key, credential_id, public_key, 0) == 1
    assert _assert(key, credential_id, public_key, 1) == 2


def test_platform_passkey_reports_a_zero_counter() -> None:
    key = SoftAuthenticator.platform_passkey()
    _, credential_id, public_key = _register(key)
    assert _assert(key, credential_id, public_key, 0) == 0
    assert _assert(key, credential_id, public_key, 0) == 0


def test_a_phishing_origin_or_rp_id_fails_verification() -> None:
    key = SoftAuthenticator.security_key()
    _, credential_id, public_key = _register(key)
    with pytest.raises(InvalidAuthenticationResponse, match="origin"):
        _assert(key, credential_id, public_key, 0, origin="https://ameli-pro.example")
    with pytest.raises(InvalidAuthenticationResponse, match="RP ID"):
        _assert(key, credential_id, public_key, 0, rp_id="ameli-pro.example")
    options = generate_registration_options(rp_id=RP_ID, rp_name="Rempart", user_name="ph")
    phished = key.create(json.loads(options_to_json(options)), origin="https://evil.example")
    with pytest.raises(InvalidRegistrationResponse, match="origin"):
        verify_registration_response(
            credential=phished,
            expected_challenge=options.challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
        )


def test_a_clone_replays_an_old_counter() -> None:
    key = SoftAuthenticator.security_key()
    _, credential_id, public_key = _register(key)
    copy = key.clone()
    assert _assert(key, credential_id, public_key, 0) == 1
    with pytest.raises(InvalidAuthenticationResponse, match="sign count"):
        _assert(copy, credential_id, public_key, 1)


def test_excluded_and_unknown_credentials_are_refused_like_a_browser() -> None:
    key = SoftAuthenticator.security_key()
    _, credential_id, _ = _register(key)
    options = json.loads(
        options_to_json(
            generate_registration_options(
                rp_id=RP_ID,
                rp_name="Rempart",
                user_name="ph",
                exclude_credentials=[PublicKeyCredentialDescriptor(id=credential_id)],
            )
        )
    )
    with pytest.raises(NotAllowed):
        key.create(options)
    other = SoftAuthenticator.security_key()
    request = json.loads(
        options_to_json(
            generate_authentication_options(
                rp_id=RP_ID, allow_credentials=[PublicKeyCredentialDescriptor(id=credential_id)]
            )
        )
    )
    with pytest.raises(NotAllowed):
        other.get(request)
