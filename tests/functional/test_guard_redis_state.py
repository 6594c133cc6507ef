"""The guard's state in Redis (the real server, database 15): same decisions as in
process, shared by workers, no lost updates, no personal data in clear, fails closed;
the inline driver's one-round-trip read, one-time tasks and suspension marks."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import redis

from rempart.guard.config import default_config
from rempart.guard.directory import MemoryDirectory
from rempart.guard.engine import Guard
from rempart.guard.events import ClaimEvent, Decision, LookupEvent, to_micros
from rempart.guard.redis_state import RedisState, StateUnavailable
from rempart.guard.state import AccountState, GuardState, MemoryState, StaleRecord
from tests.guard_world import WINDOW_START, TinyWorld, add_robot, tiny_world

pytestmark = pytest.mark.redis

KEY = b"test-guard-state-key"
ROBOT_DAY = WINDOW_START + timedelta(days=1)
ROBOT_IP = "185.220.101.7"
ROBOT_AGENT = "python-requests/2.31"

Event = LookupEvent | ClaimEvent


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyWorld, MemoryDirectory]:
    w = tiny_world()
    add_robot(w, "ph1b", ROBOT_DAY + timedelta(hours=2), 300, ip=ROBOT_IP, agent=ROBOT_AGENT)
    add_robot(
        w,
        "gp2",
        ROBOT_DAY + timedelta(days=1, hours=10),
        80,
        every=timedelta(minutes=3),
        attack="slow_scraping",
        ip="203.0.113.99",
        agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0",
    )
    directory = MemoryDirectory.from_world(w.write(tmp_path_factory.mktemp("tiny")))
    return w, directory


def events(world: TinyWorld) -> list[Event]:
    """Lookups and claims in time order (a lookup before a claim at the same instant)."""
    keyed: list[tuple[int, int, Event]] = []
    for i, row in enumerate(world.lookups):
        ts = to_micros(row["ts"])  # type: ignore[arg-type]
        lookup = LookupEvent(
            i + 1,
            ts,
            str(row["account_id"]),
            str(row["nir"]),
            row["birth_date"],  # type: ignore[arg-type]
            str(row["ip"]),
            str(row["user_agent"]),
            str(row["session_id"]),
            str(row["auth"]),
            str(row["channel"]),
        )
        keyed.append((ts, 0, lookup))
    for when, account, nir in world.claims:
        ts = to_micros(when)
        keyed.append((ts, 1, ClaimEvent(ts, account, nir)))
    keyed.sort(key=lambda e: (e[0], e[1]))
    return [event for _, _, event in keyed]


def replay(guards: list[Guard], stream: list[Event]) -> list[Decision]:
    """Each event to the next guard in turn (one guard: a single worker)."""
    decisions = []
    for i, event in enumerate(stream):
        guard = guards[i % len(guards)]
        if isinstance(event, ClaimEvent):
            guard.observe_claim(event)
        else:
            decisions.append(guard.decide(event))
    return decisions


def new_guard(directory: MemoryDirectory, state: GuardState) -> Guard:
    return Guard(directory, state, default_config(), history_until=to_micros(WINDOW_START))


@pytest.fixture(scope="module")
def in_process(world: tuple[TinyWorld, MemoryDirectory]) -> list[Decision]:
    w, directory = world
    decisions = replay([new_guard(directory, MemoryState())], events(w))
    kinds = {d.decision for d in decisions}
    assert {"allow", "step_up", "deny"} <= kinds  # the replay exercises every outcome
    return decisions


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    prefix = f"test:guard:{secrets.token_hex(6)}:"
    yield prefix
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)


def test_the_same_decisions_as_the_in_process_state(
    world: tuple[TinyWorld, MemoryDirectory],
    in_process: list[Decision],
    client: redis.Redis,
    prefix: str,
) -> None:
    w, directory = world
    state = RedisState(client, key=KEY, prefix=prefix)
    decisions = replay([new_guard(directory, state)], events(w))
    assert decisions == in_process


def test_two_workers_share_one_memory(
    world: tuple[TinyWorld, MemoryDirectory],
    in_process: list[Decision],
    redis_url: str,
    prefix: str,
) -> None:
    """History through one worker, then the window's events alternate between two
    workers (own clients, own engines): every robot's lookups are spread over both,
    and each is contained exactly as on one worker."""
    w, directory = world
    stream = events(w)
    start = to_micros(WINDOW_START)
    split = next(i for i, e in enumerate(stream) if e.ts >= start)
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    try:
        first = new_guard(directory, RedisState(clients[0], key=KEY, prefix=prefix))
        second = Guard(directory, RedisState(clients[1], key=KEY, prefix=prefix), default_config())
        decisions = replay([first], stream[:split])
        first.refresh_peers(end_of_history=True)
        second.refresh_peers()  # the peer groups from the shared records
        decisions += replay([first, second], stream[split:])
    finally:
        for c in clients:
            c.close()
    assert decisions == in_process
    robot = [d for d in decisions if w.lookups[d.event_id - 1]["attack"] == "robot_2022"]
    assert len(robot) == 300
    assert any(d.decision == "deny" for d in robot)
    assert sum(d.decision == "allow" for d in robot) < 50


def test_concurrent_updates_lose_nothing(redis_url: str, prefix: str) -> None:
    threads_count, rounds = 4, 50
    errors: list[BaseException] = []

    def work() -> None:
        c = redis.Redis.from_url(redis_url)
        state = RedisState(c, key=KEY, prefix=prefix)
        try:
            for _ in range(rounds):
                while True:
                    rec = state.account("a1")
                    rec.day_lookups += 1
                    rec.spent += 0.5
                    try:
                        state.save_account("a1", rec)
                        break
                    except StaleRecord:
                        continue
                state.remember(
                    "a1",
                    "u1",
                    "1850775123456",
                    network="198.51.100.0/24",
                    device="agent",
                    session_id="s1",
                    read=True,
                    vouch=1,
                    cap=3,
                )
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=work) for _ in range(threads_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    c = redis.Redis.from_url(redis_url)
    state = RedisState(c, key=KEY, prefix=prefix)
    total = threads_count * rounds
    rec = state.account("a1")
    assert rec.day_lookups == total
    assert rec.spent == total * 0.5
    assert rec.version == total
    ctx = state.context(
        "a1", "u1", "1850775123456", network="198.51.100.0/24", device="agent", session_id="s1"
    )
    assert ctx.network_known == ctx.device_known == total
    assert ctx.seen
    assert ctx.session_network == "198.51.100.0/24"
    c.close()


def test_a_stale_record_is_refused_and_a_fresh_one_saved(client: redis.Redis, prefix: str) -> None:
    state = RedisState(client, key=KEY, prefix=prefix)
    first = state.account("a1")
    assert first.version == 0
    state.save_account("a1", first)
    assert first.version == 1
    with pytest.raises(StaleRecord):
        state.save_account("a1", AccountState(version=0))
    fresh = state.account("a1")
    fresh.suspended = True
    fresh.pending.append((5, "u1|2850199000000"))
    state.save_account("a1", fresh)
    again = state.account("a1")
    assert again.version == 2
    assert again.suspended
    assert again.pending[0][0] == 5
    assert "2850199000000" not in again.pending[0][1]  # the person is hashed


def test_claims_keep_the_latest_time_and_match_hashed_pending_keys(
    client: redis.Redis, prefix: str
) -> None:
    state = RedisState(client, key=KEY, prefix=prefix)
    state.add_claim("u1", "2850199000000", 50)
    state.add_claim("u1", "2850199000000", 20)
    assert state.claimed_at("u1", "2850199000000") == 50
    assert state.claimed_at("u2", "2850199000000") == -1
    rec = AccountState()
    rec.pending.append((10, "u1|2850199000000"))
    state.save_account("a1", rec)
    unit, _, person = state.account("a1").pending[0][1].partition("|")
    assert state.claimed_at(unit, person) == 50


def test_units_are_capped_and_popular_ones_frozen(client: redis.Redis, prefix: str) -> None:
    state = RedisState(client, key=KEY, prefix=prefix)
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

    def ctx(unit: str) -> tuple[int, bool, bool]:
        c = state.context("a1", unit, "n1", network="net1", device="dev1", session_id="s1")
        return c.network_units, c.network_popular, c.device_popular

    assert ctx("other") == (4, False, False)
    state.freeze_popular(4)
    assert ctx("u0") == (3, True, True)
    state.freeze_popular(5)
    assert ctx("u0") == (3, False, False)


def test_no_person_address_device_or_session_in_clear(
    world: tuple[TinyWorld, MemoryDirectory], client: redis.Redis, prefix: str
) -> None:
    w, directory = world
    state = RedisState(client, key=KEY, prefix=prefix, session_ttl=3600)
    guard = new_guard(directory, state)
    replay([guard], [e for e in events(w) if e.ts < to_micros(ROBOT_DAY + timedelta(hours=3))])
    dump: list[str] = []
    kinds: set[str] = set()
    for raw_key in client.scan_iter(match=prefix + "*"):
        key = as_text(raw_key)
        dump.append(key)
        kinds.add(key[len(prefix) :].split(":")[0])
        kind = as_text(client.type(key))
        if kind == "hash":
            for field, value in client.hgetall(key).items():
                dump += [as_text(field), as_text(value)]
        elif kind == "set":
            dump += [as_text(member) for member in client.smembers(key)]
        else:
            dump.append(as_text(client.get(key)))
        ttl = client.ttl(key)
        if key.startswith(prefix + "a:"):
            assert ttl == -1  # account records never expire
        elif key.startswith(prefix + "s:"):
            assert 0 < ttl <= 3600
        elif key not in (prefix + "pn", prefix + "pd"):
            assert ttl > 0
    assert kinds >= {"a", "r", "n", "d", "c", "nu", "du", "s"}
    text = "\n".join(dump)
    assert "Mozilla" not in text
    assert ROBOT_AGENT not in text
    assert "185.220" not in text
    assert "203.0.113" not in text
    assert "ph1b-" not in text  # session ids
    sample = {str(row["nir"]) for row in w.lookups[:: max(1, len(w.lookups) // 300)]}
    assert sample
    assert all(nir not in text for nir in sample)


def as_text(value: bytes | str | None) -> str:
    assert value is not None
    return value.decode() if isinstance(value, bytes) else value


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_redis_down_raises_and_never_answers_from_an_empty_state(
    world: tuple[TinyWorld, MemoryDirectory],
) -> None:
    w, directory = world
    down = redis.Redis(host="127.0.0.1", port=closed_port(), socket_connect_timeout=1)
    state = RedisState(down, key=KEY, prefix="test:guard:down:")
    calls: list[Callable[[], object]] = [
        lambda: state.account("a1"),
        lambda: state.save_account("a1", AccountState()),
        lambda: state.context("a1", "u1", "n1", network="n", device="d", session_id="s"),
        lambda: state.remember(
            "a1",
            "u1",
            None,
            network="n",
            device="d",
            session_id="s",
            read=False,
            vouch=0,
            cap=4,
        ),
        lambda: state.add_claim("u1", "n1", 1),
        lambda: state.claimed_at("u1", "n1"),
        lambda: state.freeze_popular(4),
    ]
    for call in calls:
        with pytest.raises(StateUnavailable):
            call()
    guard = Guard(directory, state, default_config())
    lookup = next(e for e in events(w) if isinstance(e, LookupEvent))
    with pytest.raises(StateUnavailable):
        guard.decide(lookup)
    down.close()


def test_prefetch_reads_what_account_and_context_would(
    world: tuple[TinyWorld, MemoryDirectory], client: redis.Redis, redis_url: str, prefix: str
) -> None:
    w, directory = world
    state = RedisState(client, key=KEY, prefix=prefix)
    stream = [e for e in events(w) if e.ts < to_micros(ROBOT_DAY + timedelta(hours=3))]
    replay([new_guard(directory, state)], stream)
    other = redis.Redis.from_url(redis_url)
    plain = RedisState(other, key=KEY, prefix=prefix)  # another worker, no prefetch
    try:
        lookups = [e for e in stream if isinstance(e, LookupEvent)][-50:]
        assert lookups
        for e in lookups:
            pro = directory.professional(e.account_id)
            assert pro is not None
            args = (e.account_id, pro.unit, e.nir)
            where = {"network": e.ip, "device": e.user_agent, "session_id": e.session_id}
            record = state.prefetch(*args, **where)
            assert record == plain.account(e.account_id)
            assert state.account(e.account_id) is record  # answered from the prefetch
            assert state.context(*args, **where) == plain.context(*args, **where)
            assert state.account(e.account_id) is not record  # once: read again
        # A write in between drops what it could make stale.
        e = lookups[-1]
        pro = directory.professional(e.account_id)
        assert pro is not None
        where = {"network": e.ip, "device": e.user_agent, "session_id": e.session_id}
        before = state.prefetch(e.account_id, pro.unit, e.nir, **where)
        state.remember(e.account_id, pro.unit, e.nir, read=True, vouch=1, cap=4, **where)
        state.save_account(e.account_id, before)
        assert state.account(e.account_id).version == before.version
        after = state.context(e.account_id, pro.unit, e.nir, **where)
        assert after == plain.context(e.account_id, pro.unit, e.nir, **where)
        assert after.seen
    finally:
        other.close()


def test_a_one_time_task_is_run_by_one_worker(redis_url: str, prefix: str) -> None:
    workers = 6
    clients = [redis.Redis.from_url(redis_url) for _ in range(workers)]
    states = [RedisState(c, key=KEY, prefix=prefix) for c in clients]
    answers: dict[int, str] = {}
    start = threading.Barrier(workers)

    def begin(i: int) -> None:
        start.wait()
        answers[i] = states[i].begin_once("task", f"worker-{i}", lease_seconds=30)

    threads = [threading.Thread(target=begin, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert sorted(answers.values()) == ["run"] + ["wait"] * (workers - 1)
        (runner,) = (i for i, answer in answers.items() if answer == "run")
        # The lease holder asking again (a retry) runs it; the others still wait.
        assert states[runner].begin_once("task", f"worker-{runner}", lease_seconds=30) == "run"
        assert states[runner - 1].begin_once("task", "late", lease_seconds=30) == "wait"
        states[runner].end_once("task", f"worker-{runner}", ts=42)
        assert {s.begin_once("task", "anyone", lease_seconds=30) for s in states} == {"done"}
        # A worker that dies holding the lease: it expires and another takes over.
        assert states[0].begin_once("other", "dead", lease_seconds=1) == "run"
        assert states[1].begin_once("other", "alive", lease_seconds=1) == "wait"
        time.sleep(1.2)
        assert states[1].begin_once("other", "alive", lease_seconds=1) == "run"
    finally:
        for c in clients:
            c.close()


def test_a_suspension_mark_is_released_only_by_its_own(client: redis.Redis, prefix: str) -> None:
    state = RedisState(client, key=KEY, prefix=prefix)
    assert state.held_suspension("a1") is None
    state.hold_suspension("a1", "first")
    state.hold_suspension("a1", "second")  # suspended again, restored in between
    state.release_suspension("a1", "first")  # a late release of the former suspension
    assert state.held_suspension("a1") == "second"
    state.release_suspension("a1", "second")
    assert state.held_suspension("a1") is None


def test_deferred_writes_decide_as_in_process(
    world: tuple[TinyWorld, MemoryDirectory],
    in_process: list[Decision],
    client: redis.Redis,
    prefix: str,
) -> None:
    """Each decision's writes held back and sent together when it ends (the inline
    driver's way): the same decisions."""
    w, directory = world
    state = RedisState(client, key=KEY, prefix=prefix)
    guard = new_guard(directory, state)
    decisions = []
    for event in events(w):
        with state.deferred_writes():
            if isinstance(event, ClaimEvent):
                guard.observe_claim(event)
            else:
                decisions.append(guard.decide(event))
    assert decisions == in_process


