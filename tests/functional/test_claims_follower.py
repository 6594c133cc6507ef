"""The server follows the claims table: a claim ingested by another process (the
command) explains, within seconds, a lookup its guard (state in process) found
unexplained before; a restarted server feeds the recent claims again; a guard whose
state is away makes the follower wait, skipping nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from rempart.api import create_app
from rempart.claims.follower import ClaimsFollower
from rempart.claims.ingest import ingest_file
from rempart.config import Settings
from rempart.guard.redis_state import StateUnavailable
from rempart.rights.service import Caller
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Claim
from tests.functional.conftest import PEER, Person
from tests.functional.test_guard_inline import build_town, guard_settings

Town = tuple[list[Person], list[Person]]
HOUR_US = 3_600_000_000


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # The guard's state in this process: only the follower can tell it about a claim.
    return guard_settings(database_url, tmp_path, claims_poll_seconds=0.2)


@pytest.fixture
def town(services: Services) -> Town:
    return build_town(services)


@pytest.fixture
def server(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services=services), client=PEER) as client:
        yield client


def now_us() -> int:
    return time.time_ns() // 1_000


def claims_file(tmp_path: Path, rows: list[tuple[int, str, Person]]) -> Path:
    path = tmp_path / f"claims-{len(list(tmp_path.glob('claims-*')))}.csv"
    lines = ["ts,account_id,nir"]
    for ts_us, account_id, person in rows:
        stamp = datetime.fromtimestamp(ts_us / 1_000_000, UTC).isoformat()
        lines.append(f"{stamp},{account_id},{person.nir.value}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def reasons_of(services: Services, person: Person, ts_us: int) -> tuple[str, ...]:
    """The guard's reasons for a lookup of ``person`` by the pharmacy's software."""
    guard = services.guard
    assert guard is not None
    caller = Caller(
        account_id="ph-lilas",
        session_id="session-counter",
        acr="totp",
        client_ip="203.0.113.20",
        user_agent="LogicielOfficine/5.2",
        channel="software",
    )
    with session_scope(services.sessions) as session:
        _kind, _score, reasons = guard.decide(
            session,
            caller,
            raw_nir=person.nir.value,
            raw_birth_date=person.birth_date.isoformat(),
            ts_us=ts_us,
        )
    return reasons


def fed(server: TestClient, at_least: int, *, within: float = 10.0) -> ClaimsFollower:
    follower: ClaimsFollower = server.app.state.claims_follower  # type: ignore[attr-defined]
    deadline = time.monotonic() + within
    while follower.fed < at_least:
        assert time.monotonic() < deadline, f"the follower fed {follower.fed} in {within} s"
        time.sleep(0.05)
    return follower


def test_a_claim_ingested_by_the_command_explains_lookups_within_seconds(
    services: Services, server: TestClient, town: Town, tmp_path: Path
) -> None:
    _, strangers = town
    now = now_us()
    # Strangers living far away, never seen by the pharmacy: unexplained.
    assert "unexplained" in reasons_of(services, strangers[0], now)

    # Billing shows one of them was served at the counter an hour ago.
    ingest_file(services.engine, claims_file(tmp_path, [(now - HOUR_US, "ph-lilas", strangers[1])]))
    started = time.monotonic()
    fed(server, 1)
    assert time.monotonic() - started < 5

    assert "unexplained" not in reasons_of(services, strangers[1], now + 1_000_000)
    # Not a blanket pass: a stranger without a claim is still unexplained.
    assert "unexplained" in reasons_of(services, strangers[2], now + 2_000_000)


def test_a_restarted_server_feeds_the_recent_claims_again(
    services: Services, town: Town, tmp_path: Path
) -> None:
    _, strangers = town
    now = now_us()
    days = services.settings.guard_history_days
    ingest_file(
        services.engine,
        claims_file(
            tmp_path,
            [
                (now - 2 * HOUR_US, "ph-lilas-2", strangers[3]),  # a colleague's, same pharmacy
                (now - (days + 1) * 24 * HOUR_US, "ph-lilas", strangers[4]),  # too old
            ],
        ),
    )
    # The server starts after the claims were written (a restart).
    with TestClient(create_app(services=services), client=PEER) as server:
        follower = fed(server, 1)
        assert "unexplained" not in reasons_of(services, strangers[3], now)
        assert "unexplained" in reasons_of(services, strangers[4], now)
        assert follower.fed == 1  # the one older than the guard's history was not fed


class FlakyGuard:
    """The guard as the feeds see it (:class:`~rempart.claims.sink.ClaimSink`), whose
    shared state is away for its first ``down`` calls."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.taken: list[tuple[str, int]] = []
        self.persons: set[str] = set()

    def observe_claim(self, account_id: str, nir: str, ts_us: int) -> None:
        if self.down:
            self.down -= 1
            raise StateUnavailable("guard state store failed: ConnectionError")
        self.taken.append((account_id, ts_us))
        self.persons.add(nir)


def test_the_follower_moves_past_a_claim_only_once_the_guard_took_it(
    services: Services, town: Town, tmp_path: Path
) -> None:
    _, strangers = town
    now = now_us()
    flaky = FlakyGuard(down=0)
    follower = ClaimsFollower(
        services.engine, lambda: flaky, interval_seconds=0, history_days=21, batch=2
    )
    ingest_file(
        services.engine,
        claims_file(tmp_path, [(now - i * HOUR_US, "ph-lilas", strangers[i]) for i in range(1, 6)]),
    )
    assert follower.run_once() == 5  # the start-up feed
    flaky.down = 2
    ingest_file(
        services.engine,
        claims_file(tmp_path, [(now - i * HOUR_US, "ph-lilas", strangers[i]) for i in range(6, 9)]),
    )
    cursor = follower.cursor
    for _ in range(2):
        with pytest.raises(StateUnavailable):
            follower.run_once()
        assert follower.cursor == cursor  # nothing skipped
    assert follower.run_once() == 3
    assert [ts for _, ts in flaky.taken] == [now - i * HOUR_US for i in range(1, 9)]
    assert follower.run_once() == 0


def test_an_unknown_account_does_not_hold_the_follower(services: Services, town: Town) -> None:
    """A row whose account the guard does not know (removed since) is passed over."""
    _, strangers = town
    now = now_us()
    rows: list[dict[str, Any]] = [
        {
            "claim_id": f"c-{i}",
            "ts_us": now - HOUR_US,
            "account_id": account,
            "nir": strangers[i].nir.value,
            "source": "file",
            "received_at": datetime.now(UTC) - timedelta(seconds=1),
        }
        for i, account in enumerate(["ph-gone", "ph-lilas"])
    ]
    with services.engine.begin() as connection:
        connection.execute(insert(Claim), rows)
    guard = services.guard
    follower = ClaimsFollower(services.engine, lambda: guard, interval_seconds=0, history_days=1)
    assert follower.run_once() == 1
    assert follower.skipped == 1
    assert "unexplained" not in reasons_of(services, strangers[1], now)
