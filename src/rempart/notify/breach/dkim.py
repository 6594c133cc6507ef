"""DKIM signatures on breach notices' e-mails (RFC 6376, relaxed/simple, RSA-SHA256).

A notice is a phishers' favourite lure; a valid signature of the insurer's domain is what
lets receivers (and their DMARC policy) tell the genuine one from an imitation.

dkimpy does the canonicalization, the header selection and the signature header's layout,
and verifies in tests. Its RSA arithmetic, though, is pure Python (``pow`` on the CRT
parts, not constant-time, about 8 ms per signature for RSA-2048): too slow for a campaign
of hundreds of thousands of e-mails on two cores. :class:`_OpenSslDkim` therefore keeps
dkimpy's whole signing path and replaces only the last step, the PKCS #1 v1.5 signature of
the header hash, by OpenSSL's through ``cryptography`` (blinded, and about 30 times
faster). The tests verify the result with dkimpy itself.

Ed25519 (RFC 8463) is not offered: dkimpy needs PyNaCl for it, and the large mailbox
providers still verify only RSA, so a notice signed with Ed25519 alone would count as
unsigned where it matters.
"""

from __future__ import annotations

import base64
import os
import stat
from email.message import EmailMessage
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dkim
import structlog
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from rempart.errors import RempartError

if TYPE_CHECKING:
    from rempart.config import Settings

__all__ = [
    "SIGNED_HEADERS",
    "DkimError",
    "DkimSigner",
    "generate_key_pem",
    "signer_from_settings",
]

# dkimpy parses the PEM it is handed on every signature only to check the key's size
# (a tenth of a notice's whole cost at campaign volume); the parse is pure: cached.
dkim.parse_pem_private_key = lru_cache(maxsize=4)(dkim.parse_pem_private_key)

log = structlog.get_logger("rempart.notify")

# Signed when present. From, To, Subject, Date and Message-ID are listed twice
# ("over-signed"): the second, absent copy makes the signature fail if anyone adds one.
SIGNED_HEADERS: tuple[str, ...] = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Language",
    "Auto-Submitted",
    "Reply-To",
)
_OVERSIGNED = ("From", "To", "Subject", "Date", "Message-ID")
_MIN_RSA_BITS = 2048
DEV_KEY_NAME = "dkim-dev.pem"


class DkimError(RempartError):
    """A DKIM key that cannot be used. Codes: ``dkim_key_missing``, ``dkim_key_invalid``."""

    code = "dkim_key_invalid"
    status = 500


class _OpenSslDkim(dkim.DKIM):  # type: ignore[misc]
    """dkimpy's signer with OpenSSL doing the RSA step (see the module's docstring)."""

    openssl_key: rsa.RSAPrivateKey

    def gen_header(
        self,
        fields: list[tuple[bytes, bytes]],
        include_headers: tuple[bytes, ...],
        canon_policy: Any,
        header_name: bytes,
        _pk: object,
        standardize: bool = False,
    ) -> bytes:
        # dkimpy 1.1's DomainSigner.gen_header for DKIM-Signature (standardize is only for
        # ARC), with the signature computed by OpenSSL instead of dkim.crypto.
        if standardize:
            raise NotImplementedError("ARC headers are not signed here")
        header_value = b"; ".join(b"=".join(x) for x in fields)
        header_value = dkim.fold(header_value, namelen=len(header_name), linesep=b"\r\n")
        header_value = dkim.RE_BTAG.sub(b"\\1", header_value)
        header = (header_name, b" " + header_value)
        hasher = dkim.HashThrough(self.hasher(), self.debug_content)
        headers = canon_policy.canonicalize_headers(self.headers)
        self.signed_headers = dkim.hash_headers(
            hasher, canon_policy, headers, include_headers, header, dict(fields)
        )
        signature = self.openssl_key.sign(
            hasher.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
        )
        index = next(i for i, (tag, _value) in enumerate(fields) if tag == b"b")
        fields[index] = (b"b", base64.b64encode(signature))
        header_value = b"; ".join(b"=".join(x) for x in fields) + self.linesep
        folded: bytes = dkim.fold(header_value, namelen=len(header_name), linesep=self.linesep)
        return folded


