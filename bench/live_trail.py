"""The 2022-shaped synthetic audit trail, and its load into a live PostgreSQL database.

Shared by the benchmarks that need a big trail: ``bench_scope`` (scoping the breach
from it) and ``bench_console`` (the console's pages over it). The trail has the 2022
shape: honest accounts over some days (daily volume skewed per account, lower at
weekends, business hours), ~15 % of lookups refused or not found, login events around
them, and a few accounts taken over by a robot that reads many distinct persons over a
few days from a hosting provider's addresses. Generated vectorised (numpy, pyarrow).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql

from rempart.audit.chain import CATEGORIES, FIELD_NAMES
from rempart.store.engine import make_engine
from rempart.store.migrate import upgrade

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
START_US = 1_769_904_000_000_000  # 2026-02-01 00:00 UTC
DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
ALL_CATEGORIES = ",".join(CATEGORIES)
ROBOT_AGENT = "python-requests/2.27.1"
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "LogicielPharma/7.3 (Windows; officine) httpx/0.27",
    "LogicielMedical/4.2.1 (Windows; cabinet) httpx/0.27",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Mobile/15E148 Safari/604.1",
)
# What a lookup was answered, and how often (about 15 % refused or not found).
OUTCOMES = (
    # outcome, found, categories, decision, share
    ("ok", 1, ALL_CATEGORIES, "allow", 0.85),
    ("not_found", 0, "", "allow", 0.10),
    ("invalid_nir", -1, "", "allow", 0.03),
    ("step_up_required", -1, "", "step_up", 0.015),
    ("account_suspended", -1, "", "deny", 0.005),
)
EVENTS = ("lookup", "login_password_ok", "login_succeeded", "login_failed")
EVENT_SHARES = (0.93, 0.025, 0.025, 0.02)


class BenchError(Exception):
    """The benchmark cannot give a valid figure; the message says why."""


# --------------------------------------------------------------------------- the shape


@dataclass(frozen=True)
class Shape:
    rows: int
    days: int = 30
    accounts: int = 40_000
    robots: int = 19
    victims: int = 510_000
    attack_days: int = 3
    persons: int = 2_000_000
    shards: int = 8
    seed: int = 0
    start_us: int = START_US
    """Midnight (UTC) of the trail's first day."""
    until_us: int | None = None
    """Rows at or after this moment are left out (a live trail holds no future)."""

    @property
    def attack_start_day(self) -> int:
        return self.days - self.attack_days - 5

    def key(self) -> str:
        # The two moments are named only when set: the cache directories generated before
        # they existed keep their names.
        return "-".join(
            f"{k}{v}"
            for k, v in asdict(self).items()
            if k not in ("start_us", "until_us") or v != _SHAPE_DEFAULTS[k]
        )


_SHAPE_DEFAULTS: dict[str, int | None] = {"start_us": START_US, "until_us": None}


def random_strings(rng: np.random.Generator, n: int, length: int, alphabet: bytes) -> pa.Array:
    """``n`` random strings of ``length`` characters from ``alphabet``, without a Python loop."""
    chars = np.frombuffer(alphabet, dtype=np.uint8)[
        rng.integers(0, len(alphabet), size=(n, length), dtype=np.uint8)
    ]
    offsets = np.arange(0, (n + 1) * length, length, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes())
    ).cast(pa.string())


HEX = b"0123456789abcdef"
URLSAFE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _ipv4(rng: np.random.Generator, n: int) -> list[str]:
    octets = rng.integers([2, 0, 0, 1], [223, 256, 256, 255], size=(n, 4))
    return [".".join(map(str, row)) for row in octets.tolist()]


