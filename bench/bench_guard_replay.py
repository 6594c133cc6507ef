"""Benchmark: offline guard replay throughput (lookups decided per second, one process).

Goal: at least 100,000 lookups per second on a claims-heavy world (issue 15: claims
are events too, about 0.75 per lookup). Replays an existing world (``--world``)
or generates one first (by default with ``--claims-per-lookup 0.75``); reports the
rates over lookups and over events (lookups and claims), the time to load the world
(reading, checks, the directory and the guard set up) apart, the decision loop's
rate (wall clock, and the
processor time the process got: the machine is shared), the whole replay's rate
(reading, checks, writing included), the process's peak memory and which engine ran
(the compiled one, :mod:`rempart.guard.native`, unless ``--pure`` or it is not built;
``--both`` replays with each and checks that their decisions are identical). This is
the replay's throughput only: the detection targets (exposure, friction, blocks, over
several seeds) are measured elsewhere; ``--score`` adds this one world's scores.

    .venv/bin/rempart world generate --out /tmp/gw-perf --insured 100000 \
        --professionals 2000 --seed 1 --claims-per-lookup 0.75
    .venv/bin/python -m bench.bench_guard_replay [--world DIR | --insured N
        --professionals N --days N --seed S --claims-per-lookup F] [--pure | --both]
        [--score] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from bench.report import publish
from bench.worlds import add_world_arguments, given_or_generated
from rempart.guard.native import implementation
from rempart.guard.replay import ReplaySummary, replay_world
from rempart.guard.scoring import score_decisions

GOAL = 100_000
CLAIMS_PER_LOOKUP = 0.75
ENGINES = {"compiled": "compiled (mypyc)", "pure": "pure Python"}


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


@dataclass(frozen=True)
class Run:
    summary: ReplaySummary
    total: float
    """The whole replay: loading, deciding, writing."""
    load: float
    """Reading the world, its checks, the directory and the guard's set-up: until the
    replay reports its first event (its progress callback)."""


def _replay(world: Path, out: Path, *, compiled: bool) -> Run:
    began = time.perf_counter()
    loaded: list[float] = []

    def progress(step: str, _done: int, _total: int) -> None:
        if step == "replay" and not loaded:
            loaded.append(time.perf_counter())

    summary = replay_world(world, out, engine=implementation(compiled=compiled), progress=progress)
    total = time.perf_counter() - began
    return Run(summary, total, (loaded[0] if loaded else began) - began)


def _lines(run: Run, *, compiled: bool) -> list[str]:
    summary = run.summary
    events = summary.lookups + summary.claims
    loop_rate = summary.lookups / summary.seconds
    cpu_rate = summary.lookups / summary.cpu_seconds
    engine = ENGINES[summary.engine]
    if compiled and summary.engine != "compiled":
        engine += " (the compiled engine is not built or is stale)"
    writing = max(0.0, run.total - run.load - summary.seconds)
    return [
        f"- engine: {engine}",
        f"  - decision loop: {summary.seconds:.2f} s, **{loop_rate:,.0f} lookups/s** "
        f"(goal {GOAL:,}: {'met' if loop_rate >= GOAL else 'not met'}), "
        f"**{events / summary.seconds:,.0f} events/s** (lookups and claims); processor "
        f"time {summary.cpu_seconds:.2f} s, {cpu_rate:,.0f} lookups/s, "
        f"{events / summary.cpu_seconds:,.0f} events/s",
        f"  - load (reading the files, checks, directory and guard set up): "
        f"{run.load:.2f} s; writing the decisions {writing:.2f} s",
        f"  - whole replay (load, decisions, writing): {run.total:.2f} s, "
        f"{summary.lookups / run.total:,.0f} lookups/s",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_world_arguments(parser, days=28, claims_per_lookup=CLAIMS_PER_LOOKUP)
    engines = parser.add_mutually_exclusive_group()
    engines.add_argument("--pure", action="store_true", help="the pure-Python engine only")
    engines.add_argument(
        "--both", action="store_true", help="pure Python, then compiled; same decisions checked"
    )
    parser.add_argument("--score", action="store_true", help="add the world's scores")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="rempart-bench-") as tmp:
        world = given_or_generated(args, Path(tmp))
        load_before = _load()
        runs = [False, True] if args.both else [not args.pure]
        results: list[tuple[bool, Run, Path]] = []
        for compiled in runs:
            out = Path(tmp) / f"decisions-{len(results)}.parquet"
            results.append((compiled, _replay(world, out, compiled=compiled), out))
        load_after = _load()
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        meta = json.loads((world / "world.json").read_text(encoding="utf-8"))
        counts = meta.get("counts", {})
        summary = results[-1][1].summary
        out = results[-1][2]
        lines = [
            "## Guard replay throughput",
            "",
            f"`{' '.join(['python -m bench.bench_guard_replay', *argv])}`",
            "",
            "The offline replay's throughput only (one process, in-memory state); the "
            "detection targets of issues 5 and 15 (exposure, friction, blocks, honest "
            "accounts suspended, on several seeds) "
            "are not measured here.",
            "",
            f"- world: {counts.get('insured', 0):,} insured, "
            f"{counts.get('professionals', 0):,} professionals, "
            f"{meta.get('history_days', '?')} + {meta.get('window_days', '?')} days "
            f"(history + window), seed {meta.get('seed', '?')}: "
            f"{summary.lookups:,} lookups, {summary.claims:,} claims "
            f"({summary.claims / max(1, summary.lookups):.2f} per lookup"
            + (
                f"; generated with claims_per_lookup {meta['traffic'].get('claims_per_lookup')}"
                if "traffic" in meta
                else ""
            )
            + ")",
        ]
        for compiled, run, _ in results:
            lines.extend(_lines(run, compiled=compiled))
        if len(results) == 2:
            same = pq.read_table(results[0][2]).equals(pq.read_table(results[1][2]))
            lines.append(
                "- the two engines' decisions (decision, score, reasons of every event): "
                + ("identical" if same else "**DIFFERENT**")
            )
        lines.extend(
            [
                f"- peak memory of the process (RSS): {peak_mib:,.0f} MiB",
                f"- machine: {os.cpu_count()} cores shared with other work; load average "
                f"{load_before} before, {load_after} after (with a load near or above the "
                "core count, runs vary: the other work takes turns on the cores and shares "
                "their caches; processor time leaves out the turns, not the sharing)",
            ]
        )
        if args.score and (world / "labels.parquet").is_file():
            score = score_decisions(world, out)
            lines.append(
                f"- attacked accounts {score.attacked_accounts}, median exposure "
                f"{score.median_exposure:g}, contained {score.contained:.0%}; legitimate "
                f"friction {score.friction:.2%}, blocks {score.blocks:.2%} "
                f"(outside compromise: {score.friction_uncompromised:.2%}, "
                f"{score.blocks_uncompromised:.2%}); honest accounts suspended "
                f"{len(score.honest_suspended)}"
            )
            lines.extend(
                f"  - {o.oddity.replace('_', ' ')}: {o.account_days} account-days, "
                f"{o.friction:.1%} stepped up, {o.denied_days} denied, "
                f"{len(o.suspended)} accounts suspended"
                for o in score.oddities.values()
            )
            lines.extend(
                f"  - {f.family}: {f.accounts} accounts, median exposure {f.median_exposure:g}, "
                f"max {f.max_exposure}, contained {f.contained:.0%}"
                for f in score.families.values()
            )
        publish("guard-replay", "\n".join(lines), dry_run=args.no_write)


if __name__ == "__main__":
    main()
