"""A real, independent OpenID Connect provider for the PSC tests.

``tools/oidc-provider/provider.mjs`` runs the certified ``oidc-provider`` npm
package on Node.js; this module starts it as a subprocess on a free port, waits
for its discovery document, and walks its login page the way a browser would
(cookies, redirects, a form post) to get the authorization code back.

Without ``node`` or ``tools/oidc-provider/node_modules`` (``make test`` installs
them), the tests skip with the reason; under CI they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx
import pytest

TOOL_DIR = Path(__file__).resolve().parents[2] / "tools" / "oidc-provider"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_node_provider() -> str:
    """The path of ``node``; skips (fails under CI) when the provider cannot run."""
    node = shutil.which("node")
    reason = None
    if node is None:
        reason = "node is not installed"
    elif not (TOOL_DIR / "node_modules" / "oidc-provider").is_dir():
        reason = "tools/oidc-provider/node_modules is missing (make test runs npm ci)"
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI requires the local OpenID Connect provider: {reason}")
        pytest.skip(f"local OpenID Connect provider unavailable: {reason}")
    assert node is not None
    return node


@dataclass
class LocalProvider:
    issuer: str
    process: subprocess.Popen[str]

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextmanager
def running_provider(config: dict[str, Any], workdir: Path) -> Iterator[LocalProvider]:
    """Starts the provider with ``config`` (see provider.mjs); stops it on exit."""
    node = require_node_provider()
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "oidc-provider.json"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    log_file = (workdir / "oidc-provider.log").open("w", encoding="utf-8")
    process = subprocess.Popen(
        [node, str(TOOL_DIR / "provider.mjs"), "--config", str(config_file), "--port", "0"],
        cwd=TOOL_DIR,
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
    )
    provider = None
    try:
        assert process.stdout is not None
        # The provider prints one JSON line once it listens (or exits on a bad config).
        line = process.stdout.readline()
        if not line:
            process.wait(timeout=10)
            log_file.flush()
            log = (workdir / "oidc-provider.log").read_text(encoding="utf-8")
            pytest.fail(f"the OpenID Connect provider did not start:\n{log}")
        provider = LocalProvider(issuer=json.loads(line)["issuer"], process=process)
        response = httpx.get(provider.discovery_url, timeout=10)
        assert response.status_code == 200, response.text
        yield provider
    finally:
        if provider is not None:
            provider.stop()
        elif process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        log_file.close()


def log_in_at_provider(
    authorization_url: str, account: str, *, tamper: dict[str, str] | None = None
) -> dict[str, str]:
    """What a browser does: follows the authorization URL to the provider's login
    page, picks ``account`` there, and follows the redirects until the provider
    sends it back to the redirect URI. Returns that redirect's query parameters.

    ``tamper`` replaces parameters of the authorization request before it leaves,
    as an attacker sitting between Rempart and the browser could.
    """
    if tamper:
        parts = urlsplit(authorization_url)
        query = dict(parse_qsl(parts.query)) | tamper
        authorization_url = parts._replace(query=httpx.QueryParams(query).__str__()).geturl()
    issuer_host = urlsplit(authorization_url).netloc
    with httpx.Client(timeout=10, follow_redirects=False) as browser:
        response = browser.get(authorization_url)
        for _ in range(10):
            if response.status_code == 200 and "<form" in response.text:
                response = browser.post(str(response.url), data={"account": account})
                continue
            assert response.status_code in (302, 303), response.text[:500]
            location = urljoin(str(response.url), response.headers["location"])
            if urlsplit(location).netloc != issuer_host:
                return dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))
            response = browser.get(location)
    raise AssertionError("the provider never redirected back")


def stop_quietly(provider: LocalProvider) -> None:
    with suppress(Exception):
        provider.stop()
