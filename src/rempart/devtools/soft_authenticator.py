"""A software WebAuthn authenticator (and the browser's part of the ceremony) for the
demo and the tests.

It answers the options a relying party hands out (``options_to_json`` parsed) with the
JSON that ``navigator.credentials.create()`` / ``.get()`` and ``PublicKeyCredential.toJSON()``
give a page: a real ``clientDataJSON``, an ``attestationObject`` of format ``none``
holding authenticator data with an ES256 COSE key, and assertions signed with ECDSA
P-256 over ``authenticatorData || SHA-256(clientDataJSON)``.

What a browser and an authenticator guarantee, and a test may need to break, is
controllable: the origin written into ``clientDataJSON`` (a phishing page's origin),
the relying-party id hashed into the authenticator data, the signature counter (a
cloned key replays an old one), which credential answers (another account's).

Two kinds are modelled: a security key (transport ``usb``, counter that increments)
and a platform passkey (``internal``/``hybrid``, synced: backup flags set, counter 0).
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import struct
from base64 import urlsafe_b64decode, urlsafe_b64encode
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["NotAllowed", "SoftAuthenticator", "SoftCredential", "b64url", "from_b64url"]

FLAG_UP = 0x01
FLAG_UV = 0x04
FLAG_BE = 0x08
FLAG_BS = 0x10
FLAG_AT = 0x40

# COSE (RFC 9053): kty EC2, alg ES256, curve P-256.
_COSE_KTY, _COSE_ALG, _COSE_CRV, _COSE_X, _COSE_Y = 1, 3, -1, -2, -3
_KTY_EC2, _ALG_ES256, _CRV_P256 = 2, -7, 1


class NotAllowed(Exception):
    """What the browser's ``NotAllowedError`` / ``InvalidStateError`` would be."""


def b64url(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: str) -> bytes:
    return urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftCredential:
    credential_id: bytes
    private_key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def cose_public_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        return bytes(
            cbor2.dumps(
                {
                    _COSE_KTY: _KTY_EC2,
                    _COSE_ALG: _ALG_ES256,
                    _COSE_CRV: _CRV_P256,
                    _COSE_X: numbers.x.to_bytes(32, "big"),
                    _COSE_Y: numbers.y.to_bytes(32, "big"),
                }
            )
        )


@dataclass
class SoftAuthenticator:
    """One authenticator, with the credentials it created (by credential id)."""

    origin: str = "http://localhost:8000"
    passkey: bool = False
    user_verified: bool = True
    aaguid: bytes = field(default_factory=lambda: bytes(16))
    credentials: dict[bytes, SoftCredential] = field(default_factory=dict)

    @classmethod
    def security_key(cls, origin: str = "http://localhost:8000") -> SoftAuthenticator:
        return cls(origin=origin, aaguid=bytes.fromhex("ee882879721c491397753dfcce97072a"))

    @classmethod
    def platform_passkey(cls, origin: str = "http://localhost:8000") -> SoftAuthenticator:
        return cls(
            origin=origin, passkey=True, aaguid=bytes.fromhex("fbfc3007154e4ecc8c0b6e020557d7bd")
        )

    @property
    def transports(self) -> list[str]:
        return ["hybrid", "internal"] if self.passkey else ["usb"]

    @property
    def attachment(self) -> str:
        return "platform" if self.passkey else "cross-platform"

    def clone(self) -> SoftAuthenticator:
        """A copy of the key material and counters, as an attacker who cloned the key has."""
        return copy.deepcopy(self)

    # -- navigator.credentials.create() ----------------------------------------------------

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        credential_id: bytes | None = None,
        ignore_exclusions: bool = False,
    ) -> dict[str, Any]:
        """Registration: a new ES256 credential, answered with attestation ``none``."""
        rp_id = rp_id or options["rp"]["id"]
        if not ignore_exclusions:
            excluded = {from_b64url(c["id"]) for c in options.get("excludeCredentials", [])}
            if excluded & set(self.credentials):
                raise NotAllowed("this authenticator already holds a credential of the account")
        credential = SoftCredential(
            credential_id=credential_id or secrets.token_bytes(32),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=rp_id,
            user_handle=from_b64url(options["user"]["id"]),
        )
        self.credentials[credential.credential_id] = credential
        client_data = self.client_data("webauthn.create", options["challenge"], origin)
        flags = FLAG_UP | FLAG_AT | (FLAG_UV if self.user_verified else 0)
        if self.passkey:
            flags |= FLAG_BE | FLAG_BS
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([flags])
            + struct.pack(">I", credential.sign_count)
            + self.aaguid
            + struct.pack(">H", len(credential.credential_id))
            + credential.credential_id
            + credential.cose_public_key()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": credential.id,
            "rawId": credential.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": self.transports,
            },
            "authenticatorAttachment": self.attachment,
            "clientExtensionResults": {},
        }

    # -- navigator.credentials.get() -------------------------------------------------------

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        credential_id: bytes | None = None,
        sign_count: int | None = None,
        user_handle: bool = True,
    ) -> dict[str, Any]:
        """Assertion with the first credential of ``allowCredentials`` this authenticator
        holds (or ``credential_id``, allowed or not). ``sign_count`` overrides the counter."""
        rp_id = rp_id or options["rpId"]
        if credential_id is None:
            allowed = [from_b64url(c["id"]) for c in options.get("allowCredentials", [])]
            held = [cid for cid in allowed if cid in self.credentials]
            if not held:
                raise NotAllowed("no credential of this authenticator is allowed")
            credential_id = held[0]
        credential = self.credentials[credential_id]
        if sign_count is not None:
            credential.sign_count = sign_count
        elif not self.passkey:  # synced passkeys report 0 for ever
            credential.sign_count += 1
        client_data = self.client_data("webauthn.get", options["challenge"], origin)
        flags = FLAG_UP | (FLAG_UV if self.user_verified else 0)
        if self.passkey:
            flags |= FLAG_BE | FLAG_BS
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([flags])
            + struct.pack(">I", credential.sign_count)
        )
        signature = credential.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        response: dict[str, Any] = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if user_handle:
            response["userHandle"] = b64url(credential.user_handle)
        return {
            "id": credential.id,
            "rawId": credential.id,
            "type": "public-key",
            "response": response,
            "authenticatorAttachment": self.attachment,
            "clientExtensionResults": {},
        }

    def client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": challenge,
                "origin": origin or self.origin,
                "crossOrigin": False,
            },
            separators=(",", ":"),
        ).encode()
