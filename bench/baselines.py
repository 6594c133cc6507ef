"""Comparison baselines for the guard's benchmark: what an operator could use instead.

Each baseline reads a world exactly as ``rempart guard replay`` does (``insured``,
``professionals``, ``care``, ``claims``, ``lookups``, ``world.json``; never
``labels``) and writes the same decisions file (``event_id``, ``decision``,
``score``, ``reasons``, one row per lookup in input order), so that
:mod:`rempart.guard.scoring` scores every detector the same way.

Causality. Every per-lookup feature is computed from the lookups and claims
strictly before it plus the lookup itself (cumulative counts over the account's
UTC day so far, counts over trailing time windows, first uses), never from later
rows; thresholds and models are set on the history (``ts < window_start``) only,
and the online detector learns as it goes. Lookups of the history are all
``allow`` (history is trusted, as for the guard). The computations are
vectorised over the recorded world where that gives the same result as a
lookup-at-a-time loop; the tests check that a prefix of a world gets the same
decisions as the whole world on that prefix.

*Explained* is the guard's own definition: the person has a care link with the
account's unit (its organisation, else the account), has declared one of the
unit's accounts as treating doctor, or was billed by the unit strictly before
the lookup. Not-found lookups are unexplained.

Step-ups are *sticky for the account-day*: after one, every further lookup of the
account that UTC day is ``step_up`` too. An attacker cannot pass a step-up; the
honest user passes it and goes on in a new session, which a recorded world
cannot show, and the scoring charges one friction account-day either way.

The baselines and their operating points:

``daily_cap``
    A fixed cap per profession: the 99.9th percentile of the profession's
    history account-day volumes (what a fair operator would set to block about
    0.1% of honest days, the blocks target), rounded up. The lookups of an
    account-day beyond the cap are ``deny``; a cap resets at midnight UTC and does
    not suspend the account.
``unexplained_threshold``
    A per-account threshold on unexplained lookups per day, from the account's
    own history: ``ceil(1.25 x its highest daily count) + 2``; an account with
    fewer than 5 history days with lookups takes its profession's median
    threshold. Beyond it, ``step_up``.
``half_space_trees``
    river's ``preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees`` online on
    per-lookup features (lookups of the account in the last minute and hour,
    unexplained share and not-found count of its day so far, UTC hour, whether
    the person, network and device are new to the account, whether the lookup
    is explained). It learns every history lookup, and in the window only the
    lookups it allowed. ``step_up`` when the score exceeds the 99th percentile
    of the account-days' highest scores over the calibration days (the last
    third of the history): about 1% of honest account-days stepped up, the
    friction target.
``isolation_forest``
    scikit-learn's ``IsolationForest`` fitted once on the history's complete
    account-days (per-account-day features: volume, volume relative to the
    account's median history day, unexplained count and share, not-found
    count, new networks, night lookups, the day's peak per-minute rate). Each
    lookup is decided on the features of its account's day *so far* (the same
    features recomputed incrementally), scored by the frozen forest.
    ``step_up`` when the anomaly score exceeds the 99th percentile of the
    account-days' highest scores over the calibration days, as above.

No baseline denies except the cap: a detector's score says "unusual", not "an
attacker", and a sticky step-up already stops an attacker's day.

Throughput is measured over everything after reading the tables (features,
training, deciding; writing excluded), divided by all lookups (history
included), like the guard's replay loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rempart.guard.events import DAY_US, HOUR_US, SECOND_US
from rempart.guard.replay import DECISIONS, load_window_start
from rempart.world.io import WorldFormatError, read_table

__all__ = [
    "BASELINES",
    "BaselineRun",
    "Traffic",
    "decide_cap",
    "decide_half_space_trees",
    "decide_isolation_forest",
    "decide_unexplained",
    "load_traffic",
    "run_baseline",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

CAP_PERCENTILE: Final = 99.9
THRESHOLD_FACTOR: Final = 1.25
THRESHOLD_MARGIN: Final = 2
THRESHOLD_MIN_DAYS: Final = 5
DETECTOR_DAY_PERCENTILE: Final = 99.0
LOOKUP_COLUMNS: Final = ["event_id", "ts", "account_id", "nir", "birth_date", "ip", "user_agent"]
NIGHT_HOURS_UTC: Final = frozenset({20, 21, 22, 23, 0, 1, 2, 3, 4, 5})
"""21:00-07:00 in metropolitan France (UTC+1 in winter)."""


@dataclass(frozen=True)
class Traffic:
    """A world's lookups with their causal per-lookup features (time order)."""

    event_id: pa.ChunkedArray
    ts: I64
    account: I64
    """Index into ``accounts``."""
    accounts: list[str]
    profession: list[str]
    """Profession of each account."""
    window_start: int
    explained: Bools
    found: Bools
    new_person: Bools
    new_network: Bools
    new_device: Bools
    day: I64
    """UTC day number (``ts // DAY_US``)."""
    day_rank: I64
    """1 for the account's first lookup of the UTC day, 2 for the second..."""
    day_unexplained: I64
    day_not_found: I64
    day_new_networks: I64
    day_night: I64
    last_minute: I64
    """Lookups of the account in the trailing minute, this one included."""
    last_hour: I64
    day_peak_minute: I64
    """Highest ``last_minute`` of the account's day so far."""
    day_groups: I64
    """A number per account-day (equal for the lookups of one account-day)."""

    @property
    def size(self) -> int:
        return len(self.ts)

    @property
    def in_window(self) -> Bools:
        return self.ts >= self.window_start


