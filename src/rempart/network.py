"""Which network an address belongs to: the login's new-origin check and the guard share it."""

from __future__ import annotations

import ipaddress

__all__ = ["network_of"]


def network_of(ip: str, ipv4_prefix: int = 24, ipv6_prefix: int = 48) -> str:
    """The network an address belongs to (a prefix); an unparsable address (a test
    client, a unix socket) stands alone, marked so that it never equals a network.

    >>> network_of("192.0.2.77"), network_of("2001:db8:1:2::5"), network_of("testclient")
    ('192.0.2.0/24', '2001:db8:1::/48', '?testclient')
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "?" + ip
    prefix = ipv4_prefix if address.version == 4 else ipv6_prefix
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