@dataclass
class Population:
    """Accounts, sessions, persons and the robots, as pyarrow pools indexed by numpy."""

    shape: Shape
    rng: np.random.Generator = field(init=False)
    account_ids: pa.Array = field(init=False)
    weights: np.ndarray = field(init=False)
    ips: pa.Array = field(init=False)
    agents: np.ndarray = field(init=False)
    channels: np.ndarray = field(init=False)
    logins: pa.Array = field(init=False)
    sessions: pa.Array = field(init=False)
    persons: pa.Array = field(init=False)
    robots: np.ndarray = field(init=False)
    victims: np.ndarray = field(init=False)
    robot_ips: pa.Array = field(init=False)
    robot_sessions: pa.Array = field(init=False)

    def __post_init__(self) -> None:
        s = self.shape
        self.rng = rng = np.random.default_rng(s.seed)
        self.account_ids = pc.binary_join_element_wise(
            "acct-", random_strings(rng, s.accounts, 16, HEX), ""
        )
        self.weights = rng.lognormal(0.0, 1.0, s.accounts)
        self.weights /= self.weights.sum()
        v6 = rng.random(s.accounts) < 0.15
        v4 = _ipv4(rng, s.accounts)
        words = rng.integers(0, 65536, size=(s.accounts, 4)).tolist()
        self.ips = pa.array(
            [
                f"2a01:cb{w[0] % 16:02x}:{w[1]:x}:{w[2]:x}::{w[3]:x}" if is_v6 else ip
                for is_v6, ip, w in zip(v6.tolist(), v4, words, strict=True)
            ],
            pa.string(),
        )
        self.agents = rng.integers(0, len(USER_AGENTS), s.accounts)
        self.channels = (rng.random(s.accounts) < 0.3).astype(np.int64)  # software, else portal
        self.logins = random_strings(rng, s.accounts, 32, HEX)
        self.sessions = random_strings(rng, s.accounts * s.days, 22, URLSAFE)
        self.persons = random_strings(rng, s.persons, 32, HEX)
        self.robots = rng.choice(s.accounts, s.robots, replace=False)
        self.victims = rng.choice(s.persons, s.victims, replace=False)
        self.robot_ips = pa.array(
            [f"185.220.101.{i}" for i in rng.choice(np.arange(2, 250), 12, replace=False)]
            + [f"2a0b:f4c2:{i:x}::{i * 7:x}" for i in rng.integers(1, 4096, 4)],
            pa.string(),
        )
        self.robot_sessions = random_strings(rng, s.robots * s.attack_days * 40, 22, URLSAFE)

    def robot_ids(self) -> list[str]:
        return [str(self.account_ids[int(i)]) for i in self.robots]

    def robot_rows(self) -> int:
        return int(self.shape.victims * 1.03)


def _pick(pool: tuple[Any, ...] | list[Any], indices: np.ndarray) -> pa.Array:
    return pa.array(list(pool)).take(pa.array(indices))


