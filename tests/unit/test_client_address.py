"""Who a request comes from: the rule of REMPART_TRUSTED_PROXIES, without HTTP."""

from __future__ import annotations

import ipaddress

import pytest

from rempart.config import ConfigError, load_settings
from rempart.forwarded import InvalidForwardedFor, client_behind_proxies, parse_address

PROXIES = [ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("2001:db8:ff::/48")]


@pytest.mark.parametrize(
    ("peer", "lines", "client"),
    [
        ("192.0.2.9", ["6.6.6.6"], "192.0.2.9"),  # not a proxy: the header is not read
        ("192.0.2.9", ["junk"], "192.0.2.9"),
        ("10.0.0.5", [], "10.0.0.5"),  # the proxy's own request
        ("10.0.0.5", ["198.51.100.7"], "198.51.100.7"),
        ("10.0.0.5", ["6.6.6.6, 198.51.100.7"], "198.51.100.7"),  # forged left-most
        ("10.0.0.5", ["6.6.6.6", "198.51.100.7, 10.0.0.9"], "198.51.100.7"),  # two lines
        ("10.0.0.5", ["junk, 198.51.100.7"], "198.51.100.7"),  # left of the client: unread
        ("10.0.0.5", ["10.0.0.8, 10.0.0.9"], "10.0.0.8"),  # all proxies: the left-most
        ("10.0.0.5", ["[2001:db8::1]:8443"], "2001:db8::1"),
        ("10.0.0.5", ["2001:db8::1, 2001:db8:ff::3"], "2001:db8::1"),
        ("::ffff:10.0.0.5", ["198.51.100.7:5000"], "198.51.100.7"),
        ("10.0.0.5", ["::ffff:198.51.100.7"], "198.51.100.7"),
    ],
)
def test_the_client_is_the_right_most_untrusted_entry(
    peer: str, lines: list[str], client: str
) -> None:
    assert client_behind_proxies(peer, lines, PROXIES) == client


@pytest.mark.parametrize(
    "lines",
    [
        ["unknown"],
        ["198.51.100.7, "],
        ["198.51.100.7,,10.0.0.9"],
        ["fe80::1%eth0"],
        ["1.2.3"],
        ["[2001:db8::1"],
        ["198.51.100.7:99999"],
        [", ".join(["10.0.0.9"] * 65)],
    ],
)
def test_an_entry_that_is_read_must_be_an_address(lines: list[str]) -> None:
    with pytest.raises(InvalidForwardedFor) as refused:
        client_behind_proxies("10.0.0.5", lines, PROXIES)
    assert refused.value.code == "invalid_forwarded_for"
    assert refused.value.status == 400


def test_no_trusted_proxy_means_no_header_is_honoured() -> None:
    assert load_settings().trusted_proxies == ()
    assert client_behind_proxies("127.0.0.1", ["6.6.6.6"], ()) == "127.0.0.1"
    assert parse_address("testclient") is None


def test_trusted_proxies_setting() -> None:
    settings = load_settings(trusted_proxies=" 10.0.0.5, 10.1.0.0/24 ,2001:db8::/32,")
    assert [str(n) for n in settings.trusted_proxies] == [
        "10.0.0.5/32",
        "10.1.0.0/24",
        "2001:db8::/32",
    ]
    for wrong in ("10.0.0.5/8", "0.0.0.0/0", "::/0", "proxy.example"):
        with pytest.raises(ConfigError) as refused:
            load_settings(trusted_proxies=wrong)
        assert "REMPART_TRUSTED_PROXIES" in str(refused.value)


def test_the_old_trust_all_setting_is_refused_with_directions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REMPART_TRUST_PROXY_HEADERS", "true")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "REMPART_TRUST_PROXY_HEADERS" in str(refused.value)
    assert "REMPART_TRUSTED_PROXIES" in str(refused.value)
    monkeypatch.setenv("REMPART_TRUST_PROXY_HEADERS", "false")
    assert load_settings().trusted_proxies == ()
