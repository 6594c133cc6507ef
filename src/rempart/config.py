"""Settings, read from ``REMPART_*`` environment variables and validated at start.

With no secret configured (the embedded default) development keys are generated
on first use and kept in a data folder beside the SQLite file, so that every
command works with no setting. ``REMPART_ENV=production`` refuses development
keys and missing secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from rempart.guard.config import GuardConfigError
from rempart.guard.config import load_config as load_guard_config

__all__ = ["ConfigError", "Keys", "Settings", "load_settings"]

_DEV_KEYS_FILE = "dev-keys.json"
_MIN_SECRET_LENGTH = 32
_SECRET_NAMES = (
    "token_secret",
    "pseudonym_key",
    "data_key",
    "audit_signing_key",
    "notice_code_key",
)
_RP_ID_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_RP_ID_SHAPE = re.compile(rf"^(?=.{{1,253}}$){_RP_ID_LABEL}(\.{_RP_ID_LABEL})*$")
_ORIGIN_SHAPE = re.compile(r"^(?P<scheme>https?)://(?P<host>[a-z0-9.-]{1,253})(:[0-9]{1,5})?$")
_REDIS_PREFIX_SHAPE = r"^[A-Za-z0-9:_.{}-]+$"
_QUEUE_NAME_SHAPE = r"^[A-Za-z0-9:_.-]+$"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(Exception):
    """A configuration that cannot start; lists every problem found, not just the first."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


