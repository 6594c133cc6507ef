"""The audit database's disk full under load: lookups are refused (503), nothing is served
without its entry, and the service answers again once there is room, without a restart.

The audit database lives in a tablespace of the private PostgreSQL cluster on a 16 MiB
tmpfs the test mounts (root only: it skips elsewhere, but fails under CI), or, for the
embedded default, is a SQLite file on that tmpfs. Lookups run
(``rempart serve --workers 2``); mid-load the test fills the tmpfs with a file. While an
entry still fits (in a page a session holds, at the end of a file) lookups are audited
and served; the test's own lookups must then end in twenty ``503 audit_unavailable`` in a
row, and any other answer is a failure. Then the file
is removed and every thread must be served again. Every answer received has its
committed entry, and the chains verify.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.functional.conftest import make_login
from tests.functional.fault_stack import Stack, fault_stack
from tests.functional.private_servers import PrivatePostgres, unless_available
from tests.functional.server_load import (
    Key,
    Load,
    assert_trail_holds,
    drive,
    log_in,
    probes_of,
    run_load,
    serve,
)

pytestmark = pytest.mark.faults

THREADS = 2
WARM_SECONDS = 1.5
DISK = "16m"
UNTIL_FULL = 3_000
"""Lookups the test sends, at most, until the room left on the disk runs out."""
REFUSED_IN_A_ROW = 20
"""Refused one after another: the disk is full for good (until room is made)."""
RECOVERY_SECONDS = 30.0
REFUSALS = frozenset({"audit_unavailable"})


@pytest.fixture
def audit_disk(private_pg: PrivatePostgres) -> Iterator[tuple[str, Path]]:
    """A tablespace on a tmpfs of ``DISK``: its name, and the mount point."""
    mount_bin, umount_bin = shutil.which("mount"), shutil.which("umount")
    if os.geteuid() != 0 or mount_bin is None or umount_bin is None:
        unless_available("mounting a tmpfs needs root and mount(8)")
    assert mount_bin is not None
    assert umount_bin is not None
    mount = Path(tempfile.mkdtemp(prefix="rempart-audit-disk-"))
    try:
        subprocess.run(
            [mount_bin, "-t", "tmpfs", "-o", f"size={DISK},mode=0755", "tmpfs", str(mount)],
            check=True,
            capture_output=True,
            timeout=30,
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        mount.rmdir()
        unless_available(f"cannot mount a tmpfs here ({exc})")
    name = f"audit_disk_{secrets.token_hex(3)}"
    try:
        private_pg.create_tablespace(name, mount / "tablespace")
        yield name, mount
    finally:
        with contextlib.suppress(Exception):
            private_pg.execute(f"DROP TABLESPACE IF EXISTS {name}")
        subprocess.run([umount_bin, "-l", str(mount)], check=False, timeout=30)
        mount.rmdir()


@pytest.fixture(params=["postgresql", "sqlite"])
def stack(
    request: pytest.FixtureRequest,
    private_pg: PrivatePostgres,
    fault_world: Path,
    tmp_path: Path,
    audit_disk: tuple[str, Path],
) -> Iterator[Stack]:
    """The audit database in the tablespace on the tmpfs, or a SQLite file on it (the
    data in the private cluster either way)."""
    tablespace, mount = audit_disk
    elsewhere = {}
    if request.param == "sqlite":
        elsewhere["audit_database_url"] = f"sqlite:///{mount / 'audit.db'}"
    # The guard on in its learning window: it decides and records every lookup (its
    # decision is in the entry that no longer fits) without stopping this robot-paced load.
    with fault_stack(
        private_pg,
        fault_world,
        tmp_path,
        audit_tablespace=tablespace,
        guard_enabled="true",
        guard_learn_until="2099-01-01T00:00:00Z",
        **elsewhere,
    ) as built:
        yield built


def _fill(folder: Path) -> int:
    """Write a file until the file system is full; its size in bytes."""
    chunk = b"\0" * (256 * 1024)
    written = 0
    with (folder / "filler").open("wb", buffering=0) as filler:
        while True:
            try:
                written += filler.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return written


def test_a_full_audit_disk_refuses_lookups_then_recovers_when_there_is_room(
    stack: Stack, fault_world: Path, tmp_path: Path, audit_disk: tuple[str, Path]
) -> None:
    _, mount = audit_disk
    account = make_login(stack.services, "ph.disk")
    probes = probes_of(fault_world, stack.settings.keys.pseudonym_key, count=200)
    found = [p for p in probes if p.key[2] == "ok"]
    full: Counter[str] = Counter()
    filled: list[int] = []
    own: Counter[Key] = Counter()
    back_at: list[float] = []
    loads: list[Load] = []

    with serve(stack.env, tmp_path / "server.log") as server:
        auth = log_in(server.base, account, account.totp.now())

        def lookup(http: httpx.Client, n: int) -> tuple[int, str | None]:
            probe = found[n % len(found)]
            response = http.post(
                "/api/v1/rights/lookup", json={"nir": probe.nir, "birth_date": probe.birth_date}
            )
            if response.status_code == 200:
                own[probe.key] += 1
                return 200, None
            return response.status_code, response.json().get("error")

        def fault() -> None:
            time.sleep(WARM_SECONDS)
            filled.append(_fill(mount))
            with httpx.Client(base_url=server.base, headers=auth, timeout=10) as http:
                in_a_row = 0
                for n in range(UNTIL_FULL):
                    status, code = lookup(http, n)
                    full[f"{status} {code}"] += 1
                    in_a_row = in_a_row + 1 if status == 503 else 0
                    if in_a_row == REFUSED_IN_A_ROW:
                        break
                full["refused in a row"] = in_a_row
            (mount / "filler").unlink()
            back_at.append(time.monotonic())
            deadline = back_at[0] + RECOVERY_SECONDS
            while time.monotonic() < deadline and not all(
                load.last_ok > back_at[0] for load in loads
            ):
                time.sleep(0.2)

        def worker(seed: int, stop: threading.Event) -> Load:
            load = Load()
            loads.append(load)
            return drive(
                server.base,
                auth,
                probes,
                seed,
                stop,
                refusals=REFUSALS,
                through_outages=True,
                deadline_seconds=WARM_SECONDS + RECOVERY_SECONDS + 60,
                max_requests=100_000,
                pause=0.01,
                into=load,
            )

        results = run_load(THREADS, worker, fault)
        assert server.process.poll() is None, "the server died when the disk was full"
        served_again = [load.last_ok > back_at[0] for load in loads]
        recovered_in = max(load.last_ok for load in loads) - back_at[0]

    statuses = sum((load.statuses for load in results), Counter[int]())
    refusals = sum((load.refusals for load in results), Counter[str]())
    unexpected = [line for load in results for line in load.unexpected]
    print(  # the figures docs/reliability.md quotes (pytest -rP shows them)
        f"filler {filled[0] // 1024} KiB; load answers {statuses.total()} {dict(statuses)}, "
        f"refusals {dict(refusals)}; the test's own lookups once full {dict(full)}; "
        f"served again within {recovered_in:.2f} s of the room made"
    )
    assert not unexpected, f"unexpected answers {statuses}: {unexpected[:5]}"
    # Lookups go on being served while an entry still fits (each PostgreSQL session fills
    # the page it holds, SQLite the end of its file), and audited: then every one is refused.
    assert full["refused in a row"] == REFUSED_IN_A_ROW, full
    assert set(full) <= {"200 None", "503 audit_unavailable", "refused in a row"}, full
    assert all(served_again), "a thread was not served again once there was room"

    answered = sum((load.answered for load in results), own)
    assert_trail_holds(answered, stack.services.audit_engine, stack.env, tmp_path / "server.log")
