"""Tables of the rights service. Audit tables (``audit*``) come with the audit trail."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Professional(Base):
    """A professional account as the insurer knows it (world ``professionals`` table)."""

    __tablename__ = "professionals"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rpps: Mapped[str | None] = mapped_column(String(11), index=True)  # Pro Santé Connect
    profession: Mapped[str] = mapped_column(String(32))
    department: Mapped[str] = mapped_column(String(3))
    organization_id: Mapped[str | None] = mapped_column(String(64), index=True)
    last_name: Mapped[str] = mapped_column(String(128))
    first_name: Mapped[str] = mapped_column(String(128))
    email: Mapped[str] = mapped_column(String(256))


class Insured(Base):
    """An insured person and their rights (world ``insured`` table)."""

    __tablename__ = "insured"

    nir: Mapped[str] = mapped_column(String(15), primary_key=True)
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[int] = mapped_column(SmallInteger)
    last_name: Mapped[str] = mapped_column(String(128))
    first_name: Mapped[str] = mapped_column(String(128))
    department: Mapped[str] = mapped_column(String(3))
    treating_doctor: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("professionals.account_id")
    )
    c2s: Mapped[bool] = mapped_column(Boolean)
    ame: Mapped[bool] = mapped_column(Boolean)
    ald: Mapped[bool] = mapped_column(Boolean)
    email: Mapped[str | None] = mapped_column(String(256))
    street: Mapped[str] = mapped_column(String(256))
    postcode: Mapped[str] = mapped_column(String(10))
    city: Mapped[str] = mapped_column(String(128))
    # The NIR's keyed pseudonym, as the audit trail names the person: set when the world
    # is loaded, indexed, so that scoping a breach finds the persons its lookups exposed
    # without recomputing a pseudonym for the whole population.
    pseudonym: Mapped[str | None] = mapped_column(String(32), unique=True)


class CareLink(Base):
    """A care relationship known before the data starts (world ``care`` table)."""

    __tablename__ = "care_links"
    __table_args__ = (Index("ix_care_links_nir", "nir"),)

    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("professionals.account_id"), primary_key=True
    )
    nir: Mapped[str] = mapped_column(String(15), ForeignKey("insured.nir"), primary_key=True)
    since: Mapped[date] = mapped_column(Date)


class Account(Base):
    """Login credentials of a professional account.

    ``account_id`` matches ``professionals.account_id`` when the insurer knows
    the professional; an account may be created before its world is loaded, so
    there is no foreign key. ``token_epoch`` is part of every token: bumping it
    revokes them all at once.
    """

    __tablename__ = "accounts"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    login: Mapped[str] = mapped_column(String(128), unique=True)
    profession: Mapped[str | None] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(256))
    totp_secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)
    email: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default="active")
    token_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    password_changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Wrong second factors after a right password; only a success from a known network
    # and device, a phishing-resistant login or an operator sets it back (never time).
    mfa_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Set when ``mfa_failures`` reached the threshold: TOTP and recovery codes no longer
    # complete a login until a phishing-resistant login or an operator clears it.
    mfa_locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuthSession(Base):
    """A login session. Every access token names one; revoking the row ends the token.

    ``expires_at`` is the absolute end; the idle end is ``last_seen_at`` plus the
    configured idle timeout, so changing that setting applies to open sessions too.
    """

    __tablename__ = "auth_sessions"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("accounts.account_id"), index=True
    )
    acr: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16), default="portal")
    client_id: Mapped[str | None] = mapped_column(String(64))
    auth_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(256), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(32))
    # How the session's factor stands, fixed when it opened: the key that opened a
    # ``webauthn`` session, whether that key was established then (past probation, not
    # enrolled from a new network), and whether the login came from a new network.
    credential_id: Mapped[str | None] = mapped_column(String(1400))
    factor_established: Mapped[bool] = mapped_column(Boolean, default=False)
    new_network: Mapped[bool] = mapped_column(Boolean, default=False)


class AuthChallenge(Base):
    """A single-use, short-lived server-side value: a WebAuthn challenge, an OIDC state.

    Taking one deletes it in the same statement, so it can be used once even
    when two requests race, across every worker and host.
    """

    __tablename__ = "auth_challenges"

    handle: Mapped[str] = mapped_column(String(128), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32))
    account_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class MfaChallenge(Base):
    """A login between its password step and its second factor (``auth/mfa.py``).

    The ``mfa_token`` names it; the row binds it to the client that passed the password
    step, counts its attempts and records when a second factor spent it.
    """

    __tablename__ = "mfa_challenges"

    challenge_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    client_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    spent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebAuthnCredential(Base):
    """A security key or passkey registered to an account."""

    __tablename__ = "webauthn_credentials"

    credential_id: Mapped[str] = mapped_column(String(1400), primary_key=True)  # base64url
    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("accounts.account_id"), index=True
    )
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[str] = mapped_column(String(128), default="")
    aaguid: Mapped[str] = mapped_column(String(36), default="")
    label: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Enrolled from a network the account had not used before the enrolling session:
    # such a key never answers the guard's step-up (see ``auth.levels.passes_step_up``).
    new_network: Mapped[bool] = mapped_column(Boolean, default=False)


class AccountCode(Base):
    """A single-use code of an account, stored as a keyed hash only.

    ``kind`` is ``recovery`` (printed once for the professional to keep),
    ``operator_reset`` (issued by an operator, sent by post, expires) or ``enrolment``
    (issued by an operator, sent by post, expires: enrols a first key or mints
    recovery codes).
    """

    __tablename__ = "account_codes"

    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("accounts.account_id"), primary_key=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class KnownOrigin(Base):
    """A network or device an account has logged in from (keyed hashes, not addresses)."""

    __tablename__ = "account_origins"

    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("accounts.account_id"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # network | device
    value_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MailOutbox(Base):
    """An e-mail to send, written in the transaction of what it reports.

    A crash between commit and delivery leaves the row unsent, and a later
    delivery pass sends it: nothing is lost, and ``sent_at`` keeps it to once.
    """

    __tablename__ = "mail_outbox"

    message_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    account_id: Mapped[str | None] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(256))
    subject: Mapped[str] = mapped_column(String(256))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(256))


class ApiClient(Base):
    """Practice software (OAuth 2.0 client credentials), bound to one organization.

    During a rotation the previous secret stays valid until ``previous_valid_until``.
    ``status``: ``active``, ``suspended`` (by the guard or an operator, until an operator
    restores it) or ``revoked`` (for good). A suspension bumps ``token_epoch``: every
    token carries the epoch it was issued in, so tokens issued before a suspension
    stay dead after it is lifted.
    """

    __tablename__ = "api_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(64), index=True)
    label: Mapped[str] = mapped_column(String(128), default="")
    secret_hash: Mapped[str] = mapped_column(String(256))
    previous_secret_hash: Mapped[str | None] = mapped_column(String(256))
    previous_valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    suspended_by: Mapped[str | None] = mapped_column(String(128))
    token_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class GuardAlert(Base):
    """An alert raised by the inline guard (a ``deny``: the account was suspended, or,
    for a lookup through practice software, ``client_id`` names the client suspended,
    and ``account_id`` the professional it named, who stays active).

    ``audit_ts_us`` is the ``ts_us`` of the lookup's audit entry (with ``account_id``
    and ``session_id``, it finds the entry). Operators acknowledge alerts."""

    __tablename__ = "guard_alerts"

    alert_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    session_id: Mapped[str] = mapped_column(String(64), default="")
    client_id: Mapped[str | None] = mapped_column(String(64), index=True)
    decision: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    reasons: Mapped[str] = mapped_column(String(512), default="")
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    audit_ts_us: Mapped[int] = mapped_column(BigInteger, default=0)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))


class AccountNotice(Base):
    """A security notice kept for the account, beside the e-mail that told it.

    The mailbox may be the attacker's: every notice is also shown once at the
    professional's next strong login (``seen_at`` set then) and listed on demand."""

    __tablename__ = "account_notices"

    notice_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("accounts.account_id"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    subject: Mapped[str] = mapped_column(String(256))
    text: Mapped[str] = mapped_column(Text)
    seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Incident(Base):
    """A personal data breach being handled (``rempart.incident``): its definition (JSON,
    ``incident.definition.Definition``) and where it stands.

    ``status``: ``open`` → ``scoped`` → ``reported`` → ``notified`` → ``closed``; every
    change is a row of ``incident_transitions`` and an entry of the audit trail."""

    __tablename__ = "incidents"

    incident_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    definition: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    opened_by: Mapped[str] = mapped_column(String(128))
    aware_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    discovery: Mapped[str] = mapped_column(Text, default="")
    cause: Mapped[str] = mapped_column(Text, default="")
    delay_reason: Mapped[str] = mapped_column(Text, default="")
    planned_measures: Mapped[str] = mapped_column(Text, default="[]")
    circumstances: Mapped[str] = mapped_column(Text, default="{}")
    """What the operator states of the circumstances when the definition's defaults do not
    hold (``severity`` explains them): e.g. an honest mistake, known recipients."""
    scope_version: Mapped[int] = mapped_column(Integer, default=0)
    """The latest scoping's version (0: never scoped)."""
    reported_version: Mapped[int] = mapped_column(Integer, default=0)
    """The scope version the last CNIL report covered (0: none yet)."""
    report_baseline_version: Mapped[int] = mapped_column(Integer, default=0)
    """The version the last report completed (0: it was the initial notification): its
    new persons are those first found after this version."""
    definition_changed: Mapped[bool] = mapped_column(Boolean, default=False)
    """The definition grew since the latest scoping: scope again before reporting."""


class IncidentTransition(Base):
    __tablename__ = "incident_transitions"

    transition_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("incidents.incident_id"), index=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status_from: Mapped[str] = mapped_column(String(16))
    status_to: Mapped[str] = mapped_column(String(16))
    operator: Mapped[str] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text, default="")


