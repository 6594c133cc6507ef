"""The local OpenID Connect provider for the PSC tests (see :mod:`rempart.devtools.oidc_provider`).

Without ``node`` or ``tools/oidc-provider/node_modules`` (``make test`` installs
them), the tests skip with the reason; under CI they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rempart.devtools.oidc_provider import (
    TOOL_DIR,
    LocalProvider,
    ProviderUnavailable,
    find_node,
    log_in_at_provider,
    stop_quietly,
)
from rempart.devtools.oidc_provider import running_provider as _running_provider

__all__ = [
    "TOOL_DIR",
    "LocalProvider",
    "log_in_at_provider",
    "require_node_provider",
    "running_provider",
    "stop_quietly",
]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI requires the local OpenID Connect provider: {reason}")
    pytest.skip(f"local OpenID Connect provider unavailable: {reason}")


def require_node_provider() -> str:
    """The path of ``node``; skips (fails under CI) when the provider cannot run."""
    try:
        return find_node()
    except ProviderUnavailable as exc:
        _unavailable(str(exc))
        raise


@contextmanager
def running_provider(config: dict[str, Any], workdir: Path) -> Iterator[LocalProvider]:
    require_node_provider()
    with _running_provider(config, workdir) as provider:
        yield provider
