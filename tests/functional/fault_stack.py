"""One fault test's Rempart on private servers: its data and audit databases in the
private PostgreSQL cluster (the audit one in a tablespace of the test's choosing), its
Redis (throttle, guard state) a private one, a generated world loaded; the settings both
as this process's ``Services`` and as a ``rempart`` subprocess's environment."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rempart.config import Settings, load_settings
from rempart.services import Services
from rempart.store.load_world import load_world
from rempart.store.migrate import upgrade
from tests.conftest import FAST_HASHING
from tests.functional.private_servers import PrivatePostgres, PrivateRedis, private_redis
from tests.functional.server_load import fast_env

__all__ = ["Stack", "fault_stack"]


@dataclass
class Stack:
    pg: PrivatePostgres
    redis: PrivateRedis
    settings: Settings
    services: Services
    env: dict[str, str]


@contextlib.contextmanager
def fault_stack(
    pg: PrivatePostgres,
    world: Path,
    tmp_path: Path,
    *,
    audit_tablespace: str | None = None,
    **overrides: str,
) -> Iterator[Stack]:
    """``overrides``: settings by name, as their environment variables spell them."""
    tag = secrets.token_hex(3)
    data = pg.create_database(f"data_{tag}")
    audit = pg.create_database(f"audit_{tag}", tablespace=audit_tablespace)
    with private_redis() as redis_server:
        named = {
            "database_url": data,
            "audit_database_url": audit,
            "redis_url": redis_server.url,
            "data_dir": str(tmp_path / "data"),
            **overrides,
        }
        settings = load_settings(**named, **FAST_HASHING)
        services = Services(settings)
        try:
            upgrade(services.engine, schema="data")
            upgrade(services.audit_engine, schema="audit")
            load_world(services.engine, world, pseudonym_key=settings.keys.pseudonym_key)
            yield Stack(pg, redis_server, settings, services, fast_env(**named))
        finally:
            services.close()
            for database in (f"data_{tag}", f"audit_{tag}"):
                pg.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
