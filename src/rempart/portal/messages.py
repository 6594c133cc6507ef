"""What the portal says, in French, for each stable error code of the domain.

The codes are the API's (``{"error": code}``); a page shows the sentence, never the
code alone. A code without a sentence here gets :data:`FALLBACK`.
"""

from __future__ import annotations

from rempart.errors import RempartError

__all__ = ["FALLBACK", "MESSAGES", "french"]

FALLBACK = "Le service ne peut pas répondre pour le moment. Réessayez dans quelques minutes."

MESSAGES: dict[str, str] = {
    "invalid_credentials": "Identifiant ou mot de passe incorrect.",
    "invalid_mfa_code": "Code incorrect ou déjà utilisé. Attendez le code suivant et réessayez.",
    "mfa_locked": "Trop de codes erronés ont été saisis pour ce compte : connectez-vous avec "
    "votre clé de sécurité ou votre carte CPS, ou appelez le service sécurité.",
    "second_factor_required": "Connectez-vous avec votre clé de sécurité ou votre carte CPS.",
    "insufficient_user_authentication": "Une vérification plus forte est nécessaire : utilisez "
    "votre clé de sécurité ou votre carte CPS.",
    "phishing_resistant_required": "Première connexion depuis ce réseau ou cet appareil : "
    "utilisez votre clé de sécurité ou votre carte CPS.",
    "account_suspended": "Votre compte est suspendu.",
    "too_many_attempts": "Trop de tentatives. Réessayez dans quelques minutes.",
    "throttle_unavailable": FALLBACK,
    "audit_unavailable": "La consultation est momentanément impossible (journal d'audit "
    "indisponible). Aucune donnée n'a été lue. Réessayez dans quelques minutes.",
    "guard_unavailable": FALLBACK,
    "session_expired": "Votre session a pris fin : reconnectez-vous.",
    "invalid_token": "Votre session a pris fin : reconnectez-vous.",
    "webauthn_invalid": "La clé n'a pas été reconnue. Utilisez une clé enregistrée sur ce compte.",
    "webauthn_challenge_invalid": "La demande a expiré : recommencez.",
    "webauthn_clone_suspected": "Cette clé semble avoir été copiée : elle est refusée. "
    "Appelez le service sécurité.",
    "webauthn_not_registered": "Cette clé n'est pas enregistrée sur votre compte.",
    "webauthn_already_registered": "Cette clé est déjà enregistrée.",
    "webauthn_limit_reached": "Vous avez atteint le nombre maximal de clés : retirez-en une.",
    "invalid_enrolment_code": "Code d'enrôlement incorrect ou déjà utilisé.",
    "invalid_reset": "Code incorrect ou déjà utilisé.",
    "weak_password": "Ce mot de passe est trop faible : choisissez une phrase plus longue, "
    "sans votre nom ni votre identifiant.",
    "unavailable": FALLBACK,
    "step_up_card_required": "Pro Santé Connect sans carte (e-CPS) ne suffit pas pour cette "
    "vérification : refaites la consultation et utilisez votre carte CPS ou votre clé de "
    "sécurité.",
    "psc_not_configured": "La connexion avec Pro Santé Connect n'est pas disponible ici.",
    # The rights lookup (rempart.portal.lookup_flow). An unknown person and a wrong birth
    # date are the same refusal, ``not_found``: the page cannot tell which NIRs exist.
    "not_found": "Aucun assuré ne correspond à ce NIR et à cette date de naissance.",
    "invalid_birth_date": "La date de naissance n'est pas valide : indiquez une date passée "
    "(jour, mois, année).",
    "nir_length": "Le NIR compte 15 caractères : 13 chiffres puis la clé de 2 chiffres.",
    "nir_characters": "Le NIR ne contient que des chiffres (et 2A ou 2B pour la Corse).",
    "nir_sex": "Le NIR commence par 1 ou 2 (7 ou 8 pour un numéro provisoire).",
    "nir_month": "Le mois de naissance du NIR (4e et 5e chiffres) n'est pas valide.",
    "nir_department": "Le lieu de naissance du NIR (6e et 7e caractères) n'est pas un "
    "département connu.",
    "nir_key": "La clé du NIR (les 2 derniers chiffres) ne correspond pas au numéro : "
    "vérifiez la saisie.",
    "lookup_result_gone": "Ce résultat n'est plus affiché : refaites la consultation.",
    "lookup_not_pending": "La consultation en attente a expiré : refaites-la.",
    "step_up_required": "Par sécurité, confirmez que c'est bien vous : utilisez votre clé de "
    "sécurité ou votre carte CPS. La consultation reprendra ensuite.",
    "step_up_young_key": "Votre clé de sécurité a été ajoutée récemment ou depuis un réseau "
    "nouveau pour ce compte : elle ne peut pas encore servir à cette vérification. Utilisez "
    "votre carte CPS (Pro Santé Connect).",
    # The security page ("Sécurité du compte").
    "first_key_proof_required": "Pour ajouter votre première clé, saisissez le code "
    "d'enrôlement reçu par courrier. Il n'est accepté que dans les 10 minutes qui suivent une "
    "connexion par mot de passe et code : au-delà, déconnectez-vous puis reconnectez-vous. "
    "Vous pouvez aussi vous connecter avec votre carte CPS (Pro Santé Connect).",
    "established_key_required": "Pour ajouter ou retirer une clé, confirmez cette session avec "
    "une clé déjà enregistrée et sortie de sa période probatoire (« Confirmer avec ma clé »), "
    "ou connectez-vous avec votre carte CPS (Pro Santé Connect).",
    "young_key": "La clé utilisée pour cette connexion est encore en période probatoire (ou a "
    "été ajoutée depuis un réseau nouveau pour votre compte) : elle ne suffit pas encore. "
    "Connectez-vous avec votre carte CPS (Pro Santé Connect) ou avec une clé plus ancienne.",
    "recovery_codes_proof_required": "Pour créer des codes de secours, saisissez le code "
    "d'enrôlement reçu par courrier (dans les 10 minutes qui suivent une connexion par mot de "
    "passe et code), ou connectez-vous avec votre carte CPS ou une clé sortie de sa période "
    "probatoire.",
    "recovery_session": "Une session ouverte avec un code de secours ne peut ni créer de "
    "codes de secours ni ajouter une première clé : connectez-vous avec votre application "
    "d'authentification, votre clé ou votre carte CPS.",
    "wrong_current_password": "Le mot de passe actuel est incorrect.",
    "password_mismatch": "Les deux saisies du nouveau mot de passe sont différentes.",
    "password_code_required": "Saisissez le code à 6 chiffres de votre application "
    "d'authentification.",
    "session_not_found": "Cette session est déjà fermée.",
    "codes_already_shown": "Ces codes de secours ont déjà été affichés (ils ne sont montrés "
    "qu'une fois). Si vous ne les avez pas notés, créez-en de nouveaux.",
}


def french(exc: RempartError | str) -> str:
    """The sentence for an error (or a code)."""
    code = exc if isinstance(exc, str) else exc.code
    return MESSAGES.get(code, FALLBACK)
