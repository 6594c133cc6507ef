"""The tests that compare the compiled engine with the pure one skip without a current
build, and fail for it under CI (with the loader's reason)."""

from __future__ import annotations

import pytest

from rempart.guard import native
from tests import compiled_engine as helper


@pytest.fixture
def no_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader looks for a package that was never built."""
    monkeypatch.setattr(helper, "implementation", lambda: native.implementation(compiled=False))
    monkeypatch.setattr(
        helper, "unavailable", lambda: native.unavailable("rempart_native_never_built_test")
    )


@pytest.mark.usefixtures("no_build")
def test_without_a_build_the_comparison_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helper, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="no compiled engine is installed"):
        helper.compiled_engine()


@pytest.mark.usefixtures("no_build")
def test_without_a_build_the_comparison_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helper, "IN_CI", True)
    with pytest.raises(
        pytest.fail.Exception,
        match="CI requires the guard's compiled engine: no compiled engine is installed",
    ):
        helper.compiled_engine()
