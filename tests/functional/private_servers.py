"""Servers a fault test owns: a PostgreSQL cluster and a Redis of its own, on free ports in
temporary folders, that the test may stop, restart or starve without touching the shared
ones (on 5432 and 6379) the other tests use.

Without the binaries the tests skip with the reason, except under CI where it is a failure
(as for the shared servers, see ``tests/conftest.py``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis

from tests.conftest import IN_CI

__all__ = [
    "PG_BIN",
    "PrivatePostgres",
    "PrivateRedis",
    "free_port",
    "private_postgres",
    "private_redis",
    "unless_available",
]

PG_BIN = Path(os.environ.get("REMPART_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
PG_USER = "postgres"
START_SECONDS = 30.0


def unless_available(reason: str) -> None:
    """Skip with ``reason``, or fail under CI, where every server must be there."""
    if IN_CI:
        pytest.fail(f"CI requires it: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_postgres(*command: str | Path) -> list[str]:
    """The command as the ``postgres`` OS user (initdb and postgres refuse root)."""
    args = [str(part) for part in command]
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_USER, "--", *args]
    return args


def _chown_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user=PG_USER, group=PG_USER)


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of the test's own: trust auth on 127.0.0.1, fsync off."""

    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{PG_USER}@127.0.0.1:{self.port}/{database}"

    @property
    def _options(self) -> str:
        return (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir}"
            " -c fsync=off -c full_page_writes=off -c max_connections=200"
        )

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-w", *args),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def init(self) -> None:
        for folder in (self.root, self.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
            _chown_postgres(folder)
        subprocess.run(
            _as_postgres(
                PG_BIN / "initdb", "-D", self.data, "-U", PG_USER, "--auth=trust", "-E", "UTF8"
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        self._ctl("-o", self._options, "start")
        self.wait_ready()

    def stop(self) -> None:
        """A fast shutdown: sessions are cut, as when the server is restarted for real."""
        self._ctl("-m", "fast", "stop")

    def restart(self) -> None:
        self._ctl("-m", "fast", "-o", self._options, "restart")
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                psycopg.connect(self.url("postgres", "postgresql"), connect_timeout=1).close()
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
            else:
                return

    def execute(self, statement: str, database: str = "postgres") -> None:
        with psycopg.connect(self.url(database, "postgresql"), autocommit=True) as connection:
            connection.execute(statement.encode())

    def create_database(self, name: str, tablespace: str | None = None) -> str:
        where = f" TABLESPACE {tablespace}" if tablespace else ""
        self.execute(f'CREATE DATABASE "{name}"{where}')
        return self.url(name)

    def create_tablespace(self, name: str, location: Path) -> None:
        location.mkdir(parents=True, exist_ok=True)
        _chown_postgres(location)
        self.execute(f"CREATE TABLESPACE {name} LOCATION '{location}'")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._ctl("-m", "immediate", "stop")


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A cluster in a folder of its own under the system's temporary folder (pytest's are
    private to root, where the ``postgres`` user could not reach), removed afterwards."""
    if not (PG_BIN / "initdb").exists():
        unless_available(f"the PostgreSQL binaries are not in {PG_BIN}")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        unless_available("runuser is needed to run PostgreSQL as its user")
    root = Path(tempfile.mkdtemp(prefix="rempart-pg-"))
    root.chmod(0o755)
    server = PrivatePostgres(root / "cluster", free_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class PrivateRedis:
    """A Redis of the test's own, without persistence: a restart starts empty, the worst
    case for the guard and the throttle."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    if not Path(REDIS_SERVER).exists():
        unless_available("redis-server is not installed")
    server = PrivateRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
