"""A campaign's runner killed (SIGKILL) at random points, several times, then run to
the end: a real SMTP server (aiosmtpd) counts what it received. Every person is
reached once (distinct Message-IDs), no one is missing, and the only copies sent twice
are messages in flight at a kill (same Message-ID); every letter is in exactly one
print batch. On PostgreSQL two workers run side by side (SKIP LOCKED)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from rempart.services import Services
from tests.functional.breach_world import Insuree, build_breach, open_and_scope, people
from tests.functional.test_campaign import env_of, letters, settings
from tests.functional.test_outbox import Inbox, free_port, start_server

__all__ = ["settings"]  # the campaign tests' settings, pointed at this module's SMTP server

pytestmark = pytest.mark.faults

EMAILS = 300
LETTERS = 60
KILLS = 4


def crowd() -> list[Insuree]:
    base = people()[0]
    return [
        replace(base, key=f"m{i}", last_name=f"Nom{i}", email=f"personne{i}@gmail.example")
        for i in range(EMAILS)
    ] + [
        replace(base, key=f"p{i}", last_name=f"Papier{i}", email=None, channel="letter")
        for i in range(LETTERS)
    ]


def workers(
    services: Services, campaign: int, folder: Path, count: int
) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, **env_of(services)}
    command = [
        sys.executable,
        "-m",
        "rempart",
        "notify",
        "run",
        str(campaign),
        "--letters-dir",
        str(folder),
        "--batch-size",
        "7",
        "--operator",
        "crash-test",
    ]
    return [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(count)
    ]


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """The server the settings of ``test_campaign`` point at, here accepting everyone."""
    inbox, port = Inbox(), free_port()
    controller = start_server(inbox, port)
    yield inbox, port
    controller.stop()


def written(folder: Path) -> int:
    """Print batches complete on disk (their manifest is written last)."""
    return len(list(folder.glob("*.csv"))) if folder.exists() else 0


def wait_until(
    count: Callable[[], int], target: int, running: list[subprocess.Popen[bytes]]
) -> None:
    deadline = time.monotonic() + 120
    while count() < target and time.monotonic() < deadline:
        if all(p.poll() is not None for p in running):
            return
        time.sleep(0.02)


def test_killed_runners_never_skip_anyone_and_never_send_twice(
    services: Services, smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, _ = smtp
    inbox.delay = 0.004  # the run lasts long enough for the kills to land mid-way
    build_breach(services, crowd())
    incident = open_and_scope(services)
    plan = services.campaigns.plan(incident, operator="dpo")
    assert plan.email == EMAILS
    assert plan.letter == LETTERS
    folder = tmp_path / "letters"
    count = 2 if services.engine.dialect.name == "postgresql" else 1
    rng = random.Random(7)
    kills = 0
    progress = []
    for round_ in range(KILLS):
        running = workers(services, plan.campaign_id, folder, count)
        if round_ < KILLS // 2:
            # Mid-e-mails: once the server has received some more messages.
            sent = len(inbox.received) + rng.randint(10, 60)
            wait_until(lambda: len(inbox.received), sent, running)
        else:
            # Mid-letters: once one more batch is written, a moment into the next one.
            wait_until(lambda: written(folder), written(folder) + 1, running)
            time.sleep(rng.uniform(0.0, 0.3))
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait()
        progress.append(services.campaigns.status(plan.campaign_id).to_json()["reached"])
    # Kills landed mid-e-mails and mid-letters, not before or after the work.
    assert any(0 < p["email"] < EMAILS for p in progress), progress
    assert any(0 < p["letter"] < LETTERS for p in progress), progress
    for process in workers(services, plan.campaign_id, folder, count):
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr.decode()[-2000:]

    ids = Counter(str(r.message["Message-ID"]) for r in inbox.received)
    to = {str(r.message["Message-ID"]): str(r.message["To"]) for r in inbox.received}
    assert len(ids) == EMAILS, "every e-mail person reached"
    assert sorted(to.values()) == sorted(f"personne{i}@gmail.example" for i in range(EMAILS))
    duplicates = sum(n - 1 for n in ids.values())
    assert duplicates <= kills, f"{duplicates} copies sent twice for {kills} kills"

    rows = letters(folder)  # fails on a reference in two batches
    assert len(rows) == LETTERS
    names = {p.name for p in folder.iterdir()}  # no temporary file left behind
    assert all(n.endswith((".pdf", ".csv")) for n in names), names
    assert {n[:-4] for n in names if n.endswith(".pdf")} == {
        n[:-4] for n in names if n.endswith(".csv")
    }

    status = services.campaigns.status(plan.campaign_id)
    assert status.reached_email == EMAILS
    assert status.reached_letter == LETTERS
    assert status.pending == 0
    assert status.adds_up
