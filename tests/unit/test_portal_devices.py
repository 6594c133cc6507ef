"""A user agent as « Mes consultations » shows it: the common browsers named, anything
else as sent (cut short), since an unfamiliar string is what the owner should notice."""

from __future__ import annotations

import pytest

from rempart.portal.devices import RAW_LIMIT, device_label

WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)"


@pytest.mark.parametrize(
    ("user_agent", "label"),
    [
        (
            f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {WEBKIT} Chrome/133.0.0.0 Safari/537.36",
            "Chrome sur Windows",
        ),
        (
            f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {WEBKIT} Chrome/133.0.0.0 Safari/537.36 "
            "Edg/133.0.0.0",
            "Edge sur Windows",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Firefox sur Linux",
        ),
        (
            "Mozilla/5.0 (Linux; Android 10; K) " + WEBKIT + " Chrome/133.0.0.0 Mobile "
            "Safari/537.36",
            "Chrome sur Android",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari sur iPhone",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Version/17.5 Safari/605.1.15",
            "Safari sur Mac",
        ),
        ("python-requests/2.32.3", "python-requests/2.32.3"),
        ("LogicielOfficine/5.2", "LogicielOfficine/5.2"),
        ("", "appareil inconnu"),
        ("Mozilla/5.0 (compatible; curious)", "Mozilla/5.0 (compatible; curious)"),
    ],
)
def test_common_browsers_are_named_and_the_rest_is_shown_as_sent(
    user_agent: str, label: str
) -> None:
    assert device_label(user_agent) == label


def test_an_unknown_string_is_cut_short() -> None:
    shown = device_label("robot " * 40)
    assert len(shown) == RAW_LIMIT
    assert shown.endswith("…")
