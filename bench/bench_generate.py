"""Benchmark: generating a world of 1,000,000 insured persons and 10,000 professionals.

Population, 28 days of traffic (about 10 million lookups and their claims)
and the default attacks. Goal: under 60 s on the development machine (2
cores), files written included.

    .venv/bin/python -m bench.bench_generate [--insured N] [--professionals N] [--days N]
        [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.report import write_section
from rempart.world.generator import WorldSummary, generate_world

GOAL_SECONDS = 60.0


def _run(
    out: Path, insured: int, professionals: int, days: int, seed: int
) -> tuple[float, dict[str, float], WorldSummary]:
    steps: dict[str, float] = {}
    began = time.perf_counter()
    last = [began]

    def progress(step: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if done > 0:
            steps[step] = steps.get(step, 0.0) + now - last[0]
        last[0] = now
        del total

    summary = generate_world(
        out, insured=insured, professionals=professionals, days=days, seed=seed, progress=progress
    )
    return time.perf_counter() - began, steps, summary


def _files(summary: WorldSummary) -> str:
    return ", ".join(
        f"{name} {summary.counts[name]:,} rows / {path.stat().st_size / 2**20:.1f} MiB"
        for name, path in summary.paths.items()
        if name in summary.counts
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--insured", type=int, default=1_000_000)
    parser.add_argument("--professionals", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="keep the world here (default: a temp dir)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="rempart-bench-") as tmp:
        out = args.out or Path(tmp) / "world"
        seconds, steps, summary = _run(out, args.insured, args.professionals, args.days, args.seed)
        files = _files(summary)
        demo_seconds, _, demo = _run(Path(tmp) / "demo", 20_000, 400, 28, 2022)

    met = seconds < GOAL_SECONDS
    command = "`.venv/bin/python -m bench.bench_generate"
    if args.insured != 1_000_000 or args.professionals != 10_000 or args.days != 28:
        command += (
            f" --insured {args.insured} --professionals {args.professionals} --days {args.days}"
        )
    command += "`"
    step_text = ", ".join(f"{name} {secs:.1f} s" for name, secs in steps.items())
    markdown = f"""## World generation

Generating a world of **{args.insured:,} insured persons** and **{args.professionals:,}
professional accounts** over **{args.days} days** (seed {args.seed}): population,
legitimate traffic and claims, the default attacks in the window; Parquet files and
`world.json` written: **{seconds:.1f} s** wall time, one process
({summary.counts["lookups"] / seconds:,.0f} lookups generated per second).

- Goal: under {GOAL_SECONDS:.0f} s for 1,000,000 insured and 10,000 professionals over 28 \
days: **{"met" if met else "NOT met"}**.
- Per step: {step_text}.
- The demo's world (20,000 insured, 400 professionals, 28 days, {demo.counts["lookups"]:,} \
lookups): **{demo_seconds:.1f} s**.
- Files: {files}.
- Reproduce: {command}
"""
    write_section("generate", markdown)
    print(f"generated in {seconds:.2f} s ({'goal met' if met else 'goal NOT met'}); {step_text}")


if __name__ == "__main__":
    main()
