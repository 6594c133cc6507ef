"""How uvicorn runs Rempart: one configuration for ``rempart serve``, the demo and the tests.

uvicorn's own proxy handling is off (``proxy_headers=False``): by default it rewrites
the client address from ``X-Forwarded-For`` whenever the peer is on loopback, whatever
Rempart's settings say. Only :class:`rempart.api.middleware.ClientAddressMiddleware`
decides, from ``REMPART_TRUSTED_PROXIES``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI

__all__ = ["free_port", "running_server", "uvicorn_options"]


def uvicorn_options(*, host: str, port: int, log_level: str) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.run`` / ``uvicorn.Config`` that Rempart needs."""
    return {
        "host": host,
        "port": port,
        "proxy_headers": False,  # ours decides, from REMPART_TRUSTED_PROXIES
        "access_log": False,  # our own access log never writes raw paths
        "log_level": log_level,
        "server_header": False,
    }


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_server(
    app: FastAPI,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    log_level: str = "warning",
    lifespan: Literal["auto", "on", "off"] = "off",
) -> Iterator[str]:
    """The app served over real TCP in a thread, as ``rempart serve`` would; yields its URL."""
    port = port or free_port(host)
    config = uvicorn.Config(
        app, lifespan=lifespan, **uvicorn_options(host=host, port=port, log_level=log_level)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
