"""The guard's compiled engine: its hot modules built with mypyc, used only while current.

``python -m rempart.guard.native build`` (run by ``make env``, ``make test``, ``make demo``
and ``make bench``) compiles :data:`COMPILED` (the signals, the in-process state, the
engine and the replay's inner loop) with mypyc, as copies under other module names: the
``rempart_native`` package, installed beside the environment's other packages. Compiled
code never stands in for a ``.py`` file: ``import rempart.guard.engine`` always runs the
source, and only :func:`implementation` hands out the compiled classes.

Each build embeds :func:`source_hash`: a SHA-256 of the compiled modules' sources, of the
``rempart`` modules they import (compiled code bakes in their types: a named tuple's
field order, ``Final`` constants) and of this file (how the copies are made).
:func:`implementation` uses the build only while that hash is the current one; a stale
build is ignored with a warning (``guard_compiled_stale``), a missing one (no C compiler,
a failed build, another Python) with an info line, and the pure-Python engine runs
instead: the same decisions, about half as fast. A build that fails removes the previous
one and exits non-zero; it never breaks the environment (the Makefile goes on).

Only the offline replay uses the compiled engine, always with its own in-process state:
the compiled classes are distinct from the source ones (an ``AccountState`` of one is not
an ``AccountState`` of the other), so the inline driver and the Redis state keep the
source classes. ``python -m rempart.guard.native status`` says which engine a replay
would use.
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import importlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
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
    "build",
    "copy_source",
    "hashed_modules",
    "implementation",
    "load",
    "source_hash",
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
_COMPILED_NAME = re.compile(r"\b(" + "|".join(re.escape(module) for module in COMPILED) + r")\b")
_PROTOCOL = re.compile(r"\bGuardState\b")


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


@functools.cache
def load(package: str = PACKAGE) -> Implementation | None:
    """The compiled engine in ``package`` if it is built from the current sources."""
    try:
        built = importlib.import_module(package)
    except ImportError as exc:
        log.info("guard_compiled_unavailable", package=package, error=str(exc))
        return None
    embedded = getattr(built, "SOURCE_HASH", None)
    if embedded != source_hash():
        log.warning(
            "guard_compiled_stale",
            package=package,
            detail="the compiled guard engine was built from other sources; the pure-Python "
            "engine runs (rebuild: make env, or python -m rempart.guard.native build)",
        )
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
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for module, path in sorted(hashed_modules(root).items()):
        data = path.read_bytes()
        digest.update(f"\0{module}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def copy_source(module: str, source: str, package: str = PACKAGE) -> str:
    """The copy of compiled module ``module`` (its ``source``) that a build compiles.

    Two changes, line for line (tracebacks point at the source's line numbers): the
    compiled modules are renamed into ``package``; and outside the state module, the
    state protocol ``GuardState`` becomes ``MemoryState``, the in-process state that
    the compiled engine always runs on: typed so, its calls into the state are direct
    C calls (through the protocol, Python method calls with keyword parsing).
    """
    copy = _COMPILED_NAME.sub(lambda m: f"{package}.{m.group(1).rsplit('.', 1)[1]}", source)
    if module != "rempart.guard.state":
        copy = _PROTOCOL.sub("MemoryState", copy)
    return copy


# -- building -----------------------------------------------------------------------------


def _installed_hash(target: Path) -> str | None:
    """The hash embedded in the build under ``target``, read in a fresh interpreter (this
    one may not import it twice)."""
    probe = (
        "import importlib, importlib.machinery, sys; sys.path.insert(0, sys.argv[1]); "
        f"sys.exit(3) if importlib.machinery.PathFinder.find_spec({PACKAGE!r}, sys.path[:1]) "
        f"is None else print(importlib.import_module({PACKAGE!r}).SOURCE_HASH)"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, fixed code, our own path
        [sys.executable, "-c", probe, str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def _remove(target: Path) -> None:
    """Remove a build from ``target``."""
    shutil.rmtree(target / PACKAGE, ignore_errors=True)
    for lib in target.glob(f"{PACKAGE}__mypyc*"):
        lib.unlink()


def _compile(stage: Path, lib: Path) -> None:
    """mypyc and the C compiler: the staged package into extension modules in ``lib``."""
    # setuptools first: mypyc builds its extensions with whichever of setuptools and
    # distutils is imported (a Python 3.11 venv has setuptools; distutils is 3.11's own).
    try:
        setuptools = importlib.import_module("setuptools")
    except ImportError:
        setuptools = importlib.import_module("distutils.core")
    from mypyc.build import mypycify  # noqa: PLC0415 - a development tool, for builds only

    sources = sorted(str(p.relative_to(stage)) for p in (stage / PACKAGE).glob("*.py"))
    previous = Path.cwd()
    os.chdir(stage)  # relative paths: the compiled tracebacks name rempart_native/engine.py
    try:
        extensions = mypycify(
            ["--config-file", "mypy.ini", "--cache-dir", str(stage / "cache"), *sources],
            group_name=PACKAGE,
            target_dir=str(stage / "c"),
        )
        setuptools.setup(
            name=PACKAGE,
            version="0",
            ext_modules=extensions,
            script_args=[
                "-q",
                "build_ext",
                "--build-lib",
                str(lib),
                "--build-temp",
                str(stage / "obj"),
            ],
        )
    finally:
        os.chdir(previous)


def build(target: Path | None = None, *, force: bool = False) -> bool:
    """Compile :data:`COMPILED` into ``target`` (default: this environment's site-packages)
    unless a current build is there. True when a current build is installed; on a failed
    build the previous one is removed and the reason printed."""
    target = target or Path(sysconfig.get_path("platlib"))
    wanted = source_hash()
    if not force and _installed_hash(target) == wanted:
        print(f"guard: the compiled engine in {target} is current")
        return True
    print(f"guard: compiling the engine with mypyc into {target} (about a minute)")
    with tempfile.TemporaryDirectory(prefix="rempart-native-") as tmp:
        stage = Path(tmp)
        package = stage / PACKAGE
        package.mkdir()
        (package / "__init__.py").write_text(
            '"""Compiled copies of the guard\'s hot modules (rempart.guard.native); '
            'do not edit."""\n\n'
            "from typing import Final\n\n"
            f'SOURCE_HASH: Final = "{wanted}"\n',
            encoding="utf-8",
        )
        for module, path in hashed_modules().items():
            if module in COMPILED:
                name = module.rsplit(".", 1)[1]
                text = copy_source(module, path.read_text(encoding="utf-8"))
                (package / f"{name}.py").write_text(text, encoding="utf-8")
        (stage / "mypy.ini").write_text("[mypy]\nplugins = pydantic.mypy\n", encoding="utf-8")
        lib = stage / "lib"
        try:
            _compile(stage, lib)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure: pure Python
            _remove(target)
            print(
                f"guard: the engine could not be compiled ({exc!s:.500}); "
                "the pure-Python engine will run (same decisions, slower)",
                file=sys.stderr,
            )
            return False
        _remove(target)
        target.mkdir(parents=True, exist_ok=True)
        shutil.copytree(lib, target, dirs_exist_ok=True)
    if _installed_hash(target) != wanted:
        _remove(target)
        print("guard: the compiled engine does not import; removed", file=sys.stderr)
        return False
    print("guard: compiled engine installed")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rempart.guard.native", description="The guard's compiled engine."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="compile the engine unless a current build exists")
    make.add_argument("--target", type=Path, help="install here (default: site-packages)")
    make.add_argument("--force", action="store_true", help="compile even if current")
    commands.add_parser("status", help="say which engine a replay would use")
    args = parser.parse_args(argv)
    if args.command == "build":
        return 0 if build(args.target, force=args.force) else 1
    chosen = implementation()
    print(f"guard engine: {chosen.name} (sources {source_hash()[:12]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
