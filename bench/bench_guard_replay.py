"""Benchmark: offline guard replay throughput (lookups decided per second, one process).

Goal: at least 100,000 lookups per second. Replays an existing world (``--world``)
or generates one first; reports the decision loop's rate, the whole replay's rate
(reading, checks, writing included) and the process's peak memory. This is the
replay's throughput only: the detection targets (exposure, friction, blocks, over
several seeds) are measured elsewhere; ``--score`` adds this one world's scores.

    .venv/bin/python -m bench.bench_guard_replay [--world DIR | --insured N
        --professionals N --days N --seed S] [--score] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from bench.report import publish
from rempart.guard.replay import replay_world
from rempart.guard.scoring import score_decisions
from rempart.world.generator import generate_world

GOAL = 100_000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--world", type=Path, help="replay this world (default: generate one)")
    parser.add_argument("--insured", type=int, default=100_000)
    parser.add_argument("--professionals", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score", action="store_true", help="add the world's scores")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="rempart-bench-") as tmp:
        world = args.world
        if world is None:
            world = Path(tmp) / "world"
            generate_world(
                world,
                insured=args.insured,
                professionals=args.professionals,
                days=args.days,
                seed=args.seed,
            )
        out = Path(tmp) / "decisions.parquet"
        began = time.perf_counter()
        summary = replay_world(world, out)
        total = time.perf_counter() - began
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        loop_rate = summary.lookups / summary.seconds
        whole_rate = summary.lookups / total
        meta = json.loads((world / "world.json").read_text(encoding="utf-8"))
        counts = meta.get("counts", {})
        lines = [
            "## Guard replay throughput",
            "",
            f"`{' '.join(['python -m bench.bench_guard_replay', *argv])}`",
            "",
            "The offline replay's throughput only (one process, in-memory state); the "
            "detection targets of issue 5 (exposure, friction, blocks, on several seeds) "
            "are not measured here.",
            "",
            f"- world: {counts.get('insured', 0):,} insured, "
            f"{counts.get('professionals', 0):,} professionals, "
            f"{meta.get('history_days', '?')} + {meta.get('window_days', '?')} days "
            f"(history + window), seed {meta.get('seed', '?')}: "
            f"{summary.lookups:,} lookups, {summary.claims:,} claims",
            f"- decision loop: {summary.seconds:.2f} s, **{loop_rate:,.0f} lookups/s** "
            f"(goal {GOAL:,}: {'met' if loop_rate >= GOAL else 'not met'})",
            f"- whole replay (reading, checks, writing): {total:.2f} s, "
            f"{whole_rate:,.0f} lookups/s",
            f"- peak memory of the process (RSS): {peak_mib:,.0f} MiB",
        ]
        if args.score and (world / "labels.parquet").is_file():
            score = score_decisions(world, out)
            lines.append(
                f"- attacked accounts {score.attacked_accounts}, median exposure "
                f"{score.median_exposure:g}, contained {score.contained:.0%}; legitimate "
                f"friction {score.friction:.2%}, blocks {score.blocks:.2%} "
                f"(outside compromise: {score.friction_uncompromised:.2%}, "
                f"{score.blocks_uncompromised:.2%})"
            )
            lines.extend(
                f"  - {f.family}: {f.accounts} accounts, median exposure {f.median_exposure:g}, "
                f"max {f.max_exposure}, contained {f.contained:.0%}"
                for f in score.families.values()
            )
        publish("guard-replay", "\n".join(lines), dry_run=args.no_write)


if __name__ == "__main__":
    main()
