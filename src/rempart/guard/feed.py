"""The offline replay's inner loop: one chunk of lookups through the guard, in time order.

:mod:`rempart.guard.replay` reads and checks a world, resolves each distinct value
once and hands this loop plain lists, one chunk of rows at a time; every claim
strictly before a lookup is observed before it is decided. The loop is kept apart
from the replay's reading and writing so that it can be compiled with the engine
(:mod:`rempart.guard.native`): compiled, the calls into the guard are direct.
"""

from __future__ import annotations

from rempart.guard.directory import Person
from rempart.guard.engine import Guard

__all__ = ["decide_rows"]


def decide_rows(
    guard: Guard,
    *,
    claim_ts: list[int],
    claim_accounts: list[str],
    claim_nirs: list[str],
    next_claim: int,
    ts: list[int],
    accounts: list[str],
    nirs: list[str],
    persons: list[Person | None],
    births: list[int | None],
    networks: list[str],
    agents: list[str],
    sessions: list[str],
    decisions: list[str],
    scores: list[float],
    reasons: list[str],
) -> int:
    """Decide the lookups of one chunk (arguments as for
    :meth:`~rempart.guard.engine.Guard.decide_resolved`, one list per argument),
    observing first the claims from ``next_claim`` on that came strictly before
    each; append each decision, score and comma-joined reasons; return the index of
    the first claim not observed yet."""
    c = next_claim
    n_claims = len(claim_ts)
    for i in range(len(ts)):
        t = ts[i]
        while c < n_claims and claim_ts[c] < t:
            guard.observe_claim_resolved(claim_ts[c], claim_accounts[c], claim_nirs[c])
            c += 1
        kind, score, why = guard.decide_resolved(
            t,
            accounts[i],
            nirs[i],
            persons[i],
            births[i],
            networks[i],
            agents[i],
            sessions[i],
        )
        decisions.append(kind)
        scores.append(score)
        reasons.append(",".join(why))
    return c
