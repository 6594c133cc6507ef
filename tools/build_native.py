"""Build the guard's compiled engine: mypyc over copies of its hot modules.

Run as ``python tools/build_native.py build`` (``make native``, and through it ``make
env``, ``make test``, ``make demo`` and ``make bench``): it compiles
:data:`rempart.guard.native.COMPILED` with mypyc, as copies renamed into the
:data:`~rempart.guard.native.PACKAGE` package, and installs the extension modules in
this environment's site-packages (or ``--target``). ``status`` says which engine a
replay would use, and why. The runtime holds only the loader
(:mod:`rempart.guard.native`); this file is tooling, never imported by the service.

A build embeds two hashes: ``SOURCE_HASH`` (:func:`rempart.guard.native.source_hash`,
the compiled sources and what they import), which the loader checks before it uses the
build; and ``BUILDER_HASH``, of this file and the mypyc version (how the copies are
made and compiled), which only this script checks: a build is current, and kept, when
both match. After an edit of this file the loader still uses the previous build (it was
made from the same sources) until ``make native`` replaces it.

A failed build removes the previous one, prints the reason and exits 1. The Makefile
decides what that means: outside CI a warning, and the pure-Python engine runs (the same
decisions, slower); under CI (``CI`` set) the run fails, so that the tests exercise the
engine the replay uses.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from rempart.guard.native import (
    COMPILED,
    PACKAGE,
    hashed_modules,
    implementation,
    source_hash,
    unavailable,
)

__all__ = ["build", "builder_hash", "copy_source", "main"]

_COMPILED_NAME = re.compile(r"\b(" + "|".join(re.escape(module) for module in COMPILED) + r")\b")
_PROTOCOL = re.compile(r"\bGuardState\b")


def builder_hash() -> str:
    """SHA-256 of this file and the mypyc version: how a build is made."""
    try:
        mypyc = importlib.metadata.version("mypy")
    except importlib.metadata.PackageNotFoundError:
        mypyc = "none"
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(f"\0mypy {mypyc}".encode())
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


def _installed_hashes(target: Path) -> tuple[str, str] | None:
    """The source and builder hashes embedded in the build under ``target``, read in a
    fresh interpreter (this one may not import it twice)."""
    probe = (
        "import importlib, importlib.machinery, sys; sys.path.insert(0, sys.argv[1]); "
        f"sys.exit(3) if importlib.machinery.PathFinder.find_spec({PACKAGE!r}, sys.path[:1]) "
        f"is None else None; m = importlib.import_module({PACKAGE!r}); "
        "print(m.SOURCE_HASH, getattr(m, 'BUILDER_HASH', '-'))"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, fixed code, our own path
        [sys.executable, "-c", probe, str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return None
    sources, _, builder = done.stdout.strip().partition(" ")
    return sources, builder


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
    from mypyc.build import mypycify  # noqa: PLC0415 - imported only when building

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


def _stage(stage: Path, wanted: tuple[str, str]) -> None:
    """The package mypyc compiles: the renamed copies, and the hashes in ``__init__``."""
    package = stage / PACKAGE
    package.mkdir()
    sources, builder = wanted
    (package / "__init__.py").write_text(
        '"""Compiled copies of the guard\'s hot modules (tools/build_native.py); '
        'do not edit."""\n\n'
        "from typing import Final\n\n"
        f'SOURCE_HASH: Final = "{sources}"\n'
        f'BUILDER_HASH: Final = "{builder}"\n',
        encoding="utf-8",
    )
    for module, path in hashed_modules().items():
        if module in COMPILED:
            name = module.rsplit(".", 1)[1]
            text = copy_source(module, path.read_text(encoding="utf-8"))
            (package / f"{name}.py").write_text(text, encoding="utf-8")
    (stage / "mypy.ini").write_text("[mypy]\nplugins = pydantic.mypy\n", encoding="utf-8")


def build(target: Path | None = None, *, force: bool = False) -> bool:
    """Compile :data:`~rempart.guard.native.COMPILED` into ``target`` (default: this
    environment's site-packages) unless a current build is there. True when a current
    build is installed; on a failed build the previous one is removed and the reason
    printed."""
    target = target or Path(sysconfig.get_path("platlib"))
    wanted = (source_hash(), builder_hash())
    if not force and _installed_hashes(target) == wanted:
        print(f"guard: the compiled engine in {target} is current")
        return True
    print(f"guard: compiling the engine with mypyc into {target} (about a minute)")
    with tempfile.TemporaryDirectory(prefix="rempart-native-") as tmp:
        stage = Path(tmp)
        _stage(stage, wanted)
        lib = stage / "lib"
        try:
            _compile(stage, lib)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure is reported
            _remove(target)
            print(f"guard: the engine could not be compiled ({exc!s:.500})", file=sys.stderr)
            return False
        _remove(target)
        target.mkdir(parents=True, exist_ok=True)
        shutil.copytree(lib, target, dirs_exist_ok=True)
    if _installed_hashes(target) != wanted:
        _remove(target)
        print("guard: the compiled engine does not import; removed", file=sys.stderr)
        return False
    print("guard: compiled engine installed")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/build_native.py", description="The guard's compiled engine."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="compile the engine unless a current build exists")
    make.add_argument("--target", type=Path, help="install here (default: site-packages)")
    make.add_argument("--force", action="store_true", help="compile even if current")
    commands.add_parser("status", help="say which engine a replay would use, and why")
    args = parser.parse_args(argv)
    if args.command == "build":
        return 0 if build(args.target, force=args.force) else 1
    chosen = implementation()
    why = unavailable()
    print(
        f"guard engine: {chosen.name} (sources {source_hash()[:12]})" + (f": {why}" if why else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
