"""The demo's offline guard chapter: the world's days replayed by the same engine
(the guard inline, over HTTP, is the traffic chapter: :mod:`rempart.demo.traffic`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from rempart.claims.ingest import ingest_file
from rempart.guard.replay import replay_world
from rempart.guard.scoring import score_decisions

__all__ = ["chapter_claims", "chapter_guard_replay"]


def chapter_claims(console: Console, engine: Engine, world_dir: Path) -> None:
    """The billing system's claims of the world, ingested as ``rempart claims ingest``
    does (the running server's follower then feeds them to its guard)."""
    path = world_dir / "claims.parquet"
    first = ingest_file(engine, path)
    again = ingest_file(engine, path)
    console.print(
        f"  rempart claims ingest {path.name}: {first.read:,} read, {first.new:,} new, "
        f"{first.known:,} already known; again: {again.new:,} new (idempotent). The server "
        "feeds them to its guard within seconds: billed persons explain later lookups."
    )


def chapter_guard_replay(console: Console, world_dir: Path) -> None:
    """The same engine offline: the world's 28 days replayed and scored."""
    with tempfile.TemporaryDirectory(prefix="rempart-demo-replay-") as tmp:
        out = Path(tmp) / "decisions.parquet"
        summary = replay_world(world_dir, out)
        score = score_decisions(world_dir, out)
    console.print(
        f"  rempart guard replay: {summary.lookups:,} lookups and {summary.claims:,} claims in "
        f"time order, {summary.lookups / summary.seconds:,.0f} lookups/s; the world's "
        "labels (never read by the guard) then score the decisions:"
    )
    table = Table("attack family", "accounts", "median exposure", "max exposure", "contained")
    for family in score.families.values():
        table.add_row(
            family.family,
            str(family.accounts),
            f"{family.median_exposure:g}",
            str(family.max_exposure),
            f"{family.contained:.0%}",
        )
    console.print(table)
    console.print(
        f"  honest professionals: {score.friction_uncompromised:.2%} of account-days with a "
        f"step-up, {score.blocks_uncompromised:.2%} with a deny (outside compromise; "
        f"{score.uncompromised_days:,} account-days). Exposure: distinct people read before "
        "containment. In 2022 each account read about 27,000."
    )
    odd = Table("honest oddity", "account-days", "with a step-up", "with a deny", "suspended")
    names = {
        "seasonal_surge": "resort area's holiday surge (far patients, billed at the counter)",
        "batch_check": "practice software checking the day's appointments (~1/s)",
    }
    for oddity in score.oddities.values():
        odd.add_row(
            names.get(oddity.oddity, oddity.oddity),
            f"{oddity.account_days:,}",
            f"{oddity.friction:.1%}",
            str(oddity.denied_days),
            str(len(oddity.suspended)),
        )
    console.print(odd)
    console.print(
        f"  honest accounts suspended: {len(score.honest_suspended)} (a suspension needs "
        "evidence of an attacker; volume alone from the usual place gets a step-up)."
    )
