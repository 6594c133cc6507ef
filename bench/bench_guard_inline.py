"""Benchmark: the inline guard's decision overhead per lookup (goal: p99 under 1 ms in memory).

Generates a world (or takes ``--world``), loads its reference data into a SQLite
database, then drives the world's lookups, in time order and with their own
timestamps, through :meth:`rempart.guard.inline.InlineGuard.decide`: what the API
adds before the rights are read (the reference data resolved on the request's
session through the directory's cache, then the engine's decision under its
lock, with the in-process state). Each call is timed alone; the figures are
p50 / p99 / max, all calls and split by whether the person's reference data was
already cached (a miss costs one indexed query). For comparison, the engine
alone (:meth:`Guard.decide` with the in-memory directory of the same world).

    .venv/bin/python -m bench.bench_guard_inline [--world DIR | --insured N
        --professionals N --days N --seed S] [--lookups N] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from bench.report import publish
from rempart.config import load_settings
from rempart.guard.config import default_config
from rempart.guard.directory import MemoryDirectory
from rempart.guard.engine import Guard
from rempart.guard.events import LookupEvent, to_micros
from rempart.guard.inline import AUTH_OF_ACR
from rempart.guard.state import MemoryState
from rempart.rights.service import Caller
from rempart.services import Services
from rempart.store.load_world import load_world
from rempart.store.migrate import upgrade
from rempart.world.generator import generate_world
from rempart.world.io import read_table

GOAL_P99_MS = 1.0
_ACR_OF_AUTH = {auth: acr for acr, auth in AUTH_OF_ACR.items() if acr != "client"}


def _quantiles(samples_ns: list[int]) -> str:
    if not samples_ns:
        return "none"
    data = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50, p99 = np.percentile(data, [50, 99])
    return f"p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {data.max():.2f} ms ({len(data):,} calls)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--world", type=Path, help="use this world (default: generate one)")
    parser.add_argument("--insured", type=int, default=100_000)
    parser.add_argument("--professionals", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lookups", type=int, default=200_000, help="decisions to time")
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
        services = Services(
            load_settings(
                database_url=f"sqlite:///{Path(tmp) / 'bench.db'}", data_dir=Path(tmp) / "data"
            )
        )
        upgrade(services.engine, schema="data")
        upgrade(services.audit_engine, schema="audit")
        load_world(services.engine, world)
        lookups = read_table(world, "lookups").slice(0, args.lookups)
        rows = lookups.to_pylist()
        ts = pc.cast(lookups.column("ts"), "int64").to_pylist()
        config = default_config()
        inline = services.guard
        assert inline is not None, "the guard is disabled (REMPART_GUARD_ENABLED)"
        sessions = services.sessions
        hits: list[int] = []
        misses: list[int] = []
        seen: set[str] = set()
        decisions: dict[str, int] = {"allow": 0, "step_up": 0, "deny": 0}
        suspended: set[str] = set()
        with sessions() as session:
            for row, moment in zip(rows, ts, strict=True):
                if row["account_id"] in suspended:
                    continue  # the service refuses a suspended account before the guard
                caller = Caller(
                    account_id=row["account_id"],
                    session_id=row["session_id"],
                    acr=_ACR_OF_AUTH.get(row["auth"], "password+totp"),
                    client_ip=row["ip"],
                    user_agent=row["user_agent"],
                    channel=row["channel"],
                )
                cached = row["nir"] in seen
                began = time.perf_counter_ns()
                kind, _, _ = inline.decide(
                    session,
                    caller,
                    raw_nir=row["nir"],
                    raw_birth_date=row["birth_date"],
                    ts_us=moment,
                )
                elapsed = time.perf_counter_ns() - began
                (hits if cached else misses).append(elapsed)
                seen.add(row["nir"])
                decisions[kind] += 1
                if kind == "deny":
                    suspended.add(row["account_id"])
        services.close()
        every = hits + misses
        p99_all = float(np.percentile(np.asarray(every, dtype=np.float64) / 1e6, 99))

        # The engine alone, with the in-memory directory of the same world.
        memory = Guard(MemoryDirectory.from_world(world), MemoryState(), config)
        alone: list[int] = []
        for row, moment in zip(rows, ts, strict=True):
            event = LookupEvent(
                event_id=row["event_id"],
                ts=moment,
                account_id=row["account_id"],
                nir=row["nir"],
                birth_date=row["birth_date"],
                ip=row["ip"],
                user_agent=row["user_agent"],
                session_id=row["session_id"],
                auth=row["auth"],
                channel=row["channel"],
            )
            began = time.perf_counter_ns()
            memory.decide(event)
            alone.append(time.perf_counter_ns() - began)

        window_start = to_micros(
            datetime.fromisoformat(json.loads((world / "world.json").read_text())["window_start"])
        )
        honest = sum(1 for moment in ts if moment < window_start) / max(1, len(ts))
        first = to_micros(rows[0]["ts"]) if rows else 0
        span_days = (ts[-1] - first) / 86_400e6 if rows else 0.0
        lines = [
            "## Guard inline decision overhead",
            "",
            f"`{' '.join(['python -m bench.bench_guard_inline', *argv])}`",
            "",
            f"- {len(every):,} lookups of the world in time order ({span_days:.1f} days of "
            f"traffic, the engine with no history: cold start), each decision timed alone; "
            f"SQLite database with the world's reference data, in-process state",
            f"- inline decision (`InlineGuard.decide`: reference data through the cache, "
            f"engine under its lock): {_quantiles(every)} — goal p99 < {GOAL_P99_MS:g} ms: "
            f"**{'met' if p99_all < GOAL_P99_MS else 'not met'}**",
            f"  - person already cached: {_quantiles(hits)}",
            f"  - first time the person is read (one indexed query): {_quantiles(misses)}",
            f"- the engine alone (`Guard.decide`, in-memory directory): {_quantiles(alone)}",
            "- decisions: "
            + ", ".join(f"{k} {v:,}" for k, v in decisions.items())
            + " (a denied account's later lookups are skipped: the service refuses them)",
            f"- {honest:.0%} of these lookups come before the world's evaluation window (all "
            "honest): step-ups and denies there are the engine's strictness without history "
            "(what `REMPART_GUARD_LEARN_UNTIL` is for), not detections",
            f"- machine load average during the run: {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} cores (other work shared the machine)",
            "- not measured here: the state in Redis (next step), the HTTP request around it",
        ]
        publish("guard-inline", "\n".join(lines), dry_run=args.no_write)


if __name__ == "__main__":
    main()
