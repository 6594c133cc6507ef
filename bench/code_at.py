"""Another commit's code beside this one's, for a benchmark that measures both in one run.

A detached git worktree of the commit under ``bench/out/`` (made once, then reused), and
the environment that makes a server import ``rempart`` from it: its ``src`` in front of
``PYTHONPATH``, which Python searches before the editable install's path entry. The
import is checked, not assumed, and so is the schema: both codes serve the same database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CodeAt", "checkout", "imported_from", "same_schema", "with_src"]

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
# The migrations that define the schema a server expects of its database.
MIGRATIONS = ("rempart/store/migrations/versions", "rempart/store/audit_migrations/versions")


class CodeError(Exception):
    """The other commit's code cannot be measured; the message says why."""


@dataclass(frozen=True)
class CodeAt:
    rev: str  # as the user gave it
    commit: str  # the full hash
    path: Path  # the worktree

    @property
    def src(self) -> Path:
        return self.path / "src"

    @property
    def short(self) -> str:
        return self.commit[:7]


def _git(*argv: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(["git", *argv], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CodeError(f"git {' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def checkout(rev: str) -> CodeAt:
    """The worktree of ``rev`` under ``bench/out/``, added detached if absent.

    A directory that is there but is not that commit's clean worktree is left alone
    (it may be someone's work): the run stops and says so."""
    commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    # A hidden directory: mypy checks every other .py file under bench/ (its `files`),
    # and a second copy of `rempart` there would stop it (duplicate modules).
    path = OUT / f".code-{commit[:12]}"
    if path.exists():
        head = _git("rev-parse", "HEAD", cwd=path) if (path / ".git").exists() else ""
        if head != commit:
            raise CodeError(f"{path} exists but is not a worktree of {commit[:12]}: move it away")
        if _git("status", "--porcelain", "--", "src", cwd=path):
            raise CodeError(f"{path} has changes in src/: it would not be the code of {rev}")
        return CodeAt(rev, commit, path)
    OUT.mkdir(parents=True, exist_ok=True)
    _git("worktree", "add", "--detach", str(path), commit)
    return CodeAt(rev, commit, path)


def with_src(env: dict[str, str], src: Path) -> dict[str, str]:
    """``env`` with ``src`` first on ``PYTHONPATH`` (what was there stays, behind it)."""
    rest = env.get("PYTHONPATH", "")
    return {**env, "PYTHONPATH": os.pathsep.join(p for p in (str(src), rest) if p)}


def imported_from(env: dict[str, str]) -> Path:
    """The directory ``rempart`` is imported from by this interpreter under ``env``."""
    done = subprocess.run(
        [sys.executable, "-c", "import rempart; print(rempart.__file__)"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise CodeError(f"cannot import rempart under that environment:\n{done.stderr}")
    return Path(done.stdout.strip()).resolve().parent


def same_schema(src_a: Path, src_b: Path) -> bool:
    """Whether both codes carry the same migrations (file names and contents)."""

    def migrations(src: Path) -> dict[str, bytes]:
        return {
            f"{folder}/{path.name}": path.read_bytes()
            for folder in MIGRATIONS
            for path in sorted((src / folder).glob("*.py"))
        }

    return migrations(src_a) == migrations(src_b)