@dataclass(frozen=True)
class Decided:
    decision: list[str]
    score: F64
    reasons: list[str]


@dataclass(frozen=True)
class BaselineRun:
    name: str
    lookups: int
    seconds: float
    """Features, training and decisions (reading and writing excluded)."""
    window_counts: dict[str, int]

    @property
    def rate(self) -> float:
        return self.lookups / self.seconds if self.seconds > 0 else math.inf


def _codes(values: pa.ChunkedArray | pa.Array, keys: pa.Array) -> I64:
    """Position of each value in ``keys`` (-1 when absent)."""
    idx = pc.index_in(values, value_set=keys)
    return np.asarray(pc.fill_null(idx, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _factorize(values: pa.ChunkedArray) -> I64:
    encoded = pc.dictionary_encode(values.combine_chunks())
    return np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def _micros(column: pa.ChunkedArray) -> I64:
    return np.asarray(pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def _first_use(key: I64) -> Bools:
    """True where ``key`` appears for the first time (rows in time order)."""
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return np.asarray(first[inverse.ravel()] == np.arange(len(key)), dtype=np.bool_)


def _group_cumsum(order: I64, starts: Bools, values: I64) -> I64:
    """Cumulative sum of ``values`` within groups (``order`` sorts rows into groups in
    time order; ``starts`` marks each group's first sorted row)."""
    sorted_values = values[order]
    total = np.cumsum(sorted_values)
    before = total - sorted_values
    base = np.maximum.accumulate(np.where(starts, before, 0))
    out = np.empty_like(total)
    out[order] = total - base
    return out


def _group_cummax(order: I64, starts: Bools, values: I64) -> I64:
    """Running maximum of non-negative ``values`` within groups (as :func:`_group_cumsum`)."""
    if not len(values):
        return values.copy()
    sorted_values = values[order]
    # Lift each group above all earlier ones so one running maximum stays in its group.
    lift = (np.cumsum(starts) - 1) * (int(sorted_values.max()) + 1)
    out = np.empty_like(values)
    out[order] = np.maximum.accumulate(sorted_values + lift) - lift
    return out


def _trailing_count(account: I64, ts: I64, width_us: int) -> I64:
    """Lookups of the same account in ``(ts - width, ts]`` up to this row (in row order)."""
    n = len(ts)
    order = np.argsort(account, kind="stable")
    acc = account[order]
    t = ts[order]
    positions = np.arange(n, dtype=np.int64)
    count = np.empty(n, dtype=np.int64)
    # Per account, a searchsorted on its (sorted) times.
    bounds = np.flatnonzero(np.diff(acc)) + 1
    for lo, hi in zip(
        np.concatenate(([0], bounds)).tolist(), np.concatenate((bounds, [n])).tolist(), strict=True
    ):
        seg = t[lo:hi]
        first = np.searchsorted(seg, seg - width_us, side="right")
        count[lo:hi] = positions[: hi - lo] - first + 1
    out = np.empty(n, dtype=np.int64)
    out[order] = count
    return out


def _explained(
    *,
    unit: I64,
    unit_of: I64,
    person: I64,
    ts: I64,
    account_keys: pa.Array,
    insured: pa.Table,
    care: pa.Table,
    claims: pa.Table,
) -> Bools:
    """Care link, declared doctor of the unit, or a claim of the unit strictly before."""
    n_people = insured.num_rows
    insured_nir = insured.column("nir").combine_chunks()
    # Explained: care link, declared doctor of the unit, earlier claim of the unit.
    pair = unit * n_people + person
    care_acc = _codes(care.column("account_id"), account_keys)
    care_person = _codes(care.column("nir"), insured_nir)
    keep = (care_acc >= 0) & (care_person >= 0)
    care_pairs = unit_of[care_acc[keep]] * n_people + care_person[keep]
    by_care = np.isin(pair, care_pairs) & (person >= 0)
    doctor = _codes(insured.column("treating_doctor"), account_keys)
    doctor_unit = np.where(doctor >= 0, unit_of[np.maximum(doctor, 0)], -1)
    by_doctor = (person >= 0) & (doctor_unit[np.maximum(person, 0)] == unit)
    c_acc = _codes(claims.column("account_id"), account_keys)
    c_person = _codes(claims.column("nir"), insured_nir)
    c_ts = _micros(claims.column("ts"))
    ok = (c_acc >= 0) & (c_person >= 0)
    c_pair = unit_of[c_acc[ok]] * n_people + c_person[ok]
    c_ts = c_ts[ok]
    by_claim = np.zeros(len(ts), dtype=np.bool_)
    if len(c_pair):
        o = np.lexsort((c_ts, c_pair))
        keys, first = np.unique(c_pair[o], return_index=True)
        first_ts = c_ts[o][first]
        at = np.clip(np.searchsorted(keys, pair), 0, len(keys) - 1)
        by_claim = (person >= 0) & (keys[at] == pair) & (first_ts[at] < ts)
    return np.asarray(by_care | by_doctor | by_claim, dtype=np.bool_)


def load_traffic(world_dir: Path) -> Traffic:
    """Read a world (never its labels) and compute the causal per-lookup features."""
    window_start = load_window_start(world_dir)
    professionals = read_table(world_dir, "professionals")
    insured = read_table(world_dir, "insured", ["nir", "birth_date", "treating_doctor"])
    care = read_table(world_dir, "care", ["account_id", "nir"])
    claims = read_table(world_dir, "claims")
    lookups = read_table(world_dir, "lookups", LOOKUP_COLUMNS)
    return traffic_from_tables(
        professionals=professionals,
        insured=insured,
        care=care,
        claims=claims,
        lookups=lookups,
        window_start=window_start,
    )


def traffic_from_tables(
    *,
    professionals: pa.Table,
    insured: pa.Table,
    care: pa.Table,
    claims: pa.Table,
    lookups: pa.Table,
    window_start: int,
) -> Traffic:
    account_keys = professionals.column("account_id").combine_chunks()
    accounts: list[str] = account_keys.to_pylist()
    orgs: list[str | None] = professionals.column("organization_id").to_pylist()
    units = [o or a for a, o in zip(accounts, orgs, strict=True)]
    unit_names = sorted(set(units))
    unit_pos = {u: i for i, u in enumerate(unit_names)}
    unit_of = np.array([unit_pos[u] for u in units], dtype=np.int64)

    ts = _micros(lookups.column("ts"))
    if len(ts) and np.any(np.diff(ts) < 0):
        row = int(np.flatnonzero(np.diff(ts) < 0)[0]) + 1
        raise WorldFormatError("world_unsorted", f"lookups.parquet row {row}: ts goes back in time")
    account = _codes(lookups.column("account_id"), account_keys)
    if np.any(account < 0):
        row = int(np.flatnonzero(account < 0)[0])
        raise WorldFormatError(
            "world_unknown_key",
            f"lookups.parquet row {row}: column account_id names an unknown account",
        )
    unit = unit_of[account]
    insured_nir = insured.column("nir").combine_chunks()
    person = _codes(lookups.column("nir"), insured_nir)
    known_birth = pc.strftime(insured.column("birth_date"), format="%Y-%m-%d").combine_chunks()
    given = lookups.column("birth_date").combine_chunks()
    expected = pc.take(known_birth, pa.array(np.maximum(person, 0)))
    found = np.asarray(
        pc.fill_null(pc.equal(given, expected), False).to_numpy(zero_copy_only=False),
        dtype=np.bool_,
    ) & (person >= 0)

    explained = _explained(
        unit=unit,
        unit_of=unit_of,
        person=person,
        ts=ts,
        account_keys=account_keys,
        insured=insured,
        care=care,
        claims=claims,
    )

    n_acc = len(accounts)
    nir_code = _factorize(lookups.column("nir"))
    new_person = _first_use(account + n_acc * nir_code)
    new_network = _first_use(account + n_acc * _factorize(lookups.column("ip")))
    new_device = _first_use(account + n_acc * _factorize(lookups.column("user_agent")))

    day = ts // DAY_US
    day0 = int(day.min()) if len(day) else 0
    groups = account * (int(day.max()) - day0 + 1 if len(day) else 1) + (day - day0)
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.ones(len(ts), dtype=np.bool_)
    starts[1:] = sorted_groups[1:] != sorted_groups[:-1]
    one = np.ones(len(ts), dtype=np.int64)
    hour = (ts % DAY_US) // HOUR_US
    night = np.isin(hour, np.array(sorted(NIGHT_HOURS_UTC)))
    last_minute = _trailing_count(account, ts, 60 * SECOND_US)
    return Traffic(
        event_id=lookups.column("event_id"),
        ts=ts,
        account=account,
        accounts=accounts,
        profession=professionals.column("profession").to_pylist(),
        window_start=window_start,
        explained=explained,
        found=found,
        new_person=new_person,
        new_network=new_network,
        new_device=new_device,
        day=day,
        day_rank=_group_cumsum(order, starts, one),
        day_unexplained=_group_cumsum(order, starts, (~explained).astype(np.int64)),
        day_not_found=_group_cumsum(order, starts, (~found).astype(np.int64)),
        day_new_networks=_group_cumsum(order, starts, new_network.astype(np.int64)),
        day_night=_group_cumsum(order, starts, night.astype(np.int64)),
        last_minute=last_minute,
        last_hour=_trailing_count(account, ts, HOUR_US),
        day_peak_minute=_group_cummax(order, starts, last_minute),
        day_groups=groups,
    )


def _day_max(groups: I64, values: F64) -> F64:
    """Highest value per group (over the groups present)."""
    if not len(values):
        return values
    o = np.argsort(groups, kind="stable")
    g = groups[o]
    starts = np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1])))
    return np.asarray(np.maximum.reduceat(values[o], starts), dtype=np.float64)


