"""French texts of the DPO's and administrator's pages: the domain's error codes and the
confirmations shown after a form, dates as operators read them (Paris time).

The domain speaks English with stable codes (``RempartError.code``); the console shows
the insurer's staff a French sentence for each code it can meet, and a generic one with
the code for the rest (never the English detail, never a 500)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from rempart.errors import RempartError
from rempart.nir import NIRError

__all__ = [
    "CAMPAIGN_STATUS",
    "CATEGORY_LABELS",
    "CIRCUMSTANCE_LABELS",
    "CONFIRMATIONS",
    "INCIDENT_STATUS",
    "error_text",
    "french_moment",
    "nir_error_text",
]

PARIS = ZoneInfo("Europe/Paris")

_ERRORS: dict[str, str] = {
    # incidents
    "unknown_incident": "Cet incident n'existe pas.",
    "incident_closed": "Cet incident est clos : il ne peut plus changer.",
    "invalid_name": "Donnez un nom à l'incident (200 caractères au plus).",
    "operator_required": "L'opérateur doit être nommé.",
    "unknown_account": "Un des comptes indiqués n'existe pas.",
    "unknown_alert": "Une des alertes sélectionnées n'existe pas.",
    "unknown_session": "Une des sessions indiquées n'existe pas.",
    "empty_definition": "Sélectionnez au moins une alerte ou indiquez au moins un compte.",
    "invalid_time_range": "La période est vide ou inversée.",
    "invalid_network": "Un réseau n'est pas en notation CIDR (par exemple 203.0.113.0/24).",
    "not_scoped": "Évaluez d'abord le périmètre de l'incident.",
    "incident_changed": "La définition a changé pendant l'évaluation : évaluez de nouveau.",
    "definition_changed": "La définition a grandi depuis la dernière évaluation : "
    "évaluez de nouveau le périmètre avant d'établir la notification.",
    "scope_outdated": "La définition a grandi depuis la dernière évaluation : "
    "évaluez de nouveau le périmètre avant de planifier une campagne.",
    "audit_unavailable": "Le journal d'audit est momentanément indisponible. "
    "Réessayez dans quelques minutes.",
    "report_contains_nir": "La notification contiendrait un NIR : elle n'a pas été établie.",
    "invalid_circumstances": "Une circonstance n'a pas une valeur de la méthode ENISA : "
    "choisissez-la dans la liste.",
    # campaigns
    "unknown_campaign": "Cette campagne n'existe pas.",
    "nothing_to_notify": "Toutes les personnes exposées figurent déjà dans une campagne "
    "de cet incident.",
    "campaign_busy": "Un autre processus envoie déjà cette campagne.",
    "campaign_running": "Cette campagne est déjà en cours d'envoi dans la console.",
    # operators
    "invalid_login": "Un identifiant compte de 2 à 64 caractères : lettres minuscules, "
    "chiffres, « . », « _ » ou « - ».",
    "invalid_role": "Choisissez un rôle de la liste.",
    "operator_exists": "Un opérateur porte déjà cet identifiant.",
    "weak_password": "Mot de passe trop faible : choisissez une phrase de passe plus "
    "longue, absente des listes de mots de passe courants.",
    "unknown_operator": "Cet opérateur n'existe pas.",
    "self_disable": "Vous ne pouvez pas désactiver votre propre compte.",
    "already_disabled": "Cet opérateur est déjà désactivé.",
}

_NIR_ERRORS: dict[NIRError, str] = {
    NIRError.LENGTH: "Un NIR compte 15 caractères (13 chiffres et une clé de 2 chiffres).",
    NIRError.CHARACTERS: "Un NIR ne contient que des chiffres (sauf 2A ou 2B pour la Corse).",
    NIRError.SEX: "Le premier chiffre du NIR doit être 1 ou 2 (7 ou 8 pour un numéro provisoire).",
    NIRError.MONTH: "Le mois de naissance du NIR doit être compris entre 01 et 12.",
    NIRError.DEPARTMENT: "Le lieu de naissance du NIR n'est pas un département connu.",
    NIRError.KEY: "La clé du NIR ne correspond pas au numéro : vérifiez la saisie.",
}

CONFIRMATIONS: dict[str, str] = {
    "incident_ouvert": "Incident ouvert. Évaluez maintenant son périmètre.",
    "definition_agrandie": "Définition agrandie. Évaluez de nouveau le périmètre.",
    "perimetre_evalue": "Périmètre évalué.",
    "notification_etablie": "Notification à la CNIL établie ; le registre l'indique.",
    "incident_decrit": "Description enregistrée. La notification à la CNIL la reprendra "
    "la prochaine fois qu'elle sera établie.",
    "incident_clos": "Incident clos. Il reste au registre et ne peut plus changer.",
    "campagne_planifiee": "Campagne planifiée. Vérifiez l'aperçu avant de la lancer.",
    "campagne_lancee": "Envoi lancé. Actualisez la page pour suivre l'avancement.",
    "apercu_ecrit": "Aperçu écrit.",
    "operateur_desactive": "Opérateur désactivé ; ses sessions sont terminées.",
}

INCIDENT_STATUS: dict[str, str] = {
    "open": "ouvert",
    "scoped": "périmètre évalué",
    "reported": "notifié à la CNIL",
    "notified": "personnes informées",
    "closed": "clos",
}

CAMPAIGN_STATUS: dict[str, str] = {
    "planned": "planifiée",
    "running": "en cours",
    "done": "terminée",
}

CATEGORY_LABELS: dict[str, str] = {
    "nir": "NIR",
    "identity": "Identité",
    "treating_doctor": "Médecin traitant",
    "c2s": "C2S",
    "ame": "AME",
    "ald": "ALD",
}


CIRCUMSTANCE_LABELS: dict[str, tuple[str, dict[str, str]]] = {
    "recipients": (
        "Destinataires des données",
        {
            "none": "Aucun : les données n'ont pas quitté le service",
            "known": "Des destinataires connus et identifiés",
            "unknown": "Des personnes non identifiées (accès compromis)",
        },
    ),
    "malicious": (
        "Intention malveillante",
        {
            "oui": "Oui : accès utilisés sans autorisation",
            "non": "Non : erreur sans intention de nuire",
        },
    ),
    "integrity": (
        "Perte d'intégrité",
        {
            "none": "Aucune : aucune donnée modifiée",
            "recoverable": "Données modifiées, original rétablissable",
            "lost": "Données modifiées, original perdu",
        },
    ),
    "availability": (
        "Perte de disponibilité",
        {
            "none": "Aucune : les données restent disponibles",
            "temporary": "Indisponibilité temporaire",
            "permanent": "Indisponibilité définitive",
        },
    ),
}
"""The ENISA circumstances of a breach (``incident/severity.py``), as the form offers
them: (the question, {value: answer})."""


def error_text(exc: RempartError) -> str:
    """The French sentence for a domain error."""
    return _ERRORS.get(
        exc.code, f"L'opération a été refusée (code « {exc.code} »). Vérifiez la saisie."
    )


def nir_error_text(code: NIRError) -> str:
    return _NIR_ERRORS[code]


def french_moment(moment: datetime | None) -> str:
    """``04/12/2026 09:41`` in Paris time; an empty string for none."""
    if moment is None:
        return ""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(PARIS).strftime("%d/%m/%Y %H:%M")
