"""The world a guard benchmark runs on: the one given with ``--world``, or a generated one."""

from __future__ import annotations

import argparse
from pathlib import Path

from rempart.world.generator import generate_world
from rempart.world.traffic import TrafficParams


def add_world_arguments(
    parser: argparse.ArgumentParser, *, days: int, claims_per_lookup: float | None = None
) -> None:
    parser.add_argument("--world", type=Path, help="use this world (default: generate one)")
    parser.add_argument("--insured", type=int, default=100_000)
    parser.add_argument("--professionals", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=days)
    parser.add_argument("--history-days", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--claims-per-lookup",
        type=float,
        default=claims_per_lookup,
        help="heavy billing of the generated world (default: %(default)s; the "
        "generator's own billing when none)",
    )


def given_or_generated(args: argparse.Namespace, tmp: Path) -> Path:
    """``args.world``, or a world generated under ``tmp`` from the other arguments."""
    if args.world is not None:
        world: Path = args.world
        return world
    world = tmp / "world"
    generate_world(
        world,
        insured=args.insured,
        professionals=args.professionals,
        days=args.days,
        seed=args.seed,
        history_days=args.history_days,
        traffic=TrafficParams(claims_per_lookup=args.claims_per_lookup),
    )
    return world
