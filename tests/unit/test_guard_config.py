"""The guard's configuration file: complete, typed, and errors that name the key."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest

from rempart.guard.config import GuardConfigError, default_config, load_config, load_config_text


def default_text() -> str:
    return resources.files("rempart.guard").joinpath("default.toml").read_text(encoding="utf-8")


def test_the_shipped_default_is_complete_and_valid() -> None:
    config = default_config()
    assert len(config.velocity.scales) == len(config.velocity.floor)
    assert config.budget.min <= config.budget.max
    assert load_config(None) == config


def test_a_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "guard.toml"
    path.write_text(default_text().replace("factor = 1.5", "factor = 2.5"), encoding="utf-8")
    assert load_config(path).budget.factor == 2.5


def test_an_unknown_key_is_refused_by_name() -> None:
    text = default_text().replace("[weights]\n", "[weights]\nfar_patiant = 2.0\n")
    with pytest.raises(GuardConfigError, match=r"weights\.far_patiant: Extra inputs"):
        load_config_text(text)


def test_a_missing_key_is_named() -> None:
    text = default_text().replace("deny_share = 0.6\n", "")
    with pytest.raises(GuardConfigError, match=r"enumeration\.deny_share: Field required"):
        load_config_text(text)


def test_a_mistyped_value_is_named() -> None:
    text = default_text().replace("known_after = 2", 'known_after = "two"')
    with pytest.raises(GuardConfigError, match=r"network\.known_after"):
        load_config_text(text)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("floor = [6.0, 15.0, 80.0, 300.0]", "floor = [6.0, 15.0]", "velocity"),
        ("scales = [10, 60, 600, 3600]", "scales = [60, 10, 600, 3600]", "velocity"),
        ("max = 400.0", "max = 1.0", "budget"),
        ("deny_count = 20.0", "deny_count = 1.0", "enumeration"),
        ("step_up_units = 3", "step_up_units = 1", "campaign"),
        ("share = 0.01", "share = -0.5", "hours.share"),
    ],
)
def test_inconsistent_values_are_refused(old: str, new: str, key: str) -> None:
    text = default_text()
    assert old in text
    with pytest.raises(GuardConfigError, match=key):
        load_config_text(text.replace(old, new))


def test_not_toml_and_unreadable_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(GuardConfigError, match="not TOML"):
        load_config_text("[velocity")
    with pytest.raises(GuardConfigError, match="cannot be read"):
        load_config(tmp_path / "absent.toml")


def test_the_default_file_holds_exactly_the_sections_of_the_model() -> None:
    sections = tomllib.loads(default_text())
    assert set(sections) == set(default_config().model_dump())