def _sticky(traffic: Traffic, flagged: Bools) -> Bools:
    """Flagged, or a previous lookup of the same account-day was (rows in time order)."""
    order = np.argsort(traffic.day_groups, kind="stable")
    g = traffic.day_groups[order]
    starts = np.ones(len(g), dtype=np.bool_)
    starts[1:] = g[1:] != g[:-1]
    return _group_cumsum(order, starts, flagged.astype(np.int64)) > 0


def _history_days(traffic: Traffic) -> tuple[I64, I64, I64]:
    """Per history account-day: its group number, account, and last row."""
    rows = np.flatnonzero(~traffic.in_window)
    groups = traffic.day_groups[rows]
    # The last row of each group in time order = highest row index.
    o = np.lexsort((rows, groups))
    g = groups[o]
    last = np.ones(len(g), dtype=np.bool_)
    last[:-1] = g[1:] != g[:-1]
    ends = rows[o][last]
    return g[last], traffic.account[ends], ends


def _decided(traffic: Traffic, flagged: Bools, kind: str, score: F64, reason: str) -> Decided:
    window = traffic.in_window
    flagged = flagged & window
    decision = np.where(flagged, kind, "allow").tolist()
    reasons = np.where(flagged, reason, "").tolist()
    return Decided(decision, np.where(window, score, 0.0), reasons)


