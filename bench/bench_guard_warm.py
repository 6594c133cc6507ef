"""Benchmark: the inline guard after a restart, cold and warm-started from the audit trail.

Generates a world of honest traffic only (no attack; default 20,000 insured,
200 accounts, 21 days of history then 3 days), loads its reference data into a
SQLite database, and writes its history's lookups into the audit trail as the
API would have recorded them (answered: found or not found; malformed ones as
refused). Then, in the same run, two guards built by ``Services`` decide the next
days' lookups (:meth:`InlineGuard.decide`, in time order, with their own
timestamps): a **cold** one (no history: ``REMPART_GUARD_HISTORY_DAYS=0``, today's
start) and a **warm** one (:func:`rempart.guard.warm_start.warm_start` at the
window's start). Every lookup is honest, so every step-up is friction: the figure
is the share of account-days with at least one step-up (and with a deny), cold
beside warm. Also measured: the warm start's duration and the pass over
``insured`` that maps pseudonyms back to NIRs (per million persons). Publishes
section ``guard-warm`` of docs/benchmarks.md.

    .venv/bin/python -m bench.bench_guard_warm [--insured N] [--professionals N]
        [--history-days N] [--days-after N] [--seed S] [--no-write]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from bench.report import publish
from rempart.config import load_settings
from rempart.guard.directory import MemoryDirectory, birth_day
from rempart.guard.inline import AUTH_OF_ACR
from rempart.guard.replay import load_window_start
from rempart.guard.warm_start import pseudonyms_to_nirs, warm_start
from rempart.nir import InvalidNIR, parse_nir
from rempart.rights.service import ALL_CATEGORIES, Caller, lookup_entry
from rempart.services import Services
from rempart.store.load_world import load_world
from rempart.store.migrate import upgrade
from rempart.world.generator import generate_world
from rempart.world.io import read_table

_ACR_OF_AUTH = {auth: acr for acr, auth in AUTH_OF_ACR.items() if acr != "client"}
_DAY_US = 86_400_000_000
_CHUNK = 5_000


def _caller(row: dict[str, Any]) -> Caller:
    return Caller(
        account_id=row["account_id"],
        session_id=row["session_id"],
        acr=_ACR_OF_AUTH.get(row["auth"], "password+totp"),
        client_ip=row["ip"],
        user_agent=row["user_agent"],
        channel=row["channel"],
    )


def _record_history(
    services: Services, directory: MemoryDirectory, rows: list[dict[str, Any]], ts: list[int]
) -> int:
    """The history's lookups into the trail, as the API records them."""
    key = services.settings.keys.pseudonym_key
    chunk = []
    for row, moment in zip(rows, ts, strict=True):
        try:
            nir = parse_nir(row["nir"]).value
        except InvalidNIR:
            found, categories, outcome = -1, "", "invalid_nir"
        else:
            person = directory.person(nir)
            match = person is not None and birth_day(row["birth_date"]) == person.birth_day
            found, categories, outcome = (
                (1, ALL_CATEGORIES, "ok") if match else (0, "", "not_found")
            )
        entry = lookup_entry(
            _caller(row),
            row["nir"],
            key,
            found=found,
            categories=categories,
            outcome=outcome,
            decision="allow",
        )
        chunk.append(dataclasses.replace(entry, ts_us=moment))
        if len(chunk) == _CHUNK:
            services.audit.append(chunk)
            chunk = []
    if chunk:
        services.audit.append(chunk)
    return len(rows)


@dataclasses.dataclass
class _Friction:
    account_days: int
    stepped_up: int
    denied: int
    lookups: int
    step_ups: int
    seconds: float

    def share(self, n: int) -> str:
        return f"{100 * n / max(1, self.account_days):.1f}%"


