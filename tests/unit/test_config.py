from __future__ import annotations

import json
from pathlib import Path

import pytest

from rempart.config import ConfigError, load_settings


def test_development_keys_are_created_once_and_reused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rempart.db'}"
    first = load_settings(database_url=url).keys
    second = load_settings(database_url=url).keys
    assert first.development
    assert first.token_secret == second.token_secret
    assert first.pseudonym_key != first.token_secret
    key_file = tmp_path / "rempart-data" / "dev-keys.json"
    assert key_file.stat().st_mode & 0o077 == 0
    assert "redacted" in repr(first)


def test_token_purposes_get_distinct_keys(tmp_path: Path) -> None:
    keys = load_settings(database_url=f"sqlite:///{tmp_path / 'x.db'}").keys
    assert keys.for_purpose("access") != keys.for_purpose("mfa")


def test_production_refuses_missing_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env="production", database_url=f"sqlite:///{tmp_path / 'p.db'}")
    message = str(caught.value)
    assert "REMPART_TOKEN_SECRET" in message
    assert "REMPART_PSEUDONYM_KEY" in message


def test_production_refuses_development_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    load_settings(database_url=url).keys  # noqa: B018 - creates the development keys
    dev = json.loads((tmp_path / "rempart-data" / "dev-keys.json").read_text())
    with pytest.raises(ConfigError) as caught:
        load_settings(
            env="production",
            database_url=url,
            token_secret=dev["token_secret"],
            pseudonym_key="p" * 40,
            data_key="d" * 40,
            audit_signing_key="a" * 40,
        )
    assert "development key" in str(caught.value)
    assert dev["token_secret"] not in str(caught.value)


def test_production_accepts_real_keys(tmp_path: Path) -> None:
    settings = load_settings(
        env="production",
        database_url=f"sqlite:///{tmp_path / 'p.db'}",
        token_secret="t" * 40,
        pseudonym_key="p" * 40,
        data_key="d" * 40,
        audit_signing_key="a" * 40,
        notice_code_key="n" * 40,
    )
    assert not settings.keys.development
    assert not (tmp_path / "rempart-data").exists()


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(database_url="mysql://x/y", redis_url="http://nope", session_idle_seconds=1)
    assert len(caught.value.problems) == 3


def test_postgres_urls_use_psycopg() -> None:
    settings = load_settings(database_url="postgresql://u@127.0.0.1:5432/db")
    assert settings.database_url.startswith("postgresql+psycopg://")


def test_a_new_key_kind_keeps_the_existing_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rempart.db'}"
    before = load_settings(database_url=url).keys
    key_file = tmp_path / "rempart-data" / "dev-keys.json"
    stored = json.loads(key_file.read_text())
    del stored["data_key"]
    key_file.write_text(json.dumps(stored))
    after = load_settings(database_url=url).keys
    assert after.token_secret == before.token_secret
    assert after.pseudonym_key == before.pseudonym_key
    assert "data_key" in json.loads(key_file.read_text())
