"""Scoring a replay: honest accounts suspended and the recorded oddities, on hand-built tables."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from rempart.guard.scoring import read_oddity_days, score_tables
from rempart.world.io import WorldFormatError

DAY1 = datetime(2025, 3, 24, 9, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
NIR = "185057800608436"
BIRTH = date(1985, 5, 12)

# (account, time, attack or None, decision)
ROWS = [
    ("ph1", DAY1, None, "allow"),
    ("ph1", DAY1 + timedelta(minutes=5), None, "step_up"),
    ("ph1", DAY2, None, "deny"),  # an honest pharmacy suspended
    ("gp1", DAY1, None, "step_up"),
    ("gp1", DAY1 + timedelta(seconds=1), None, "allow"),
    ("vic", DAY1, None, "allow"),
    ("vic", DAY2, "robot", "allow"),
    ("vic", DAY2 + timedelta(minutes=1), "robot", "deny"),
    ("vic", DAY2 + timedelta(hours=2), None, "deny"),  # its owner meets the suspension
]


def _day(moment: datetime) -> int:
    return (moment.date() - date(1970, 1, 1)).days


def _tables() -> tuple[pa.Table, pa.Table, pa.Table, pa.Table]:
    ids = list(range(1, len(ROWS) + 1))
    lookups = pa.table(
        {
            "event_id": pa.array(ids, pa.int64()),
            "ts": pa.array([r[1] for r in ROWS], pa.timestamp("us", tz="UTC")),
            "account_id": [r[0] for r in ROWS],
            "nir": [NIR] * len(ROWS),
            "birth_date": [BIRTH.isoformat()] * len(ROWS),
        }
    )
    labels = pa.table(
        {"event_id": pa.array(ids, pa.int64()), "attack": pa.array([r[2] for r in ROWS])}
    )
    insured = pa.table({"nir": [NIR], "birth_date": pa.array([BIRTH], pa.date32())})
    decisions = pa.table({"event_id": pa.array(ids, pa.int64()), "decision": [r[3] for r in ROWS]})
    return lookups, labels, insured, decisions


def test_honest_suspensions_and_oddities_are_scored_outside_compromise() -> None:
    oddity_days = {
        # The victim's surge day falls after its compromise; a day without lookups is no
        # account-day.
        "seasonal_surge": [
            ("ph1", _day(DAY1)),
            ("ph1", _day(DAY2)),
            ("vic", _day(DAY2)),
            ("ph1", _day(DAY2) + 1),
        ],
        "batch_check": [("gp1", _day(DAY1))],
    }
    score = score_tables(*_tables(), oddity_days=oddity_days)
    assert score.honest_suspended == ("ph1",)  # not the victim: its deny came with the robot
    surge = score.oddities["seasonal_surge"]
    assert (surge.account_days, surge.accounts, surge.denied_days) == (2, 1, 1)
    assert surge.friction == 0.5
    assert surge.suspended == ("ph1",)
    batch = score.oddities["batch_check"]
    assert (batch.account_days, batch.friction, batch.denied_days) == (1, 1.0, 0)
    assert batch.suspended == ()
    # The existing figures keep their meaning.
    assert score.legit_account_days == 5
    assert score.blocks == pytest.approx(2 / 5)
    assert score.blocks_uncompromised == pytest.approx(1 / 4)


def test_without_recorded_oddities_nothing_is_invented() -> None:
    score = score_tables(*_tables())
    assert score.oddities == {}
    assert score.honest_suspended == ("ph1",)


def test_oddity_days_are_read_from_world_json(tmp_path: Path) -> None:
    assert read_oddity_days(tmp_path) == {}
    meta = {"oddity_days": {"batch_check": [["gp1", "2025-03-24"]], "seasonal_surge": []}}
    (tmp_path / "world.json").write_text(json.dumps(meta), encoding="utf-8")
    assert read_oddity_days(tmp_path) == {
        "batch_check": [("gp1", _day(DAY1))],
        "seasonal_surge": [],
    }
    (tmp_path / "world.json").write_text(
        json.dumps({"oddity_days": {"batch_check": [["gp1", "24/03/2025"]]}}), encoding="utf-8"
    )
    with pytest.raises(WorldFormatError) as caught:
        read_oddity_days(tmp_path)
    assert caught.value.code == "world_bad_metadata"
