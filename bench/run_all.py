"""Runs every benchmark in turn (never two at once: they share the machine's 2 cores)."""

from __future__ import annotations

import importlib

# A module, or a module with its arguments (a second section of the same benchmark).
BENCHMARKS: tuple[str | tuple[str, list[str]], ...] = (
    "bench_generate",
    "bench_load",
    "bench_login",
    "bench_lookup",
    "bench_lookup_path",
    "bench_fhir",
    "bench_audit_cost",
    "bench_audit_verify",
    "bench_auth",
    "bench_guard",
    # Issue 15: claims-heavy worlds (about 0.75 claims per lookup), section guard-claims.
    ("bench_guard", ["--claims-per-lookup", "0.75", "--seeds", "0,1,2"]),
    "bench_guard_replay",
    "bench_guard_inline",
    "bench_takeover",
    "bench_scope",
    "bench_portal",
    "bench_messages",
    "bench_fuzz",
    "bench_overload",
)


def main() -> None:
    for entry in BENCHMARKS:
        name, argv = (entry, []) if isinstance(entry, str) else entry
        print(f"== {name} {' '.join(argv)}".rstrip())
        module = importlib.import_module(f"bench.{name}")
        module.main(argv)


if __name__ == "__main__":
    main()