def test_deferred_writes_land_whole_or_not_at_all(client: redis.Redis, prefix: str) -> None:
    state = RedisState(client, key=KEY, prefix=prefix)
    where = {"network": "198.51.100.0/24", "device": "agent", "session_id": "s1"}

    def remember() -> None:
        state.remember("a1", "u1", "1850775123456", read=True, vouch=1, cap=3, **where)

    stale = state.account("a1")
    fresh = state.account("a1")
    with state.deferred_writes():
        fresh.day_lookups = 1
        state.save_account("a1", fresh)
        remember()
        assert client.exists(prefix + "a:a1") == 0  # held back until the block ends
    assert fresh.version == 1
    assert state.account("a1").day_lookups == 1
    assert state.context("a1", "u1", "1850775123456", **where).network_known == 1

    # A stale save: StaleRecord when the block ends, and the registry writes dropped.
    def stale_decision() -> None:
        with state.deferred_writes():
            stale.day_lookups = 99
            state.save_account("a1", stale)
            remember()

    with pytest.raises(StaleRecord):
        stale_decision()
    assert state.account("a1").day_lookups == 1
    assert state.context("a1", "u1", "1850775123456", **where).network_known == 1

    # A read inside the block reads what was written before it.
    with state.deferred_writes():
        record = state.account("a1")
        record.day_lookups = 2
        state.save_account("a1", record)
        assert state.account("a1").day_lookups == 2

    # An exception in the block drops what it held.
    def failing_decision() -> None:
        with state.deferred_writes():
            record = state.account("a1")
            record.day_lookups = 3
            state.save_account("a1", record)
            remember()
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        failing_decision()
    assert state.account("a1").day_lookups == 2
    assert state.context("a1", "u1", "1850775123456", **where).network_known == 1


def test_a_surge_counts_distinct_accounts_per_group_and_day_as_in_process(
    client: redis.Redis, prefix: str
) -> None:
    shared = RedisState(client, key=KEY, prefix=prefix)
    local = MemoryState()
    for state in (shared, local):
        assert state.surging("pharmacie|06", 100, "ph-a") == (1, 0)
        assert state.surging("pharmacie|06", 100, "ph-a") == (1, 0)  # the same account again
        assert state.surging("pharmacie|06", 100, "ph-b") == (2, 0)
        assert state.surging("pharmacie|83", 100, "ph-c") == (1, 0)  # another department
        assert state.surging("pharmacie|06", 101, "ph-c") == (1, 2)  # the next day
    ttl = client.ttl(f"{prefix}g:100:pharmacie|06")
    assert 0 < ttl <= 2 * 24 * 3600  # gone after two days
