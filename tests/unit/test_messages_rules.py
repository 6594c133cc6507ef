"""The rules file: the shipped one loads; a broken one is refused with every problem
named by its entry."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from rempart.config import ConfigError, load_settings
from rempart.messages import InvalidRules, load_rules
from rempart.messages.rules import load_rules_text

SHIPPED = resources.files("rempart.messages").joinpath("rules.toml").read_text(encoding="utf-8")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def dump(data: dict[str, Any]) -> str:
    """A small TOML writer for the rules' shape (tables of scalars and lists, and the
    array of phrase tables)."""
    lines = [f"version = {_toml(data['version'])}"] if "version" in data else []
    for name, table in data.items():
        if name in ("version", "phrases"):
            continue
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml(value)}" for key, value in table.items()]
    for family in data.get("phrases", []):
        lines.append("[[phrases]]")
        lines += [f"{key} = {_toml(value)}" for key, value in family.items()]
    return "\n".join(lines) + "\n"


def shipped() -> dict[str, Any]:
    return tomllib.loads(SHIPPED)


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidRules) as caught:
        load_rules_text(dump(data), "test.toml")
    assert caught.value.code == "invalid_rules"
    return caught.value.problems


def test_the_shipped_rules_load_and_round_trip_through_the_writer() -> None:
    rules = load_rules()
    assert "ameli.fr" in rules.domains.own
    assert "3646" in rules.own_phones
    assert load_rules_text(dump(shipped())) == rules


def test_the_shipped_rules_cover_the_demo_insurers_settings() -> None:
    settings = load_settings()
    rules = load_rules()
    sender_domain = settings.mail_from.rpartition("@")[2].rstrip(">")
    assert sender_domain in rules.senders.email_domains
    assert settings.organization_website.removeprefix("www.") in rules.domains.own


def test_a_wrong_weight_names_its_family() -> None:
    data = shipped()
    data["phrases"][1]["weight"] = 500
    (problem,) = problems_of(data)
    assert problem.startswith("phrases[1] (asks_password).weight:")


def test_a_phrase_that_cannot_be_read_names_its_family() -> None:
    data = shipped()
    data["phrases"][0]["phrases"] = ["coordonnées bancaires", "(rib)"]
    (problem,) = problems_of(data)
    assert problem.startswith("phrases[0] (asks_bank_details).phrases:")
    assert "(rib)" in problem


def test_every_problem_is_listed_at_once() -> None:
    data = shipped()
    data["domains"]["own"] = ["ameli.fr", "pas un domaine"]
    data["phones"]["own"] = ["12"]
    data["thresholds"] = {"suspicious": 60, "phishing": 40}
    data["weights"]["notice_code_genuine"] = 10
    del data["insurer"]["genuine_channel"]
    data["senders"]["colour"] = "bleu"
    problems = problems_of(data)
    where = sorted(p.split(":")[0] for p in problems)
    assert where == [
        "domains.own",
        "insurer.genuine_channel",
        "phones.own",
        "senders.colour",
        "thresholds",
        "weights.notice_code_genuine",
    ]
    assert any("'pas un domaine' is not a domain name" in p for p in problems)


def test_a_family_may_not_take_a_built_in_code_nor_be_defined_twice() -> None:
    data = shipped()
    data["phrases"][2]["code"] = "foreign_link"
    assert problems_of(data)[0].startswith("phrases[2] (foreign_link).code:")
    data = shipped()
    data["phrases"].append(dict(data["phrases"][0]))
    assert "defined twice" in problems_of(data)[0]


def test_not_toml_is_said_so() -> None:
    with pytest.raises(InvalidRules, match="not TOML"):
        load_rules_text("[insurer\nname = 1", "x.toml")


def test_a_missing_file_is_an_invalid_rules_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidRules, match="cannot be read"):
        load_rules(tmp_path / "absent.toml")


def test_a_custom_rules_file_changes_the_verdict(tmp_path: Path) -> None:
    from rempart.messages import MessageChecker, read_message  # noqa: PLC0415

    data = shipped()
    data["domains"]["own"].append("mutuelle-partenaire.fr")
    path = tmp_path / "rules.toml"
    path.write_text(dump(data), encoding="utf-8")
    message = read_message(b"Voir https://www.mutuelle-partenaire.fr/espace")
    assert MessageChecker(load_rules()).check(message).reasons[0].code == "foreign_link"
    assert MessageChecker(load_rules(path)).check(message).reasons[0].code == "genuine_channel"


def test_the_settings_refuse_a_broken_rules_file(tmp_path: Path) -> None:
    data = shipped()
    data["thresholds"]["phishing"] = 0
    path = tmp_path / "rules.toml"
    path.write_text(dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(messages_rules_path=path)
    assert "REMPART_MESSAGES_RULES_PATH" in str(caught.value)
    assert "thresholds.phishing" in str(caught.value)
    assert load_settings(messages_max_bytes=4096).messages_max_bytes == 4096
    with pytest.raises(ConfigError, match="REMPART_MESSAGES_MAX_BYTES"):
        load_settings(messages_max_bytes=10)
