"""Benchmark: the guard against its targets, side by side with four baselines.

Generates one world per seed (default: 3 seeds of 30,000 insured, 600 accounts,
28 days of which 21 of history and 7 of window, every attack family with its
default knobs: about 660,000 lookups each), then, in the same run and on the same
worlds, replays Rempart's guard (``rempart.guard.replay``) and each baseline of
:mod:`bench.baselines`, and scores every decisions file with
:mod:`rempart.guard.scoring`. Publishes section ``guard`` of docs/benchmarks.md.

Targets (issue 5): median exposure per attacked account <= 10; <= 25 for every
account of the 2022 family; >= 95% of attacked accounts contained in every
family; legitimate friction (account-days with a step-up) <= 1%; legitimate
blocks (account-days with a deny) <= 0.1%; >= 100,000 lookups/s in one process.

Figures pool the seeds: exposures and containment over every attacked account of
every world, friction and blocks over every legitimate account-day. Throughput:
the guard's decision loop (lookups and claims fed one at a time; loading and
writing excluded); for a baseline, its feature computation, training and
decisions over the loaded tables (vectorised over the recorded world except
HalfSpaceTrees, which goes one lookup at a time; writing excluded), both over
all lookups, history included.

    .venv/bin/python -m bench.bench_guard [--seeds 0,1,2] [--insured N]
        [--professionals N] [--days N] [--history-days N] [--attacks SPEC]
        [--claims-per-lookup F] [--no-baselines] [--no-write]

With ``--attacks`` (``rempart world generate``'s syntax) the worlds carry that
mix instead of one scenario of each family, and the section written is
``guard-stress``: the same table on harder, larger attack mixes (more attacked
accounts per family, knobs varied), so that a family's containment is not
judged on three accounts. With ``--claims-per-lookup`` (issue 15: 0.75) the
worlds bill that heavily and the section gets ``-claims`` appended
(``guard-claims``); with ``--history-days`` (0: a fresh deployment) it gets
``-historyN``.

Issue 15 adds, from the same decisions: **honest accounts suspended** (a
``deny`` on a legitimate lookup outside compromise; target: none), and for each
legitimate oddity the generator records (the resort area's seasonal surge, the
practice software's morning batch check) its account-days, the share stepped up
and the number denied.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.baselines import BASELINES, run_baseline
from bench.report import publish
from rempart.guard.replay import replay_world
from rempart.guard.scoring import ReplayScore, score_decisions
from rempart.world.attacks import Scrape2022, parse_scenarios
from rempart.world.generator import generate_world
from rempart.world.traffic import TrafficParams

GUARD = "rempart_guard"
DETECTORS = (GUARD, *BASELINES)
LABELS = {
    GUARD: "**Rempart's guard**",
    "daily_cap": "fixed daily cap (per profession)",
    "unexplained_threshold": "per-account unexplained threshold",
    "half_space_trees": "river HalfSpaceTrees (online)",
    "isolation_forest": "scikit-learn IsolationForest (account-day)",
}
MEDIAN_MAX = 10
MAX_2022 = 25
CONTAINED_MIN = 0.95
FRICTION_MAX = 0.01
BLOCKS_MAX = 0.001
RATE_MIN = 100_000


@dataclass
class Result:
    """One detector's scores over the seeds."""

    scores: list[ReplayScore] = field(default_factory=list)
    lookups: int = 0
    seconds: float = 0.0
    engines: set[str] = field(default_factory=set)
    """The guard's engines that decided (compiled or pure, rempart.guard.native)."""

    def exposures(self, family: str | None = None) -> list[int]:
        return [
            e
            for s in self.scores
            for (f, _), e in s.exposures.items()
            if family is None or f == family
        ]

    def median(self) -> float:
        values = self.exposures()
        return float(statistics.median(values)) if values else 0.0

    def max_2022(self) -> int:
        return max(
            (e for f in self.families() if _is_2022(f) for e in self.exposures(f)), default=0
        )

    def families(self) -> list[str]:
        return sorted({f for s in self.scores for f in s.families})

    def contained(self, family: str) -> float:
        members = [(s.families[family]) for s in self.scores if family in s.families]
        total = sum(m.accounts for m in members)
        return sum(m.contained * m.accounts for m in members) / total if total else 1.0

    def min_contained(self) -> tuple[float, str]:
        return min(((self.contained(f), f) for f in self.families()), default=(1.0, "-"))

    def _pooled(self, attr: str, days_attr: str = "legit_account_days") -> float:
        days = sum(getattr(s, days_attr) for s in self.scores)
        total = sum(getattr(s, attr) * getattr(s, days_attr) for s in self.scores)
        return float(total) / days if days else 0.0

    def friction_all(self) -> float:
        return self._pooled("friction")

    def blocks_all(self) -> float:
        return self._pooled("blocks")

    def friction(self) -> float:
        """Outside compromise: the target's measure (see rempart.guard.scoring)."""
        return self._pooled("friction_uncompromised", "uncompromised_days")

    def blocks(self) -> float:
        return self._pooled("blocks_uncompromised", "uncompromised_days")

    def rate(self) -> float:
        return self.lookups / self.seconds if self.seconds else 0.0

    def suspended(self) -> int:
        """Honest accounts suspended, summed over the seeds (each seed is its own world)."""
        return sum(len(s.honest_suspended) for s in self.scores)

    def oddity_names(self) -> list[str]:
        return sorted({o for s in self.scores for o in s.oddities})

    def oddity(self, name: str) -> str:
        """Account-days, share stepped up, days denied and accounts suspended, pooled."""
        parts = [s.oddities[name] for s in self.scores if name in s.oddities]
        days = sum(p.account_days for p in parts)
        stepped = sum(p.friction * p.account_days for p in parts)
        denied = sum(p.denied_days for p in parts)
        suspended = sum(len(p.suspended) for p in parts)
        share = f"{stepped / days:.1%}" if days else "-"
        return (
            f"{days} / {share} / {denied} / {suspended} ({_mark(denied == 0 and suspended == 0)})"
        )