class DkimSigner:
    """Signs messages for one domain and selector with one RSA key (2048 bits or more)."""

    def __init__(self, private_key_pem: bytes, *, selector: str, domain: str) -> None:
        try:
            key = serialization.load_pem_private_key(private_key_pem, password=None)
        except (ValueError, TypeError):
            raise DkimError(
                "the DKIM private key is not an unencrypted PEM key", code="dkim_key_invalid"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise DkimError(
                "the DKIM key must be RSA (Ed25519 alone is not verified by the large "
                "mailbox providers)",
                code="dkim_key_invalid",
            )
        if key.key_size < _MIN_RSA_BITS:
            raise DkimError(
                f"the DKIM key has {key.key_size} bits; at least {_MIN_RSA_BITS} are needed",
                code="dkim_key_invalid",
            )
        self._key = key
        # dkimpy parses the PEM it is given before signing; handing it the traditional
        # (PKCS #1) form keeps that parse valid whatever form the file used.
        self._pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        self.selector = selector
        self.domain = domain.lower()

    def __repr__(self) -> str:
        return f"DkimSigner(selector={self.selector!r}, domain={self.domain!r})"

    def signature(self, data: bytes, *, present: set[str] | None = None) -> bytes:
        """The ``DKIM-Signature`` field (name, value, CRLF) for a whole message's bytes;
        ``present`` (lower-case header names) spares parsing the headers twice."""
        if present is None:
            present = {name.decode().lower() for name, _value in dkim.rfc822_parse(data)[0]}
        include = [h.encode() for h in SIGNED_HEADERS if h.lower() in present]
        include += [h.encode() for h in _OVERSIGNED if h.lower() in present]
        signer = _OpenSslDkim(data, signature_algorithm=b"rsa-sha256", linesep=b"\r\n")
        signer.openssl_key = self._key
        field: bytes = signer.sign(
            self.selector.encode(),
            self.domain.encode(),
            self._pem,
            # Headers relaxed (relays refold them); the body simple: a notice's body is
            # quoted-printable, 7-bit, so no relay has a reason to touch it, and simple
            # costs half of relaxed's per-line rewriting (a campaign signs 300,000).
            canonicalize=(b"relaxed", b"simple"),
            include_headers=include,
        )
        return field

    def sign(self, message: EmailMessage) -> None:
        """Prepends ``DKIM-Signature`` to ``message`` (signed as SMTP will send it: CRLF)."""
        if message["DKIM-Signature"] is not None:
            del message["DKIM-Signature"]  # signed again after a retry: one signature only
        data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        field = self.signature(data, present={name.lower() for name in message})
        # Stored as source lines, as a parsed message holds them: the generator writes
        # them back verbatim (dkimpy folds under 78 columns), with no costly re-parse.
        # EmailMessage only appends; a signature conventionally comes first.
        lines = field.decode("ascii").splitlines(keepends=True)
        message._headers.insert(0, message.policy.header_source_parse(lines))  # type: ignore[attr-defined]

    def dns_record(self) -> str:
        """The TXT record to publish at ``<selector>._domainkey.<domain>``."""
        public = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode('ascii')}"

    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"


def generate_key_pem(bits: int = _MIN_RSA_BITS) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_or_create_dev_key(data_dir: Path) -> bytes:
    path = data_dir / DEV_KEY_NAME
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "wb") as handle:
        handle.write(generate_key_pem())
    try:
        # A hard link fails if another process created the key meanwhile: keep theirs.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    log.info("dkim_dev_key_created", path=str(path))
    return path.read_bytes()


def signer_from_settings(settings: Settings) -> DkimSigner:
    """The key of ``REMPART_DKIM_PRIVATE_KEY_FILE``; in development without it, a key
    generated once into ``<data_dir>/dkim-dev.pem``. The domain is ``REMPART_DKIM_DOMAIN``
    or that of ``REMPART_MAIL_FROM``."""
    domain = settings.dkim_domain or parseaddr(settings.mail_from)[1].rpartition("@")[2]
    if not domain:
        raise DkimError("no DKIM domain: set REMPART_DKIM_DOMAIN", code="dkim_key_invalid")
    path = settings.dkim_private_key_file
    if path is not None:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise DkimError(
                f"cannot read REMPART_DKIM_PRIVATE_KEY_FILE ({type(exc).__name__})",
                code="dkim_key_missing",
            ) from None
    elif settings.env == "production":
        raise DkimError(
            "REMPART_DKIM_PRIVATE_KEY_FILE must be set in production", code="dkim_key_missing"
        )
    else:
        pem = _load_or_create_dev_key(settings.resolved_data_dir)
    return DkimSigner(pem, selector=settings.dkim_selector, domain=domain)
