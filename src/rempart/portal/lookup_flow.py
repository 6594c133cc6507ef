"""What the portal keeps between two requests of a lookup: the answer card (shown once)
and a lookup waiting for a step-up. The lookup itself is every door's
(:func:`rempart.rights.guarded.guarded_lookup`). The portal never
puts a NIR in a URL or in the browser's history, so what it must carry from one page to
the next stays on the server, single use and short-lived, sealed (a copy of the
database does not show whose rights were read), bound to the session that asked: the
browser holds only a random handle in a ``__Host-`` cookie.

Framework-free: the routes (:mod:`rempart.portal.routes_lookup`) and the Pro Santé
Connect callback call these with a database session.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from rempart.audit.events import Origin
from rempart.auth.challenges import ChallengeStore
from rempart.auth.levels import LOOKUP_REQUIREMENT, YOUNG_KEY_DETAIL, StepUpRequired
from rempart.auth.service import Principal
from rempart.errors import RempartError
from rempart.nir import InvalidNIR
from rempart.portal.messages import french
from rempart.rights.guarded import caller_of, guarded_lookup
from rempart.rights.lookup import RightsRecord
from rempart.services import Services

__all__ = [
    "PENDING_PURPOSE",
    "PENDING_TTL_SECONDS",
    "RESULT_PURPOSE",
    "RESULT_TTL_SECONDS",
    "Card",
    "NothingToResume",
    "card_of",
    "keep_pending",
    "keep_result",
    "lookup_error_message",
    "resume_pending",
    "step_up_message",
    "take_result",
]

RESULT_PURPOSE = "portal-result"
# Long enough for the redirect to be followed on a slow counter's line, short enough
# that a card left behind is gone by the next customer.
RESULT_TTL_SECONDS = 120
PENDING_PURPOSE = "portal-pending"
# Time to find the key or put the card in the reader.
PENDING_TTL_SECONDS = 300

_store = ChallengeStore()


class NothingToResume(RempartError):
    """No lookup of the replaced session is waiting (expired, taken, or another's)."""

    code = "lookup_not_pending"
    status = 409

    def __init__(self) -> None:
        super().__init__("no lookup of this session is waiting for a step-up")


# -- the card ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """The answer as the professional reads it: every value already in French."""

    last_name: str
    first_name: str
    birth_date: str
    sex: str
    nir: str
    treating_doctor: str
    c2s: str
    ame: str
    ald: str

    def __repr__(self) -> str:
        return "Card(<redacted>)"

    def rows(self) -> list[tuple[str, str]]:
        """(label, value), in the order of the card."""
        return [
            ("Nom", self.last_name),
            ("Prénom", self.first_name),
            ("Date de naissance", self.birth_date),
            ("Sexe", self.sex),
            ("Numéro de sécurité sociale (NIR)", self.nir),
            ("Médecin traitant", self.treating_doctor),
            ("Complémentaire santé solidaire (C2S)", self.c2s),
            ("Aide médicale de l'État (AME)", self.ame),
            ("Affection de longue durée, prise en charge à 100 %", self.ald),
        ]


def _yes_no(value: bool) -> str:
    return "Oui" if value else "Non"


def _french_date(value: date) -> str:
    return value.strftime("%d/%m/%Y")


def _spaced_nir(value: str) -> str:
    """As printed on the carte Vitale: 1 85 03 75 056 001 23."""
    cuts = (1, 3, 5, 7, 10, 13)
    parts = [value[a:b] for a, b in zip((0, *cuts), (*cuts, len(value)), strict=True)]
    return " ".join(p for p in parts if p)


def card_of(record: RightsRecord) -> Card:
    doctor = record.treating_doctor
    if doctor is None:
        doctor_text = "Aucun médecin traitant déclaré"
    else:
        doctor_text = f"Dr {doctor.name}" + (f" (RPPS {doctor.rpps})" if doctor.rpps else "")
    return Card(
        last_name=record.last_name.upper(),
        first_name=record.first_name,
        birth_date=_french_date(record.birth_date),
        sex={1: "Homme", 2: "Femme"}.get(record.sex, "Non renseigné"),
        nir=_spaced_nir(record.nir),
        treating_doctor=doctor_text,
        c2s=_yes_no(record.c2s),
        ame=_yes_no(record.ame),
        ald=_yes_no(record.ald),
    )


# -- kept on the server between two requests ---------------------------------------------------


def _context(purpose: str, account_id: str) -> str:
    return f"{purpose}:{account_id}"


def _keep(
    services: Services,
    session: Session,
    *,
    purpose: str,
    account_id: str,
    session_id: str,
    content: dict[str, str],
    ttl_seconds: int,
    handle: str | None = None,
) -> str:
    sealed = services.auth.secret_box.seal(
        json.dumps(content, separators=(",", ":")), context=_context(purpose, account_id)
    )
    return _store.put(
        session,
        purpose=purpose,
        account_id=account_id,
        payload={"session_id": session_id, "sealed": base64.b64encode(sealed).decode("ascii")},
        ttl_seconds=ttl_seconds,
        handle=handle,
    )


def _take(
    services: Services,
    session: Session,
    *,
    purpose: str,
    handle: str,
    account_id: str,
    session_id: str,
) -> dict[str, str] | None:
    """The kept content, removed, if it is this account's and was kept for ``session_id``;
    else None (and it is removed all the same: a handle serves once)."""
    if not handle:
        return None
    kept = _store.take(session, handle=handle[:128], purpose=purpose)
    if (
        kept is None
        or kept.account_id != account_id
        or kept.payload.get("session_id") != session_id
    ):
        return None
    sealed = kept.payload.get("sealed")
    if not isinstance(sealed, str):
        return None
    try:
        content = json.loads(
            services.auth.secret_box.open(
                base64.b64decode(sealed), context=_context(purpose, account_id)
            )
        )
    except ValueError:
        return None
    if not isinstance(content, dict) or not all(isinstance(v, str) for v in content.values()):
        return None
    return content


def keep_result(
    services: Services, session: Session, principal: Principal, record: RightsRecord
) -> str:
    """Keeps the card for the page that shows it; returns the handle for the cookie."""
    card = card_of(record)
    return _keep(
        services,
        session,
        purpose=RESULT_PURPOSE,
        account_id=principal.account_id,
        session_id=principal.session_id,
        content={name: getattr(card, name) for name in Card.__dataclass_fields__},
        ttl_seconds=RESULT_TTL_SECONDS,
    )


def take_result(
    services: Services, session: Session, principal: Principal, handle: str
) -> Card | None:
    """The card, once: None when already shown, expired, or kept for another session."""
    content = _take(
        services,
        session,
        purpose=RESULT_PURPOSE,
        handle=handle,
        account_id=principal.account_id,
        session_id=principal.session_id,
    )
    if content is None:
        return None
    try:
        return Card(**content)
    except TypeError:
        return None


def keep_pending(
    services: Services,
    session: Session,
    principal: Principal,
    *,
    raw_nir: str,
    raw_birth_date: str,
    handle: str | None = None,
) -> str:
    """Keeps a lookup the guard stepped up, to be resumed after the key or the card;
    returns the handle for the cookie."""
    return _keep(
        services,
        session,
        purpose=PENDING_PURPOSE,
        account_id=principal.account_id,
        session_id=principal.session_id,
        content={"nir": raw_nir, "birth_date": raw_birth_date},
        ttl_seconds=PENDING_TTL_SECONDS,
        handle=handle,
    )


def resume_pending(
    services: Services,
    session: Session,
    principal: Principal,
    handle: str,
    origin: Origin,
    *,
    replaced_session_id: str,
) -> str:
    """After a step-up: the lookup that was waiting, done now as ``principal`` (the new
    session, which replaced ``replaced_session_id``); returns the handle of the card
    kept for the new session (:func:`keep_result`).

    Call it once the new session is committed. It commits (the trail is written before
    the card is kept). Raises :class:`NothingToResume` when no lookup of the replaced
    session is waiting; otherwise what a lookup raises (``InvalidNIR``, ``NotFound``,
    ``AccountSuspended``…). If the guard asks again (a young key), the lookup is kept
    again, for the new session under the same handle, and :class:`StepUpRequired` raised.
    """
    content = _take(
        services,
        session,
        purpose=PENDING_PURPOSE,
        handle=handle,
        account_id=principal.account_id,
        session_id=replaced_session_id,
    )
    if content is None or "nir" not in content or "birth_date" not in content:
        session.commit()  # the handle is spent
        raise NothingToResume()
    raw_nir, raw_birth_date = content["nir"], content["birth_date"]
    LOOKUP_REQUIREMENT.check(principal)
    caller = caller_of(principal, origin, channel="portal")
    try:
        record = guarded_lookup(
            services, session, caller, raw_nir=raw_nir, raw_birth_date=raw_birth_date
        )
    except StepUpRequired:
        # The guard's refusal is committed; the lookup waits again, for the new session.
        keep_pending(
            services,
            session,
            principal,
            raw_nir=raw_nir,
            raw_birth_date=raw_birth_date,
            handle=handle[:128],
        )
        session.commit()
        raise
    result = keep_result(services, session, principal, record)
    session.commit()
    return result


# -- what the professional reads -----------------------------------------------------------------


def lookup_error_message(exc: Exception) -> str:
    """The French sentence for a lookup that did not answer. An unknown person and a wrong
    birth date are one and the same refusal (``not_found``)."""
    if isinstance(exc, InvalidNIR):
        return french(exc.code.value)
    if isinstance(exc, RempartError):
        return french(exc)
    return french("unavailable")


def step_up_message(exc: StepUpRequired) -> str:
    """Why the key or the card is asked for: a young key is told so, and what to do."""
    return french("step_up_young_key" if exc.detail == YOUNG_KEY_DETAIL else "step_up_required")
