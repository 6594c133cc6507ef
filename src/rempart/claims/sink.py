"""What the claims feeds need of the guard: one hook."""

from __future__ import annotations

from typing import Protocol

__all__ = ["ClaimSink"]


class ClaimSink(Protocol):
    """:class:`~rempart.guard.inline.InlineGuard` as the feeds see it.

    ``observe_claim`` is idempotent (the guard keeps the latest time per unit and
    person); it raises :class:`~rempart.guard.redis_state.StateUnavailable` when the
    shared state cannot be written, and
    :class:`~rempart.guard.engine.UnknownAccount` for an account it does not know."""

    def observe_claim(self, account_id: str, nir: str, ts_us: int) -> None: ...
