"""The server follows the ``claims`` table and feeds its guard.

``rempart claims ingest`` runs in another process than the server, whose guard may
keep its state in memory: the server has to read what the command wrote. A
:class:`ClaimsFollower` thread reads the rows after the last one it fed, in ``seq``
order (the commit order: :mod:`rempart.claims.table`), every
``REMPART_CLAIMS_POLL_SECONDS``, and hands each to ``guard.observe_claim``. It moves
past a row only once the guard took it: when the guard's state is unavailable
(Redis down) or the database does not answer, it tries the same rows again at the
next pass, and skips nothing. A row whose account the guard does not know (removed
since) is passed over with a warning: it can never be taken.

At start it first feeds the claims of the last ``REMPART_GUARD_HISTORY_DAYS`` days
(the guard's warm start learns that much of the audit trail), so that a restarted
server keeps what billing showed it.

Several workers sharing one Redis state each feed the same claims: harmless, the
guard's claim registry keeps per unit and person the latest time (a maximum), so a
claim taken twice is taken once. The stream's consumer (:mod:`rempart.claims.consumer`)
feeds its claims at once and writes them to the table too, where this thread meets
them again: harmless for the same reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from sqlalchemy import Engine

from rempart.claims.sink import ClaimSink
from rempart.claims.table import claims_after, last_seq
from rempart.guard.engine import UnknownAccount
from rempart.ops.metrics import claim_applied, follower_pass
from rempart.periodic import Periodic

__all__ = ["ClaimsFollower"]

log = structlog.get_logger("rempart.claims")

DAY_US = 86_400_000_000


class ClaimsFollower(Periodic):
    """Feeds ``guard()``'s guard (None: the guard is disabled, nothing to feed) the
    table's claims; ``run_once`` is one pass, the thread repeats it."""

    def __init__(
        self,
        engine: Engine,
        guard: Callable[[], ClaimSink | None],
        *,
        interval_seconds: float,
        history_days: int,
        clock: Callable[[], float] = time.time,
        batch: int = 2_000,
    ) -> None:
        self._engine = engine
        self._guard = guard
        self._history_days = history_days
        self._clock = clock
        self._batch = batch
        self._cursor: int | None = None
        """The ``seq`` of the last row fed (None: not started)."""
        self._warm_up_to: int | None = None
        """While the start-up feed runs: the last ``seq`` it covers."""
        self.fed = 0
        self.skipped = 0
        # Its first pass at once: the start-up feed before the first lookups.
        super().__init__(
            "rempart-claims-follower",
            self._feed,
            interval_seconds=interval_seconds,
            failed="claims_follower_failed",
            logger=log,
            at_start=True,
        )

    @property
    def cursor(self) -> int | None:
        return self._cursor

    def run_once(self) -> int:
        """Feed every row not fed yet; returns how many were fed. Raises what the guard
        or the database raised (the rows from the failing one on stay to feed)."""
        guard = self._guard()
        if guard is None:
            return 0
        fed = 0
        with self._engine.connect() as connection:
            if self._cursor is None:
                top = last_seq(connection)
                if self._history_days > 0:
                    self._cursor, self._warm_up_to = 0, top
                else:
                    self._cursor = top
            while True:
                warm = self._warm_up_to
                since = None
                if warm is not None:
                    since = int(self._clock() * 1_000_000) - self._history_days * DAY_US
                rows = claims_after(
                    connection, self._cursor, limit=self._batch, up_to=warm, since_us=since
                )
                if not rows:
                    if warm is None:
                        return fed
                    self._cursor, self._warm_up_to = warm, None
                    continue
                for seq, ts_us, account_id, nir in rows:
                    try:
                        guard.observe_claim(account_id, nir, ts_us)
                    except UnknownAccount:
                        self.skipped += 1
                        log.warning("claim_account_unknown", seq=seq)
                    else:
                        fed += 1
                        self.fed += 1
                        claim_applied("table", ts_us)
                    self._cursor = seq

    def _feed(self) -> None:
        # A failing pass leaves its rows to the next one: nothing is skipped.
        fed = self.run_once()
        follower_pass()
        if fed:
            log.info("claims_fed", claims=fed, last_seq=self._cursor)
