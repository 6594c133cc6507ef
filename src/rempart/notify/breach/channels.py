"""Which e-mail address a notice may be sent to.

An address the insurer holds that cannot be valid (a typo, two ``@``, a space, a domain
that cannot exist) is treated as absent: the person gets a letter rather than an e-mail
that would bounce or, worse, reach someone else's typo-squatted domain. Deliverability
(DNS) is not checked here: a campaign must not depend on 300,000 DNS look-ups, and real
bounces come back as letters anyway (``notify.breach.dsn``).
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

__all__ = ["usable_email"]

_MAX_ADDRESS = 254  # RFC 5321's path limit (256) less the angle brackets
_MAX_LOCAL = 64  # RFC 5321, in octets


def usable_email(address: str | None) -> str | None:
    """The normalized address, or None if it cannot be valid.

    Normalized: spaces around removed, the domain in lower case and in its ASCII (IDNA)
    form, so that a server without SMTPUTF8 can carry it; a non-ASCII local part stays
    Unicode (NFC): such an address needs SMTPUTF8, and a server without it refuses the
    e-mail, which then becomes a letter.

    >>> usable_email("  Camille.Durand@Example.ORG ")
    'Camille.Durand@example.org'
    >>> usable_email("camille@@example.org") is None
    True
    """
    if address is None:
        return None
    candidate = address.strip()
    if not candidate or len(candidate) > _MAX_ADDRESS * 4:
        return None
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError:
        return None
    address = str(result.ascii_email or result.normalized)
    local = address.rpartition("@")[0]
    if len(local.encode()) > _MAX_LOCAL or len(address.encode()) > _MAX_ADDRESS:
        return None
    return address