def _drive(services: Services, rows: list[dict[str, Any]], ts: list[int]) -> _Friction:
    guard = services.guard
    assert guard is not None
    kinds: dict[tuple[str, int], set[str]] = defaultdict(set)
    suspended: set[str] = set()
    step_ups = 0
    began = time.perf_counter()
    with services.sessions() as session:
        for row, moment in zip(rows, ts, strict=True):
            day = (row["account_id"], moment // _DAY_US)
            if row["account_id"] in suspended:
                kinds[day].add("deny")  # the service refuses a suspended account
                continue
            kind, _, _ = guard.decide(
                session,
                _caller(row),
                raw_nir=row["nir"],
                raw_birth_date=row["birth_date"],
                ts_us=moment,
            )
            kinds[day].add(kind)
            step_ups += kind == "step_up"
            if kind == "deny":
                suspended.add(row["account_id"])
    return _Friction(
        account_days=len(kinds),
        stepped_up=sum("step_up" in k for k in kinds.values()),
        denied=sum("deny" in k for k in kinds.values()),
        lookups=len(rows),
        step_ups=step_ups,
        seconds=time.perf_counter() - began,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--insured", type=int, default=20_000)
    parser.add_argument("--professionals", type=int, default=200)
    parser.add_argument("--history-days", type=int, default=21)
    parser.add_argument("--days-after", type=int, default=3, help="days decided after the start")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="rempart-bench-") as tmp:
        world = Path(tmp) / "world"
        generate_world(
            world,
            insured=args.insured,
            professionals=args.professionals,
            days=args.history_days + args.days_after,
            history_days=args.history_days,
            seed=args.seed,
            attacks=[],
        )
        settings = load_settings(
            database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
            data_dir=Path(tmp) / "data",
            guard_history_days=0,  # the warm start is called below, at the window's start
        )
        setup = Services(settings)
        upgrade(setup.engine, schema="data")
        upgrade(setup.audit_engine, schema="audit")
        load_world(setup.engine, world, pseudonym_key=setup.settings.keys.pseudonym_key)
        start = load_window_start(world)
        lookups = read_table(world, "lookups")
        rows = lookups.to_pylist()
        ts = pc.cast(lookups.column("ts"), "int64").to_pylist()
        cut = next((i for i, moment in enumerate(ts) if moment >= start), len(ts))
        directory = MemoryDirectory.from_world(world)
        began = time.perf_counter()
        recorded = _record_history(setup, directory, rows[:cut], ts[:cut])
        record_seconds = time.perf_counter() - began

        # The pass over insured alone (no pseudonym wanted matches: the whole table).
        began = time.perf_counter()
        pseudonyms_to_nirs(setup.engine, settings.keys.pseudonym_key, {"0" * 32})
        pass_seconds = time.perf_counter() - began
        persons = len(directory)
        setup.close()

        cold_services = Services(settings)
        cold = _drive(cold_services, rows[cut:], ts[cut:])
        cold_services.close()

        warm_services = Services(settings)
        guard = warm_services.guard
        assert guard is not None
        warmed = warm_start(
            guard,
            audit_engine=warm_services.audit_engine,
            data_engine=warm_services.engine,
            pseudonym_key=settings.keys.pseudonym_key,
            days=args.history_days,
            now_us=start,
        )
        warm = _drive(warm_services, rows[cut:], ts[cut:])
        warm_services.close()
        load = os.getloadavg()[0]

    lines = [
        "## Guard inline: cold start vs warm start from the audit trail",
        "",
        f"`{' '.join(['python -m bench.bench_guard_warm', *argv])}`",
        "",
        f"- a generated world of honest traffic only (seed {args.seed}, {args.insured:,} "
        f"insured, {args.professionals} accounts): its {args.history_days} days of history "
        f"({recorded:,} lookups) written into the audit trail as the API records them "
        f"({record_seconds:.1f} s), then the next {args.days_after} days ({cold.lookups:,} "
        "lookups) decided by the inline guard (`InlineGuard.decide`, SQLite), restarted "
        "cold and warm, side by side in one run. Every lookup is honest: every step-up is "
        "friction.",
        "",
        "| guard after the restart | account-days with a step-up | with a deny "
        "| step-ups | decided in |",
        "| --- | --- | --- | --- | --- |",
        f"| cold (no history, `REMPART_GUARD_HISTORY_DAYS=0`) | "
        f"{cold.share(cold.stepped_up)} ({cold.stepped_up} of {cold.account_days}) | "
        f"{cold.share(cold.denied)} ({cold.denied}) | {cold.step_ups:,} | {cold.seconds:.1f} s |",
        f"| **warm** (the trail's last {args.history_days} days) | "
        f"**{warm.share(warm.stepped_up)}** ({warm.stepped_up} of {warm.account_days}) | "
        f"**{warm.share(warm.denied)}** ({warm.denied}) | {warm.step_ups:,} | "
        f"{warm.seconds:.1f} s |",
        "",
        f"- warm start: {warmed.lookups:,} lookups learnt ({warmed.accounts} accounts, "
        f"{warmed.persons:,} distinct persons found) in **{warmed.seconds:.1f} s** "
        f"({warmed.lookups / max(warmed.seconds, 1e-9):,.0f} lookups/s, state in process), "
        "the trail read in batches of 10,000",
        f"- mapping pseudonyms back to NIRs, one pass over `insured` (HMAC per person): "
        f"{pass_seconds:.2f} s for {persons:,} persons, i.e. "
        f"**{pass_seconds / max(persons, 1) * 1e6:.1f} s per million persons**",
        f"- 2 shared cores, other work running: timings are noisy (load average at the end "
        f"{load:.1f}); the friction figures are deterministic for a seed",
    ]
    publish("guard-warm", "\n".join(lines), dry_run=args.no_write)


if __name__ == "__main__":
    main()
