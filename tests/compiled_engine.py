"""The guard's compiled engine for the tests that compare it with the pure one.

Outside CI a missing or stale build skips them (with the reason): the pure engine still
runs everywhere. Under CI (``CI=true``) it fails them: ``make native`` fails the run
when the build fails, and a run whose tests skipped the compiled engine would not have
exercised the engine the replay uses.
"""

from __future__ import annotations

import pytest

from rempart.guard.native import Implementation, implementation, unavailable
from tests.conftest import IN_CI


def compiled_engine() -> Implementation:
    """The compiled engine when a current build is installed; else skip (fail under CI)."""
    found = implementation()
    if found.name == "compiled":
        return found
    reason = unavailable() or "the compiled guard engine is not in use"
    if IN_CI:
        pytest.fail(f"CI requires the guard's compiled engine: {reason}")
    pytest.skip(reason)
