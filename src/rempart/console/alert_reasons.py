"""The guard's reason codes in plain French, for the console's alerts.

Every code the guard writes (``guard.signals.REASONS``, the rules of
``guard.engine``, the inline driver's own) has a sentence; a code added later and not
yet translated is shown as it is, never hidden. A practice software's reasons come
prefixed ``client:`` (``guard.inline.CLIENT_REASON_PREFIX``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CLIENT_PREFIX", "FRENCH", "RULES", "Reason", "event_label", "explain", "explain_all"]

CLIENT_PREFIX = "client:"

# The rules the engine names first in a refused lookup's reasons (guard/engine.py).
RULES = frozenset(
    {
        "enumeration",
        "robot",
        "budget_far_exceeded",
        "stranger_persisting",
        "velocity",
        "session_new_network",
        "refused_network",
        "concurrent_new_network",
        "stranger_off_hours",
        "stranger_new_place",
        "challenged",
        "campaign_network",
        "campaign_device",
        "budget_exhausted",
    }
)

FRENCH: dict[str, str] = {
    # Signals (guard/signals.py REASONS).
    "account_suspended": "Le compte est suspendu : tout lui est refusé jusqu'à ce qu'un "
    "opérateur le rétablisse.",
    "unexplained": "Aucun lien de soins, médecin traitant déclaré ni facturation antérieure "
    "n'explique la consultation de cette personne.",
    "far_patient": "La personne habite loin du cabinet (ni dans son département ni dans un "
    "département voisin).",
    "new_network": "Le compte n'avait jamais travaillé depuis ce réseau.",
    "new_device": "Le compte n'avait jamais travaillé depuis cet appareil (navigateur ou "
    "logiciel).",
    "off_hours": "Le compte ne travaille presque jamais à cette heure-ci.",
    "low_conversion": "Les consultations non expliquées récentes du compte n'ont presque "
    "jamais donné lieu à une facturation.",
    "campaign_network": "Ce réseau, nouveau pour le compte, sert aussi à d'autres comptes "
    "sans lien entre eux (campagne).",
    "campaign_device": "Cet appareil, nouveau pour le compte, sert aussi à d'autres comptes "
    "sans lien entre eux (campagne).",
    "not_found": "Aucun assuré ne correspond à ce NIR et à cette date de naissance.",
    "malformed_nir": "Le NIR saisi n'est pas un numéro valide.",
    "enumeration": "Beaucoup de consultations du compte ne trouvent personne : des numéros "
    "sont essayés au hasard.",
    "velocity": "Le compte consulte plus vite qu'il ne l'a jamais fait.",
    "robot": "Des consultations non expliquées à la vitesse d'une machine, au-delà du budget "
    "du compte : un robot.",
    "budget_exhausted": "Le budget quotidien de consultations non expliquées du compte est épuisé.",
    "budget_far_exceeded": "Les consultations non expliquées ont continué bien au-delà du "
    "budget quotidien.",
    "challenged": "Une authentification renforcée a été demandée aujourd'hui ; les "
    "consultations non expliquées l'attendent.",
    "session_new_network": "Une session existante est revenue depuis un réseau que le compte "
    "n'avait jamais utilisé (session volée ?).",
    # Rules of the engine that are not signals.
    "stranger_persisting": "Un réseau et un appareil inconnus, déjà refusés, ont insisté : "
    "l'inconnu connaît les identifiants.",
    "refused_network": "Ce réseau et cet appareil ont été refusés récemment.",
    "concurrent_new_network": "Un réseau inconnu utilisé en même temps qu'un réseau habituel "
    "du compte : le compte est à deux endroits à la fois.",
    "stranger_off_hours": "Un réseau inconnu utilisé à une heure où le compte ne travaille jamais.",
    "stranger_new_place": "Un réseau et un appareil tous deux inconnus du compte, dont les "
    "lieux et appareils habituels sont connus : quelqu'un d'autre utilise ses identifiants.",
    # Raised by the account's owner from the portal (portal/disown.py).
    "reported_by_owner": "Le titulaire du compte a signalé depuis le portail des "
    "consultations qui ne venaient pas de lui (« Ce n'était pas moi ») : le compte est "
    "suspendu et un incident est ouvert.",
    # The inline driver's own codes (guard/inline.py).
    "guard_unavailable": "Le garde était indisponible : la consultation a été refusée par "
    "précaution.",
    "learning": "Période d'apprentissage : le garde a noté sa décision sans l'appliquer.",
    "step_up_passed": "La session avait déjà une authentification forte (carte CPS ou clé "
    "de sécurité établie) : l'authentification renforcée demandée était satisfaite.",
    "young_key": "La clé de sécurité de la session est trop récente pour satisfaire une "
    "authentification renforcée.",
}


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    text: str
    """The French sentence; the code itself when it has none."""
    client: bool
    """Decided on the practice software's record, not the professional's."""
    known: bool


def explain(code: str) -> Reason:
    """One code in French (``client:`` codes name the practice software)."""
    client = code.startswith(CLIENT_PREFIX)
    bare = code.removeprefix(CLIENT_PREFIX)
    text = FRENCH.get(bare)
    if text is None:
        return Reason(code, code, client, known=False)
    return Reason(code, f"Logiciel métier : {text}" if client else text, client, known=True)


def explain_all(codes: str | tuple[str, ...]) -> tuple[Reason, ...]:
    """Every code of a comma-separated list (or a tuple), in order."""
    items = codes.split(",") if isinstance(codes, str) else codes
    return tuple(explain(code) for code in items if code)


# What the trail's event and outcome codes mean, for the timeline. A code not listed
# is shown as it is (a new event is then visible, if not translated).
EVENT_LABELS = {
    "lookup": "consultation",
    "account_created": "compte créé",
    "account_suspended": "compte suspendu",
    "account_restored": "compte rétabli",
    "login_password_ok": "mot de passe vérifié",
    "login_succeeded": "connexion réussie",
    "login_failed": "échec de connexion",
    "login_refused": "connexion refusée",
    "login_throttled": "connexion ralentie (trop d'essais)",
    "login_new_origin": "connexion depuis un nouveau réseau ou appareil",
    "mfa_locked": "second facteur bloqué (trop de codes faux)",
    "mfa_lock_cleared": "blocage du second facteur levé",
    "mfa_reset": "second facteur réinitialisé",
    "password_reset": "mot de passe réinitialisé",
    "webauthn_registered": "clé de sécurité ajoutée",
    "webauthn_removed": "clé de sécurité retirée",
    "own_lookups_viewed": "« Mes consultations » affichées dans le portail",
    "account_disowned_lookups": "consultations signalées par le titulaire (« Ce n'était pas moi »)",
    "webauthn_renamed": "clé de sécurité renommée",
    "session_revoked": "session fermée par le professionnel",
    "sessions_revoked": "toutes les sessions fermées",
    "recovery_codes_created": "codes de secours créés",
    "password_changed": "mot de passe changé",
}
OUTCOME_LABELS = {
    "insufficient_user_authentication": "authentification renforcée demandée",
    "account_suspended": "compte suspendu",
    "client_suspended": "logiciel suspendu",
    "not_found": "personne non trouvée",
    "invalid_nir": "NIR mal formé",
    "refused": "refusé",
    "wrong_or_reused_totp": "code faux ou déjà utilisé",
}


def event_label(event: str, outcome: str) -> str:
    """The timeline's French wording of an entry (``consultation (compte suspendu)``)."""
    label = EVENT_LABELS.get(event, event)
    if outcome and outcome != "ok":
        label += f" ({OUTCOME_LABELS.get(outcome, outcome)})"
    return label