def decide_cap(traffic: Traffic) -> Decided:
    """``deny`` the lookups of an account-day beyond its profession's fixed cap."""
    _, acc, ends = _history_days(traffic)
    volumes = traffic.day_rank[ends]
    professions = np.array(traffic.profession, dtype=object)
    acc_prof = professions[traffic.account]
    caps: dict[str, int] = {}
    all_days = volumes.astype(np.float64)
    for name in sorted(set(traffic.profession)):
        mine = volumes[professions[acc] == name]
        source = mine if len(mine) else all_days
        caps[name] = math.ceil(np.percentile(source, CAP_PERCENTILE)) if len(source) else 1
    cap = np.array([caps[p] for p in acc_prof.tolist()], dtype=np.int64)
    score = traffic.day_rank / np.maximum(cap, 1)
    return _decided(traffic, traffic.day_rank > cap, "deny", score, "daily_cap")


def unexplained_thresholds(traffic: Traffic) -> I64:
    """Each account's daily threshold of unexplained lookups (see the module doc)."""
    _, acc, ends = _history_days(traffic)
    n = len(traffic.accounts)
    days = np.bincount(acc, minlength=n)
    high = np.zeros(n, dtype=np.int64)
    np.maximum.at(high, acc, traffic.day_unexplained[ends])
    own = np.ceil(THRESHOLD_FACTOR * high).astype(np.int64) + THRESHOLD_MARGIN
    enough = days >= THRESHOLD_MIN_DAYS
    professions = np.array(traffic.profession, dtype=object)
    out: I64 = own.copy()
    fallback = int(np.median(own[enough])) if np.any(enough) else THRESHOLD_MARGIN + 10
    for name in set(traffic.profession):
        mine = professions == name
        pool = own[mine & enough]
        value = int(np.median(pool)) if len(pool) else fallback
        out[mine & ~enough] = value
    return out


