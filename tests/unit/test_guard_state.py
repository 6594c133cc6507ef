"""The in-process guard state: registries and the account record's versioning."""

from __future__ import annotations

import pytest

from rempart.guard.state import AccountState, Context, MemoryState, StaleRecord


def context(state: MemoryState, account: str = "a1", unit: str = "u1", nir: str = "n1") -> Context:
    return state.context(account, unit, nir, network="net1", device="dev1", session_id="s1")


def test_an_empty_state_knows_nothing() -> None:
    ctx = context(MemoryState())
    assert ctx.claimed_at == -1
    assert not ctx.seen
    assert ctx.network_known == ctx.device_known == 0
    assert ctx.network_units == ctx.device_units == 0
    assert ctx.session_network is None


def test_claims_keep_the_latest_time_per_unit_and_person() -> None:
    state = MemoryState()
    state.add_claim("u1", "n1", 50)
    state.add_claim("u1", "n1", 20)
    assert state.claimed_at("u1", "n1") == 50
    assert state.claimed_at("u2", "n1") == -1
    assert context(state).claimed_at == 50


def test_remember_records_reads_vouches_units_and_the_first_session_network() -> None:
    state = MemoryState()
    state.remember(
        "a1", "u1", "n1", network="net1", device="dev1", session_id="s1", read=True, vouch=1, cap=5
    )
    state.remember(
        "a2", "u2", None, network="net1", device="dev9", session_id="s1", read=False, vouch=0, cap=5
    )
    ctx = context(state)
    assert ctx.seen
    assert ctx.network_known == 1
    assert ctx.device_known == 1
    assert ctx.network_units == 1  # u2, not counting the asking unit
    assert ctx.device_units == 0
    assert ctx.session_network == "net1"
    assert not context(state, account="a2").seen


def test_units_are_capped_and_popular_ones_frozen_at_the_end_of_history() -> None:
    state = MemoryState()
    for i in range(10):
        state.remember(
            f"a{i}",
            f"u{i}",
            None,
            network="net1",
            device="dev1",
            session_id=f"s{i}",
            read=False,
            vouch=0,
            cap=4,
        )
    assert context(state, unit="other").network_units == 4
    assert not context(state).network_popular
    state.freeze_popular(4)
    assert context(state).network_popular
    assert context(state).device_popular


def test_a_stale_record_is_refused() -> None:
    state = MemoryState()
    live = state.account("a1")
    state.save_account("a1", live)
    copy = AccountState(version=live.version - 1)
    with pytest.raises(StaleRecord):
        state.save_account("a1", copy)
    fresh = AccountState(version=live.version)
    state.save_account("a1", fresh)
    assert state.account("a1") is fresh
