"""The rights lookup as every door does it — the API, the portal's form, a lookup resumed
after a step-up: who asks (:func:`caller_of`), the guard's decision, then the audited
read (:func:`guarded_lookup`). One path, so that no door can skip the guard or the trail.

Framework-free: the HTTP routes call these with a database session.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from sqlalchemy.orm import Session

from rempart.audit.chain import CATEGORIES
from rempart.audit.events import Origin
from rempart.auth.levels import ACR_CLIENT
from rempart.auth.service import Principal
from rempart.errors import RempartError
from rempart.nir import InvalidNIR, NIRError
from rempart.ops.metrics import count_lookup
from rempart.rights.lookup import PersonRead, RightsRecord, read_person
from rempart.rights.service import Caller, InvalidBirthDate, LookupInput, audited_lookup
from rempart.services import Services

__all__ = ["BIRTH_DATE_MAX_LENGTH", "NIR_MAX_LENGTH", "caller_of", "check_input", "guarded_lookup"]

# The API's limits on a lookup's fields (``rempart.api.schemas.LookupRequest``).
NIR_MAX_LENGTH = 64
BIRTH_DATE_MAX_LENGTH = 32

# As the API's schema refuses them (``rempart.api.schemas``; not imported: that package
# brings the web framework along).
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def caller_of(principal: Principal, origin: Origin, *, channel: str | None = None) -> Caller:
    """Who asks, as the audit trail and the guard see them. ``channel``: the session's own
    unless the route knows better (the portal's pages say ``portal``)."""
    return Caller(
        account_id=principal.account_id,
        session_id=principal.session_id,
        acr=principal.acr,
        client_ip=origin.client_ip,
        user_agent=origin.user_agent,
        channel=channel or principal.channel,
        client_id=principal.client_id if principal.acr == ACR_CLIENT else None,
        factor_established=principal.factor_established,
    )


def check_input(raw_nir: str, raw_birth_date: str) -> None:
    """What the API's schema refuses before the guard is asked (an empty, overlong or
    control-character value), refused the same way from a form."""
    if not raw_nir or len(raw_nir) > NIR_MAX_LENGTH:
        raise InvalidNIR(NIRError.LENGTH)
    if _CONTROLS.search(raw_nir):
        raise InvalidNIR(NIRError.CHARACTERS)
    if (
        not raw_birth_date
        or len(raw_birth_date) > BIRTH_DATE_MAX_LENGTH
        or _CONTROLS.search(raw_birth_date)
    ):
        raise InvalidBirthDate("birth_date must be a date written YYYY-MM-DD")


def guarded_lookup(
    services: Services,
    session: Session,
    caller: Caller,
    *,
    raw_nir: str,
    raw_birth_date: str,
    returned: Collection[str] = CATEGORIES,
) -> RightsRecord:
    """The guard decides before any right leaves (a refusal is recorded, then raised:
    :class:`StepUpRequired`, ``AccountSuspended``…); then the audited answer, committed
    before the record is returned.

    The input is parsed once. The person's row is read in the statement that reads the
    guard's facts about them (one round trip, not two): it stays inside the
    :class:`~rempart.rights.lookup.PersonRead` until the guard has let the lookup go on
    and the entry is being written. ``returned``: the data categories the door hands
    over (:func:`~rempart.rights.service.audited_lookup`)."""
    try:
        record = _guarded_lookup(
            services,
            session,
            caller,
            raw_nir=raw_nir,
            raw_birth_date=raw_birth_date,
            returned=returned,
        )
    except InvalidNIR:
        count_lookup("invalid_nir", caller.channel)
        raise
    except RempartError as exc:
        count_lookup(exc.code, caller.channel)
        raise
    count_lookup("ok", caller.channel)
    return record


def _guarded_lookup(
    services: Services,
    session: Session,
    caller: Caller,
    *,
    raw_nir: str,
    raw_birth_date: str,
    returned: Collection[str],
) -> RightsRecord:
    lookup = LookupInput.parse(raw_nir, raw_birth_date)
    # A malformed NIR names nobody: the guard is told so without a query.
    read = read_person(session, lookup.nir) if lookup.nir is not None else PersonRead(())
    guard = services.guard
    verdict = guard.check(session, caller, lookup, read=read) if guard is not None else None
    return audited_lookup(
        session,
        services.audit,
        caller,
        lookup,
        pseudonym_key=services.settings.keys.pseudonym_key,
        read=read,
        guard_decision=verdict.decision if verdict else "",
        guard_reasons=verdict.reasons if verdict else "",
        returned=returned,
    )