class IncidentScope(Base):
    """One version of an incident's scope: the aggregates (``ScopeSummary`` as JSON)."""

    __tablename__ = "incident_scopes"

    incident_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("incidents.incident_id"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    scoped_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    operator: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(512))
    verified: Mapped[bool] = mapped_column(Boolean)
    summary: Mapped[str] = mapped_column(Text)


class IncidentExposure(Base):
    """One person an incident exposed, named by pseudonym (never the NIR): what the
    notification campaign reads. ``version`` is the scope version that first found them."""

    __tablename__ = "incident_exposures"

    incident_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("incidents.incident_id"), primary_key=True
    )
    pseudonym: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    records: Mapped[int] = mapped_column(Integer)
    first_us: Mapped[int] = mapped_column(BigInteger)
    last_us: Mapped[int] = mapped_column(BigInteger)
    accounts: Mapped[str] = mapped_column(Text)
    """Comma-separated account ids that read the person."""
    categories: Mapped[str] = mapped_column(String(80))
    reveals: Mapped[str] = mapped_column(String(80))
    department: Mapped[str | None] = mapped_column(String(3))
    resolved: Mapped[bool] = mapped_column(Boolean)
    """Whether an insured person matched the pseudonym when scoped."""
    has_email: Mapped[bool] = mapped_column(Boolean)
    """Whether the insurer held an e-mail address for them when scoped."""


