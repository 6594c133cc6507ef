"""The ``rempart`` command, and the real server started by ``rempart serve``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pyotp
import pytest
from typer.testing import CliRunner

from rempart.cli import app
from tests.conftest import FAST_HASHING

runner = CliRunner()
PASSWORD = "violet tram sous la pluie 1987"


def cli_env(tmp_path: Path, database_url: str | None = None) -> dict[str, str]:
    env = {
        "REMPART_DATABASE_URL": database_url or f"sqlite:///{tmp_path / 'rempart.db'}",
        "REMPART_DATA_DIR": str(tmp_path / "data"),
    }
    env.update({f"REMPART_{k.upper()}": str(v) for k, v in FAST_HASHING.items()})
    return env


def test_accounts_create_prints_the_otpauth_uri(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    result = runner.invoke(
        app,
        [
            "accounts",
            "create",
            "--login",
            "dr.martin",
            "--password-stdin",
            "--profession",
            "generaliste",
            "--account-id",
            "PS0001",
        ],
        input=PASSWORD + "\n",
        env=env,
    )
    assert result.exit_code == 0, result.output
    uri = result.stdout.strip()
    assert uri.startswith("otpauth://totp/Rempart:dr.martin?")
    assert pyotp.parse_uri(uri).secret
    assert PASSWORD not in result.output


def test_accounts_create_refuses_weak_passwords_and_duplicates(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    runner.invoke(app, ["db", "upgrade"], env=env)
    weak = runner.invoke(
        app,
        ["accounts", "create", "--login", "a.b", "--password-stdin"],
        input="azerty123\n",
        env=env,
    )
    assert weak.exit_code == 1
    assert "weak_password" in weak.output
    args = ["accounts", "create", "--login", "a.b", "--password-stdin"]
    assert runner.invoke(app, args, input=PASSWORD + "\n", env=env).exit_code == 0
    again = runner.invoke(app, args, input=PASSWORD + "\n", env=env)
    assert again.exit_code == 1
    assert "account_exists" in again.output
    no_stdin = runner.invoke(app, ["accounts", "create", "--login", "c.d"], env=env)
    assert no_stdin.exit_code == 1


def test_operators_create_prints_the_otpauth_uri_once(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    args = ["operators", "create", "--login", "alice", "--role", "analyst", "--password-stdin"]
    created = runner.invoke(app, args, input=PASSWORD + "\n", env=env)
    assert created.exit_code == 0, created.output
    uri = created.stdout.strip()
    assert uri.startswith("otpauth://totp/Rempart%20console:alice?")
    assert pyotp.parse_uri(uri).secret
    assert PASSWORD not in created.output
    again = runner.invoke(app, args, input=PASSWORD + "\n", env=env)
    assert again.exit_code == 1
    assert "operator_exists" in again.output
    wrong_role = runner.invoke(
        app,
        ["operators", "create", "--login", "bob", "--role", "root", "--password-stdin"],
        input=PASSWORD + "\n",
        env=env,
    )
    assert wrong_role.exit_code == 1
    assert "invalid_role" in wrong_role.output
    no_stdin = runner.invoke(app, ["operators", "create", "--login", "c", "--role", "dpo"], env=env)
    assert no_stdin.exit_code == 1
    assert "password_required" in no_stdin.output
    listed = runner.invoke(app, ["operators", "list"], env=env)
    assert listed.stdout.split() == ["alice", "analyst", "active"]


def test_bad_configuration_stops_with_a_clear_message(tmp_path: Path) -> None:
    env = cli_env(tmp_path, database_url="mysql://somewhere/db")
    result = runner.invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 2
    assert "REMPART_DATABASE_URL" in result.output
    assert "unsupported database" in result.output


def test_world_generate_and_load(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    world = tmp_path / "world"
    generated = runner.invoke(
        app,
        [
            "world",
            "generate",
            "--out",
            str(world),
            "--insured",
            "500",
            "--professionals",
            "40",
            "--seed",
            "3",
        ],
        env=env,
    )
    assert generated.exit_code == 0, generated.output
    assert {p.name for p in world.iterdir()} >= {
        "insured.parquet",
        "professionals.parquet",
        "care.parquet",
        "world.json",
    }
    runner.invoke(app, ["db", "upgrade"], env=env)
    loaded = runner.invoke(app, ["db", "load-world", str(world)], env=env)
    assert loaded.exit_code == 0, loaded.output
    assert "insured: 500 rows in the world, 500 changed" in loaded.output
    missing = runner.invoke(app, ["db", "load-world", str(tmp_path / "nope")], env=env)
    assert missing.exit_code == 1
    assert "world_not_found" in missing.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_rempart_serve_answers_and_never_logs_a_nir(tmp_path: Path) -> None:
    env = {**os.environ, **cli_env(tmp_path)}
    rempart = [sys.executable, "-m", "rempart"]
    world = tmp_path / "world"
    subprocess.run(
        [
            *rempart,
            "world",
            "generate",
            "--out",
            str(world),
            "--insured",
            "300",
            "--professionals",
            "30",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run([*rempart, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run(
        [*rempart, "db", "load-world", str(world)], env=env, check=True, capture_output=True
    )
    created = subprocess.run(
        [*rempart, "accounts", "create", "--login", "ph.port", "--password-stdin"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        input=PASSWORD + "\n",
    )
    totp = pyotp.TOTP(pyotp.parse_uri(created.stdout.strip()).secret)
    person = pq.read_table(world / "insured.parquet").slice(0, 1).to_pylist()[0]
    port = _free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log_file:
        server = subprocess.Popen(
            [*rempart, "serve", "--port", str(port)], env=env, stdout=log_file, stderr=log_file
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    httpx.get(f"{base}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        pytest.fail("rempart serve did not start: " + log_path.read_text())
                    time.sleep(0.1)
            with httpx.Client(base_url=base, timeout=10) as http:
                first = http.post(
                    "/api/v1/auth/login", json={"login": "ph.port", "password": PASSWORD}
                )
                second = http.post(
                    "/api/v1/auth/mfa/totp",
                    json={"mfa_token": first.json()["mfa_token"], "code": totp.now()},
                )
                auth = {"Authorization": f"Bearer {second.json()['access_token']}"}
                found = http.post(
                    "/api/v1/rights/lookup",
                    json={"nir": person["nir"], "birth_date": person["birth_date"].isoformat()},
                    headers=auth,
                )
                assert found.status_code == 200
                assert found.json()["last_name"] == person["last_name"]
                http.post(
                    "/api/v1/rights/lookup",
                    json={"nir": person["nir"][:-1] + "0", "birth_date": "1990-01-01"},
                    headers=auth,
                )
                http.get(f"/api/v1/rights/{person['nir']}?nir={person['nir']}")
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=20)
    logs = log_path.read_text()
    assert '"route": "/api/v1/rights/lookup"' in logs
    assert person["nir"] not in logs
    assert person["nir"][:13] not in logs


def _serve_once(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``rempart serve`` expected to stop at start: it must not be left running."""
    return subprocess.run(
        [sys.executable, "-m", "rempart", "serve", "--port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_serve_refuses_a_bad_configuration(tmp_path: Path) -> None:
    result = _serve_once({**os.environ, **cli_env(tmp_path), "REMPART_ENV": "production"})
    assert result.returncode == 2
    assert "REMPART_TOKEN_SECRET must be set in production" in result.stderr


def test_serve_refuses_a_database_that_is_not_migrated(tmp_path: Path) -> None:
    result = _serve_once({**os.environ, **cli_env(tmp_path)})
    assert result.returncode == 2
    assert "database_not_ready" in result.stderr
    assert "rempart db upgrade" in result.stderr


def _production_env(tmp_path: Path) -> dict[str, str]:
    secrets_ = {
        f"REMPART_{name}": f"{name.lower()}-of-this-test-0123456789abcdef"
        for name in (
            "TOKEN_SECRET",
            "PSEUDONYM_KEY",
            "DATA_KEY",
            "AUDIT_SIGNING_KEY",
            "NOTICE_CODE_KEY",
        )
    }
    return {**os.environ, **cli_env(tmp_path), **secrets_, "REMPART_ENV": "production"}


def test_serve_refuses_several_workers_without_redis_in_production(tmp_path: Path) -> None:
    # Each worker would keep its own guard state and login throttle: a robot would
    # meet one budget per worker.
    env = _production_env(tmp_path)
    env.pop("REMPART_REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "rempart", "serve", "--port", str(_free_port()), "--workers", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "redis_required" in result.stderr
    assert "REMPART_REDIS_URL" in result.stderr
    # In development it is a warning (here followed by the refusal of the empty database).
    env = {**os.environ, **cli_env(tmp_path)}
    env.pop("REMPART_REDIS_URL", None)
    warned = runner.invoke(app, ["serve", "--port", str(_free_port()), "--workers", "2"], env=env)
    assert warned.exit_code == 2
    assert '"event": "workers_without_redis"' in warned.stderr
    assert '"workers": 2' in warned.stderr
    assert "database_not_ready" in warned.stderr
