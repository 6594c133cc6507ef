"""A local SMTP server for the demo: what Rempart sends is received and kept as ``.eml``.

aiosmtpd comes with the development extra (``make demo`` installs it); it is imported
lazily so that an installation without it still runs the demo, its e-mails then
written as ``.eml`` files by the folder sender instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rempart.api.server import free_port

__all__ = ["local_smtp_server"]


class _Keeper:
    """aiosmtpd's handler: each message accepted is written before the 250 goes back,
    so the file exists when the sender's call returns."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._numbers = itertools.count(1)
        self.received = 0

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, _server: Any, _session: Any, envelope: Any
    ) -> str:
        data = envelope.original_content or envelope.content
        body = data if isinstance(data, bytes) else str(data).encode()
        path = self.folder / f"{next(self._numbers):05d}.eml"
        path.write_bytes(body)
        self.received += 1
        return "250 Message accepted for delivery"


@contextmanager
def local_smtp_server(folder: Path) -> Iterator[str | None]:
    """Yields ``smtp://127.0.0.1:PORT`` of a running server saving into ``folder``, or
    None when aiosmtpd is not installed."""
    try:
        from aiosmtpd.controller import Controller  # noqa: PLC0415 - optional (dev extra)
    except ImportError:
        yield None
        return
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    controller = Controller(_Keeper(folder), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()
