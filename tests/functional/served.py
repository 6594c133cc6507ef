"""``rempart serve`` as a user runs it: a subprocess on a free loopback port, with its
standard error (the JSON logs) in a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from rempart.api.server import free_port
from rempart.config import Settings
from tests.conftest import FAST_HASHING


@dataclass(frozen=True)
class Served:
    base: str
    log_path: Path

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8").splitlines()


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that names the test's databases, data folder and cheap hashing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMPART_")}
    env.update(
        {
            "REMPART_DATABASE_URL": settings.database_url,
            "REMPART_DATA_DIR": str(settings.resolved_data_dir),
            **{f"REMPART_{k.upper()}": str(v) for k, v in FAST_HASHING.items()},
            **extra,
        }
    )
    if settings.audit_database_url:
        env["REMPART_AUDIT_DATABASE_URL"] = settings.audit_database_url
    return env


@contextmanager
def rempart_serve(
    env: Mapping[str, str], log_path: Path, *, workers: int = 1, start_seconds: float = 60
) -> Iterator[Served]:
    """``start_seconds``: each worker imports the whole service (spawned, not forked),
    which takes a while on a busy machine."""
    port = free_port()
    command = [sys.executable, "-m", "rempart", "serve", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    with log_path.open("w", encoding="utf-8") as log_file:
        server = subprocess.Popen(command, env=dict(env), stdout=log_file, stderr=log_file)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_seconds
            while True:
                try:
                    if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("rempart serve did not start: " + log_path.read_text())
                time.sleep(0.1)
            yield Served(base, log_path)
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
