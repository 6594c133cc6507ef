"""Wires the configured parts together once per process: database, Redis, auth, guard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from pathlib import Path

import redis
import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from rempart.audit.chain import CheckpointSigner
from rempart.audit.events import EventRecorder
from rempart.audit.trail import AuditTrail, DisabledAuditTrail, SqlAuditTrail
from rempart.auth.challenges import ChallengeStore
from rempart.auth.clients import CLIENT_TOKEN_PURPOSE, ClientRegistry
from rempart.auth.enrolment import KeyEnrolment
from rempart.auth.mfa import MfaChallengeStore
from rempart.auth.origins import OriginTracker
from rempart.auth.passwords import PasswordHasher
from rempart.auth.psc import PscClient
from rempart.auth.recovery import RecoveryService
from rempart.auth.secretbox import SecretBox
from rempart.auth.service import AuthService
from rempart.auth.sessions import SessionPolicy, SessionStore
from rempart.auth.throttle import (
    CounterStore,
    LoginThrottle,
    MemoryCounterStore,
    RedisCounterStore,
    ThrottleLimits,
)
from rempart.auth.tokens import TokenSigner
from rempart.auth.webauthn import WebAuthnService
from rempart.config import Settings
from rempart.console.operators import OperatorService
from rempart.guard.config import load_config
from rempart.guard.events import to_micros
from rempart.guard.inline import InlineGuard
from rempart.guard.redis_state import RedisState
from rempart.guard.state import GuardState
from rempart.guard.warm_start import warm_start
from rempart.incident.controller import organization, security_before
from rempart.incident.service import IncidentService
from rempart.messages import (
    MessageRules,
    NoticeCodeCheck,
    database_notice_check,
    load_rules,
)
from rempart.messages.service import MessageCheckService
from rempart.messages.throttle import MessageCheckLimits, MessageCheckThrottle
from rempart.notify.breach.campaign import CampaignService, insurer_from_settings
from rempart.notify.breach.codes import NoticeKeys
from rempart.notify.breach.dkim import signer_from_settings
from rempart.notify.breach.render import NoticeRenderer
from rempart.notify.breach.runner import CampaignRunner
from rempart.notify.breach.verify import NoticeCheckLimits, NoticeCheckThrottle, NoticeVerifier
from rempart.notify.mail import MailSender, sender_from_settings
from rempart.notify.notices import NoticeBoard
from rempart.notify.outbox import Outbox
from rempart.progress import ProgressFn
from rempart.store.engine import make_engine

__all__ = ["Services"]

log = structlog.get_logger("rempart.services")


@dataclass
class Services:
    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        # hide_parameters: a failing statement's message must never carry a NIR into a log.
        return make_engine(self.settings.database_url, hide_parameters=True)

    @cached_property
    def audit_engine(self) -> Engine:
        url = self.settings.audit_database_url
        if url is None or url == self.settings.database_url:
            return self.engine
        return make_engine(url, hide_parameters=True)

    @cached_property
    def audit(self) -> AuditTrail:
        if self.settings.audit_writer == "noop-benchmark-only":
            log.warning("audit_disabled", reason="REMPART_AUDIT_WRITER=noop-benchmark-only")
            return DisabledAuditTrail()
        trail = SqlAuditTrail(
            self.audit_engine,
            CheckpointSigner(self.settings.keys.audit_signing_key),
            shards=self.settings.audit_shards,
            checkpoint_every=self.settings.audit_checkpoint_every,
        )
        try:
            # Before any request holds a transaction (and, on SQLite, the write lock).
            trail.ensure_heads()
        except SQLAlchemyError as exc:
            # Unreachable or not migrated yet: the first append tries again (or answers 503).
            log.warning("audit_heads_not_ready", error_type=type(exc).__name__)
        return trail

    @cached_property
    def incidents(self) -> IncidentService:
        return IncidentService(
            self.engine,
            self.audit,
            self.audit_engine,
            pseudonym_key=self.settings.keys.pseudonym_key,
            organization=organization(self.settings),
            security_before=security_before(self.settings),
        )

    @cached_property
    def campaigns(self) -> CampaignService:
        return CampaignService(
            self.engine,
            self.audit,
            self.incidents,
            keys=NoticeKeys(self.settings.keys.notice_code_key),
            insurer=insurer_from_settings(self.settings),
        )

    def campaign_runner(
        self, letters_dir: Path, *, progress: ProgressFn | None = None, batch_letters: int = 500
    ) -> CampaignRunner:
        return CampaignRunner(
            self.campaigns,
            renderer=NoticeRenderer(),
            sender=self.mail_sender,
            mail_from=self.settings.mail_from,
            letters_dir=letters_dir,
            lock_dir=self.settings.resolved_data_dir,
            signer=signer_from_settings(self.settings),
            rate=self.settings.notice_mail_rate,
            batch_letters=batch_letters,
            progress=progress,
        )

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return sessionmaker(self.engine, expire_on_commit=False)

    @cached_property
    def redis_client(self) -> redis.Redis | None:
        """The client of ``REMPART_REDIS_URL`` (throttling and guard state), or None.

        Short timeouts: a Redis that does not answer fails the login or the lookup
        closed within a second, it does not hold the request."""
        if not self.settings.redis_url:
            return None
        return redis.Redis.from_url(
            self.settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
        )

    @cached_property
    def counter_store(self) -> CounterStore:
        # Its keys and members are keyed hashes (LoginThrottle's secret), under the
        # deployment's prefix: another deployment on the same Redis counts apart.
        if self.redis_client is not None:
            return RedisCounterStore(self.redis_client, prefix=self.settings.throttle_redis_prefix)
        return MemoryCounterStore()

    @cached_property
    def auth(self) -> AuthService:
        s = self.settings
        keys = s.keys
        return AuthService(
            hasher=PasswordHasher(
                time_cost=s.argon2_time_cost,
                memory_kib=s.argon2_memory_kib,
                parallelism=s.argon2_parallelism,
            ),
            throttle=LoginThrottle(
                self.counter_store,
                ThrottleLimits.from_settings(s),
                secret=keys.for_purpose("throttle"),
            ),
            access_tokens=TokenSigner(
                keys.for_purpose("access"), purpose="access", ttl_seconds=s.session_absolute_seconds
            ),
            mfa_tokens=TokenSigner(
                keys.for_purpose("mfa"), purpose="mfa", ttl_seconds=s.mfa_token_ttl_seconds
            ),
            secret_box=SecretBox(keys.data_key),
            password_min_length=s.password_min_length,
            totp_issuer=s.totp_issuer,
            events=EventRecorder(self.audit, keys.pseudonym_key),
            sessions=SessionStore(
                SessionPolicy(
                    idle_seconds=s.session_idle_seconds,
                    absolute_seconds=s.session_absolute_seconds,
                )
            ),
            origins=OriginTracker(keys.for_purpose("origins")),
            mfa_challenges=MfaChallengeStore(
                keys.for_purpose("mfa-binding"), ttl_seconds=s.mfa_token_ttl_seconds
            ),
            mfa_lock_threshold=s.mfa_lock_threshold,
            new_origin_requires_phishing_resistant=s.new_origin_requires_phishing_resistant,
            notifier=self.outbox,
            notices=NoticeBoard(self.outbox.renderer),
            key_probation=timedelta(hours=s.webauthn_key_probation_hours),
        )

    @cached_property
    def operators(self) -> OperatorService:
        s = self.settings
        keys = s.keys
        return OperatorService(
            hasher=self.auth.hasher,
            secret_box=self.auth.secret_box,
            # Its own pseudonyms: an operator's failures never count against a
            # professional's login of the same name, nor the other way round.
            throttle=LoginThrottle(
                self.counter_store,
                ThrottleLimits.from_settings(s),
                secret=keys.for_purpose("operator-throttle"),
            ),
            events=self.auth.events,
            csrf_key=keys.for_purpose("console-csrf"),
            idle_seconds=s.console_idle_seconds,
            absolute_seconds=s.console_absolute_seconds,
            password_min_length=s.password_min_length,
            totp_issuer=s.totp_issuer,
        )

    @cached_property
    def webauthn(self) -> WebAuthnService:
        s = self.settings
        return WebAuthnService(
            rp_id=s.webauthn_rp_id,
            rp_name=s.webauthn_rp_name,
            origins=s.webauthn_origins,
            challenges=ChallengeStore(),
            events=self.auth.events,
            user_handle_key=s.keys.for_purpose("webauthn-user"),
        )

    @cached_property
    def psc(self) -> PscClient | None:
        """The Pro Santé Connect client, or None when PSC is not configured."""
        s = self.settings
        if not s.psc_configured:
            return None
        assert s.psc_client_id is not None
        assert s.psc_client_secret is not None
        assert s.psc_redirect_uri is not None
        return PscClient(
            discovery_url=str(s.psc_discovery_url),
            client_id=s.psc_client_id,
            client_secret=s.psc_client_secret.get_secret_value(),
            redirect_uri=s.psc_redirect_uri,
            scopes=s.psc_scopes,
            min_acr=s.psc_min_acr,
            card_amr=tuple(s.psc_card_amr),
            timeout_seconds=s.psc_timeout_seconds,
        )

    @cached_property
    def mail_sender(self) -> MailSender:
        """SMTP (``REMPART_SMTP_URL``) or ``.eml`` files in ``<data_dir>/outbox/``."""
        return sender_from_settings(self.settings)

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox.from_settings(self.settings)

    @cached_property
    def notice_verifier(self) -> NoticeVerifier:
        """The public check of breach notices, throttled in the login throttle's store."""
        s = self.settings
        return NoticeVerifier(
            NoticeKeys(s.keys.notice_code_key),
            self.sessions,
            self.audit,
            NoticeCheckThrottle(
                self.counter_store,
                NoticeCheckLimits.from_settings(s),
                secret=s.keys.for_purpose("notice-check-throttle"),
            ),
        )

    @cached_property
    def message_rules(self) -> MessageRules:
        """The message checker's rules file (``REMPART_MESSAGES_RULES_PATH``, else the
        packaged one), validated once."""
        return load_rules(self.settings.messages_rules_path)

    @cached_property
    def message_notice_check(self) -> NoticeCodeCheck:
        """Whether a code in a message is a genuine notice's (unbounded: the public
        doors go through :attr:`message_checks`, which bounds it)."""
        return database_notice_check(self.sessions, NoticeKeys(self.settings.keys.notice_code_key))

    @cached_property
    def message_checks(self) -> MessageCheckService:
        """A check through any door: bounded, counted, logged without the message."""
        s = self.settings
        return MessageCheckService(
            rules=self.message_rules,
            notice_check=self.message_notice_check,
            throttle=MessageCheckThrottle(
                self.counter_store,
                MessageCheckLimits.from_settings(s),
                secret=s.keys.for_purpose("message-check-throttle"),
            ),
            notice_throttle=self.notice_verifier.throttle,
            engine=self.engine,
            max_bytes=s.messages_max_bytes,
        )

    @cached_property
    def recovery(self) -> RecoveryService:
        return RecoveryService(
            self.auth,
            code_key=self.settings.keys.for_purpose("account-codes"),
            recovery_code_count=self.settings.recovery_code_count,
            reset_code_ttl_days=self.settings.reset_code_ttl_days,
        )

    @cached_property
    def keys(self) -> KeyEnrolment:
        """Adding, renaming, removing an account's security keys (API and portal)."""
        return KeyEnrolment(self.auth, self.webauthn, self.recovery)

    @cached_property
    def clients(self) -> ClientRegistry:
        """API clients (practice software) and their OAuth 2.0 client-credentials tokens."""
        s = self.settings
        return ClientRegistry(
            secret_key=s.keys.for_purpose("client-secrets"),
            tokens=TokenSigner(
                s.keys.for_purpose(CLIENT_TOKEN_PURPOSE),
                purpose=CLIENT_TOKEN_PURPOSE,
                ttl_seconds=s.client_token_ttl_seconds,
            ),
            events=self.auth.events,
            throttle=self.auth.throttle,
            default_grace_hours=s.client_rotation_grace_hours,
        )

    @cached_property
    def guard_state(self) -> GuardState | None:
        """The guard's shared state in Redis when ``REMPART_REDIS_URL`` is set; None:
        the guard keeps its state in this process (lost at a restart, not shared).

        The keyed hashes of persons, networks, devices and sessions use a key derived
        from the deployment's secrets: every worker sharing the state has the same."""
        if self.redis_client is None:
            return None
        s = self.settings
        return RedisState(
            self.redis_client,
            key=s.keys.for_purpose("guard-state"),
            prefix=s.guard_redis_prefix,
            session_ttl=s.session_absolute_seconds,
        )

    @cached_property
    def guard(self) -> InlineGuard | None:
        """The guard inline in the API, or None when disabled."""
        if not self.settings.guard_enabled:
            log.warning("guard_disabled", reason="REMPART_GUARD_ENABLED=false")
            return None
        state = self.guard_state
        log.info("guard_state", store="memory" if state is None else "redis")
        guard = InlineGuard.for_database(
            load_config(self.settings.guard_config),
            self.sessions,
            auth=self.auth,
            audit=self.audit,
            pseudonym_key=self.settings.keys.pseudonym_key,
            learn_until=to_micros(learn) if (learn := self.settings.guard_learn_until) else None,
            state=state,
        )
        # Before its first decision: the audit trail's recent lookups as its history.
        warm_start(
            guard,
            audit_engine=self.audit_engine,
            data_engine=self.engine,
            pseudonym_key=self.settings.keys.pseudonym_key,
            days=self.settings.guard_history_days,
        )
        return guard

    def close(self) -> None:
        if "redis_client" in self.__dict__ and self.redis_client is not None:
            self.redis_client.close()
        if "audit_engine" in self.__dict__ and self.audit_engine is not self.__dict__.get("engine"):
            self.audit_engine.dispose()
        if "engine" in self.__dict__:
            self.engine.dispose()
