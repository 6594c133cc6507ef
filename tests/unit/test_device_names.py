"""Devices named as a professional would name them, from real user agents."""

from __future__ import annotations

import pytest

from rempart.portal.device_names import device_name

AGENTS = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "Chrome 131 sur Windows",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
        "Edge 131 sur Windows",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Safari 17 sur iPhone",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        "Safari 17 sur macOS",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
        "Samsung Internet 25 sur Android",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "Firefox 128 sur Linux",
    ),
    ("python-httpx/0.27.0", "Programme (python-httpx)"),
    ("testclient", "testclient"),
    ("   ", "Appareil inconnu"),
]


@pytest.mark.parametrize(("agent", "name"), AGENTS)
def test_a_user_agent_gets_a_readable_name(agent: str, name: str) -> None:
    assert device_name(agent) == name


def test_an_unknown_agent_is_shortened_to_one_line() -> None:
    name = device_name("X" * 300 + "\n" + "Y")
    assert "\n" not in name
    assert len(name) == 61
    assert name.endswith("…")