def honest_day(pop: Population, day: int, n: int) -> dict[str, pa.Array | np.ndarray]:
    """``n`` rows of honest traffic on ``day``: lookups in business hours, logins."""
    rng, s = pop.rng, pop.shape
    account = rng.choice(s.accounts, n, p=pop.weights)
    hours = np.clip(
        np.where(rng.random(n) < 0.55, rng.normal(10.0, 1.8, n), rng.normal(15.5, 2.2, n)),
        0,
        23.999,
    )
    ts = s.start_us + day * DAY_US + (hours * HOUR_US).astype(np.int64)
    event = np.searchsorted(np.cumsum(EVENT_SHARES), rng.random(n) * 0.999999)
    outcome = np.searchsorted(np.cumsum([o[4] for o in OUTCOMES]), rng.random(n) * 0.999999)
    outcome[event != 0] = 0  # login events: "ok", no lookup fields
    lookup = event == 0
    found = np.array([o[1] for o in OUTCOMES])[outcome]
    answered = lookup & (outcome == 0)
    subjects = pop.persons.take(pa.array(rng.integers(0, s.persons, n)))
    unknown = random_strings(rng, n, 32, HEX)
    login = pop.logins.take(pa.array(account))
    subject = pc.if_else(pa.array(answered), subjects, pc.if_else(pa.array(lookup), unknown, login))
    session = pop.sessions.take(pa.array(account * s.days + day))
    has_session = pa.array(lookup | (event == 2))
    empty = pa.scalar("", pa.string())
    failed = event == 3
    return {
        "ts_us": ts,
        "event": _pick(EVENTS, event),
        "account_id": pop.account_ids.take(pa.array(account)),
        "session_id": pc.if_else(has_session, session, empty),
        "acr": pc.if_else(has_session, pa.scalar("password+totp"), empty),
        "client_ip": pop.ips.take(pa.array(account)),
        "user_agent": _pick(USER_AGENTS, pop.agents[account]),
        "channel": pc.if_else(
            pa.array(lookup), _pick(("portal", "software"), pop.channels[account]), empty
        ),
        "subject": subject,
        "found": np.where(lookup, found, -1).astype(np.int8),
        "categories": pc.if_else(pa.array(answered), pa.scalar(ALL_CATEGORIES), empty),
        "decision": pc.if_else(pa.array(lookup), _pick([o[3] for o in OUTCOMES], outcome), empty),
        "reasons": pc.if_else(pa.array(failed), pa.scalar("wrong_password"), empty),
        "outcome": pc.if_else(
            pa.array(failed),
            pa.scalar("invalid_credentials"),
            _pick([o[0] for o in OUTCOMES], outcome),
        ),
    }


def robot_day(pop: Population, day: int, victims: np.ndarray) -> dict[str, pa.Array | np.ndarray]:
    """The robots' lookups of one attack day: machine speed, around the clock, each from
    the hosting provider's addresses, a new session every hour or so; 3 % made-up NIRs."""
    rng, s = pop.rng, pop.shape
    n = len(victims) + len(victims) * 3 // 100
    robot = rng.integers(0, s.robots, n)
    ts = s.start_us + day * DAY_US + np.sort(rng.integers(0, DAY_US, n))
    answered = np.arange(n) < len(victims)
    rng.shuffle(answered)
    subject = pc.if_else(
        pa.array(answered),
        pop.persons.take(pa.array(np.resize(victims, n))),
        random_strings(rng, n, 32, HEX),
    )
    attack_day = day - s.attack_start_day
    hour = (ts - s.start_us - day * DAY_US) // (HOUR_US * 24 // 40)
    session = pop.robot_sessions.take(pa.array((robot * s.attack_days + attack_day) * 40 + hour))
    not_found = ~answered
    return {
        "ts_us": ts,
        "event": pa.array(["lookup"] * n),
        "account_id": pop.account_ids.take(pa.array(pop.robots[robot])),
        "session_id": session,
        "acr": pa.array(["password+totp"] * n),
        "client_ip": pop.robot_ips.take(pa.array(rng.integers(0, len(pop.robot_ips), n))),
        "user_agent": pa.array([ROBOT_AGENT] * n),
        "channel": pa.array(["portal"] * n),
        "subject": subject,
        "found": np.where(not_found, 0, 1).astype(np.int8),
        "categories": pc.if_else(pa.array(answered), pa.scalar(ALL_CATEGORIES), pa.scalar("")),
        "decision": pa.array(["allow"] * n),
        "reasons": pa.array([""] * n),
        "outcome": pc.if_else(pa.array(answered), pa.scalar("ok"), pa.scalar("not_found")),
    }


