"""The controller's side of a notification, from configuration: who it is, and the
security measures that were in place before a breach (stated from the settings in
force, so that the report never claims a measure that was switched off)."""

from __future__ import annotations

from rempart.config import Settings
from rempart.incident.summary import Organization

__all__ = ["organization", "security_before"]


def organization(settings: Settings) -> Organization:
    return Organization(
        name=settings.organization_name,
        siren=settings.organization_siren,
        address=settings.organization_address,
        dpo_name=settings.dpo_name,
        dpo_email=settings.dpo_email,
        dpo_phone=settings.dpo_phone,
    )


def security_before(settings: Settings) -> list[str]:
    measures = [
        "Authentification des professionnels à deux facteurs obligatoire : mot de passe puis "
        "code TOTP, clé de sécurité (WebAuthn) ou carte CPS via Pro Santé Connect.",
        f"Sessions limitées à {settings.session_idle_seconds // 60} minutes d'inactivité et "
        f"{settings.session_absolute_seconds // 3600} heures au total.",
        "Limitation des tentatives de connexion par adresse, réseau et compte ; verrouillage "
        f"du second facteur après {settings.mfa_lock_threshold} codes erronés.",
        "Journal d'audit de chaque consultation, chaîné par empreintes SHA-256 et scellé par "
        "des points de contrôle signés (Ed25519), écrit avant toute réponse.",
        "NIR pseudonymisés (HMAC-SHA256 à clé secrète) dans les journaux et le journal d'audit.",
    ]
    if settings.guard_enabled:
        measures.append(
            "Garde-fou en ligne sur chaque consultation : demande de la carte CPS ou d'une clé "
            "de sécurité établie en cas de comportement inhabituel, suspension automatique du "
            "compte (ou du logiciel) en cas de moissonnage."
        )
    else:
        measures.append("Garde-fou en ligne désactivé dans la configuration en vigueur.")
    return measures
