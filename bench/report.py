"""Writes one benchmark's section of docs/benchmarks.md, leaving the others as they are."""

from __future__ import annotations

import platform
import re
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"

_HEADER = """# Benchmarks

Measured on the development machine (2 cores, 24 GiB), one section per benchmark.
Each section names the command that reproduces it. Timings live here, never in tests.
"""


def machine_line() -> str:
    return (
        f"_Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"Python {platform.python_version()}._"
    )


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section delimited by ``<!-- bench:NAME -->`` markers."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.strip()}\n\n{machine_line()}\n{end}"
    text = BENCHMARKS_MD.read_text(encoding="utf-8") if BENCHMARKS_MD.exists() else _HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    BENCHMARKS_MD.parent.mkdir(parents=True, exist_ok=True)
    BENCHMARKS_MD.write_text(text, encoding="utf-8")


def publish(name: str, markdown: str, *, dry_run: bool) -> None:
    """Print the section (``--no-write``) or write it into docs/benchmarks.md."""
    if dry_run:
        print(markdown)
        return
    write_section(name, markdown)
    print(f"section '{name}' written to docs/benchmarks.md")
