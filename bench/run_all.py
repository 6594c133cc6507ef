"""Runs every benchmark in turn (never two at once: they share the machine's 2 cores)."""

from __future__ import annotations

import importlib

BENCHMARKS = (
    "bench_generate",
    "bench_load",
    "bench_login",
    "bench_lookup",
    "bench_audit_cost",
    "bench_audit_verify",
    "bench_auth",
    "bench_guard",
    "bench_guard_inline",
    "bench_takeover",
    "bench_scope",
    "bench_portal",
)


def main() -> None:
    for name in BENCHMARKS:
        print(f"== {name}")
        module = importlib.import_module(f"bench.{name}")
        module.main([])


if __name__ == "__main__":
    main()