def decide_unexplained(traffic: Traffic) -> Decided:
    """``step_up`` once the account-day's unexplained lookups exceed the account's threshold."""
    limit = unexplained_thresholds(traffic)[traffic.account]
    flagged = traffic.day_unexplained > limit
    score = traffic.day_unexplained / np.maximum(limit, 1)
    return _decided(traffic, flagged, "step_up", score, "unexplained_threshold")


def _calibration_days(traffic: Traffic) -> Bools:
    """Rows in the last third of the history (whole UTC days)."""
    history = ~traffic.in_window
    if not np.any(history):
        return history
    first, last = int(traffic.day[history].min()), int(traffic.day[history].max())
    cut = last - (last - first + 1) // 3 + 1
    return history & (traffic.day >= cut)


def _day_threshold(traffic: Traffic, scores: F64, rows: Bools) -> float:
    if not np.any(rows):
        return math.inf
    return float(
        np.percentile(_day_max(traffic.day_groups[rows], scores[rows]), DETECTOR_DAY_PERCENTILE)
    )


def _hst_features(traffic: Traffic) -> list[dict[str, float]]:
    share = traffic.day_unexplained / traffic.day_rank
    hour = (traffic.ts % DAY_US) // HOUR_US
    columns = {
        "minute_rate": np.log1p(traffic.last_minute),
        "hour_rate": np.log1p(traffic.last_hour),
        "unexplained_share": share,
        "day_not_found": np.log1p(traffic.day_not_found),
        "hour": hour.astype(np.float64),
        "new_person": traffic.new_person.astype(np.float64),
        "new_network": traffic.new_network.astype(np.float64),
        "new_device": traffic.new_device.astype(np.float64),
        "explained": traffic.explained.astype(np.float64),
    }
    names = list(columns)
    rows = np.column_stack([np.asarray(columns[k], dtype=np.float64) for k in names]).tolist()
    return [dict(zip(names, r, strict=True)) for r in rows]


def decide_half_space_trees(traffic: Traffic, *, seed: int = 0) -> Decided:
    """river's HalfSpaceTrees online, one lookup at a time (see the module doc)."""
    from river import anomaly, compose, preprocessing  # noqa: PLC0415 (bench extra)

    model = compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=seed))
    features = _hst_features(traffic)
    n = traffic.size
    scores = np.zeros(n, dtype=np.float64)
    window = traffic.in_window
    calibration = _calibration_days(traffic)
    first_window = int(np.argmax(window)) if np.any(window) else n
    score_one, learn_one = model.score_one, model.learn_one
    for i in range(first_window):
        if calibration[i]:
            scores[i] = score_one(features[i])
        learn_one(features[i])
    threshold = _day_threshold(traffic, scores, calibration)
    groups = traffic.day_groups.tolist()
    challenged: set[int] = set()
    decision = ["allow"] * n
    reasons = [""] * n
    for i in range(first_window, n):
        s = score_one(features[i])
        scores[i] = s
        g = groups[i]
        if g in challenged:
            decision[i], reasons[i] = "step_up", "challenged"
        elif s > threshold:
            challenged.add(g)
            decision[i], reasons[i] = "step_up", "hst_score"
        else:
            learn_one(features[i])
    ratio = scores / threshold if math.isfinite(threshold) and threshold > 0 else scores
    return Decided(decision, np.where(window, ratio, 0.0), reasons)


