"""Fixtures for the browser tests: the real app served over real TCP on a SQLite
database, driven by Playwright in Debian's Chromium.

The browser is never downloaded (``playwright install`` is not used): the tests launch
the system's ``chromium`` (``make browser`` installs it with apt). Without it the tests
skip with the reason, except under CI (``CI=true``), where a missing browser is a
failure, as a missing database server is (``tests/conftest.py``).

The app is served on ``http://localhost:PORT``: Chromium counts localhost as a secure
context, so the console's ``Secure`` and ``__Host-`` cookies work there over http, as
they do over https in production. Each test gets its own database, server and browser
context; one browser process serves them all, closed after the last of them.

These tests run once, on SQLite: what they check is the pages in a browser, which the
functional tests already run on both databases.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Error, Page, Playwright, sync_playwright

from rempart.api import create_app
from rempart.api.server import free_port, running_server
from rempart.config import Settings, load_settings
from rempart.services import Services
from tests.conftest import FAST_HASHING, IN_CI
from tests.functional.conftest import PROXY

WIDTH = 1280


def chromium_path() -> str | None:
    """Debian's Chromium, where it is installed."""
    found = shutil.which("chromium") or "/usr/bin/chromium"
    return found if Path(found).is_file() else None


def _no_browser(reason: str) -> None:
    reason = f"{reason}; `make browser` installs Debian's chromium"
    if IN_CI:
        pytest.fail(f"CI requires the browser: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = chromium_path()
    if executable is None:
        _no_browser("chromium is not installed")
    assert executable is not None
    try:
        launched = playwright.chromium.launch(executable_path=executable)
    except Error as exc:
        _no_browser(f"chromium at {executable} did not start ({exc.message.splitlines()[0]})")
        raise
    yield launched
    launched.close()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only (this overrides the SQLite + PostgreSQL parameter of tests/conftest.py)."""
    return f"sqlite:///{tmp_path / 'rempart.db'}"


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def base_url(port: int) -> str:
    return f"http://localhost:{port}"


@pytest.fixture
def settings(database_url: str, tmp_path: Path, base_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        # The browser and the scripted robot both connect from the loopback; the robot
        # says where it really is with X-Forwarded-For, as through a reverse proxy.
        trusted_proxies=PROXY,
        # The keys belong to the host name the browser sees (a test may serve another).
        webauthn_rp_id=urlsplit(base_url).hostname,
        webauthn_origins=[base_url],
        # The tests check a few notices from the one loopback address.
        notice_check_address_checks=1000,
        notice_check_address_failures=1000,
        notice_check_network_failures=1000,
        **FAST_HASHING,
    )


@pytest.fixture
def server(services: Services, port: int, base_url: str) -> Iterator[str]:
    """The real app over real TCP; yields its ``http://localhost:PORT`` address."""
    with running_server(create_app(services=services), port=port):
        yield base_url


@pytest.fixture
def user_agent() -> str | None:
    """The browser's own (``HeadlessChrome``) unless a test says otherwise."""
    return None


@pytest.fixture
def context(browser: Browser, server: str, user_agent: str | None) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookie) per test."""
    fresh = browser.new_context(
        base_url=server,
        user_agent=user_agent,
        viewport={"width": WIDTH, "height": 900},
        locale="fr-FR",
        timezone_id="Europe/Paris",
        accept_downloads=True,
    )
    fresh.set_default_timeout(15_000)
    yield fresh
    fresh.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()