def _is_2022(family: str) -> bool:
    return family.startswith(Scrape2022.family)


def _mark(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


def _row(name: str, r: Result) -> str:
    low, family = r.min_contained()
    return (
        f"| {LABELS[name]} | {r.median():g} ({_mark(r.median() <= MEDIAN_MAX)}) "
        f"| {r.max_2022()} ({_mark(r.max_2022() <= MAX_2022)}) "
        f"| {low:.0%} {family} ({_mark(low >= CONTAINED_MIN)}) "
        f"| {r.friction():.2%} ({_mark(r.friction() <= FRICTION_MAX)}) "
        f"| {r.blocks():.2%} ({_mark(r.blocks() <= BLOCKS_MAX)}) "
        f"| {r.friction_all():.2%} / {r.blocks_all():.2%} "
        f"| {r.suspended()} ({_mark(r.suspended() == 0)}) "
        f"| {r.rate():,.0f} ({_mark(r.rate() >= RATE_MIN)}) |"
    )


def run_seed(
    world: Path,
    out: Path,
    results: dict[str, Result],
    log: list[str],
    *,
    baselines: tuple[str, ...] = tuple(BASELINES),
) -> None:
    summary = replay_world(world, out / f"{GUARD}.parquet")
    guard = results[GUARD]
    guard.engines.add(summary.engine)
    guard.lookups += summary.lookups
    guard.seconds += summary.seconds
    guard.scores.append(score_decisions(world, out / f"{GUARD}.parquet"))
    log.append(f"{GUARD} {summary.lookups / summary.seconds:,.0f}/s")
    for name in baselines:
        path = out / f"{name}.parquet"
        run = run_baseline(name, world, path)
        results[name].lookups += run.lookups
        results[name].seconds += run.seconds
        results[name].scores.append(score_decisions(world, path))
        log.append(f"{name} {run.rate:,.0f}/s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated world seeds")
    parser.add_argument("--insured", type=int, default=30_000)
    parser.add_argument("--professionals", type=int, default=600)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--history-days", type=int, default=None, help="0: a fresh deployment")
    parser.add_argument("--attacks", default=None, help="attack mix (world generate syntax)")
    parser.add_argument(
        "--claims-per-lookup", type=float, default=None, help="heavy billing (issue 15: 0.75)"
    )
    parser.add_argument("--no-baselines", action="store_true", help="Rempart's guard only")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    scenarios = parse_scenarios(args.attacks) if args.attacks else None
    section = "guard-stress" if scenarios is not None else "guard"
    if args.claims_per_lookup is not None:
        section += "-claims"
    if args.history_days is not None:
        section += f"-history{args.history_days}"
    traffic = TrafficParams(claims_per_lookup=args.claims_per_lookup)
    baselines: tuple[str, ...] = () if args.no_baselines else tuple(BASELINES)
    detectors = (GUARD, *baselines)

    results = {name: Result() for name in detectors}
    per_seed: list[tuple[int, int, dict[str, tuple[ReplayScore, float]]]] = []
    claims_per_lookup: list[float] = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rempart-bench-guard-") as tmp:
        for seed in seeds:
            world = Path(tmp) / f"world-{seed}"
            generate_world(
                world,
                insured=args.insured,
                professionals=args.professionals,
                days=args.days,
                seed=seed,
                history_days=args.history_days,
                attacks=scenarios,
                traffic=traffic,
            )
            meta = json.loads((world / "world.json").read_text(encoding="utf-8"))
            claims_per_lookup.append(meta["counts"]["claims"] / meta["counts"]["lookups"])
            before = {n: (r.lookups, r.seconds) for n, r in results.items()}
            log: list[str] = []
            run_seed(world, Path(tmp) / f"out-{seed}", results, log, baselines=baselines)
            print(f"seed {seed}: " + ", ".join(log), flush=True)
            rows = {}
            for name, r in results.items():
                lookups = r.lookups - before[name][0]
                seconds = r.seconds - before[name][1]
                rows[name] = (r.scores[-1], lookups / seconds if seconds else 0.0)
            per_seed.append((seed, results[GUARD].lookups - before[GUARD][0], rows))
    elapsed = time.perf_counter() - began

    families = results[GUARD].families()
    title = (
        "Guard on harder attack mixes, with baselines"
        if scenarios is not None
        else "Guard against its targets, with baselines"
    )
    mix = (
        f"attacks `{args.attacks}`"
        if scenarios is not None
        else "every attack family with default knobs"
    )
    if not baselines:
        title = title.replace(", with baselines", "")
    if args.claims_per_lookup is not None:
        title += f", claims-heavy worlds ({args.claims_per_lookup:g} claims per lookup)"
    if args.history_days is not None:
        title += f", {args.history_days} days of history"
    oddities = results[GUARD].oddity_names()
    lines = [
        f"## {title}",
        "",
        "`"
        + " ".join(["python -m bench.bench_guard", *(f"'{a}'" if "," in a else a for a in argv)])
        + "`",
        "",
        f"Worlds: seeds {', '.join(map(str, seeds))}; {args.insured:,} insured, "
        f"{args.professionals:,} accounts, {args.days} days each ("
        + (
            "the generator's history and window"
            if args.history_days is None
            else f"{args.history_days} days of history, the rest window"
        )
        + f", {mix}); "
        f"{results[GUARD].lookups:,} lookups in all, "
        f"{min(claims_per_lookup):.2f}-{max(claims_per_lookup):.2f} claims per lookup "
        "(attacks' lookups included). Every detector is scored by "
        "`rempart.guard.scoring` on the same decisions format; the baselines and their "
        "operating points are described in `bench.baselines` (thresholds set on "
        "history only). Seeds pooled: exposures over every attacked account, friction and "
        "blocks over every legitimate account-day outside compromise (an attacked "
        "account's days from its attack's first day are left out: see below). "
        f"Whole run {elapsed:.0f} s.",
        "",
        "| detector | median exposure (<= 10) | max exposure, 2022 family (<= 25) "
        "| contained, worst family (>= 95%) | legit friction (<= 1%) "
        "| legit blocks (<= 0.1%) | friction / blocks, every legit account-day "
        "| honest accounts suspended (0) | lookups/s, one process (>= 100,000) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(_row(name, results[name]) for name in detectors),
        "",
        "Legitimate oddities recorded by the generator (account-days in the window outside "
        "compromise / share with a step-up / days with a deny / accounts suspended; target: "
        "no deny, no suspension):",
        "",
        "| detector | " + " | ".join(o.replace("_", " ") for o in oddities) + " |",
        "| --- | " + " | ".join("---" for _ in oddities) + " |",
        *(
            f"| {LABELS[name]} | " + " | ".join(results[name].oddity(o) for o in oddities) + " |"
            for name in detectors
        ),
        "",
        "Contained per family (share of attacked accounts; median exposure in brackets):",
        "",
        "| detector | " + " | ".join(families) + " |",
        "| --- | " + " | ".join("---" for _ in families) + " |",
        *(
            f"| {LABELS[name]} | "
            + " | ".join(
                f"{results[name].contained(f):.0%} "
                f"({statistics.median(results[name].exposures(f) or [0]):g})"
                for f in families
            )
            + " |"
            for name in detectors
        ),
        "",
        "Per seed (median exposure / max 2022 / worst family contained / friction / "
        "blocks / honest accounts suspended / lookups/s):",
        "",
        "| seed | lookups | " + " | ".join(LABELS[n] for n in detectors) + " |",
        "| --- | --- | " + " | ".join("---" for _ in detectors) + " |",
    ]
    for seed, lookups, rows in per_seed:
        cells = []
        for name in detectors:
            score, rate = rows[name]
            one = Result([score])
            low, _ = one.min_contained()
            cells.append(
                f"{one.median():g} / {one.max_2022()} / {low:.0%} / "
                f"{score.friction_uncompromised:.2%} / {score.blocks_uncompromised:.2%} / "
                f"{len(score.honest_suspended)} / {rate:,.0f}"
            )
        lines.append(f"| {seed} | {lookups:,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Contained: stepped up or denied at least once with exposure at most 25. The "
        f"guard's throughput is its decision loop one event at a time, on its "
        f"{' and '.join(sorted(results[GUARD].engines))} engine "
        "(`rempart.guard.native`: the same decisions either way); the cap, the "
        "threshold and IsolationForest are computed vectorised over the recorded world "
        "(an inline deployment would pay per-lookup overhead), so their rates are upper "
        "bounds, not like-for-like. Friction and blocks leave out an attacked account's "
        "days from the day its attack began: from then on its owner meets what the "
        "attacker set off (a denied account stays suspended until an operator restores "
        "it after resetting the credentials, which a replay never does; the cap, which "
        "does not suspend, blocks them on the attacked day only). The column 'every legit "
        "account-day' keeps them: DESIGN.md's plain definition. Honest accounts "
        "suspended: accounts with a deny on a legitimate lookup outside compromise (a "
        "deny suspends; the cap and the threshold do not suspend in their own design, "
        "but are counted the same way), summed over the seeds. Rates vary between seeds "
        "as the 2 cores are shared with other work.",
    ]
    suspended = sorted(
        {(seed, a) for seed, _, rows in per_seed for a in rows[GUARD][0].honest_suspended}
    )
    if suspended:
        lines += [
            "",
            "Honest accounts the guard suspended (seed: account): "
            + ", ".join(f"{seed}: {a}" for seed, a in suspended)
            + ".",
        ]
    publish(section, "\n".join(lines), dry_run=args.no_write)


if __name__ == "__main__":
    main()