def days(pop: Population) -> Iterator[tuple[int, pa.Table]]:
    """Each day's rows in export order (per shard, by sequence number), without hashes."""
    s = pop.shape
    weights = np.array([0.15 if d % 7 == 6 else 0.5 if d % 7 == 5 else 1.0 for d in range(s.days)])
    honest = (s.rows - pop.robot_rows()) * weights / weights.sum()
    counts = np.floor(honest).astype(np.int64)
    counts[-1] += s.rows - pop.robot_rows() - counts.sum()
    per_attack_day = np.array_split(pop.victims, s.attack_days)
    next_seq = np.zeros(s.shards, dtype=np.int64)
    for day in range(s.days):
        parts = [honest_day(pop, day, int(counts[day]))]
        attack_day = day - s.attack_start_day
        if 0 <= attack_day < s.attack_days:
            parts.append(robot_day(pop, day, per_attack_day[attack_day]))
        columns = {
            name: pa.chunked_array([pa.array(p[name]) for p in parts]).combine_chunks()
            for name in parts[0]
        }
        order = np.argsort(columns["ts_us"].to_numpy(), kind="stable")
        if s.until_us is not None:
            order = order[columns["ts_us"].to_numpy()[order] < s.until_us]
        n = len(order)
        columns = {name: column.take(pa.array(order)) for name, column in columns.items()}
        shard = pop.rng.integers(0, s.shards, n).astype(np.int16)
        seq = np.empty(n, dtype=np.int64)
        for k in range(s.shards):
            mine = shard == k
            seq[mine] = next_seq[k] + np.arange(1, int(mine.sum()) + 1)
            next_seq[k] += int(mine.sum())
        ts = columns["ts_us"]
        table = pa.table(
            {
                "shard": pa.array(shard),
                "seq": pa.array(seq),
                **{name: columns[name] for name in FIELD_NAMES if name != "seq"},
                "ts": ts.cast(pa.timestamp("us", tz="UTC")),
            }
        )
        export_order = np.lexsort((seq, shard))
        yield day, table.take(pa.array(export_order))


def day_name(day: int, start_us: int = START_US) -> str:
    return datetime.fromtimestamp((start_us + day * DAY_US) / 1e6, UTC).strftime("%Y-%m-%d")


# --------------------------------------------------------------------------- live PostgreSQL


def _admin(statement: sql.Composed) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(statement)


def database_url(database: str, *, driver: str = "") -> str:
    """The URL of ``database`` on the local server (``driver="+psycopg"`` for SQLAlchemy)."""
    return f"postgresql{driver}://postgres@127.0.0.1:5432/{database}"


def drop_database(database: str) -> None:
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


_COPY_COLUMNS = ("shard", *FIELD_NAMES, "prev_hash", "hash")
_AUDIT_INDEXES = ("ix_audit_events_subject", "ix_audit_events_account_ts", "ix_audit_events_ts")


