"""Benchmark: DKIM signatures per second for a breach notice's e-mail (about 6 kB).

A campaign signs some 300,000 e-mails in a few minutes on two cores, so signing must
reach several hundred messages per second per core. Measured on one core, one process:

1. dkimpy alone (``dkim.sign``, relaxed/relaxed, RSA-2048): its RSA is pure Python;
2. ``rempart.notify.breach.dkim.DkimSigner.sign``: dkimpy's canonicalization with the RSA
   step done by OpenSSL (``cryptography``), on an ``EmailMessage`` as the runner has it
   (serialization included);
3. the RSA-2048 signature alone through OpenSSL, for the floor.

    .venv/bin/python -m bench.bench_dkim [--seconds S]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from rempart.notify.breach.dkim import DkimSigner, generate_key_pem
from rempart.notify.mail import compose_message


def _rate(run: Callable[[], object], seconds: float) -> float:
    run()  # warm-up
    count = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        run()
        count += 1
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    pem = generate_key_pem(2048)
    signer = DkimSigner(pem, selector="rempart", domain="rempart.example")
    line = "Une ligne de la notification, en français, avec des accents : été, données.\n"
    text = line * 36
    html = "<p>" + line * 36 + "</p>"
    message = compose_message(
        mail_from="Caisse <securite@rempart.example>",
        recipient="camille.durand@example.org",
        subject="Information importante sur vos données personnelles",
        text=text,
        html=html,
        message_id="<notice.c1-0123456789ab@rempart.example>",
    )
    data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    print(f"message size: {len(data)} bytes")
    headers = [b"from", b"to", b"subject", b"date", b"message-id", b"mime-version"]

    def pure() -> object:
        return dkim.sign(
            data,
            b"rempart",
            b"rempart.example",
            pem,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=headers,
        )

    def ours() -> None:
        signer.sign(message)

    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)

    def floor() -> object:
        return key.sign(b"x" * 32, padding.PKCS1v15(), hashes.SHA256())

    for name, run in (
        ("dkimpy alone (pure-Python RSA)", pure),
        ("DkimSigner (dkimpy + OpenSSL RSA)", ours),
        ("OpenSSL RSA-2048 signature alone", floor),
    ):
        print(f"{name:40s} {_rate(run, args.seconds):8.0f} messages/s on one core")


if __name__ == "__main__":
    main()