class Campaign(Base):
    """Telling the persons an incident exposed (``rempart.notify.campaign``, Art. 34).

    ``kind``: ``initial`` (the first campaign of an incident) or ``complementary`` (only
    the persons a later scope added and no earlier campaign of the incident planned).
    ``status``: ``planned`` → ``running`` → ``done`` (every message sent, printed, or
    given up and turned into a letter or an unreachable person)."""

    __tablename__ = "campaigns"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("incidents.incident_id"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    scope_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="planned")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(128))
    persons: Mapped[int] = mapped_column(Integer, default=0)


class CampaignRecipient(Base):
    """One person a campaign tells; at most one per incident (``uq`` on incident and
    pseudonym), so that no later campaign of the incident tells them again.

    What the notice says of them (their own categories, the period) is copied from the
    exposure when planned: a later re-scope does not change a notice already planned.
    ``reachable``: empty when a channel exists, else why not (``unknown_person``,
    ``no_address``)."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        Index("uq_campaign_recipients_person", "incident_id", "pseudonym", unique=True),
    )

    recipient_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("campaigns.campaign_id"), index=True
    )
    incident_id: Mapped[int] = mapped_column(Integer)
    pseudonym: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str] = mapped_column(String(24), unique=True)
    """``notify.breach.codes.person_reference``: on the letter, in the print manifest and
    in the e-mail's Message-ID (how a bounce finds its person)."""
    categories: Mapped[str] = mapped_column(String(80))
    first_us: Mapped[int] = mapped_column(BigInteger)
    last_us: Mapped[int] = mapped_column(BigInteger)
    unreachable: Mapped[str] = mapped_column(String(32), default="")


class NoticeMessage(Base):
    """One notice to one person through one channel (the campaign's durable outbox).

    ``state``: ``planned`` → ``rendered`` (a letter assigned to a print batch) →
    ``sent`` (e-mail accepted by the SMTP server) / ``printed`` (its batch written and
    recorded) or ``failed`` (e-mail refused or bounced: a letter is planned instead).
    At most one message per person and channel. ``code_hash`` is the keyed hash of the
    notice's verification code (``notify.codes``); the code itself is never stored."""

    __tablename__ = "notice_messages"
    __table_args__ = (
        Index("uq_notice_messages_channel", "recipient_id", "channel", unique=True),
        Index("ix_notice_messages_queue", "campaign_id", "channel", "state", "message_id"),
    )

    message_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recipient_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("campaign_recipients.recipient_id")
    )
    campaign_id: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), default="planned")
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(256))
    batch_id: Mapped[int | None] = mapped_column(Integer, index=True)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    address_flags: Mapped[str] = mapped_column(String(64), default="")
    """Letters: how the address block was fitted (``abbreviated``, ``truncated``)."""


