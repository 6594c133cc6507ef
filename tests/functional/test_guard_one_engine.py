"""One engine, two drivers: the inline guard and ``guard replay`` decide the same.

A generated world (every attack family, claims, four days of history) is replayed by
:func:`rempart.guard.replay.replay_world` (the pure engine, and the compiled one when a
current build is installed), and the same lookups and claims, merged in time order as
the replay merges them (a claim strictly before a lookup is observed before it; a claim
at the same instant after it), are driven through the inline driver as the API builds
it (:attr:`rempart.services.Services.guard`: the database's directory after ``db
load-world``, ``learn_until`` at the world's window start so that the world's history is
the learning window), its state in process and in the real Redis. Each lookup goes
through :meth:`InlineGuard.decide` as the API's caller would (decision only: nothing
is acted upon, as the replay acts on nothing), each claim through
:meth:`InlineGuard.observe_claim`.

Decisions, reasons and scores must be identical lookup by lookup. A failure names the
first lookup that differs, both decisions, and how many differ (by kind of difference),
so that it says where the drivers part.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import redis

from rempart.auth.levels import (
    ACR_CPS,
    ACR_PASSWORD_RECOVERY,
    ACR_PASSWORD_TOTP,
    ACR_PSC,
    ACR_WEBAUTHN,
)
from rempart.config import load_settings
from rempart.guard.inline import AUTH_OF_ACR, InlineGuard
from rempart.guard.native import PURE, Implementation
from rempart.guard.replay import replay_world
from rempart.rights.service import Caller
from rempart.services import Services
from rempart.store.load_world import load_world
from rempart.store.migrate import upgrade
from rempart.world.attacks import (
    Campaign,
    Enumeration,
    OffHours,
    Scrape2022,
    SlowScrape,
    StolenSession,
)
from rempart.world.generator import generate_world
from tests.compiled_engine import compiled_engine
from tests.conftest import FAST_HASHING

# The world's ``auth`` as the session's assurance level the API would hold. ``password``
# is what a recovery code (or practice software's client secret) maps to; the recovery
# code is taken: a client secret would make the lookup a practice software's, decided
# against the client's record too, which the world does not name.
ACR_OF_AUTH = {
    "totp": ACR_PASSWORD_TOTP,
    "password": ACR_PASSWORD_RECOVERY,
    "webauthn": ACR_WEBAUTHN,
    "psc": ACR_PSC,
    "cps": ACR_CPS,
}


def test_the_acr_mapping_inverts_the_inline_drivers() -> None:
    assert {auth: AUTH_OF_ACR[acr] for auth, acr in ACR_OF_AUTH.items()} == {
        auth: auth for auth in ACR_OF_AUTH
    }


@dataclass(frozen=True, slots=True)
class Decided:
    event_id: int
    decision: str
    score: float
    reasons: str


HISTORY_DAYS = {"history": 4, "fresh": 0}
"""The worlds: four days of history (every account known when the window opens), and a
fresh deployment (no history: every account first seen while the engine enforces)."""


@pytest.fixture(scope="module", params=list(HISTORY_DAYS))
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Forty professionals, 3,000 insured persons, ten days of which the history;
    one scenario of every attack family, scaled down to keep the inline run short."""
    out = tmp_path_factory.mktemp("one-engine") / "world"
    generate_world(
        out,
        insured=3_000,
        professionals=40,
        days=10,
        history_days=HISTORY_DAYS[request.param],
        seed=15,
        attacks=[
            Scrape2022(lookups_per_account=400),
            SlowScrape(),
            Campaign(accounts=6, per_account_per_day=40, days=2),
            Enumeration(lookups_per_account=300),
            OffHours(nights=2, lookups_per_night=60),
            StolenSession(lookups_per_account=100),
        ],
    )
    return out


