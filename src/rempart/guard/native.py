"""The guard's compiled engine: the loader, which uses a build only while it is current.

A build (``tools/build_native.py build``, run by ``make env``, ``make test``, ``make demo``
and ``make bench``; the build lives with the tooling, not here) compiles :data:`COMPILED`
(the signals, the in-process state, the engine and the replay's inner loop) with mypyc,
as copies under other module names: the :data:`PACKAGE` package, installed beside the
environment's other packages. Compiled code never stands in for a ``.py`` file: ``import
rempart.guard.engine`` always runs the source, and only :func:`implementation` hands out
the compiled classes.

Each build embeds :func:`source_hash`: a SHA-256 of the compiled modules' sources and of
the ``rempart`` modules they import (compiled code bakes in their types: a named tuple's
field order, ``Final`` constants). :func:`implementation` uses the build only while that
hash is the current one; a stale build is ignored with a warning
(``guard_compiled_stale``), a missing one (no C compiler, a failed build, another Python)
with an info line, and the pure-Python engine runs instead: the same decisions, about
half as fast. (How the copies are made is the build script's business: it rebuilds when
it changes, see its docstring; the loader only asks whether the build is of these
sources.)

Only the offline replay uses the compiled engine, always with its own in-process state:
the compiled classes are distinct from the source ones (an ``AccountState`` of one is not
an ``AccountState`` of the other), so the inline driver and the Redis state keep the
source classes. ``python tools/build_native.py status`` says which engine a replay would
use, and why.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import structlog

from rempart.guard import feed
from rempart.guard.engine import Guard
from rempart.guard.state import MemoryState

__all__ = [
    "COMPILED",
    "PACKAGE",
    "PURE",
    "Implementation",
    "hashed_modules",
    "implementation",
    "load",
    "source_hash",
    "unavailable",
]

log = structlog.get_logger("rempart.guard")

PACKAGE = "rempart_native"
"""The compiled copies' package: ``rempart_native.engine`` for ``rempart.guard.engine``."""
COMPILED = (
    "rempart.guard.signals",
    "rempart.guard.state",
    "rempart.guard.phases",
    "rempart.guard.engine",
    "rempart.guard.feed",
)
_ROOT = Path(__file__).resolve().parents[1]
_HASH_FORMAT = b"rempart-native-sources-2"
"""Bumped when what :func:`source_hash` covers changes (every earlier build is stale)."""


@dataclass(frozen=True)
class Implementation:
    """One engine's classes: ``compiled`` or ``pure``, both deciding the same."""

    name: str
    guard: type[Guard]
    state: type[MemoryState]
    decide_rows: Callable[..., int]
    """:func:`rempart.guard.feed.decide_rows`, or its compiled copy."""


PURE = Implementation("pure", Guard, MemoryState, feed.decide_rows)


def implementation(*, compiled: bool = True) -> Implementation:
    """The compiled engine when ``compiled`` and a current build is installed, else the
    pure-Python one (a stale build is logged as a warning, once per process)."""
    if compiled:
        found = load()
        if found is not None:
            return found
    return PURE


def unavailable(package: str = PACKAGE) -> str | None:
    """None when a build of the current sources is installed in ``package``; else why
    not, in a sentence (for a log line or a test's failure)."""
    try:
        built = importlib.import_module(package)
    except ImportError as exc:
        return f"no compiled engine is installed ({exc})"
    embedded = getattr(built, "SOURCE_HASH", None)
    if embedded != source_hash():
        return (
            f"the compiled engine was built from other sources (built {str(embedded)[:12]}, "
            f"sources {source_hash()[:12]}); rebuild: make native, or "
            "python tools/build_native.py build"
        )
    return None


@functools.cache
def load(package: str = PACKAGE) -> Implementation | None:
    """The compiled engine in ``package`` if it is built from the current sources."""
    why = unavailable(package)
    if why is not None:
        if why.startswith("no compiled engine"):
            log.info("guard_compiled_unavailable", package=package, detail=why)
        else:
            log.warning("guard_compiled_stale", package=package, detail=why)
        return None
    engine = importlib.import_module(f"{package}.engine")
    state = importlib.import_module(f"{package}.state")
    rows = importlib.import_module(f"{package}.feed")
    return Implementation(
        "compiled",
        cast("type[Guard]", engine.Guard),
        cast("type[MemoryState]", state.MemoryState),
        cast("Callable[..., int]", rows.decide_rows),
    )


# -- what a build is made of --------------------------------------------------------------


def _module_path(module: str, root: Path) -> Path | None:
    """The source file of ``rempart.…`` module ``module`` under ``root`` (the ``rempart``
    package's directory), None if it is not a module there."""
    parts = module.split(".")
    if parts[0] != "rempart":
        return None
    base = root.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    file = base.with_name(base.name + ".py")
    return file if len(parts) > 1 and file.is_file() else None


def _rempart_imports(source: str) -> set[str]:
    """Names of the ``rempart`` modules (or names in them) a source imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] == "rempart"}


def hashed_modules(root: Path = _ROOT) -> dict[str, Path]:
    """The compiled modules and the ``rempart`` modules they import, with their files."""
    files: dict[str, Path] = {}
    for module in COMPILED:
        path = _module_path(module, root)
        if path is None:
            raise FileNotFoundError(f"{module} has no source under {root}")
        files[module] = path
        for name in _rempart_imports(path.read_text(encoding="utf-8")):
            found = _module_path(name, root)
            if found is not None:
                files[name] = found
    return files


def source_hash(root: Path = _ROOT) -> str:
    """SHA-256 of what a build compiles and depends on (see the module's docstring)."""
    digest = hashlib.sha256(_HASH_FORMAT)
    for module, path in sorted(hashed_modules(root).items()):
        data = path.read_bytes()
        digest.update(f"\0{module}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()
