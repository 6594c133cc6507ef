"""Managing an account's security keys: the rules the API and the portal share.

Registration is guarded so that a phished password + TOTP session cannot plant the
attacker's own key: the first key needs a proof a mailbox thief cannot have (a recent
Pro Santé Connect login, or the enrolment code the insurer posts, see
:meth:`~rempart.auth.recovery.RecoveryService.enrolment_proof`); a further key, and
removing one, need the CPS card or an *established* key (past probation, not enrolled
from a new network). A key enrolled from a network the account had not used before the
enrolling session is marked so, and never answers the guard's step-up.

Every change is recorded by :class:`~rempart.auth.webauthn.WebAuthnService` and told to
the professional here (e-mail and pending notice): whoever holds the session, the owner
hears of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from rempart.audit.events import Origin
from rempart.auth.levels import (
    ACR_CPS,
    ACR_PASSWORD_TOTP,
    ACR_PSC,
    ACR_WEBAUTHN,
    AuthRequirement,
    require_established_factor,
)
from rempart.auth.recovery import RecoveryService
from rempart.auth.service import AuthService, Principal
from rempart.auth.webauthn import (
    Ceremony,
    RegistrationCredentialJSON,
    RenamedKey,
    WebAuthnService,
)
from rempart.store.models import WebAuthnCredential

__all__ = ["FIRST_KEY_REQUIREMENT", "KeyEnrolment"]

# Asking for a first key's options needs a recent complete login; registering it needs
# more (``enrolment_proof``), checked with the answer, where the enrolment code comes.
FIRST_KEY_REQUIREMENT = AuthRequirement(
    (ACR_PASSWORD_TOTP, ACR_PSC, ACR_CPS, ACR_WEBAUTHN), max_age=600
)


@dataclass(frozen=True)
class KeyEnrolment:
    """Adding, renaming and removing the keys of the session's own account."""

    auth: AuthService
    webauthn: WebAuthnService
    recovery: RecoveryService

    def is_first_key(self, session: Session, account_id: str) -> bool:
        return not self.webauthn.has_credentials(session, account_id)

    def options(
        self,
        session: Session,
        principal: Principal,
        *,
        enrolment_code: str | None = None,
        check_proof: bool = False,
    ) -> Ceremony:
        """Options for ``navigator.credentials.create()``, or RFC 9470's
        :class:`~rempart.auth.levels.StepUpRequired` when the session may not add a key.

        ``check_proof``: the caller already has the enrolment code (the portal's form sends
        it with both calls), so a first key's proof is checked now, before the professional
        touches the key for nothing; the code is still spent only by :meth:`register`."""
        if not self.is_first_key(session, principal.account_id):
            require_established_factor(principal.acr, principal.factor_established)
        else:
            FIRST_KEY_REQUIREMENT.check(principal)
            if check_proof:
                self.recovery.enrolment_proof(principal, enrolment_code=enrolment_code)
        return self.webauthn.registration_options(
            session, account_id=principal.account_id, session_id=principal.session_id
        )

    def register(
        self,
        session: Session,
        principal: Principal,
        *,
        handle: str,
        credential: RegistrationCredentialJSON,
        label: str,
        origin: Origin,
        enrolment_code: str | None = None,
    ) -> WebAuthnCredential:
        """Verifies the browser's answer and stores the key; a first key's enrolment code
        is spent once the key is verified (a failed ceremony keeps the letter's code)."""
        proof = self._registration_allowed(session, principal, enrolment_code)
        row = self.webauthn.register(
            session,
            account_id=principal.account_id,
            handle=handle,
            credential=credential,
            label=label,
            session_id=principal.session_id,
            origin=origin,
            new_network=self._enrolled_from_new_network(session, principal, origin),
        )
        if proof == "enrolment_code" and enrolment_code:
            self.recovery.spend_enrolment_code(
                session, principal, origin, enrolment_code, event="webauthn_register_failed"
            )
        self.auth.notify_professional(
            session,
            principal.account_id,
            "webauthn_registered",
            label=row.label,
            when=row.created_at,
        )
        return row

    def remove(
        self, session: Session, principal: Principal, credential_id: str, origin: Origin
    ) -> WebAuthnCredential:
        """Removes a key; needs a phishing-resistant, established session."""
        require_established_factor(principal.acr, principal.factor_established)
        row = self.webauthn.remove(
            session,
            account_id=principal.account_id,
            credential_id=credential_id,
            session_id=principal.session_id,
            origin=origin,
        )
        self.auth.notify_professional(
            session, principal.account_id, "webauthn_removed", label=row.label
        )
        return row

    def rename(
        self,
        session: Session,
        principal: Principal,
        credential_id: str,
        label: str,
        origin: Origin,
    ) -> RenamedKey:
        """Renames a key. Any session of the account may: a name opens nothing, and the
        owner is told both names (a key renamed to look like another is seen)."""
        renamed = self.webauthn.rename(
            session,
            principal.account_id,
            credential_id,
            label,
            origin,
            session_id=principal.session_id,
        )
        if renamed.previous != renamed.label:
            self.auth.notify_professional(
                session,
                principal.account_id,
                "webauthn_renamed",
                previous=renamed.previous,
                label=renamed.label,
            )
        return renamed

    def _registration_allowed(
        self, session: Session, principal: Principal, enrolment_code: str | None
    ) -> str | None:
        """Raises unless the session may register a key. For a first key, returns the proof
        (``enrolment_code``: to spend once the key is verified); None for a further key."""
        if not self.is_first_key(session, principal.account_id):
            require_established_factor(principal.acr, principal.factor_established)
            return None
        return self.recovery.enrolment_proof(principal, enrolment_code=enrolment_code)

    def _enrolled_from_new_network(
        self, session: Session, principal: Principal, origin: Origin
    ) -> bool:
        """The enrolling session logged in from a network new to the account, or this
        request comes from a network the account has not used (the login remembered its
        own)."""
        if principal.new_network:
            return True
        return self.auth.origins.check(session, principal.account_id, origin).network