@pytest.fixture(scope="module", params=["pure", "compiled"])
def replayed(
    request: pytest.FixtureRequest, world: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[Decided]:
    """The replay's decisions, by the pure engine or the compiled one."""
    engine: Implementation = PURE
    if request.param == "compiled":
        engine = compiled_engine()
    out = tmp_path_factory.mktemp("replay") / "decisions.parquet"
    summary = replay_world(world, out, engine=engine)
    assert summary.engine == request.param
    table = pq.read_table(out)
    return [
        Decided(*row)
        for row in zip(
            table.column("event_id").to_pylist(),
            table.column("decision").to_pylist(),
            table.column("score").to_pylist(),
            table.column("reasons").to_pylist(),
            strict=True,
        )
    ]


@pytest.fixture(scope="module", params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def inline_services(
    request: pytest.FixtureRequest, world: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Services]:
    """The service as ``rempart serve`` builds it, on a fresh SQLite database holding the
    world (``db upgrade``, ``db load-world``), learning until the world's window start;
    the guard's state in process, or in the real Redis under a prefix of its own."""
    window_start = datetime.fromisoformat(_window_start(world))
    tmp = tmp_path_factory.mktemp(f"inline-{request.param}")
    extra: dict[str, Any] = {}
    prefix = ""
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        prefix = f"test:one-engine:{secrets.token_hex(6)}:"
        extra = {"redis_url": url, "guard_redis_prefix": prefix}
    settings = load_settings(
        database_url=f"sqlite:///{tmp / 'rempart.db'}",
        data_dir=tmp / "data",
        guard_learn_until=window_start,
        **FAST_HASHING,
        **extra,
    )
    services = Services(settings)
    upgrade(services.engine, schema="data")
    upgrade(services.audit_engine, schema="audit")
    load_world(services.engine, world, pseudonym_key=settings.keys.pseudonym_key)
    yield services
    services.close()
    if prefix:
        client = redis.Redis.from_url(extra["redis_url"])
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        client.close()


def _window_start(world: Path) -> str:
    meta = json.loads((world / "world.json").read_text(encoding="utf-8"))
    start: str = meta["window_start"]
    return start


def _micros(column: pa.ChunkedArray) -> list[int]:
    values: list[int] = pc.cast(column, pa.int64()).to_pylist()
    return values


@pytest.fixture(scope="module")
def inline(inline_services: Services, world: Path) -> list[Decided]:
    """The inline driver's decisions on the world's lookups, claims fed as the replay
    feeds them."""
    guard = inline_services.guard
    assert isinstance(guard, InlineGuard)
    assert guard.learn_until is not None
    return drive_inline(guard, inline_services, world)


def drive_inline(guard: InlineGuard, services: Services, world: Path) -> list[Decided]:
    lookups = pq.read_table(world / "lookups.parquet")
    claims = pq.read_table(world / "claims.parquet")
    # The replay's order: claims sorted by time (a stable sort: ties keep file order).
    claims = claims.take(pc.sort_indices(claims, sort_keys=[("ts", "ascending")]))
    claim_ts = _micros(claims.column("ts"))
    claim_accounts: list[str] = claims.column("account_id").to_pylist()
    claim_nirs: list[str] = claims.column("nir").to_pylist()
    columns = {name: lookups.column(name).to_pylist() for name in lookups.column_names}
    columns["ts"] = _micros(lookups.column("ts"))
    decided: list[Decided] = []
    c = 0
    with services.sessions() as session:
        for i, ts in enumerate(columns["ts"]):
            while c < len(claim_ts) and claim_ts[c] < ts:
                guard.observe_claim(claim_accounts[c], claim_nirs[c], claim_ts[c])
                c += 1
            caller = Caller(
                account_id=columns["account_id"][i],
                session_id=columns["session_id"][i],
                acr=ACR_OF_AUTH[columns["auth"][i]],
                client_ip=columns["ip"][i],
                user_agent=columns["user_agent"][i],
                channel=columns["channel"][i],
            )
            kind, score, reasons = guard.decide(
                session,
                caller,
                raw_nir=columns["nir"][i],
                raw_birth_date=columns["birth_date"][i],
                ts_us=ts,
            )
            decided.append(Decided(columns["event_id"][i], kind, score, ",".join(reasons)))
        session.rollback()
    return decided


def _kind_of_difference(ours: Decided, theirs: Decided) -> str:
    """A short name for how two decisions on one lookup differ (for the summary)."""
    if ours.decision != theirs.decision:
        return f"{theirs.decision}->{ours.decision}"
    if ours.reasons != theirs.reasons:
        a, b = set(theirs.reasons.split(",")), set(ours.reasons.split(","))
        extra = ",".join(sorted(b - a)) or "-"
        missing = ",".join(sorted(a - b)) or "-"
        return f"{theirs.decision}: reasons +{extra} -{missing}"
    return f"{theirs.decision}: score"


def describe_differences(
    world: Path, replayed: list[Decided], inline: list[Decided], *, label: str
) -> str | None:
    """None when both drivers decided every lookup alike; else the first lookup that
    differs (both decisions, the lookup's context) and the differences counted by kind."""
    assert [d.event_id for d in inline] == [d.event_id for d in replayed]
    differing = [
        i
        for i, (a, b) in enumerate(zip(replayed, inline, strict=True))
        if (a.decision, a.reasons, a.score) != (b.decision, b.reasons, b.score)
    ]
    if not differing:
        return None
    lookups = pq.read_table(world / "lookups.parquet")
    first = differing[0]
    row = lookups.slice(first, 1).to_pylist()[0]
    account = row["account_id"]
    earlier = pc.equal(lookups.column("account_id").slice(0, first), account)
    seen_before = int(pc.sum(earlier).as_py() or 0)
    window_start = _window_start(world)
    kinds = Counter(_kind_of_difference(inline[i], replayed[i]) for i in differing)
    accounts = {lookups.column("account_id")[i].as_py() for i in differing}
    ts = np.asarray(_micros(lookups.column("ts")))
    ws = int(datetime.fromisoformat(window_start).timestamp() * 1_000_000)
    in_history = sum(1 for i in differing if ts[i] < ws)
    lines = [
        f"{label}: {len(differing)} of {len(replayed)} lookups decided differently "
        f"({in_history} in the history, {len(differing) - in_history} in the window; "
        f"{len(accounts)} accounts)",
        f"first: row {first}, event {row['event_id']} at {row['ts']} "
        f"(window starts {window_start}), account {account} "
        f"({seen_before} earlier lookups of it), ip {row['ip']}, agent {row['user_agent']!r}, "
        f"session {row['session_id']}, auth {row['auth']}, channel {row['channel']}",
        f"  replay: {replayed[first]}",
        f"  inline: {inline[first]}",
        "by kind (replay->inline):",
        *(f"  {n:6d}  {kind}" for kind, n in kinds.most_common()),
    ]
    return "\n".join(lines)


def test_inline_and_replay_decide_every_lookup_alike(
    world: Path,
    replayed: list[Decided],
    inline: list[Decided],
    request: pytest.FixtureRequest,
) -> None:
    label = request.node.callspec.id
    assert len(replayed) > 10_000
    decisions = Counter(d.decision for d in replayed)
    assert set(decisions) == {"allow", "step_up", "deny"}, decisions
    difference = describe_differences(world, replayed, inline, label=label)
    assert difference is None, difference
