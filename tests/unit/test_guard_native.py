"""The guard's compiled engine is used only while it matches its sources.

What a build is made of (the hash), and what :func:`rempart.guard.native.load` does with
a stale, a missing and a current build. A current build here is a package of the renamed
copies (``tools/build_native.py``'s :func:`copy_source`) left as Python (what mypyc would
compile): the loader's checks and the renaming are tested without a C compiler; the
compiled build itself is compared with the pure engine in
``tests/functional/test_guard_compiled.py``. What ``make native`` does when the build
fails, outside CI and under it: ``test_make_native.py``.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator, MutableMapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import structlog
from structlog.testing import capture_logs

from rempart.guard import native
from rempart.guard.native import (
    COMPILED,
    PURE,
    hashed_modules,
    load,
    source_hash,
    unavailable,
)
from rempart.guard.replay import replay_world
from tests.guard_world import WINDOW_START, add_robot, tiny_world
from tools import build_native
from tools.build_native import builder_hash, copy_source

SOURCES = Path(native.__file__).resolve().parents[1]


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """A copy of the rempart package's sources."""
    copy = tmp_path / "rempart"
    shutil.copytree(SOURCES, copy, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    return copy


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """The log entries of the test, every level (another test may have set a higher one)."""
    before = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as entries:
            yield entries
    finally:
        structlog.configure(**before)


def edit(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")


def test_the_hash_covers_the_compiled_modules_and_what_they_import(sources: Path) -> None:
    modules = hashed_modules(sources)
    assert set(COMPILED) <= set(modules)
    # Compiled code bakes in the types of what it imports (Person's fields, DAY_US).
    assert {"rempart.guard.directory", "rempart.guard.events", "rempart.guard.config"} <= set(
        modules
    )
    assert "rempart.guard.inline" not in modules
    before = source_hash(sources)
    assert before == source_hash(SOURCES)
    edit(sources / "guard" / "alerts.py")
    assert source_hash(sources) == before
    edit(sources / "guard" / "directory.py")
    after_dependency = source_hash(sources)
    assert after_dependency != before
    edit(sources / "guard" / "engine.py")
    assert source_hash(sources) not in {before, after_dependency}


def test_a_new_import_of_a_compiled_module_joins_the_hash(sources: Path) -> None:
    before = source_hash(sources)
    engine = sources / "guard" / "engine.py"
    engine.write_text(
        engine.read_text(encoding="utf-8").replace(
            "import statistics\n", "import statistics\n\nimport rempart.guard.alerts\n"
        ),
        encoding="utf-8",
    )
    assert "rempart.guard.alerts" in hashed_modules(sources)
    changed = source_hash(sources)
    edit(sources / "guard" / "alerts.py")
    assert source_hash(sources) not in {before, changed}


def test_the_copies_rename_the_compiled_modules_only() -> None:
    text = (
        "from rempart.guard.state import AccountState, GuardState\n"
        "from rempart.guard.directory import Person\n"
        "import rempart.guard.engine\n"
        "from rempart.guard.statements import nothing\n"
        "def make(state: GuardState, states: GuardStates) -> None: ...\n"
    )
    assert copy_source("rempart.guard.engine", text, "pkg") == (
        "from pkg.state import AccountState, MemoryState\n"
        "from rempart.guard.directory import Person\n"
        "import pkg.engine\n"
        "from rempart.guard.statements import nothing\n"
        "def make(state: MemoryState, states: GuardStates) -> None: ...\n"
    )
    # The state module keeps its protocol.
    assert "class GuardState(" in copy_source(
        "rempart.guard.state", hashed_modules()["rempart.guard.state"].read_text(encoding="utf-8")
    )


def fake_build(root: Path, package: str, embedded: str) -> None:
    """A build of ``package`` under ``root`` whose modules are the renamed copies, as Python."""
    folder = root / package
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(f'SOURCE_HASH = "{embedded}"\n', encoding="utf-8")
    for module in COMPILED:
        path = hashed_modules()[module]
        name = module.rsplit(".", 1)[1]
        text = copy_source(module, path.read_text(encoding="utf-8"), package)
        (folder / f"{name}.py").write_text(text, encoding="utf-8")


def test_a_stale_build_is_not_used_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: list[MutableMapping[str, Any]]
) -> None:
    fake_build(tmp_path, "rempart_native_stale_test", "0" * 64)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load("rempart_native_stale_test") is None
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [
        ("guard_compiled_stale", "warning")
    ]
    why = unavailable("rempart_native_stale_test")
    assert why is not None
    assert "built from other sources" in why
    assert "tools/build_native.py build" in why


def test_a_missing_build_is_not_used_quietly(logs: list[MutableMapping[str, Any]]) -> None:
    assert load("rempart_native_never_built_test") is None
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [
        ("guard_compiled_unavailable", "info")
    ]
    assert (unavailable("rempart_native_never_built_test") or "").startswith(
        "no compiled engine is installed"
    )


def test_the_runtime_holds_the_loader_and_the_tooling_the_build() -> None:
    # The build (mypyc staging, the copies, the command line) is not in the runtime.
    for name in ("build", "copy_source", "main", "_compile"):
        assert not hasattr(native, name), name
    assert Path(build_native.__file__).resolve().parent.name == "tools"
    assert source_hash() == source_hash(SOURCES)
    # How the copies are made is the build script's own hash, not the sources'.
    assert len(builder_hash()) == 64
    assert builder_hash() != source_hash()


def test_a_current_build_is_used_and_decides_as_the_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_build(tmp_path / "lib", "rempart_native_current_test", source_hash())
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    found = load("rempart_native_current_test")
    assert found is not None
    assert found.name == "compiled"
    assert found.guard.__module__ == "rempart_native_current_test.engine"
    assert found.state.__module__ == "rempart_native_current_test.state"

    tiny = tiny_world()
    add_robot(tiny, "ph1b", WINDOW_START + timedelta(days=1, hours=2), 500)
    world = tiny.write(tmp_path / "world")
    theirs = replay_world(world, tmp_path / "copies.parquet", engine=found)
    ours = replay_world(world, tmp_path / "pure.parquet", engine=PURE)
    assert (theirs.engine, ours.engine) == ("compiled", "pure")
    decisions = pq.read_table(tmp_path / "pure.parquet")
    assert set(decisions.column("decision").to_pylist()) == {"allow", "step_up", "deny"}
    assert pq.read_table(tmp_path / "copies.parquet").equals(decisions)
