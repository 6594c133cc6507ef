"""Benchmark: what the FHIR facade costs over the JSON API, side by side in one run.

The same service (uvicorn over TCP, one process, the guard on in its learning window,
the audit written), the same account and the same (NIR, birth date) pairs; one client
asks, one request after another, in turn: the JSON lookup, the FHIR Patient search, and
the FHIR Coverage search with the Patient and the treating doctor included (the whole
record, as the JSON lookup). Interleaved, so that a slower moment of the machine weighs
on the three alike. Per kind: median and 95th percentile of the wall time a request
takes, and the ratio of each FHIR search to the JSON lookup. SQLite (the embedded
default) and PostgreSQL.

    .venv/bin/python -m bench.bench_fhir [--rounds N] [--insured N] [--no-write]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.bench_lookup import base_env, code_version, sample_pairs, world_dir
from bench.bench_lookup_path import (
    OUT,
    bench_services,
    bench_token,
    on_both_databases,
)
from bench.report import publish
from rempart.api import create_app
from rempart.api.server import running_server
from rempart.fhir.systems import INS_NIR
from rempart.logs import configure_logging
from rempart.store.load_world import load_world

DB_NAME = "rempart_bench_fhir"
KINDS = ("json", "fhir-patient", "fhir-coverage")
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass(frozen=True)
class Measured:
    backend: str
    rounds: int
    wall_ms: dict[str, list[float]]

    def median(self, kind: str) -> float:
        return statistics.median(self.wall_ms[kind])

    def p95(self, kind: str) -> float:
        return statistics.quantiles(self.wall_ms[kind], n=20)[-1]


def _request(http: httpx.Client, kind: str, pair: tuple[str, str]) -> httpx.Response:
    nir, born = pair
    if kind == "json":
        return http.post("/api/v1/rights/lookup", json={"nir": nir, "birth_date": born})
    if kind == "fhir-patient":
        body = f"identifier={INS_NIR}|{nir}&birthdate={born}"
        return http.post("/fhir/Patient/_search", content=body, headers=_FORM)
    body = (
        f"beneficiary.identifier={INS_NIR}|{nir}&birthdate={born}"
        "&_include=Coverage:beneficiary&_include=Patient:general-practitioner"
    )
    return http.post("/fhir/Coverage/_search", content=body, headers=_FORM)


def measure(
    backend: str, url: str, world: Path, pairs: list[tuple[str, str]], rounds: int
) -> Measured:
    walls: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory() as data_dir:
        services = bench_services(url, Path(data_dir))
        try:
            load_world(services.engine, world, pseudonym_key=services.settings.keys.pseudonym_key)
            token = bench_token(services)
            with (
                running_server(create_app(services=services)) as base,
                httpx.Client(
                    base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
                ) as http,
            ):
                for i in range(rounds + 100):
                    for kind in KINDS:
                        pair = pairs[(i * len(KINDS) + KINDS.index(kind)) % len(pairs)]
                        started = time.perf_counter()
                        response = _request(http, kind, pair)
                        elapsed = time.perf_counter() - started
                        if response.status_code != 200:
                            raise SystemExit(f"{kind}: {response.status_code} {response.text}")
                        if i >= 100:  # the first 100 rounds warm caches and the pool
                            walls[kind].append(1000 * elapsed)
        finally:
            services.close()
    return Measured(backend=backend, rounds=rounds, wall_ms=walls)


def render(args: argparse.Namespace, results: list[Measured]) -> str:
    rows = []
    for m in results:
        base = m.median("json")
        for kind in KINDS:
            ratio = "1" if kind == "json" else f"{m.median(kind) / base:.2f}"
            rows.append(
                f"| {m.backend} | `{kind}` | {m.median(kind):.2f} ms | {m.p95(kind):.2f} ms "
                f"| {ratio} |"
            )
    table = "\n".join(rows)
    command = (
        f".venv/bin/python -m bench.bench_fhir --rounds {args.rounds} --insured {args.insured}"
    )
    return f"""## The FHIR facade beside the JSON API (issue 17)

One service (uvicorn over TCP in this process, the guard on in its learning window so
that one account's loop is decided and never refused, every answer audited), one
account, one client asking one request after another: in turn the JSON lookup
(`json`), the FHIR Patient search (`fhir-patient`: identity only) and the FHIR Coverage
search with the Patient and the treating doctor included (`fhir-coverage`: the whole
record, as the JSON lookup answers it). {args.rounds:,} rounds after 100 to warm up, over
{args.insured:,} insured persons' real (NIR, birth date) pairs. Wall time per request as
the client sees it (client and server share the process and the two cores).

| database | request | median | p95 | median / `json` |
| --- | --- | ---: | ---: | ---: |
{table}

- The facade adds the form parsing and the building of the resources to the same
  guarded, audited lookup; the audit entry is the same statement.
- **Code**: {code_version()}.
- **Reproduce**: `{command}`
- **Machine**: {platform.machine()}, 2 cores; one request at a time, so these are
  latencies, not throughputs (the throughput of the lookup path is `bench:lookup`'s).
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=2_000)
    parser.add_argument("--insured", type=int, default=20_000)
    parser.add_argument("--professionals", type=int, default=200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("warning")
    env = base_env(OUT / "fhir-data")
    world, _ = world_dir(env, args.insured, args.professionals)
    pairs = sample_pairs(world, 4_096)
    results = on_both_databases(
        DB_NAME, lambda backend, url: measure(backend, url, world, pairs, args.rounds)
    )
    for m in results:
        print(
            f"{m.backend}: "
            + ", ".join(f"{k} {m.median(k):.2f} ms (p95 {m.p95(k):.2f})" for k in KINDS)
        )
    publish("fhir", render(args, results), dry_run=args.no_write)


if __name__ == "__main__":
    main()
