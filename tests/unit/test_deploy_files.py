"""What can be checked of the container files without a Docker engine: the compose
environment and secrets load into the real settings (with their validations), the
commands the image and compose run exist, the files the Dockerfile copies exist, and
no secret is written in any of them."""

from __future__ import annotations

import os
import re
import secrets
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from rempart.cli import app
from rempart.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
DEPLOY = ROOT / "deploy"

runner = CliRunner()


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    out = []
    for line in lines:
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _exec_form(rest: str) -> list[str]:
    parsed = yaml.safe_load(rest)  # a JSON array is YAML
    assert isinstance(parsed, list), rest
    return [str(part) for part in parsed]


def _rempart_commands() -> list[list[str]]:
    commands = []
    for keyword, rest in _instructions():
        if keyword == "CMD":
            commands.append(_exec_form(rest))
    for service in _compose()["services"].values():
        command = service.get("command")
        if isinstance(command, list) and command and command[0] == "rempart":
            commands.append([str(c) for c in command])
    return [c for c in commands if c[0] == "rempart"]


def _secret_files(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "run-secrets"
    folder.mkdir()
    for name in names:
        value = secrets.token_urlsafe(48)
        if name == "rempart_database_url":
            value = f"postgresql+psycopg://rempart:{value}@postgres:5432/rempart"
        (folder / name).write_text(value + "\n", encoding="utf-8")
    return folder


def test_the_image_and_compose_run_commands_that_exist() -> None:
    commands = _rempart_commands()
    subcommands = {tuple(c[1:3]) if c[1] == "db" else (c[1],) for c in commands}
    assert subcommands == {("serve",), ("db", "upgrade")}
    for command in commands:
        words = [w for w in command[1:] if not w.startswith("-")][:2]
        path = words if words[0] == "db" else words[:1]
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (command, result.output)
        for option in (w for w in command if w.startswith("--")):
            assert option in result.output, (command, option)


def test_the_files_the_dockerfile_copies_exist() -> None:
    copies = [rest for keyword, rest in _instructions() if keyword == "COPY"]
    assert copies
    for rest in copies:
        *sources, _target = shlex.split(rest)
        for source in sources:
            assert (ROOT / source).exists(), source


def test_the_image_runs_as_a_user_and_checks_liveness() -> None:
    instructions = _instructions()
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    assert instructions[0] == ("FROM", "python:3.11-slim")
    healthcheck = next(rest for keyword, rest in instructions if keyword == "HEALTHCHECK")
    assert "/health/live" in healthcheck
    # Installed from the lock, as the Makefile does.
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "uv pip sync" in runs
    assert "requirements.lock" in runs
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    uv_version = re.search(r"^UV_VERSION := (\S+)", makefile, re.MULTILINE)
    assert uv_version is not None
    assert f"ARG UV_VERSION={uv_version.group(1)}" in DOCKERFILE.read_text(encoding="utf-8")


def test_compose_environment_and_secrets_load_into_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compose = _compose()
    service = compose["services"]["rempart"]
    environment = {k: str(v) for k, v in service["environment"].items()}
    names = [str(s) for s in service["secrets"]]
    # Every secret mounted in Rempart names a setting (a typo would be silently ignored).
    for name in names:
        assert name.startswith("rempart_"), name
        assert name.removeprefix("rempart_") in Settings.model_fields, name
    # Every secret has a file entry, and compose.yaml's own are all declared.
    assert set(names) <= set(compose["secrets"])
    assert compose["services"]["migrate"]["secrets"] == service["secrets"]
    assert compose["services"]["migrate"]["environment"] == service["environment"]

    for key in [k for k in os.environ if k.startswith("REMPART_")]:
        monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("REMPART_DATA_DIR", str(tmp_path / "data"))  # the image's volume
    monkeypatch.setenv("REMPART_SECRETS_DIR", str(_secret_files(tmp_path, names)))
    settings = load_settings()
    assert settings.env == "production"
    assert settings.database_url.startswith("postgresql+psycopg://rempart:")
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.metrics_token is not None
    # Production refuses to start when a secret is missing: the list above is complete.
    (tmp_path / "run-secrets" / "rempart_data_key").unlink()
    with pytest.raises(ConfigError, match="REMPART_DATA_KEY"):
        load_settings()


def test_no_secret_is_written_in_the_container_files() -> None:
    texts = {
        path.name: path.read_text(encoding="utf-8")
        for path in (DOCKERFILE, COMPOSE, *DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.json"))
    }
    assignment = re.compile(
        r"(PASSWORD|SECRET|_KEY|TOKEN)[A-Z_]*\s*[:=]\s*['\"]?(?!/run/secrets)[^\s'\"]{8,}",
        re.IGNORECASE,
    )
    url_password = re.compile(r"://[^/\s:@]+:[^@\s<]+@")
    for name, text in texts.items():
        for line in text.splitlines():
            if line.lstrip().startswith("#"):
                continue
            assert not url_password.search(line), (name, line)
            found = assignment.search(line)
            assert found is None or "_FILE" in line or "file:" in line, (name, line)
    compose_environment = _compose()["services"]["rempart"]["environment"]
    named_secrets = [
        key
        for key in compose_environment
        if key != "REMPART_SECRETS_DIR"
        and any(word in key for word in ("SECRET", "KEY", "TOKEN", "PASS"))
    ]
    assert named_secrets == []
