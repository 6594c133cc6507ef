"""``make native`` when the guard's compiled engine does not build: outside CI a warning
and the run goes on (the pure-Python engine decides the same, slower); under CI the run
fails, so that the tests exercise the engine the replay uses.

The Makefile is run for real, on an environment whose ``python`` is a stand-in that
records its arguments and answers the build with a given exit status (the stamp marked
up to date: nothing is installed).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def run_native(
    tmp_path: Path, *, build_status: int, ci: str | None
) -> subprocess.CompletedProcess[str]:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(
        f'#!/bin/sh\necho "$@" >> {tmp_path / "calls"}\nexit {build_status}\n', encoding="utf-8"
    )
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    stamp = venv / ".installed"
    stamp.touch()
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "MAKEFLAGS", "MAKELEVEL")}
    if ci is not None:
        env["CI"] = ci
    assert MAKE is not None
    return subprocess.run(
        [MAKE, "-s", "-C", str(REPO), "-o", str(stamp), f"VENV={venv}", "native"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_the_build_is_the_tooling_script(tmp_path: Path) -> None:
    done = run_native(tmp_path, build_status=0, ci="true")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "calls").read_text(encoding="utf-8").split() == [
        "tools/build_native.py",
        "build",
    ]
    assert done.stderr == ""


def test_outside_ci_a_failed_build_warns_and_goes_on(tmp_path: Path) -> None:
    done = run_native(tmp_path, build_status=1, ci=None)
    assert done.returncode == 0
    assert "warning" in done.stderr
    assert "pure-Python engine runs" in done.stderr


@pytest.mark.parametrize("ci", ["true", "1", "TRUE", "yes"])
def test_under_ci_a_failed_build_fails_the_run(tmp_path: Path, ci: str) -> None:
    done = run_native(tmp_path, build_status=1, ci=ci)
    assert done.returncode != 0
    assert "under CI this fails the run" in done.stderr


def test_ci_set_to_false_is_not_ci(tmp_path: Path) -> None:
    done = run_native(tmp_path, build_status=1, ci="false")
    assert done.returncode == 0
    assert "warning" in done.stderr
