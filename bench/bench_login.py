"""Benchmark: login timing, unknown login against wrong password against right password.

The issue asks that an unknown login and a wrong password be indistinguishable
in status, body and timing (the dummy hash). This measures the three cases
through the real app (in-process ASGI, SQLite) with the configured argon2 cost,
and reports medians and spread, so that any gap shows.

    .venv/bin/python -m bench.bench_login [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from bench.report import write_section
from rempart.api import create_app
from rempart.config import load_settings
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.migrate import upgrade

PASSWORD = "violet tram sous la pluie 1987"  # noqa: S105 - the benchmark's throwaway account


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="rempart-bench-login-") as tmp:
        settings = load_settings(
            database_url=f"sqlite:///{Path(tmp) / 'rempart.db'}",
            data_dir=Path(tmp) / "data",
            # The throttle would stop the benchmark; it is not what is measured here.
            throttle_account_failures=10**9,
            throttle_address_failures=10**9,
            throttle_address_attempts=10**9,
        )
        services = Services(settings)
        upgrade(services.engine, schema="data")
        upgrade(services.audit_engine, schema="audit")
        with session_scope(services.sessions) as session:
            services.auth.create_account(session, login="dr.martin", password=PASSWORD)
        cases = {
            "unknown login": ("nobody.here", "some wrong password 1"),
            "wrong password": ("dr.martin", "some wrong password 1"),
            "right password": ("dr.martin", PASSWORD),
        }
        timings: dict[str, list[float]] = {name: [] for name in cases}
        with TestClient(create_app(services=services)) as client:
            for _ in range(args.rounds):
                # Interleaved, so that drift of the machine hits all cases alike.
                for name, (login, password) in cases.items():
                    began = time.perf_counter()
                    client.post("/api/v1/auth/login", json={"login": login, "password": password})
                    timings[name].append((time.perf_counter() - began) * 1000)
        services.close()

    rows = []
    for name, values in timings.items():
        low, _, high = statistics.quantiles(values, n=4)
        rows.append(f"| {name} | {statistics.median(values):.1f} ms | {low:.1f} to {high:.1f} ms |")
        print(f"{name}: median {statistics.median(values):.1f} ms")
    gap = statistics.median(timings["unknown login"]) - statistics.median(timings["wrong password"])
    logins_per_second = 1000 / statistics.median(timings["right password"])
    write_section(
        "login",
        f"""## Login timing (`POST /api/v1/auth/login`)

argon2id with the default cost (time 3, memory 64 MiB, parallelism 4), {args.rounds} rounds
of the three cases interleaved, through the real app in-process on SQLite:

| case | median | interquartile range |
| --- | ---: | ---: |
{chr(10).join(rows)}

- Unknown login minus wrong password, medians: **{gap:+.1f} ms**: both verify one argon2id
  hash (a dummy one for an unknown login), so the timing does not tell them apart.
- One password check in one process: about **{logins_per_second:.0f} logins/s** (argon2 is
  the cost, on purpose; a right password also issues the MFA token).
- Reproduce: `.venv/bin/python -m bench.bench_login`""",
    )


if __name__ == "__main__":
    main()
