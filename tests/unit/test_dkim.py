from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from functools import cache
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from rempart.config import load_settings
from rempart.notify.breach.dkim import DkimError, DkimSigner, generate_key_pem, signer_from_settings
from rempart.notify.mail import compose_message

PRODUCTION_KEYS = {
    "token_secret": "t" * 40,
    "pseudonym_key": "p" * 40,
    "data_key": "d" * 40,
    "audit_signing_key": "a" * 40,
    "notice_code_key": "n" * 40,
}


@cache
def _pem() -> bytes:
    return generate_key_pem()


def _signer() -> DkimSigner:
    return DkimSigner(_pem(), selector="notices2026", domain="Rempart.example")


def _message(text: str = "Bonjour,\n\nVotre code : K7QM-4XPD-9TRW.\n") -> EmailMessage:
    return compose_message(
        mail_from="Caisse <securite@rempart.example>",
        recipient="camille.durand@example.org",
        subject="Information importante sur vos données personnelles",
        text=text * 40,
        html="<p>" + text * 40 + "</p>",
        message_id="<notice.c1-abc@rempart.example>",
    )


def _dns(signer: DkimSigner) -> dict[bytes, bytes]:
    return {signer.dns_name().encode() + b".": signer.dns_record().encode()}


def _verify(data: bytes, records: dict[bytes, bytes]) -> bool:
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    return bool(dkim.verify(data, dnsfunc=dnsfunc))


def _wire(message: EmailMessage) -> bytes:
    # What smtplib.send_message puts on the wire.
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def test_a_signed_notice_verifies_with_the_published_record() -> None:
    signer = _signer()
    message = _message("Accentué : « données » — été.\n")
    signer.sign(message)
    assert next(iter(message.keys())) == "DKIM-Signature"
    data = _wire(message)
    assert _verify(data, _dns(signer))
    assert data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
    header_block = data.split(b"\r\n\r\n")[0]
    assert max(len(line) for line in header_block.split(b"\r\n")) <= 78
    field = str(message["DKIM-Signature"])
    assert "c=relaxed/simple" in field
    assert "d=rempart.example" in field
    assert "s=notices2026" in field
    signed = field.split("h=")[1].split(";", maxsplit=1)[0].replace(" ", "").lower().split(":")
    for name in ("from", "to", "subject", "date", "message-id", "mime-version"):
        assert name in signed
    assert "content-type" in signed
    assert "auto-submitted" in signed
    assert signed.count("from") == 2  # over-signed: an added From breaks it


def test_the_signature_survives_parsing_and_reserializing() -> None:
    signer = _signer()
    message = _message()
    signer.sign(message)
    again = message_from_bytes(_wire(message), policy=default_policy)
    assert _verify(again.as_bytes(policy=default_policy.clone(linesep="\r\n")), _dns(signer))


def test_a_modified_body_or_header_fails() -> None:
    signer = _signer()
    message = _message()
    signer.sign(message)
    data = _wire(message)
    assert _verify(data, _dns(signer))
    assert not _verify(data.replace(b"K7QM-4XPD-9TRW", b"K7QM-4XPD-9TRX"), _dns(signer))
    assert not _verify(
        data.replace(b"Information importante", b"Information urgente !"), _dns(signer)
    )
    # A second From added by a forger fails thanks to over-signing.
    assert not _verify(b"From: Caisse <fraude@example.net>\r\n" + data, _dns(signer))


def test_another_key_does_not_verify() -> None:
    signer = _signer()
    other = DkimSigner(generate_key_pem(), selector="notices2026", domain="rempart.example")
    message = _message()
    signer.sign(message)
    assert not _verify(_wire(message), _dns(other))


def test_signing_twice_keeps_one_signature() -> None:
    signer = _signer()
    message = _message()
    signer.sign(message)
    signer.sign(message)
    assert len(message.get_all("DKIM-Signature") or []) == 1
    assert _verify(_wire(message), _dns(signer))


def test_dns_record_is_a_dkim1_rsa_record() -> None:
    record = _signer().dns_record()
    assert record.startswith("v=DKIM1; k=rsa; p=MII")
    assert _signer().dns_name() == "notices2026._domainkey.rempart.example"
    assert "PRIVATE" not in repr(_signer())


def test_unusable_keys_are_refused_with_a_code() -> None:
    with pytest.raises(DkimError) as caught:
        DkimSigner(b"not a key", selector="s", domain="d.example")
    assert caught.value.code == "dkim_key_invalid"
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - refused on purpose
    small_pem = small.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(DkimError, match="1024 bits"):
        DkimSigner(small_pem, selector="s", domain="d.example")
    edwards = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(DkimError, match="must be RSA"):
        DkimSigner(edwards, selector="s", domain="d.example")


def test_development_key_is_generated_once_private(tmp_path: Path) -> None:
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'r.db'}",
        data_dir=tmp_path / "data",
        mail_from="Caisse <securite@notices.rempart.example>",
    )
    first = signer_from_settings(settings)
    key_file = tmp_path / "data" / "dkim-dev.pem"
    assert key_file.stat().st_mode & 0o077 == 0
    second = signer_from_settings(settings)
    assert first.dns_record() == second.dns_record()
    assert first.domain == "notices.rempart.example"
    assert first.selector == settings.dkim_selector


def test_configured_key_and_domain_are_used(tmp_path: Path) -> None:
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(_pem())
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'r.db'}",
        data_dir=tmp_path / "data",
        dkim_private_key_file=key_file,
        dkim_domain="mail.rempart.example",
        dkim_selector="s2026",
    )
    signer = signer_from_settings(settings)
    assert signer.dns_record() == _signer().dns_record()
    assert signer.dns_name() == "s2026._domainkey.mail.rempart.example"
    assert not (tmp_path / "data" / "dkim-dev.pem").exists()


def test_production_without_a_key_file_is_an_error(tmp_path: Path) -> None:
    settings = load_settings(
        env="production", database_url=f"sqlite:///{tmp_path / 'p.db'}", **PRODUCTION_KEYS
    )
    with pytest.raises(DkimError) as caught:
        signer_from_settings(settings)
    assert caught.value.code == "dkim_key_missing"
    missing = load_settings(
        env="production",
        database_url=f"sqlite:///{tmp_path / 'p.db'}",
        dkim_private_key_file=tmp_path / "absent.pem",
        **PRODUCTION_KEYS,
    )
    with pytest.raises(DkimError) as caught:
        signer_from_settings(missing)
    assert caught.value.code == "dkim_key_missing"
    assert not (tmp_path / "rempart-data" / "dkim-dev.pem").exists()
