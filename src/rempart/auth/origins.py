"""Networks and devices an account logs in from, to notice the ones never seen before.

A network is the address's /24 (IPv4) or /48 (IPv6): a professional's box keeps
its prefix across most reconnections, a botnet or a remote attacker does not
share it. A device is the user agent string as sent. Both are stored as keyed
hashes: the table alone tells nobody where a professional works from.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rempart.audit.events import Origin
from rempart.network import network_of
from rempart.store.models import KnownOrigin

__all__ = ["NewOrigin", "OriginTracker"]


@dataclass(frozen=True, slots=True)
class NewOrigin:
    network: bool
    device: bool
    first_login: bool

    @property
    def any(self) -> bool:
        return (self.network or self.device) and not self.first_login

    @property
    def reasons(self) -> str:
        return ",".join(k for k, v in (("network", self.network), ("device", self.device)) if v)


class OriginTracker:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _hash(self, kind: str, value: str) -> str:
        message = f"{kind}:{value}".encode("utf-8", "replace")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _values(self, origin: Origin) -> dict[str, str]:
        return {
            "network": self._hash("network", network_of(origin.client_ip)),
            "device": self._hash("device", origin.user_agent.strip()),
        }

    def check(self, session: Session, account_id: str, origin: Origin) -> NewOrigin:
        """Which of this origin's network and device the account has never used.

        An account's very first login is new by definition and is not reported as such.
        """
        known = {
            (row.kind, row.value_hash)
            for row in session.execute(
                select(KnownOrigin.kind, KnownOrigin.value_hash).where(
                    KnownOrigin.account_id == account_id
                )
            )
        }
        values = self._values(origin)
        return NewOrigin(
            network=("network", values["network"]) not in known,
            device=("device", values["device"]) not in known,
            first_login=not known,
        )

    def remember(
        self, session: Session, account_id: str, origin: Origin, *, now: datetime | None = None
    ) -> None:
        """Records the origin's network and device (``now``: the login's own time, so that
        a network first seen at a login is dated exactly as that login's session)."""
        now = now or datetime.now(UTC)
        for kind, value_hash in self._values(origin).items():
            touched = session.execute(
                update(KnownOrigin)
                .where(
                    KnownOrigin.account_id == account_id,
                    KnownOrigin.kind == kind,
                    KnownOrigin.value_hash == value_hash,
                )
                .values(last_seen=now)
            )
            if getattr(touched, "rowcount", 0):
                continue
            try:
                # A concurrent login from the same new origin may insert it first: fine.
                with session.begin_nested():
                    session.add(
                        KnownOrigin(
                            account_id=account_id,
                            kind=kind,
                            value_hash=value_hash,
                            first_seen=now,
                            last_seen=now,
                        )
                    )
            except IntegrityError:
                pass
