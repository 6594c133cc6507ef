"""Servers a fault test owns: a PostgreSQL cluster and a Redis of its own, on free ports in
temporary folders, that the test may stop, restart or starve without touching the shared
ones (on 5432 and 6379) the other tests use.

Without the binaries the tests skip with the reason, except under CI where it is a failure
(as for the shared servers, see ``tests/conftest.py``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
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
    "PrivateRabbit",
    "PrivateRedis",
    "free_port",
    "private_postgres",
    "private_rabbit",
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


RABBIT_BIN = Path(os.environ.get("REMPART_TEST_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
RABBIT_USER = "rabbitmq"
RABBIT_HOME = Path("/var/lib/rabbitmq")
"""Where the node's Erlang cookie is: ``rabbitmqctl`` must hold the same to reach it."""


@dataclass
class PrivateRabbit:
    """A RabbitMQ node of the test's own (its name, ports, database and logs apart from the
    shared broker's), which the test may stop and start: a broker restart cuts every
    connection, and the durable queues come back from its disk."""

    root: Path
    name: str
    port: int
    dist_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def _env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(RABBIT_HOME),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_PID_FILE": str(self.root / "node.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_ENABLED_PLUGINS": "",
            "RABBITMQ_CONFIG_FILE": str(self.root / "none"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def _ctl(self, *args: str, check: bool = True) -> int:
        command = [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.name, *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", RABBIT_USER, "--", *command]
        done = subprocess.run(
            command, env=self._env(), capture_output=True, timeout=90, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {args[0]}: {done.stderr.decode()[-500:]}")
        return done.returncode

    def start(self) -> None:
        command = [str(RABBIT_BIN / "rabbitmq-server")]
        if os.geteuid() == 0:
            command = ["runuser", "-u", RABBIT_USER, "--", *command]
        with (self.root / "server.out").open("ab") as out:
            self.process = subprocess.Popen(
                command, env=self._env(), stdout=out, stderr=subprocess.STDOUT
            )
        # Until the node has registered with epmd, rabbitmqctl cannot reach it at all.
        deadline = time.monotonic() + 90
        while self._ctl("await_startup", "--timeout", "60", check=False) != 0:
            if time.monotonic() > deadline or self.process.poll() is not None:
                tail = (self.root / "server.out").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the RabbitMQ node did not start: {tail}")
            time.sleep(0.5)

    def stop(self) -> None:
        """The whole node, as an operator restarting the broker would."""
        if self.process is not None and self.process.poll() is None:
            self._ctl("stop")
            self.process.wait(timeout=60)


@contextlib.contextmanager
def private_rabbit() -> Iterator[PrivateRabbit]:
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        unless_available(f"the RabbitMQ server is not in {RABBIT_BIN}")
    root = Path(tempfile.mkdtemp(prefix="rempart-rabbit-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, user=RABBIT_USER, group=RABBIT_USER)
    node = PrivateRabbit(
        root, f"rempart-faults-{secrets.token_hex(4)}@localhost", free_port(), free_port()
    )
    try:
        node.start()
        yield node
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            node.stop()
        if node.process is not None and node.process.poll() is None:
            node.process.kill()
        shutil.rmtree(root, ignore_errors=True)
