"""Offline replay: a world's lookups and claims through the guard, in time order.

Reads ``insured``, ``professionals``, ``care``, ``claims``, ``lookups`` and
``world.json`` (never ``labels``), checks them, feeds claims and lookups one
at a time in ``ts`` order (a claim at the same instant as a lookup comes after
it: a decision uses only what came strictly before), and writes one decision
per lookup, in input order, atomically.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rempart.guard.config import GuardConfig, default_config
from rempart.guard.directory import MemoryDirectory
from rempart.guard.engine import Guard
from rempart.guard.events import AUTH_METHODS, CHANNELS, ClaimEvent, LookupEvent, to_micros
from rempart.guard.state import MemoryState
from rempart.world.io import WorldFormatError, read_table

__all__ = ["DECISIONS", "ReplaySummary", "load_window_start", "replay_world"]

DECISIONS = pa.schema(
    [
        pa.field("event_id", pa.int64(), nullable=False),
        pa.field("decision", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("reasons", pa.string(), nullable=False),
    ]
)

Progress = Callable[[str, int, int], None]
_REPORT_EVERY = 50_000


@dataclass(frozen=True)
class ReplaySummary:
    lookups: int
    claims: int
    counts: dict[str, int]
    """Decisions per kind, over every lookup (history included)."""
    window_counts: dict[str, int]
    """Decisions per kind, over the evaluation window."""
    seconds: float
    """Time spent deciding (the event loop alone)."""


def load_window_start(world_dir: Path) -> int:
    path = world_dir / "world.json"
    if not path.is_file():
        raise WorldFormatError("world_missing_file", f"world.json is missing from {world_dir}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        moment = datetime.fromisoformat(meta["window_start"])
    except (ValueError, KeyError, TypeError) as exc:
        raise WorldFormatError(
            "world_bad_metadata", f"world.json needs window_start as an ISO timestamp ({exc})"
        ) from None
    if moment.tzinfo is None:
        raise WorldFormatError("world_bad_metadata", "world.json window_start lacks a timezone")
    return to_micros(moment)


def _first(mask: pa.ChunkedArray | pa.Array) -> int | None:
    if not pc.any(mask).as_py():
        return None
    return int(pc.index(mask, True).as_py())


def _check_known(table: pa.Table, column: str, keys: pa.Array, file: str, what: str) -> None:
    row = _first(pc.invert(pc.is_in(table.column(column), value_set=keys)))
    if row is not None:
        raise WorldFormatError(
            "world_unknown_key",
            f"{file} row {row}: column {column} names an unknown {what} "
            f"({table.column(column)[row].as_py()!r})"
            if what == "account"
            else f"{file} row {row}: column {column} names an unknown {what}",
        )


def _check_values(table: pa.Table, column: str, allowed: frozenset[str], file: str) -> None:
    keys = pa.array(sorted(allowed), pa.string())
    row = _first(pc.invert(pc.is_in(table.column(column), value_set=keys)))
    if row is not None:
        raise WorldFormatError(
            "world_bad_value",
            f"{file} row {row}: column {column} is {table.column(column)[row].as_py()!r}, "
            f"expected one of {', '.join(sorted(allowed))}",
        )


def _micros(column: pa.ChunkedArray) -> np.ndarray[tuple[int], np.dtype[np.int64]]:
    return np.asarray(pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def _load(world_dir: Path) -> tuple[MemoryDirectory, pa.Table, pa.Table, int]:
    window_start = load_window_start(world_dir)
    professionals = read_table(world_dir, "professionals")
    directory = MemoryDirectory(
        professionals, read_table(world_dir, "insured"), read_table(world_dir, "care")
    )
    accounts = professionals.column("account_id").combine_chunks()
    lookups = read_table(world_dir, "lookups")
    claims = read_table(world_dir, "claims")

    ts = _micros(lookups.column("ts"))
    back = np.flatnonzero(np.diff(ts) < 0)
    if len(back):
        raise WorldFormatError(
            "world_unsorted",
            f"lookups.parquet row {int(back[0]) + 1}: ts goes back in time (rows must be "
            "ordered by ts)",
        )
    ids = _micros(lookups.column("event_id"))
    repeat = np.flatnonzero(np.diff(ids) <= 0)
    if len(repeat):
        raise WorldFormatError(
            "world_bad_event_id",
            f"lookups.parquet row {int(repeat[0]) + 1}: event_id must be unique and increasing",
        )
    _check_known(lookups, "account_id", accounts, "lookups.parquet", "account")
    _check_values(lookups, "auth", AUTH_METHODS, "lookups.parquet")
    _check_values(lookups, "channel", CHANNELS, "lookups.parquet")
    _check_known(claims, "account_id", accounts, "claims.parquet", "account")
    return directory, lookups, claims, window_start


def replay_world(
    world_dir: Path,
    out: Path,
    *,
    config: GuardConfig | None = None,
    progress: Progress | None = None,
) -> ReplaySummary:
    """Replay a world and write its decisions to ``out`` (Parquet, atomically).

    Raises :class:`WorldFormatError` naming the file, column or row of bad input;
    nothing is written then.
    """
    report = progress or (lambda _s, _d, _t: None)
    directory, lookups, claims, window_start = _load(world_dir)
    guard = Guard(directory, MemoryState(), config or default_config(), history_until=window_start)

    claims = claims.take(pc.sort_indices(claims, sort_keys=[("ts", "ascending")]))
    c_ts = _micros(claims.column("ts")).tolist()
    c_account = claims.column("account_id").to_pylist()
    c_nir = claims.column("nir").to_pylist()

    n = lookups.num_rows
    l_ts = _micros(lookups.column("ts")).tolist()
    columns = [
        lookups.column(name).to_pylist()
        for name in (
            "event_id",
            "account_id",
            "nir",
            "birth_date",
            "ip",
            "user_agent",
            "session_id",
            "auth",
            "channel",
        )
    ]
    event_id, account_id, nir, birth, ip, agent, session, auth, channel = columns

    decisions: list[str] = [""] * n
    scores: list[float] = [0.0] * n
    reasons: list[str] = [""] * n
    in_window = 0
    n_claims = len(c_ts)
    c = 0
    started = time.perf_counter()
    report("replay", 0, n)
    decide = guard.decide
    observe = guard.observe_claim
    for i in range(n):
        t = l_ts[i]
        while c < n_claims and c_ts[c] < t:
            observe(ClaimEvent(c_ts[c], c_account[c], c_nir[c]))
            c += 1
        d = decide(
            LookupEvent(
                event_id[i],
                t,
                account_id[i],
                nir[i],
                birth[i],
                ip[i],
                agent[i],
                session[i],
                auth[i],
                channel[i],
            )
        )
        decisions[i] = d.decision
        scores[i] = d.score
        reasons[i] = ",".join(d.reasons)
        if t >= window_start:
            in_window += 1
        if i % _REPORT_EVERY == 0:
            report("replay", i, n)
    seconds = time.perf_counter() - started
    report("replay", n, n)

    table = pa.Table.from_arrays(
        [
            lookups.column("event_id"),
            pa.array(decisions, pa.string()),
            pa.array(scores, pa.float64()),
            pa.array(reasons, pa.string()),
        ],
        schema=DECISIONS,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(out)

    kinds = ("allow", "step_up", "deny")
    counts = {k: decisions.count(k) for k in kinds}
    window = decisions[n - in_window :]
    return ReplaySummary(
        lookups=n,
        claims=n_claims,
        counts=counts,
        window_counts={k: window.count(k) for k in kinds},
        seconds=seconds,
    )
