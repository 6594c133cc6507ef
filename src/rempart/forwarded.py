"""Who a request comes from, behind the deployment's trusted reverse proxies.

Framework-free: :class:`rempart.api.middleware.ClientAddressMiddleware` applies it once
per request, so that every part of the service sees the same client address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from rempart.errors import RempartError

__all__ = [
    "IPAddress",
    "IPNetwork",
    "InvalidForwardedFor",
    "client_behind_proxies",
    "parse_address",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAX_FORWARDED_ENTRIES = 64


class InvalidForwardedFor(RempartError):
    code = "invalid_forwarded_for"
    status = 400

    def __init__(self) -> None:
        super().__init__("X-Forwarded-For holds an entry that is not an IP address")


def parse_address(text: str) -> IPAddress | None:
    """An address as a proxy writes it: ``192.0.2.7``, ``2001:db8::1``, ``[2001:db8::1]``,
    with or without a port (``192.0.2.7:4711``, ``[2001:db8::1]:443``); None otherwise.
    IPv4-mapped IPv6 addresses come back as IPv4, so that one host has one form.

    >>> parse_address("[2001:db8::1]:443"), parse_address("192.0.2.7:4711")
    (IPv6Address('2001:db8::1'), IPv4Address('192.0.2.7'))
    >>> parse_address("::ffff:192.0.2.7"), parse_address("unknown"), parse_address("fe80::1%eth0")
    (IPv4Address('192.0.2.7'), None, None)
    """
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not _is_port(rest)):
            return None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        if not _is_port(":" + port):
            return None
    else:
        host = text
    if "%" in host:  # a zone id names an interface of the proxy, not a client
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_port(text: str) -> bool:
    digits = text[1:]
    return (
        text[:1] == ":" and 0 < len(digits) <= 5 and digits.isascii() and digits.isdigit()
    ) and int(digits) < 65536


def _trusted(address: IPAddress, proxies: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_behind_proxies(
    peer: str, forwarded_for: Iterable[str], proxies: Sequence[IPNetwork]
) -> str:
    """The client's address: the TCP ``peer``, unless it is one of the trusted ``proxies``;
    then the right-most ``X-Forwarded-For`` entry (all header lines, in order) that is not
    a trusted proxy itself. Entries left of it were written by the client and are ignored.
    An entry that is not an IP address, where it is read, raises :class:`InvalidForwardedFor`.

    >>> proxies = [ipaddress.ip_network("10.0.0.0/8")]
    >>> client_behind_proxies("10.0.0.5", ["6.6.6.6, 198.51.100.23", "10.0.0.9"], proxies)
    '198.51.100.23'
    >>> client_behind_proxies("203.0.113.1", ["6.6.6.6"], proxies)
    '203.0.113.1'
    >>> client_behind_proxies("10.0.0.5", ["10.0.0.7, 10.0.0.6"], proxies)
    '10.0.0.7'
    """
    address = parse_address(peer)
    if address is None or not _trusted(address, proxies):
        return peer
    entries = [entry for line in forwarded_for for entry in line.split(",")]
    if not entries:
        return str(address)  # the proxy itself (a health check, say)
    if len(entries) > _MAX_FORWARDED_ENTRIES:
        raise InvalidForwardedFor()
    for entry in reversed(entries):
        address = parse_address(entry)
        if address is None:
            raise InvalidForwardedFor()
        if not _trusted(address, proxies):
            return str(address)
    return str(address)  # every hop is a proxy: the left-most one is as far as we can see
