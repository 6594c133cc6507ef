"""The message checker recognises the insurer's own breach notices: a real campaign is
planned and run (its e-mails written as .eml files, the embedded default), and the
notices as received are checked against the notices table."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rempart.cli import app
from rempart.config import Settings, load_settings
from rempart.messages import (
    MessageChecker,
    Verdict,
    database_notice_check,
    load_rules,
    read_message,
)
from rempart.notify.breach.codes import NoticeKeys
from rempart.services import Services
from tests.conftest import FAST_HASHING
from tests.functional.breach_world import Insuree, build_breach, open_and_scope, people

runner = CliRunner()
CODE = re.compile(r"Code de vérification : ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})")
MADE_UP = "K7QM-4XPD-9TRW"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # No SMTP server: the campaign writes its e-mails into <data_dir>/outbox/.
    return load_settings(database_url=database_url, data_dir=tmp_path / "data", **FAST_HASHING)


def _cli(services: Services, *args: str) -> str:
    env = {
        "REMPART_DATABASE_URL": services.engine.url.render_as_string(hide_password=False),
        "REMPART_DATA_DIR": str(services.settings.data_dir),
    }
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def notices(services: Services, tmp_path: Path) -> dict[str, bytes]:
    """The e-mail notices of a real campaign, as sent, by the addressee's address."""
    persons = build_breach(services)
    incident = open_and_scope(services)
    plan = _cli(services, "notify", "plan", str(incident), "--operator", "dpo", "--json")
    campaign = re.search(r'"campaign": (\d+)', plan)
    assert campaign is not None
    _cli(
        services,
        "notify",
        "run",
        campaign.group(1),
        "--letters-dir",
        str(tmp_path / "letters"),
        "--operator",
        "dpo",
    )
    sent: dict[str, bytes] = {}
    for path in (services.settings.resolved_data_dir / "outbox").glob("*.eml"):
        data = path.read_bytes()
        sent[str(message_from_bytes(data, policy=policy.default)["To"])] = data
    wanted = {p.email for p in persons if p.channel == "email"}
    assert set(sent) == wanted
    return sent


def _person(key: str) -> Insuree:
    return next(p for p in people() if p.key == key)


@pytest.fixture
def checker(services: Services) -> MessageChecker:
    keys = NoticeKeys(services.settings.keys.notice_code_key)
    return MessageChecker(load_rules(), database_notice_check(services.sessions, keys))


def _codes(verdict: Verdict) -> list[str]:
    return [r.code for r in verdict.reasons]


def test_a_genuine_notice_naming_its_addressee_looks_genuine(
    notices: dict[str, bytes], checker: MessageChecker
) -> None:
    # The notice to a minor's guardians names the child: code and name are both checked.
    eml = notices[_person("minor").email or ""]
    assert "Moreau" in read_message(eml).text
    verdict = checker.check(read_message(eml))
    assert verdict.verdict == "genuine-looking", verdict
    assert _codes(verdict)[0] == "notice_code_genuine"
    assert verdict.reasons[0].weight == load_rules().weights.notice_code_genuine
    assert _codes(verdict)[-1] == "genuine_channel"
    assert verdict.score == 0


def test_an_adult_notice_names_nobody_and_its_genuine_code_is_a_weaker_sign(
    notices: dict[str, bytes], checker: MessageChecker
) -> None:
    verdict = checker.check(read_message(notices[_person("ald").email or ""]))
    assert verdict.verdict == "genuine-looking"
    assert verdict.reasons[0].code == "notice_code_genuine"
    assert verdict.reasons[0].weight == load_rules().weights.notice_code_genuine_unnamed
    # Nothing else in the insurer's own notice is held against it: no link, no request.
    assert _codes(verdict) == ["notice_code_genuine", "genuine_channel"]


def test_the_same_notice_with_a_made_up_code_is_phishing(
    notices: dict[str, bytes], checker: MessageChecker
) -> None:
    for key in ("minor", "ald"):
        genuine = notices[_person(key).email or ""]
        text = read_message(genuine).text
        code = CODE.search(text)
        assert code is not None
        assert code.group(1) != MADE_UP
        forged = checker.check(read_message(text.replace(code.group(1), MADE_UP).encode()))
        assert forged.verdict == "phishing", key
        assert forged.reasons[0].code == "notice_code_unknown"


def test_a_genuine_code_under_someone_elses_name_is_not_genuine(
    notices: dict[str, bytes], checker: MessageChecker
) -> None:
    text = read_message(notices[_person("minor").email or ""]).text
    assert "Léo Moreau" in text
    copied = checker.check(read_message(text.replace("Léo Moreau", "Léo Garnier").encode()))
    assert copied.verdict == "phishing"
    assert "notice_code_unknown" in _codes(copied)


def test_a_genuine_code_copied_into_a_phishing_message_does_not_save_it(
    notices: dict[str, bytes], checker: MessageChecker
) -> None:
    code = CODE.search(read_message(notices[_person("ald").email or ""]).text)
    assert code is not None
    phishing = (
        "Suite à la fuite de données, confirmez vos coordonnées bancaires sous 24 h sur "
        f"https://ameli-securite.com/verif pour être indemnisé.\nCode de vérification : "
        f"{code.group(1)}"
    )
    verdict = checker.check(read_message(phishing.encode(), sender="+33612345678"))
    assert verdict.verdict == "phishing"
    assert "notice_code_genuine" in _codes(verdict)
    assert {"lookalike_domain", "asks_bank_details"} <= set(_codes(verdict))
