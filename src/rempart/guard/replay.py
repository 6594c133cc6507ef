"""Offline replay: a world's lookups and claims through the guard, in time order.

Reads ``insured``, ``professionals``, ``care``, ``claims``, ``lookups`` and
``world.json`` (never ``labels``), checks them, feeds claims and lookups one
at a time in ``ts`` order (a claim at the same instant as a lookup comes after
it: a decision uses only what came strictly before), and writes one decision
per lookup, in input order, atomically.

The loop is the guard's hot path (goal: 100,000 lookups/s in one process). Each
string column is dictionary-encoded once, so every distinct account, NIR,
address, user agent and session is one Python object (its hash computed once)
and rows are compact integer codes, decoded one chunk of rows at a time; the
person, birth day and network of each distinct value are resolved once, and the
engine is fed through :meth:`Guard.decide_resolved`, which gives the same
decisions as :meth:`Guard.decide` without building an event per lookup. The loop
over a chunk (:func:`rempart.guard.feed.decide_rows`) runs compiled with the engine
and its state when a current build is installed (:mod:`rempart.guard.native`), else
in pure Python: the same decisions either way.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rempart.guard.config import GuardConfig, default_config
from rempart.guard.directory import MemoryDirectory, birth_day
from rempart.guard.engine import Guard
from rempart.guard.events import ALLOW, AUTH_METHODS, CHANNELS, DENY, STEP_UP, to_micros
from rempart.guard.native import Implementation, implementation
from rempart.guard.signals import network_of
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
_CHUNK = 65_536


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
    cpu_seconds: float
    """Processor time of the process over the same loop (less sensitive to a busy machine)."""
    engine: str
    """Which engine decided: ``compiled`` or ``pure`` (:mod:`rempart.guard.native`)."""


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
    engine: Implementation | None = None,
) -> ReplaySummary:
    """Replay a world and write its decisions to ``out`` (Parquet, atomically).

    ``engine`` decides: by default the compiled one when a current build is installed,
    else the pure-Python one (:func:`rempart.guard.native.implementation`). Raises
    :class:`WorldFormatError` naming the file, column or row of bad input; nothing is
    written then.
    """
    report = progress or (lambda _s, _d, _t: None)
    directory, lookups, claims, window_start = _load(world_dir)
    cfg = config or default_config()
    engine = engine or implementation()
    guard = engine.guard(directory, engine.state(), cfg, history_until=window_start)

    decided, scores, reasons, l_ts, seconds, cpu_seconds = _decide_all(
        guard, engine.decide_rows, directory, cfg, lookups, claims, report
    )

    table = pa.Table.from_arrays(
        [
            lookups.column("event_id"),
            decided,
            scores,
            reasons,
        ],
        schema=DECISIONS,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(out)

    first_in_window = int(np.searchsorted(l_ts, window_start, side="left"))
    return ReplaySummary(
        lookups=lookups.num_rows,
        claims=claims.num_rows,
        counts=_counts(decided),
        window_counts=_counts(decided.slice(first_in_window)),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        engine=engine.name,
    )


_Columns = tuple[
    pa.ChunkedArray,
    pa.ChunkedArray,
    pa.ChunkedArray,
    np.ndarray[tuple[int], np.dtype[np.int64]],
    float,
    float,
]


def _decide_all(  # noqa: PLR0917
    guard: Guard,
    decide_rows: Callable[..., int],
    directory: MemoryDirectory,
    cfg: GuardConfig,
    lookups: pa.Table,
    claims: pa.Table,
    report: Progress,
) -> _Columns:
    """Feed claims and lookups to the guard in time order: decisions, scores, reasons
    (in input order), the lookups' timestamps, and the seconds (wall clock, processor)
    the loop took."""
    claims = claims.take(pc.sort_indices(claims, sort_keys=[("ts", "ascending")]))
    n = lookups.num_rows
    # Each distinct string becomes one Python object, shared by every row that has it
    # (and its hash computed once); per-row columns are compact integer codes, turned
    # into Python objects one chunk at a time.
    account_values, account_codes = _encode(
        lookups.column("account_id"), claims.column("account_id")
    )
    nir_values, nir_codes = _encode(lookups.column("nir"), claims.column("nir"))
    birth_values, (birth_codes,) = _encode(lookups.column("birth_date"))
    ip_values, (ip_codes,) = _encode(lookups.column("ip"))
    agent_values, (agent_codes,) = _encode(lookups.column("user_agent"))
    session_values, (session_codes,) = _encode(lookups.column("session_id"))
    # Reference facts, resolved once per distinct value.
    persons = _objects([directory.person(v) for v in nir_values[:-1].tolist()])
    births = _objects([birth_day(v) for v in birth_values[:-1].tolist()])
    prefixes = (cfg.network.ipv4_prefix, cfg.network.ipv6_prefix)
    networks = _objects([network_of(v, *prefixes) for v in ip_values[:-1].tolist()])

    c_ts = _micros(claims.column("ts")).tolist()
    c_account = account_values[account_codes[1]].tolist()
    c_nir = nir_values[nir_codes[1]].tolist()
    l_ts = _micros(lookups.column("ts"))
    l_account, l_nir = account_codes[0], nir_codes[0]

    decision_chunks: list[pa.Array] = []
    score_chunks: list[pa.Array] = []
    reason_chunks: list[pa.Array] = []
    c = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    with _collector_paused():
        report("replay", 0, n)
        for start in range(0, n, _CHUNK):
            rows = slice(start, min(n, start + _CHUNK))
            nir_c = l_nir[rows]
            decisions: list[str] = []
            scores: list[float] = []
            reasons: list[str] = []
            c = decide_rows(
                guard,
                claim_ts=c_ts,
                claim_accounts=c_account,
                claim_nirs=c_nir,
                next_claim=c,
                ts=l_ts[rows].tolist(),
                accounts=account_values[l_account[rows]].tolist(),
                nirs=nir_values[nir_c].tolist(),
                persons=persons[nir_c].tolist(),
                births=births[birth_codes[rows]].tolist(),
                networks=networks[ip_codes[rows]].tolist(),
                agents=agent_values[agent_codes[rows]].tolist(),
                sessions=session_values[session_codes[rows]].tolist(),
                decisions=decisions,
                scores=scores,
                reasons=reasons,
            )
            decision_chunks.append(pa.array(decisions, pa.string()))
            score_chunks.append(pa.array(scores, pa.float64()))
            reason_chunks.append(pa.array(reasons, pa.string()))
            report("replay", rows.stop, n)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    return (
        pa.chunked_array(decision_chunks, pa.string()),
        pa.chunked_array(score_chunks, pa.float64()),
        pa.chunked_array(reason_chunks, pa.string()),
        l_ts,
        seconds,
        cpu_seconds,
    )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The decision loop makes millions of small containers and no reference cycles:
    the cyclic collector would only walk the growing state again and again."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _counts(decided: pa.ChunkedArray) -> dict[str, int]:
    counts = dict.fromkeys((ALLOW, STEP_UP, DENY), 0)
    for item in pc.value_counts(decided).to_pylist():
        counts[item["values"]] = item["counts"]
    return counts


def _objects(values: list[Any]) -> np.ndarray[tuple[int], np.dtype[np.object_]]:
    """A NumPy array of Python objects (tuples stay whole), ``None`` appended for nulls."""
    out = np.empty(len(values) + 1, dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out


def _encode(
    *columns: pa.ChunkedArray,
) -> tuple[
    np.ndarray[tuple[int], np.dtype[np.object_]], list[np.ndarray[tuple[int], np.dtype[np.int32]]]
]:
    """Distinct strings of ``columns`` (one dictionary for all) and each column's codes
    into them; a null's code points at a trailing ``None``."""
    whole = pa.concat_arrays([chunk for column in columns for chunk in column.chunks])
    encoded = pc.dictionary_encode(whole)
    values = _objects(encoded.dictionary.to_pylist())
    null_code = len(values) - 1
    codes = np.asarray(
        pc.fill_null(encoded.indices, null_code).to_numpy(zero_copy_only=False), dtype=np.int32
    )
    parts = []
    offset = 0
    for column in columns:
        parts.append(codes[offset : offset + len(column)])
        offset += len(column)
    return values, parts
