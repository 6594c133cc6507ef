"""A real, independent OpenID Connect provider for the PSC tests and the demo.

``tools/oidc-provider/provider.mjs`` runs the certified ``oidc-provider`` npm
package on Node.js; this module starts it as a subprocess on a free port, waits
for its discovery document, and walks its login page the way a browser would
(cookies, redirects, a form post) to get the authorization code back.

It needs ``node`` and ``tools/oidc-provider/node_modules`` (``make test`` and
``make demo`` install them); :class:`ProviderUnavailable` says which is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx

TOOL_DIR = Path(__file__).resolve().parents[3] / "tools" / "oidc-provider"


class ProviderUnavailable(Exception):
    """The local provider cannot run here (no Node.js, dependencies not installed)."""


def find_node() -> str:
    """The path of ``node``, once the provider's dependencies are installed."""
    node = shutil.which("node")
    if node is None:
        raise ProviderUnavailable("node is not installed")
    if not (TOOL_DIR / "node_modules" / "oidc-provider").is_dir():
        raise ProviderUnavailable(
            "tools/oidc-provider/node_modules is missing (make test and make demo run npm ci)"
        )
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
    node = find_node()
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "oidc-provider.json"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    log_file = (workdir / "oidc-provider.log").open("w", encoding="utf-8")
    process = subprocess.Popen(  # noqa: S603 - our own node script, argv list, no shell
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
            raise ProviderUnavailable(f"the OpenID Connect provider did not start:\n{log}")
        provider = LocalProvider(issuer=json.loads(line)["issuer"], process=process)
        response = httpx.get(provider.discovery_url, timeout=10)
        if response.status_code != 200:
            raise ProviderUnavailable(f"no discovery document ({response.status_code})")
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
            if response.status_code not in (302, 303):
                raise AssertionError(f"unexpected answer {response.status_code} from the provider")
            location = urljoin(str(response.url), response.headers["location"])
            if urlsplit(location).netloc != issuer_host:
                return dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))
            response = browser.get(location)
    raise AssertionError("the provider never redirected back")


def stop_quietly(provider: LocalProvider) -> None:
    with suppress(Exception):
        provider.stop()