def _forest_features(traffic: Traffic, rows: I64, median_volume: F64) -> F64:
    rank = traffic.day_rank[rows].astype(np.float64)
    unexplained = traffic.day_unexplained[rows].astype(np.float64)
    volume = np.log1p(rank)
    return np.column_stack(
        [
            volume,
            volume - np.log1p(median_volume[traffic.account[rows]]),
            np.log1p(unexplained),
            unexplained / rank,
            np.log1p(traffic.day_not_found[rows]),
            np.log1p(traffic.day_new_networks[rows]),
            np.log1p(traffic.day_night[rows]),
            np.log1p(traffic.day_peak_minute[rows]),
        ]
    )


def decide_isolation_forest(traffic: Traffic, *, seed: int = 0) -> Decided:
    """scikit-learn's IsolationForest on the account's day so far (see the module doc)."""
    from sklearn.ensemble import IsolationForest  # noqa: PLC0415 (bench extra)

    n = traffic.size
    _, acc, ends = _history_days(traffic)
    n_acc = len(traffic.accounts)
    volumes = traffic.day_rank[ends].astype(np.float64)
    median_volume = np.zeros(n_acc, dtype=np.float64)
    if len(acc):
        o = np.argsort(acc, kind="stable")
        bounds = np.flatnonzero(np.diff(acc[o])) + 1
        for part in np.split(o, bounds):
            median_volume[acc[part[0]]] = float(np.median(volumes[part]))
    scores = np.zeros(n, dtype=np.float64)
    if not len(ends):
        return Decided(["allow"] * n, scores, [""] * n)
    forest = IsolationForest(n_estimators=100, random_state=seed)
    forest.fit(_forest_features(traffic, ends, median_volume))
    scored = np.flatnonzero(_calibration_days(traffic) | traffic.in_window)
    if len(scored):
        scores[scored] = -forest.score_samples(_forest_features(traffic, scored, median_volume))
    calibration = _calibration_days(traffic)
    threshold = _day_threshold(traffic, scores, calibration)
    raw = scores > threshold
    flagged = _sticky(traffic, raw & traffic.in_window)
    first = raw & traffic.in_window
    decided = _decided(traffic, flagged, "step_up", scores / threshold, "iforest_score")
    reasons = np.where(flagged & ~first, "challenged", np.array(decided.reasons, dtype=object))
    return Decided(decided.decision, decided.score, reasons.tolist())


Detector = Callable[[Traffic], Decided]
BASELINES: dict[str, Detector] = {
    "daily_cap": decide_cap,
    "unexplained_threshold": decide_unexplained,
    "half_space_trees": decide_half_space_trees,
    "isolation_forest": decide_isolation_forest,
}


def write_decisions(traffic: Traffic, decided: Decided, out: Path) -> None:
    table = pa.Table.from_arrays(
        [
            traffic.event_id,
            pa.array(decided.decision, pa.string()),
            pa.array(decided.score, pa.float64()),
            pa.array(decided.reasons, pa.string()),
        ],
        schema=DECISIONS,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(out)


def run_baseline(name: str, world_dir: Path, out: Path) -> BaselineRun:
    """Run one baseline on a world and write its decisions file to ``out``."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r} (one of {', '.join(BASELINES)})")
    window_start = load_window_start(world_dir)
    tables = {
        "professionals": read_table(world_dir, "professionals"),
        "insured": read_table(world_dir, "insured", ["nir", "birth_date", "treating_doctor"]),
        "care": read_table(world_dir, "care", ["account_id", "nir"]),
        "claims": read_table(world_dir, "claims"),
        "lookups": read_table(world_dir, "lookups", LOOKUP_COLUMNS),
    }
    started = time.perf_counter()
    traffic = traffic_from_tables(**tables, window_start=window_start)
    decided = BASELINES[name](traffic)
    seconds = time.perf_counter() - started
    write_decisions(traffic, decided, out)
    window = np.asarray(decided.decision, dtype=object)[traffic.in_window]
    counts = {k: int(np.count_nonzero(window == k)) for k in ("allow", "step_up", "deny")}
    return BaselineRun(name=name, lookups=traffic.size, seconds=seconds, window_counts=counts)
