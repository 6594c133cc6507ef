"""Run a piece of Python in a process of its own and read its own peak memory.

A benchmark process's ``ru_maxrss`` is the peak of everything it did before (building
a trail, exporting it, ...): it says nothing of one step. A fresh child runs only the
step, and ``os.wait4`` gives that child's own resource usage, measured by the kernel
(``RUSAGE_CHILDREN`` would be the largest of all children waited for).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rempart

SRC = Path(rempart.__file__).resolve().parent.parent
"""The code this benchmark imports; a child runs the same unless told another."""


class ChildFailed(Exception):
    """The child exited with an error; its standard error went to ours."""


@dataclass(frozen=True)
class ChildRun:
    result: Any
    """What the child printed as JSON on its last line of output."""
    peak_rss: int
    """Bytes: the child's own peak resident set size."""


def run_child(script: str, *args: str, src: Path = SRC) -> ChildRun:
    """Run ``python -c script args`` with ``src`` first on its path; its last line of
    standard output must be JSON."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, env=env, text=True
    )
    assert process.stdout is not None
    output = process.stdout.read()
    process.stdout.close()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise ChildFailed(f"{args[:1]}: exit status {process.returncode}")
    lines = output.strip().splitlines()
    return ChildRun(json.loads(lines[-1]) if lines else None, usage.ru_maxrss * 1024)