def _networks(value: object) -> tuple[IPNetwork, ...]:
    """A comma-separated list (or a list) of addresses or networks, each checked."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("a comma-separated list of addresses or networks")  # noqa: TRY004
    networks = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=True))
        except ValueError as exc:
            raise ValueError(f"{text[:64]!r} is not an address or network: {exc}") from None
    return tuple(networks)


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
    notice_code_key: SecretStr | None = Field(
        default=None,
        description="Derives the breach notices' verification codes and their stored hashes.",
    )
    audit_shards: int = Field(default=8, ge=1, le=64)
    audit_writer: Literal["sql", "noop-benchmark-only"] = Field(
        default="sql",
        description="noop-benchmark-only measures what the audit costs; refused in production.",
    )
    audit_checkpoint_every: int = Field(default=1000, ge=1)
    audit_retention_days: int = Field(default=365, ge=1)

    # Sessions: the access token lives until the absolute end; idleness and revocation
    # are checked server-side on every request (the token names its session).
    session_idle_seconds: int = Field(default=3600, ge=60, le=24 * 3600)
    session_absolute_seconds: int = Field(default=4 * 3600, ge=300, le=7 * 24 * 3600)
    # The operators' console: shorter than a professional's session (staff act on
    # accounts and on people's data; a console left open in an office is a door).
    console_idle_seconds: int = Field(default=900, ge=60, le=8 * 3600)
    console_absolute_seconds: int = Field(default=10 * 3600, ge=300, le=24 * 3600)
    new_origin_requires_phishing_resistant: bool = Field(
        default=False,
        description="A login from a network or device never seen for the account must use "
        "WebAuthn or the CPS card.",
    )
    guard_enabled: bool = Field(
        default=True, description="Decide every lookup with the guard before the rights are read."
    )
    guard_learn_until: datetime | None = Field(
        default=None,
        description="Until then (ISO 8601, with a time zone) the guard records and learns, "
        "and does not act.",
    )
    guard_history_days: int = Field(
        default=21,
        ge=0,
        le=366,
        description="At start, the guard learns from the audit trail's answered lookups of "
        "that many days before (a warm start); 0: it starts with no history.",
    )
    guard_config: Path | None = Field(
        default=None,
        description="The guard's thresholds and weights (TOML); default: the shipped file.",
    )
    guard_redis_prefix: str = Field(
        default="rempart:guard:",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9:_.-]+$",
        description="Start of the guard's keys in REMPART_REDIS_URL: the workers of one "
        "deployment share it; another deployment on the same Redis takes another.",
    )
    throttle_redis_prefix: str = Field(
        default="rempart:throttle:",
        min_length=1,
        max_length=64,
        pattern=_REDIS_PREFIX_SHAPE,
        description="Start of the login throttle's keys in REMPART_REDIS_URL, like "
        "REMPART_GUARD_REDIS_PREFIX (with Redis Cluster, hold a hash tag: rempart:{throttle}:).",
    )
    recovery_code_count: int = Field(default=10, ge=4, le=20)
    mail_poll_seconds: float = Field(default=2.0, gt=0, le=300)
    console_rollup_seconds: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="How often the server counts the audit trail's closed hours for the "
        "console's charts (0: only page views count them).",
    )
    # Claims (care billed): the billing system's feeds (rempart.claims).
    claims_poll_seconds: float = Field(
        default=2.0,
        ge=0,
        le=300,
        description="How often the server feeds the guard the claims table's new rows "
        "(rempart claims ingest, the stream); 0: the server does not follow the table.",
    )
    claims_amqp_url: SecretStr | None = Field(
        default=None,
        description="amqp://user:password@host:5672/vhost (or amqps://) of the RabbitMQ "
        "broker the billing system publishes claims to; unset: no stream consumed.",
    )
    claims_amqp_queue: str = Field(
        default="rempart.claims",
        min_length=1,
        max_length=200,
        pattern=_QUEUE_NAME_SHAPE,
        description="The durable queue of claims to consume.",
    )
    claims_amqp_rejected_queue: str = Field(
        default="rempart.claims.rejected",
        min_length=1,
        max_length=200,
        pattern=_QUEUE_NAME_SHAPE,
        description="The durable queue where messages that can never be taken are set "
        "aside, with the reason in the x-rempart-reason header.",
    )
    claims_amqp_prefetch: int = Field(
        default=50, ge=1, le=1000, description="Unacknowledged claims the broker hands over."
    )
    reset_code_ttl_days: int = Field(default=14, ge=1, le=60)
    mfa_token_ttl_seconds: int = Field(default=300, ge=30, le=900)
    mfa_lock_threshold: int = Field(
        default=5,
        ge=2,
        le=20,
        description="Wrong second factors after a right password (never forgotten with "
        "time) at which the owner is told, an alert is raised and TOTP and recovery codes "
        "stop completing a login until a key, the CPS card or an operator clears it.",
    )
    # API clients (practice software): OAuth 2.0 client-credentials tokens.
    client_token_ttl_seconds: int = Field(default=3600, ge=60, le=24 * 3600)
    client_rotation_grace_hours: int = Field(
        default=24,
        ge=0,
        le=720,
        description="How long the former secret keeps working after a rotation.",
    )
    totp_issuer: str = "Rempart"

    webauthn_rp_id: str = Field(
        default="localhost",
        description="WebAuthn relying-party id: the site's domain (or a parent domain of it).",
    )
    webauthn_rp_name: str = Field(default="Rempart", min_length=1, max_length=64)
    webauthn_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:8000"],
        min_length=1,
        description="Origins WebAuthn ceremonies may come from (JSON list), e.g. "
        '["https://portail.example.fr"]; each must be on the relying-party id\'s domain.',
    )
    webauthn_key_probation_hours: int = Field(
        default=24,
        ge=0,
        le=30 * 24,
        description="A key this young does not answer the guard's step-up (nor manage keys "
        "or mint recovery codes): time for the owner to see the e-mail and the notice shown "
        "at the next strong login, and for the security team to see the alerts.",
    )

    password_min_length: int = Field(default=12, ge=8, le=128)
    argon2_time_cost: int = Field(default=3, ge=1, le=10)
    argon2_memory_kib: int = Field(default=65536, ge=8192, le=1_048_576)
    argon2_parallelism: int = Field(default=4, ge=1, le=16)

    # Login throttling (rempart.auth.throttle explains the policy). An "address" is an
    # IPv4 address or an IPv6 /64; a "network" an IPv4 /24 or an IPv6 /48.
    throttle_window_seconds: int = Field(
        default=900, ge=1, le=86400, description="Window of the per-source limits."
    )
    throttle_address_attempts: int = Field(default=100, ge=1)
    throttle_address_failures: int = Field(default=20, ge=1)
    throttle_address_logins: int = Field(
        default=20, ge=1, description="Distinct logins tried from one address per window."
    )
    throttle_address_failed_logins: int = Field(
        default=8, ge=1, description="Distinct logins failing from one address per window."
    )
    throttle_network_logins: int = Field(default=60, ge=1)
    throttle_network_failed_logins: int = Field(default=24, ge=1)
    throttle_account_failures: int = Field(
        default=5, ge=1, description="Failures on one account from one address before back-off."
    )
    throttle_account_wide_failures: int = Field(
        default=10,
        ge=1,
        description="Failures on one account from addresses it never logged in from, "
        "before the account-wide back-off.",
    )
    throttle_backoff_base_seconds: int = Field(default=30, ge=1, le=300)
    throttle_backoff_cap_seconds: int = Field(
        default=900, ge=1, le=3600, description="Longest wait: a back-off, never a lock."
    )
    throttle_account_wide_cap_seconds: int = Field(default=300, ge=1, le=900)
    throttle_failure_decay_seconds: int = Field(
        default=900, ge=60, le=86400, description="One failure is forgotten per period."
    )
    throttle_global_failures_per_minute: int = Field(
        default=120, ge=1, description="Above this the service is under attack (alert)."
    )
    throttle_under_attack_divisor: int = Field(
        default=4, ge=1, le=100, description="Per-source limits are divided by it under attack."
    )

    worker_threads: int = Field(
        default=8, ge=1, le=200, description="Threads per worker for blocking routes."
    )
    max_body_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    # Load shedding (rempart.api.shedding): past this many requests in progress in one
    # worker, a new one is refused at once (503 overloaded, Retry-After) rather than
    # queued behind the others, so that what is accepted keeps a bounded latency.
    # Little's law sizes it: the latency to keep x the requests/s one worker serves.
    max_in_flight: int = Field(
        default=16,
        ge=1,
        le=10_000,
        description="Requests one worker serves at once; more are refused with 503 "
        "overloaded and Retry-After.",
    )
    max_public_in_flight: int = Field(
        default=4,
        ge=1,
        le=10_000,
        description="Of those, the anonymous public checks (notice code, message) one worker "
        "serves at once: a flood of them is shed on its own.",
    )
    overload_retry_after_seconds: int = Field(default=2, ge=1, le=300)
    trusted_proxies: Annotated[tuple[IPNetwork, ...], NoDecode] = Field(
        default=(),
        description="Reverse proxies whose X-Forwarded-For is honoured: comma-separated "
        "addresses or networks (e.g. 10.0.0.5,10.1.0.0/24). Empty: the TCP peer is the client.",
    )
    # Operations: GET /metrics tells how busy the service is and how its guard decides;
    # nothing personal, but not for everyone either.
    metrics_networks: Annotated[tuple[IPNetwork, ...], NoDecode] = Field(
        default=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
        description="Clients (after REMPART_TRUSTED_PROXIES) that may read GET /metrics "
        "without a token: comma-separated addresses or networks; empty: none.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="A bearer token (32 characters or more) that opens GET /metrics from "
        "any address (a Prometheus outside REMPART_METRICS_NETWORKS).",
    )
    ready_timeout_seconds: float = Field(
        default=1.0,
        gt=0,
        le=10,
        description="How long each check of GET /health/ready may take before it counts "
        "as failed (timeout).",
    )
    # Replaced by REMPART_TRUSTED_PROXIES; only false (or unset) is accepted, see below.
    trust_proxy_headers: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # E-mail: without an SMTP server, messages are written as .eml files into
    # <data_dir>/outbox/ (the embedded default needs no mail server).
    smtp_url: SecretStr | None = Field(
        default=None,
        description="smtp://host:port, smtp+starttls://user:password@host:587 or "
        "smtps://user:password@host:465 (the password is percent-encoded, never logged).",
    )
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    mail_from: str = Field(default="Rempart <no-reply@rempart.example>", min_length=3)
    security_contact: str = Field(
        default="le service sécurité de votre caisse",
        min_length=3,
        max_length=120,
        description="Who a professional calls if a notification was not them, as it completes "
        "'contactez sans attendre …', e.g. 'le service sécurité de votre caisse au 01 23 45 "
        "67 89'. Never a link.",
    )

    # The controller named in CNIL notifications and in the breach register (incidents).
    organization_name: str = Field(
        default="Caisse d'assurance maladie (démonstration)", min_length=2, max_length=200
    )
    organization_siren: str = Field(default="", max_length=14)
    organization_address: str = Field(default="", max_length=300)
    dpo_name: str = Field(default="Délégué à la protection des données", max_length=120)
    dpo_email: str = Field(default="", max_length=200)
    dpo_phone: str = Field(default="", max_length=40)
    organization_website: str = Field(
        default="www.rempart.example",
        max_length=120,
        description="The insurer's site as breach notices write it out (text, never a link).",
    )

    # Breach notices (notify.breach): DKIM signature and sending pace.
    dkim_private_key_file: Path | None = Field(
        default=None,
        description="PEM private key (RSA, 2048 bits or more) that signs notices' e-mails; "
        "without it a development key is generated in the data folder.",
    )
    dkim_selector: str = Field(default="rempart", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    dkim_domain: str | None = Field(
        default=None, description="d= of the signature; defaults to REMPART_MAIL_FROM's domain."
    )
    notice_mail_rate: float = Field(
        default=200.0,
        gt=0,
        le=10_000,
        description="E-mails per second one campaign worker hands to the SMTP server at most.",
    )
    # The public notice check (GET /verifier, POST /api/v1/notices/verify): bounded
    # guesses per address, per network, per code, and across the service (a botnet).
    notice_check_window_seconds: int = Field(default=3600, ge=60, le=86400)
    notice_check_address_checks: int = Field(
        default=30, ge=1, description="Checks one address may make per window."
    )
    notice_check_address_failures: int = Field(
        default=10, ge=1, description="Checks answered 'not genuine' per address and window."
    )
    notice_check_network_failures: int = Field(
        default=60, ge=1, description="The same per network (IPv4 /24, IPv6 /48)."
    )
    notice_check_code_failures: int = Field(
        default=5, ge=1, description="Failed checks of one code (any name) per window."
    )
    notice_check_global_failures_per_minute: int = Field(
        default=120,
        ge=1,
        description="Failed checks across the service per minute; beyond, every check "
        "waits for the next minute (what stops a botnet enumerating codes).",
    )
    # The public message checker (rempart messages, POST /api/v1/messages/check, the page
    # /verifier/message): checks per address and across the service. A call centre's
    # agents share one address: its limit is generous; the global one is the hard stop.
    messages_check_window_seconds: int = Field(default=600, ge=60, le=86400)
    messages_check_address_checks: int = Field(
        default=120, ge=1, description="Checks one address may make per window."
    )
    messages_check_global_per_minute: int = Field(
        default=1200, ge=1, description="Checks across the service per minute."
    )

    # The message checker (rempart.messages): "is this SMS or e-mail really from us?"
    messages_rules_path: Path | None = Field(
        default=None,
        description="The checker's rules (TOML: own domains, senders, phrases, weights); "
        "default: the shipped file.",
    )
    messages_max_bytes: int = Field(
        default=262_144,
        ge=1024,
        le=10 * 1024 * 1024,
        description="The largest message (text or .eml) the checker reads, in bytes.",
    )

    # Pro Santé Connect (or any OpenID Connect provider shaped like it): set the four
    # of discovery URL, client id, secret and redirect URI, or none (PSC disabled).
    psc_discovery_url: str | None = Field(
        default=None,
        description="The provider's /.well-known/openid-configuration (sandbox, production "
        "or a local provider).",
    )
    psc_client_id: str | None = None
    psc_client_secret: SecretStr | None = None
    psc_redirect_uri: str | None = Field(
        default=None, description="Rempart's callback, e.g. https://…/api/v1/auth/psc/callback"
    )
    psc_min_acr: Literal["eidas1", "eidas2", "eidas3"] = "eidas1"
    psc_scopes: str = "openid scope_all"
    psc_card_amr: list[str] = Field(
        default_factory=lambda: ["sc", "hwk"],
        description="amr values of an ID token that show the CPS smart card (JSON list).",
    )
    psc_timeout_seconds: float = Field(default=5.0, gt=0, le=60)

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

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        # Imported here: the notify package pulls in templates and models, not needed by config.
        from rempart.notify.mail import SmtpEndpoint  # noqa: PLC0415

        SmtpEndpoint.from_url(value.get_secret_value())  # its errors never quote the URL
        return value

    @field_validator("claims_amqp_url")
    @classmethod
    def _amqp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        # The URL holds a password: the message names the rule, never the value.
        if not value.get_secret_value().startswith(("amqp://", "amqps://")):
            raise ValueError("must start with amqp:// or amqps://")
        return value

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, value: str) -> str:
        name, address = parseaddr(value)
        try:
            Address(display_name=name, addr_spec=address)
        except (ValueError, IndexError):
            raise ValueError("not an e-mail address (e.g. Rempart <no-reply@example.fr>)") from None
        if "@" not in address or "\n" in value or "\r" in value:
            raise ValueError("not an e-mail address (e.g. Rempart <no-reply@example.fr>)")
        return value

    @field_validator("guard_learn_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-12-01T00:00:00+00:00)")
        return value

    @field_validator("guard_config")
    @classmethod
    def _guard_config_loads(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:
                load_guard_config(value)
            except GuardConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("messages_rules_path")
    @classmethod
    def _messages_rules_load(cls, value: Path | None) -> Path | None:
        if value is not None:
            # Imported here: config stays light for the commands that never check a message.
            from rempart.messages.rules import InvalidRules, load_rules  # noqa: PLC0415

            try:
                load_rules(value)
            except InvalidRules as exc:
                raise ValueError(exc.detail) from None
        return value

    @field_validator("metrics_networks", mode="before")
    @classmethod
    def _metrics_networks(cls, value: object) -> tuple[IPNetwork, ...]:
        return _networks(value)

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < _MIN_SECRET_LENGTH:
            raise ValueError(f"must hold at least {_MIN_SECRET_LENGTH} characters")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_networks(cls, value: object) -> tuple[IPNetwork, ...]:
        networks = _networks(value)
        for network in networks:
            if network.prefixlen == 0:
                # Trusting every peer lets any client write its own address.
                raise ValueError(
                    f"{str(network)!r} trusts every address; list the proxies themselves"
                )
        return networks

    @field_validator("trust_proxy_headers")
    @classmethod
    def _trust_proxy_headers_retired(cls, value: bool) -> bool:
        # It trusted X-Forwarded-For from any peer and took its client-controlled left-most
        # entry. Read as "loopback only" it would silently merge every professional behind a
        # remote proxy into one address (one throttle, one guard network): refuse instead.
        if value:
            raise ValueError(
                "is no longer supported: list the reverse proxies allowed to set "
                "X-Forwarded-For in REMPART_TRUSTED_PROXIES (e.g. 127.0.0.1 or 10.0.0.0/24)"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None

    @model_validator(mode="after")
    def _webauthn_origins_on_rp_id(self) -> Settings:
        rp_id = self.webauthn_rp_id
        if not _RP_ID_SHAPE.match(rp_id):
            raise ValueError("REMPART_WEBAUTHN_RP_ID must be a bare domain name, e.g. example.fr")
        for origin in self.webauthn_origins:
            match = _ORIGIN_SHAPE.match(origin)
            if match is None:
                raise ValueError(
                    f"REMPART_WEBAUTHN_ORIGINS: {origin!r} is not an origin (scheme://host[:port])"
                )
            host = match.group("host")
            if host != rp_id and not host.endswith("." + rp_id):
                raise ValueError(
                    f"REMPART_WEBAUTHN_ORIGINS: {origin!r} is not on the relying-party id {rp_id!r}"
                )
            if match.group("scheme") == "http" and host != "localhost" and self.env == "production":
                raise ValueError(f"REMPART_WEBAUTHN_ORIGINS: {origin!r} must use https")
        return self

    @model_validator(mode="after")
    def _redis_prefixes_apart(self) -> Settings:
        guard, throttle = self.guard_redis_prefix, self.throttle_redis_prefix
        if guard.startswith(throttle) or throttle.startswith(guard):
            raise ValueError(
                "REMPART_GUARD_REDIS_PREFIX and REMPART_THROTTLE_REDIS_PREFIX must not "
                "overlap (neither may start with the other)"
            )
        return self

    @model_validator(mode="after")
    def _throttle_backoff_consistent(self) -> Settings:
        base = self.throttle_backoff_base_seconds
        if base > min(self.throttle_backoff_cap_seconds, self.throttle_account_wide_cap_seconds):
            raise ValueError(
                "REMPART_THROTTLE_BACKOFF_BASE_SECONDS cannot exceed the back-off caps"
            )
        return self

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

    @model_validator(mode="after")
    def _psc_all_or_nothing(self) -> Settings:
        names = ("psc_discovery_url", "psc_client_id", "psc_client_secret", "psc_redirect_uri")
        missing = [f"REMPART_{n.upper()}" for n in names if not getattr(self, n)]
        if len(missing) == len(names):
            return self
        if missing:
            raise ValueError(f"Pro Santé Connect is half configured: set {', '.join(missing)}")
        if self.env == "production":
            for name in ("psc_discovery_url", "psc_redirect_uri"):
                if not str(getattr(self, name)).startswith("https://"):
                    raise ValueError(f"REMPART_{name.upper()} must use https in production")
        return self

    @property
    def psc_configured(self) -> bool:
        return bool(self.psc_discovery_url)

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
    notice_code_key: bytes
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
        notice_code_key=derive("notice_code_key"),
        development=development,
    )


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings, raising :class:`ConfigError` with every problem.

    ``REMPART_SECRETS_DIR`` (e.g. ``/run/secrets``, where Docker and Kubernetes mount
    secrets): a file there named after a setting's variable, in lower case
    (``rempart_token_secret``), holds its value; the environment wins over it."""
    secrets_dir = os.environ.get("REMPART_SECRETS_DIR")
    if secrets_dir and "_secrets_dir" not in overrides:
        if not Path(secrets_dir).is_dir():
            raise ConfigError([f"REMPART_SECRETS_DIR: {secrets_dir} is not a directory"])
        overrides = {**overrides, "_secrets_dir": secrets_dir}
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(p) for p in error["loc"]) or "settings"
            env_name = f"REMPART_{where.upper()}" if error["loc"] else where
            problems.append(f"{env_name}: {error['msg']}")
        raise ConfigError(problems) from None
