"""``make scan``'s three scanners each fail on a planted problem, and pass without it.

bandit runs with the repository's configuration on a temporary file; the secrets scan
(``tools/scan_secrets.py``) on a temporary git repository with its own baseline; the
pip-audit wrapper (``tools/audit_dependencies.py``) judges made-up pip-audit reports: no
vulnerability service answers on this machine, so the reports are written here in the
format pip-audit emits (``-f json``).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tools import audit_dependencies
from tools.audit_dependencies import (
    ExceptionEntry,
    ExceptionsError,
    judge,
    load_exceptions,
    report_and_status,
)

REPO = Path(__file__).resolve().parents[2]
GIT = shutil.which("git")
TODAY = dt.date(2026, 12, 4)


# -- bandit ------------------------------------------------------------------------------


def bandit(path: Path) -> subprocess.CompletedProcess[str]:
    """bandit as ``make scan`` runs it (the repository's configuration and level)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bandit",
            "-c",
            str(REPO / "pyproject.toml"),
            "-r",
            str(path),
            "-q",
            "--severity-level",
            "medium",
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_bandit_fails_on_a_shell_command(tmp_path: Path) -> None:
    (tmp_path / "run.py").write_text(
        "import subprocess\n\n\ndef run(name: str) -> None:\n"
        "    subprocess.call('ls ' + name, shell=True)\n",
        encoding="utf-8",
    )
    done = bandit(tmp_path)
    assert done.returncode == 1
    assert "B602" in done.stdout


def test_bandit_fails_on_sql_built_from_a_value(tmp_path: Path) -> None:
    (tmp_path / "query.py").write_text(
        "def query(name: str) -> str:\n"
        "    return f\"SELECT * FROM accounts WHERE login = '{name}'\"\n",
        encoding="utf-8",
    )
    done = bandit(tmp_path)
    assert done.returncode == 1
    assert "B608" in done.stdout


def test_bandit_passes_low_severity_and_justified_nosec(tmp_path: Path) -> None:
    """The level chosen: an assert (skipped) or a password-looking constant (low) pass; a
    false positive marked ``# nosec`` with its test id passes."""
    (tmp_path / "fine.py").write_text(
        "import subprocess\n\n"
        'PASSWORD_FIELD = "password"\n\n\n'
        "def run(value: int | None) -> None:\n"
        "    assert value is not None\n"
        "    subprocess.call('ls', shell=True)  # nosec B602 - a fixed command\n",
        encoding="utf-8",
    )
    done = bandit(tmp_path)
    assert done.returncode == 0, done.stdout


# -- secrets -----------------------------------------------------------------------------

# Built in pieces, so that this file holds no secret-looking string itself.
AWS_KEY = "AKIA" + "IOSFODNN7" + "EXAMPLE"
FAKE_PASSWORD = "correct horse " + "battery staple"


def scan_secrets(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "scan_secrets.py"), "--root", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository whose baseline holds one audited false positive (a test password)."""
    if GIT is None:
        pytest.skip("git is not installed")
    subprocess.run([GIT, "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "conftest.py").write_text(f'PASSWORD = "{FAKE_PASSWORD}"\n', encoding="utf-8")
    subprocess.run([GIT, "add", "conftest.py"], cwd=tmp_path, check=True)
    baseline = subprocess.run(
        [sys.executable, "-m", "detect_secrets", "scan"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    document = json.loads(baseline)
    [entry] = document["results"]["conftest.py"]
    entry["is_secret"] = False  # what `detect-secrets audit` records for a false positive
    (tmp_path / ".secrets.baseline").write_text(json.dumps(document), encoding="utf-8")
    return tmp_path


def test_secrets_scan_passes_the_audited_baseline_even_when_lines_move(repo: Path) -> None:
    (repo / "conftest.py").write_text(
        f'"""Fixtures."""\n\nimport os\n\nPASSWORD = "{FAKE_PASSWORD}"\n', encoding="utf-8"
    )
    done = scan_secrets(repo)
    assert done.returncode == 0, done.stdout
    assert "nothing new" in done.stdout
    # The scan never rewrites the baseline (detect-secrets' hook would, for line numbers).
    assert (
        json.loads((repo / ".secrets.baseline").read_text())["results"]["conftest.py"][0][
            "line_number"
        ]
        == 1
    )


def test_secrets_scan_fails_on_a_new_aws_key_and_does_not_print_it(repo: Path) -> None:
    # Untracked but not ignored: about to be committed, so scanned.
    (repo / "settings.py").write_text(f'AWS_ACCESS_KEY_ID = "{AWS_KEY}"\n', encoding="utf-8")
    done = scan_secrets(repo)
    assert done.returncode == 1
    assert "settings.py:1: AWS Access Key: new secret-looking string" in done.stdout
    assert AWS_KEY not in done.stdout + done.stderr


def test_secrets_scan_skips_ignored_files(repo: Path) -> None:
    (repo / ".gitignore").write_text(".env\n", encoding="utf-8")
    (repo / ".env").write_text(f"AWS_ACCESS_KEY_ID={AWS_KEY}\n", encoding="utf-8")
    assert scan_secrets(repo).returncode == 0


def test_secrets_scan_fails_on_an_unaudited_or_real_baseline_entry(repo: Path) -> None:
    path = repo / ".secrets.baseline"
    document = json.loads(path.read_text())
    del document["results"]["conftest.py"][0]["is_secret"]
    path.write_text(json.dumps(document), encoding="utf-8")
    done = scan_secrets(repo)
    assert done.returncode == 1
    assert "conftest.py:1: Secret Keyword: in the baseline but not audited" in done.stdout

    document["results"]["conftest.py"][0]["is_secret"] = True
    path.write_text(json.dumps(document), encoding="utf-8")
    done = scan_secrets(repo)
    assert done.returncode == 1
    assert "audited as a real secret" in done.stdout


def test_the_repository_baseline_is_all_audited_false_positives() -> None:
    document = json.loads((REPO / ".secrets.baseline").read_text(encoding="utf-8"))
    entries = [e for found in document["results"].values() for e in found]
    assert entries
    assert all(e.get("is_secret") is False for e in entries)


# -- pip-audit ---------------------------------------------------------------------------


def vulnerable(name: str, version: str, vuln_id: str, *aliases: str) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "vulns": [
            {"id": vuln_id, "fix_versions": ["9.9"], "aliases": list(aliases), "description": ""}
        ],
    }


CLEAN = {"name": "idna", "version": "3.10", "vulns": []}
SKIPPED = {
    "name": "jinja2",
    "skip_reason": "Dependency not found on PyPI and could not be audited: jinja2 (3.1.6)",
}


def excuse(vuln_id: str, package: str, review_by: dt.date) -> ExceptionEntry:
    return ExceptionEntry(
        id=vuln_id,
        package=package,
        why="the vulnerable parser is never given untrusted input",
        decided_by="Security lead",
        review_by=review_by,
    )


def test_an_unexcused_vulnerability_fails() -> None:
    report = {"dependencies": [CLEAN, vulnerable("Jinja2", "3.1.2", "GHSA-h5c8-rqwp-cp95")]}
    verdict = judge(report, [], today=TODAY)
    assert verdict.failures == ["Jinja2 3.1.2: GHSA-h5c8-rqwp-cp95 (fixed in: 9.9): no exception"]
    assert report_and_status(verdict, environ={}, out=io.StringIO()) == 1


def test_an_exception_excuses_by_id_or_alias_for_its_package_only() -> None:
    report = {
        "dependencies": [
            vulnerable("jinja2", "3.1.2", "GHSA-h5c8-rqwp-cp95", "CVE-2024-22195"),
            vulnerable("markupsafe", "2.0", "CVE-2024-22195"),
        ]
    }
    verdict = judge(report, [excuse("CVE-2024-22195", "Jinja2", TODAY)], today=TODAY)
    assert len(verdict.excused) == 1
    assert verdict.excused[0].startswith("jinja2 3.1.2: GHSA-h5c8-rqwp-cp95")
    assert verdict.failures == ["markupsafe 2.0: CVE-2024-22195 (fixed in: 9.9): no exception"]


def test_an_expired_exception_fails_again() -> None:
    report = {"dependencies": [vulnerable("jinja2", "3.1.2", "GHSA-h5c8-rqwp-cp95")]}
    entry = excuse("GHSA-h5c8-rqwp-cp95", "jinja2", TODAY - dt.timedelta(days=1))
    verdict = judge(report, [entry], today=TODAY)
    assert verdict.excused == []
    assert len(verdict.failures) == 1
    assert "exception expired on 2026-12-03" in verdict.failures[0]
    out = io.StringIO()
    assert report_and_status(verdict, environ={}, out=out) == 1
    assert "VULNERABLE" in out.getvalue()
    # On its review-by day it still holds.
    assert judge(report, [entry], today=TODAY - dt.timedelta(days=1)).failures == []


def test_an_exception_matching_nothing_is_reported() -> None:
    verdict = judge(
        {"dependencies": [CLEAN]}, [excuse("GHSA-0000-0000-0000", "idna", TODAY)], today=TODAY
    )
    out = io.StringIO()
    assert report_and_status(verdict, environ={}, out=out) == 0
    assert "GHSA-0000-0000-0000 (idna) matches no finding: remove it" in out.getvalue()


def test_an_audit_that_reached_no_service_warns_outside_ci_and_fails_under_it() -> None:
    """pip-audit itself exits 0 when it skipped every package."""
    verdict = judge({"dependencies": [SKIPPED, CLEAN]}, [], today=TODAY)
    assert verdict.unaudited == ["jinja2"]
    out = io.StringIO()
    assert report_and_status(verdict, environ={}, out=out) == 0
    assert "warning: 1 of 2 locked packages were NOT audited" in out.getvalue()
    assert report_and_status(verdict, environ={"CI": "true"}, out=io.StringIO()) == 1
    out = io.StringIO()
    offline = {"CI": "true", "REMPART_AUDIT_OFFLINE": "this CI reaches no vulnerability service"}
    assert report_and_status(verdict, environ=offline, out=out) == 0
    assert "this CI reaches no vulnerability service" in out.getvalue()


def test_an_empty_report_fails() -> None:
    verdict = judge({"dependencies": []}, [], today=TODAY)
    assert report_and_status(verdict, environ={}, out=io.StringIO()) == 1


def test_the_exceptions_file_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "exceptions.toml"
    path.write_text(
        '[[exception]]\nid = "GHSA-1"\npackage = "jinja2"\nwhy = ""\n'
        'review_by = "2027-01-31"\n\n[[exception]]\nid = "GHSA-2"\nreason = "x"\n',
        encoding="utf-8",
    )
    with pytest.raises(ExceptionsError) as caught:
        load_exceptions(path)
    assert caught.value.problems == [
        "exceptions.toml: exception 1: missing 'decided_by'",
        "exceptions.toml: exception 1: 'why' must be a non-empty string",
        "exceptions.toml: exception 1: 'review_by' must be a date (2027-01-31, unquoted)",
        "exceptions.toml: exception 2: missing 'decided_by'",
        "exceptions.toml: exception 2: missing 'package'",
        "exceptions.toml: exception 2: missing 'review_by'",
        "exceptions.toml: exception 2: missing 'why'",
        "exceptions.toml: exception 2: unknown key 'reason'",
    ]


def test_the_repository_exceptions_file_reads() -> None:
    for entry in load_exceptions(audit_dependencies.EXCEPTIONS):
        assert entry.review_by > dt.date(2026, 1, 1)


def test_main_judges_a_report_with_the_exceptions_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CI", raising=False)
    report = tmp_path / "report.json"
    report.write_text(
        json.dumps({"dependencies": [vulnerable("jinja2", "3.1.2", "GHSA-h5c8-rqwp-cp95")]}),
        encoding="utf-8",
    )
    exceptions = tmp_path / "exceptions.toml"
    exceptions.write_text(
        '[[exception]]\nid = "GHSA-h5c8-rqwp-cp95"\npackage = "jinja2"\n'
        'why = "templates are ours"\ndecided_by = "Security lead"\nreview_by = 2027-01-31\n',
        encoding="utf-8",
    )
    arguments = ["--report", str(report), "--exceptions", str(exceptions)]
    assert audit_dependencies.main([*arguments, "--today", "2027-01-31"]) == 0
    assert "excused until 2027-01-31 by Security lead" in capsys.readouterr().out
    assert audit_dependencies.main([*arguments, "--today", "2027-02-01"]) == 1
    assert "exception expired on 2027-01-31" in capsys.readouterr().out


def test_main_without_a_report_counts_every_locked_package_unaudited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("REMPART_AUDIT_OFFLINE", raising=False)
    lock = tmp_path / "requirements.lock"
    lock.write_text("idna==3.10\n    # via httpx\njinja2==3.1.6\n", encoding="utf-8")
    missing = tmp_path / "no-report.json"
    arguments = ["--report", str(missing), "--lock", str(lock)]
    assert audit_dependencies.main(arguments) == 1
    assert "2 of 2 locked packages were NOT audited" in capsys.readouterr().out
