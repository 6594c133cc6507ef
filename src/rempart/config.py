"""Settings, read from ``REMPART_*`` environment variables and validated at start.

With no secret configured (the embedded default) development keys are generated
on first use and kept in a data folder beside the SQLite file, so that every
command works with no setting. ``REMPART_ENV=production`` refuses development
keys and missing secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["ConfigError", "Keys", "Settings", "load_settings"]

_DEV_KEYS_FILE = "dev-keys.json"
_MIN_SECRET_LENGTH = 32
_SECRET_NAMES = ("token_secret", "pseudonym_key", "data_key", "audit_signing_key")


class ConfigError(Exception):
    """A configuration that cannot start; lists every problem found, not just the first."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REMPART_", extra="ignore")

    env: Literal["development", "production"] = "development"
    database_url: str = "sqlite:///rempart.db"
    audit_database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path | None = Field(
        default=None, description="Where development keys live; defaults beside the SQLite file."
    )

    token_secret: SecretStr | None = None
    pseudonym_key: SecretStr | None = None
    data_key: SecretStr | None = None
    audit_signing_key: SecretStr | None = Field(
        default=None, description="Seed of the Ed25519 key that signs audit checkpoints."
    )
    audit_shards: int = Field(default=8, ge=1, le=64)
    audit_writer: Literal["sql", "noop-benchmark-only"] = Field(
        default="sql",
        description="noop-benchmark-only measures what the audit costs; refused in production.",
    )
    audit_checkpoint_every: int = Field(default=1000, ge=1)
    audit_retention_days: int = Field(default=365, ge=1)

    access_token_ttl_seconds: int = Field(default=900, ge=30, le=4 * 3600)
    mfa_token_ttl_seconds: int = Field(default=300, ge=30, le=900)
    totp_issuer: str = "Rempart"

    password_min_length: int = Field(default=12, ge=8, le=128)
    argon2_time_cost: int = Field(default=3, ge=1, le=10)
    argon2_memory_kib: int = Field(default=65536, ge=8192, le=1_048_576)
    argon2_parallelism: int = Field(default=4, ge=1, le=16)

    throttle_window_seconds: int = Field(default=900, ge=1)
    throttle_account_failures: int = Field(default=5, ge=1)
    throttle_address_failures: int = Field(default=20, ge=1)
    throttle_address_attempts: int = Field(default=100, ge=1)

    worker_threads: int = Field(
        default=8, ge=1, le=200, description="Threads per worker for blocking routes."
    )
    max_body_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    trust_proxy_headers: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("database_url", "audit_database_url")
    @classmethod
    def _supported_database(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError("not a database URL (e.g. sqlite:///rempart.db)") from exc
        backend = url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
        if backend == "postgresql" and url.drivername in ("postgresql", "postgres"):
            value = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None

    @model_validator(mode="after")
    def _production_needs_secrets(self) -> Settings:
        if self.env != "production":
            return self
        problems = []
        if self.audit_writer != "sql":
            problems.append("REMPART_AUDIT_WRITER must be sql in production: no audit, no data")
        for name in _SECRET_NAMES:
            secret = getattr(self, name)
            env_name = f"REMPART_{name.upper()}"
            if secret is None:
                problems.append(f"{env_name} must be set in production")
            elif len(secret.get_secret_value()) < _MIN_SECRET_LENGTH:
                problems.append(f"{env_name} must hold at least {_MIN_SECRET_LENGTH} characters")
            elif secret.get_secret_value() in _development_secret_values(self.resolved_data_dir):
                problems.append(f"{env_name} is a development key; generate a real one")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"

    @property
    def resolved_data_dir(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return Path(url.database).resolve().parent / "rempart-data"
        return Path.cwd() / "rempart-data"

    @cached_property
    def keys(self) -> Keys:
        return _resolve_keys(self)


@dataclass(frozen=True)
class Keys:
    """Key material, one key per purpose, derived so that no key serves two uses."""

    token_secret: bytes
    pseudonym_key: bytes
    data_key: bytes
    audit_signing_key: bytes
    development: bool

    def for_purpose(self, purpose: str) -> bytes:
        """A signing key for one token purpose (access, mfa, ...)."""
        return hmac.new(self.token_secret, b"rempart-token:" + purpose.encode(), "sha256").digest()

    def __repr__(self) -> str:
        return f"Keys(<redacted>, development={self.development})"


def _development_secret_values(data_dir: Path) -> set[str]:
    path = data_dir / _DEV_KEYS_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return {str(v) for v in stored.values()}


def _load_or_create_dev_keys(data_dir: Path) -> dict[str, str]:
    path = data_dir / _DEV_KEYS_FILE
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if all(name in stored for name in _SECRET_NAMES):
            return stored
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Keys already there are kept: replacing them would orphan what they sealed or signed.
    generated = {name: secrets.token_urlsafe(48) for name in _SECRET_NAMES} | stored
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(generated, handle)
    if stored:
        tmp.replace(path)
        return generated
    try:
        # A hard link fails if the file appeared meanwhile: two processes starting
        # together agree on the first one's keys.
        os.link(tmp, path)
    except FileExistsError:
        tmp.unlink()
        return _load_or_create_dev_keys(data_dir)
    tmp.unlink()
    return generated


def _resolve_keys(settings: Settings) -> Keys:
    configured = {
        name: secret.get_secret_value()
        for name in _SECRET_NAMES
        if (secret := getattr(settings, name)) is not None
    }
    development = len(configured) < len(_SECRET_NAMES)
    if development:
        dev = _load_or_create_dev_keys(settings.resolved_data_dir)
        configured = {**dev, **configured}

    def derive(name: str) -> bytes:
        return hashlib.sha256(configured[name].encode("utf-8")).digest()

    return Keys(
        token_secret=derive("token_secret"),
        pseudonym_key=derive("pseudonym_key"),
        data_key=derive("data_key"),
        audit_signing_key=derive("audit_signing_key"),
        development=development,
    )


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings, raising :class:`ConfigError` with every problem."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(p) for p in error["loc"]) or "settings"
            env_name = f"REMPART_{where.upper()}" if error["loc"] else where
            problems.append(f"{env_name}: {error['msg']}")
        raise ConfigError(problems) from None
