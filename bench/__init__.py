"""Benchmarks. Each writes its own section of docs/benchmarks.md."""