class NoticeSent(Base):
    """The durable record, committed right after the SMTP server accepted a message and
    before the next one is handed over: what makes a crash resend at most that one.

    No foreign key on purpose: the runner holds its claimed messages locked (PostgreSQL
    ``FOR NO KEY UPDATE``) while this is written from a second connection."""

    __tablename__ = "notice_sent"

    message_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    campaign_id: Mapped[int] = mapped_column(Integer, index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PrintBatch(Base):
    """A print batch: one merged PDF and its CSV manifest, written atomically.

    ``state``: ``writing`` (members fixed, files being written: a rerun writes the same
    batch again, same names, same letters) → ``written``."""

    __tablename__ = "print_batches"

    batch_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("campaigns.campaign_id"), index=True
    )
    name: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="writing")
    letters: Mapped[int] = mapped_column(Integer)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    written_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Operator(Base):
    """A console operator (``rempart.console.operators``): the insurer's security staff,
    apart from the professionals. ``role``: ``analyst``, ``dpo`` or ``admin``;
    ``status``: ``active`` or ``disabled``. The TOTP secret is sealed like the
    professionals' (``SecretBox``, context ``operator:LOGIN``)."""

    __tablename__ = "operators"

    login: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    totp_secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    totp_last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(128))


class OperatorSession(Base):
    """A console session. The cookie holds a random token; only its SHA-256 is stored,
    so a copy of this table opens no session. ``expires_at`` is the absolute end; the
    idle end is ``last_seen_at`` plus the configured idle timeout."""

    __tablename__ = "operator_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    login: Mapped[str] = mapped_column(String(64), ForeignKey("operators.login"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(256), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ConsoleHourlyCount(Base):
    """The console's roll-up of the audit trail: entries per closed hour, event and
    decision. A closed hour never changes (entries are appended at the time they
    happen), so it is counted once; the open hour is counted live. Derived data: it
    can be emptied at any time and is rebuilt on demand."""

    __tablename__ = "console_hourly_counts"

    hour: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    """Hours since the Unix epoch (UTC)."""
    event: Mapped[str] = mapped_column(String(40), primary_key=True)
    decision: Mapped[str] = mapped_column(String(16), primary_key=True)
    entries: Mapped[int] = mapped_column(Integer)


class ConsoleHourDone(Base):
    """The closed hours already counted into ``console_hourly_counts`` (an hour with no
    entry leaves no count row, yet must not be counted again)."""

    __tablename__ = "console_hours_done"

    hour: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class Claim(Base):
    """A claim (care billed) from the billing system: ``rempart claims ingest`` (``source``
    ``file``) or the RabbitMQ stream (``stream``); see :mod:`rempart.claims`.

    ``claim_id`` is the idempotency key (the billing system's, or a SHA-256 of account,
    NIR and time); ``seq`` only grows, in commit order (writers lock the table on
    PostgreSQL, SQLite has one writer), so that a server follows the table by ``seq``.
    NIRs are in clear as in ``insured``: this is the data database, not a log."""

    __tablename__ = "claims"
    __table_args__ = ({"sqlite_autoincrement": True},)

    # INTEGER on SQLite (the rowid, with AUTOINCREMENT: never reused), BIGINT elsewhere.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    claim_id: Mapped[str] = mapped_column(String(128), unique=True)
    ts_us: Mapped[int] = mapped_column(BigInteger, index=True)
    account_id: Mapped[str] = mapped_column(String(64))
    nir: Mapped[str] = mapped_column(String(15))
    source: Mapped[str] = mapped_column(String(8))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MessageCheckCount(Base):
    """How many messages the public checker judged, per day (UTC), door, channel and
    verdict: the only thing it keeps (:mod:`rempart.messages.counts`). No text, no
    sender, no address, nothing that tells one check from another."""

    __tablename__ = "message_check_counts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    door: Mapped[str] = mapped_column(String(8), primary_key=True)
    """``cli``, ``api`` or ``page``."""
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    verdict: Mapped[str] = mapped_column(String(16), primary_key=True)
    checks: Mapped[int] = mapped_column(Integer)