def _csv(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pacsv.write_csv(
        table, buffer, pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
    )
    return buffer.getvalue()


def _hex_bytea(rng: np.random.Generator, n: int) -> pa.Array:
    hexes = random_strings(rng, n, 64, HEX)
    return pc.binary_join_element_wise("\\x", hexes, "")


@dataclass
class Loaded:
    rows: int = 0
    robots: list[str] = field(default_factory=list)
    attack: tuple[int, int] = (0, 0)
    copy_seconds: float = 0.0
    index_seconds: float = 0.0
    persons_seconds: float = 0.0
    table_mb: float = 0.0
    indexes_mb: float = 0.0
    insured: int = 0


def load_live(shape: Shape, database: str, pop: Population | None = None) -> Loaded:
    """``database``, created afresh and migrated, with the trail (``COPY``, then the
    migrations' indexes, ``ANALYZE``) and the insured persons the trail's pseudonyms
    name. ``pop``: the population of ``shape`` when the caller needs it too."""
    drop_database(database)
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    engine = make_engine(database_url(database, driver="+psycopg"))
    try:
        upgrade(engine, schema="data")
        upgrade(engine, schema="audit")
    finally:
        engine.dispose()
    loaded = Loaded()
    pop = Population(shape) if pop is None else pop
    loaded.robots = pop.robot_ids()
    loaded.attack = (
        shape.start_us + shape.attack_start_day * DAY_US,
        shape.start_us + (shape.attack_start_day + shape.attack_days) * DAY_US,
    )
    with psycopg.connect(database_url(database), autocommit=True) as connection:
        # Loading without the indexes, then building them, is much faster than COPY
        # into an indexed table; every index the migrations made is dropped, then made
        # again from its own definition, read back here.
        indexes = connection.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_events'"
            " AND indexname <> 'pk_audit_events'"
        ).fetchall()
        if not {name for name, _ in indexes} >= set(_AUDIT_INDEXES):
            raise BenchError(f"unexpected indexes on audit_events: {indexes}")
        for name, _ in indexes:
            connection.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(str(name))))
        began = time.perf_counter()
        statement = sql.SQL("COPY audit_events ({}) FROM STDIN WITH (FORMAT csv)").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in _COPY_COLUMNS)
        )
        for day, rows_of_day in days(pop):
            n = rows_of_day.num_rows
            table = rows_of_day.append_column("prev_hash", _hex_bytea(pop.rng, n))
            table = table.append_column("hash", _hex_bytea(pop.rng, n)).select(_COPY_COLUMNS)
            with connection.cursor() as cursor, cursor.copy(statement) as copy:
                for start in range(0, n, 200_000):
                    copy.write(_csv(table.slice(start, 200_000)))
            loaded.rows += n
            print(f"  {day_name(day, shape.start_us)}: {n:,} rows copied", flush=True)
        loaded.copy_seconds = time.perf_counter() - began
        began = time.perf_counter()
        for _, definition in indexes:
            connection.execute(str(definition))
        connection.execute("ANALYZE audit_events")
        # The heads the trail appends after (the service audits its own steps).
        connection.execute(
            "INSERT INTO audit_head (shard, seq, hash) SELECT DISTINCT ON (shard) shard, seq,"
            " hash FROM audit_events ORDER BY shard, seq DESC"
        )
        loaded.index_seconds = time.perf_counter() - began
        began = time.perf_counter()
        loaded.insured = load_persons(connection, pop)
        loaded.persons_seconds = time.perf_counter() - began
        size = connection.execute(
            "SELECT pg_table_size('audit_events'), pg_indexes_size('audit_events')"
        ).fetchone()
        assert size is not None
        loaded.table_mb, loaded.indexes_mb = size[0] / 2**20, size[1] / 2**20
    return loaded


def load_persons(connection: psycopg.Connection[Any], pop: Population) -> int:
    """The insured persons of the pseudonym pool, with their pseudonyms (as the world load
    stores them). The NIRs are made up, not valid: scoping joins on the pseudonym only."""
    rng, n = pop.rng, pop.shape.persons
    born = rng.integers(-25_000, 20_000, n)  # days since 1970
    department = rng.integers(1, 96, n)
    table = pa.table(
        {
            "nir": pc.binary_join_element_wise("9", random_strings(rng, n, 14, b"0123456789"), ""),
            "birth_date": pa.array(born.astype("datetime64[D]")),
            "sex": pa.array(rng.integers(1, 3, n).astype(np.int16)),
            "last_name": pa.array(["MARTIN"] * n),
            "first_name": pa.array(["Camille"] * n),
            "department": pa.array([f"{d:02d}" for d in department.tolist()]),
            "c2s": pa.array(rng.random(n) < 0.11),
            "ame": pa.array(rng.random(n) < 0.006),
            "ald": pa.array(rng.random(n) < 0.18),
            "email": pc.if_else(
                pa.array(rng.random(n) < 0.6),
                pa.scalar("personne@example.org"),
                pa.scalar(None, pa.string()),
            ),
            "street": pa.array(["1 rue de la Paix"] * n),
            "postcode": pa.array(["75002"] * n),
            "city": pa.array(["Paris"] * n),
            "pseudonym": pop.persons,
        }
    )
    statement = sql.SQL("COPY insured ({}) FROM STDIN WITH (FORMAT csv)").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in table.column_names)
    )
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for start in range(0, n, 200_000):
            copy.write(_csv(table.slice(start, 200_000)))
    connection.execute("ANALYZE insured")
    return n
