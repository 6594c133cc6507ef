"""The administrator's pages: disabling an operator, the running configuration
(no web framework here).

The configuration page lists chosen settings by name: a secret (keys, the database's or
SMTP server's password, the PSC client secret) is never read here, only whether it is
set. Database and Redis URLs are reduced to their kind."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from rempart.config import Settings
from rempart.console.dpo_texts import french_moment
from rempart.console.operators import ROLE_NAMES, ROLES, ConsoleSession, OperatorService, Role
from rempart.errors import RempartError
from rempart.store.engine import as_utc
from rempart.store.models import Operator, OperatorSession

__all__ = [
    "AdminError",
    "ConfigurationLine",
    "OperatorLine",
    "configuration_lines",
    "disable_operator",
    "operator_lines",
]


class AdminError(RempartError):
    def __init__(self, code: str, detail: str, status: int = 409) -> None:
        super().__init__(detail, code=code, status=status)


@dataclass(frozen=True)
class OperatorLine:
    login: str
    role: str
    role_text: str
    status: str
    created_at: str
    created_by: str


def operator_lines(session: Session, operators: OperatorService) -> list[OperatorLine]:
    return [
        OperatorLine(
            login=o.login,
            role=o.role,
            role_text=ROLE_NAMES[Role(o.role)] if o.role in ROLES else o.role,
            status=o.status,
            created_at=french_moment(as_utc(o.created_at)),
            created_by=o.created_by,
        )
        for o in operators.list(session)
    ]


def disable_operator(
    session: Session, operators: OperatorService, current: ConsoleSession, login: str
) -> None:
    """Disable ``login`` and end their sessions, audited with the administrator named.
    An administrator cannot disable themself (the console would lose its last one)."""
    login = login.strip().casefold()
    operator = session.get(Operator, login)
    if operator is None:
        raise AdminError("unknown_operator", f"no such operator: {login[:64]}", 404)
    if login == current.login:
        raise AdminError("self_disable", "an administrator cannot disable themself")
    if operator.status == "disabled":
        raise AdminError("already_disabled", f"{login} is already disabled")
    operator.status = "disabled"
    # resolve() refuses a disabled operator's sessions already; revoking them as well
    # leaves nothing to revive if the operator is enabled again.
    session.execute(
        update(OperatorSession)
        .where(OperatorSession.login == login, OperatorSession.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    operators.record_action(session, current, "operator_disabled", target=f"operator:{login}")


@dataclass(frozen=True)
class ConfigurationLine:
    section: str
    label: str
    value: str


def _yes(flag: bool) -> str:
    return "oui" if flag else "non"


def _database_kind(url: str | None) -> str:
    if url is None:
        return "la même que les données"
    backend = make_url(url).get_backend_name()
    return {"sqlite": "SQLite (fichier)", "postgresql": "PostgreSQL"}.get(backend, backend)


def configuration_lines(settings: Settings) -> list[ConfigurationLine]:
    """What the service runs with, for the administrator: no secret, no password, no URL
    that could hold one."""
    s = settings
    rows = [
        ("Service", "Environnement", "production" if s.env == "production" else "développement"),
        ("Service", "Organisme", s.organization_name),
        ("Service", "Journalisation", s.log_level),
        ("Service", "Fils de travail", str(s.worker_threads)),
        ("Service", "Taille maximale d'une requête (octets)", str(s.max_body_bytes)),
        ("Service", "Mandataires de confiance", ", ".join(str(n) for n in s.trusted_proxies)),
        ("Données", "Base de données", _database_kind(s.database_url)),
        ("Données", "Base du journal d'audit", _database_kind(s.audit_database_url)),
        ("Données", "Redis configuré", _yes(s.redis_url is not None)),
        ("Données", "Écriture du journal d'audit", s.audit_writer),
        ("Données", "Partitions du journal d'audit", str(s.audit_shards)),
        ("Données", "Conservation du journal (jours)", str(s.audit_retention_days)),
        ("Sessions", "Professionnels : inactivité (s)", str(s.session_idle_seconds)),
        ("Sessions", "Professionnels : durée maximale (s)", str(s.session_absolute_seconds)),
        ("Sessions", "Console : inactivité (s)", str(s.console_idle_seconds)),
        ("Sessions", "Console : durée maximale (s)", str(s.console_absolute_seconds)),
        (
            "Sessions",
            "Nouvelle origine : facteur résistant à l'hameçonnage exigé",
            _yes(s.new_origin_requires_phishing_resistant),
        ),
        ("Sessions", "Longueur minimale des mots de passe", str(s.password_min_length)),
        ("Garde-fou", "Garde-fou actif", _yes(s.guard_enabled)),
        (
            "Garde-fou",
            "Apprentissage seul jusqu'au",
            french_moment(s.guard_learn_until) if s.guard_learn_until else "non",
        ),
        ("Garde-fou", "Historique au démarrage (jours)", str(s.guard_history_days)),
        (
            "Garde-fou",
            "Réglages",
            "fichier fourni" if s.guard_config is None else "fichier propre au site",
        ),
        ("Limitation", "Fenêtre (s)", str(s.throttle_window_seconds)),
        ("Limitation", "Tentatives par adresse", str(s.throttle_address_attempts)),
        ("Limitation", "Échecs par adresse", str(s.throttle_address_failures)),
        ("Limitation", "Connexions par réseau", str(s.throttle_network_logins)),
        ("Limitation", "Échecs de connexion par réseau", str(s.throttle_network_failed_logins)),
        ("Limitation", "Échecs par compte", str(s.throttle_account_failures)),
        ("Limitation", "Attente de base (s)", str(s.throttle_backoff_base_seconds)),
        ("Limitation", "Attente maximale (s)", str(s.throttle_backoff_cap_seconds)),
        (
            "Limitation",
            "Échecs par minute, tout le service",
            str(s.throttle_global_failures_per_minute),
        ),
        ("Limitation", "Seuil de blocage du second facteur", str(s.mfa_lock_threshold)),
        (
            "Courriels",
            "Envoi",
            "serveur SMTP" if s.smtp_url is not None else "fichiers .eml (dossier de données)",
        ),
        ("Courriels", "Expéditeur", s.mail_from),
        ("Courriels", "Signature DKIM", _yes(s.dkim_private_key_file is not None)),
        ("Courriels", "Débit des avis (par seconde)", str(s.notice_mail_rate)),
        ("Connexion", "Pro Santé Connect configuré", _yes(s.psc_configured)),
        ("Connexion", "Niveau eIDAS minimal (PSC)", s.psc_min_acr),
        ("Connexion", "Émetteur TOTP", s.totp_issuer),
        ("Connexion", "WebAuthn : identifiant du site", s.webauthn_rp_id),
    ]
    return [ConfigurationLine(section, label, value) for section, label, value in rows]
