"""Audit the locked dependencies for known vulnerabilities: pip-audit, then the exceptions.

Run as ``python tools/audit_dependencies.py`` (``make scan``, and through it ``make
test``). pip-audit reads ``requirements.lock`` as it is (pinned by ``uv pip compile``,
no hashes: ``--no-deps --disable-pip``, nothing is installed) and asks its vulnerability
service about every pin. This script then judges pip-audit's JSON report:

- a known vulnerability fails the run, unless an entry of the exceptions file
  (``security/pip-audit-exceptions.toml``) names it (by id or alias) for that package,
  says why it does not apply to Rempart and who decided, and its ``review_by`` date has
  not passed; past that date the vulnerability fails the run again;
- a dependency pip-audit could not audit (no answer from the service, a package it does
  not know) means the audit is incomplete: under CI (``CI`` set to 1, true or yes, as the
  tests read it) that fails the run, outside CI it is a warning. A green audit that
  audited nothing is the failure this guards against: pip-audit itself exits 0 when every
  package was skipped. Where CI knowingly has no vulnerability service, the environment
  says so with ``REMPART_AUDIT_OFFLINE`` set to the reason: the run goes on and prints
  that reason, so that an unaudited run is never silent.

``--report FILE`` judges a report already written (the unit tests use made-up ones).
Nothing from the report but package names, versions and advisory ids is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "AuditVerdict",
    "ExceptionEntry",
    "ExceptionsError",
    "judge",
    "load_exceptions",
    "main",
    "report_and_status",
]

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
EXCEPTIONS = REPO / "security" / "pip-audit-exceptions.toml"
OFFLINE_VARIABLE = "REMPART_AUDIT_OFFLINE"
_FIELDS = {"id", "package", "why", "decided_by", "review_by"}


class ExceptionsError(ValueError):
    """The exceptions file is unreadable or has wrong entries: every problem is listed."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class ExceptionEntry:
    """A known vulnerability that does not apply to Rempart, until ``review_by``."""

    id: str
    package: str
    why: str
    decided_by: str
    review_by: dt.date

    def covers(self, package: str, ids: set[str]) -> bool:
        return _canonical(package) == _canonical(self.package) and self.id in ids


@dataclass
class AuditVerdict:
    """What the report says once the exceptions are applied."""

    failures: list[str] = field(default_factory=list)
    excused: list[str] = field(default_factory=list)
    unaudited: list[str] = field(default_factory=list)
    unused_exceptions: list[str] = field(default_factory=list)
    audited: int = 0


def _canonical(name: str) -> str:
    # PEP 503 normalisation, as pip-audit reports names.
    return "-".join(name.lower().replace("_", "-").replace(".", "-").split("-"))


def load_exceptions(path: Path) -> list[ExceptionEntry]:
    """The entries of an exceptions file (``[[exception]]`` tables); all problems at once."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ExceptionsError([f"{path.name}: {exc}"]) from None
    unknown_tables = set(document) - {"exception"}
    problems = [f"{path.name}: unknown table {name!r}" for name in sorted(unknown_tables)]
    entries: list[ExceptionEntry] = []
    raw_entries = document.get("exception", [])
    if not isinstance(raw_entries, list):
        raise ExceptionsError([*problems, f"{path.name}: 'exception' must be [[exception]]"])
    for number, raw in enumerate(raw_entries, start=1):
        where = f"{path.name}: exception {number}"
        if not isinstance(raw, dict):
            problems.append(f"{where}: not a table")
            continue
        problems += [f"{where}: missing {name!r}" for name in sorted(_FIELDS - set(raw))]
        problems += [f"{where}: unknown key {name!r}" for name in sorted(set(raw) - _FIELDS)]
        texts = {name: raw.get(name) for name in ("id", "package", "why", "decided_by")}
        problems += [
            f"{where}: {name!r} must be a non-empty string"
            for name, value in texts.items()
            if name in raw and not (isinstance(value, str) and value.strip())
        ]
        review_by = raw.get("review_by")
        if "review_by" in raw and (
            not isinstance(review_by, dt.date) or isinstance(review_by, dt.datetime)
        ):
            problems.append(f"{where}: 'review_by' must be a date (2027-01-31, unquoted)")
        if not problems:
            entries.append(
                ExceptionEntry(
                    id=str(raw["id"]),
                    package=str(raw["package"]),
                    why=str(raw["why"]),
                    decided_by=str(raw["decided_by"]),
                    review_by=raw["review_by"],
                )
            )
    if problems:
        raise ExceptionsError(problems)
    return entries


def judge(
    report: Mapping[str, Any], exceptions: Sequence[ExceptionEntry], *, today: dt.date
) -> AuditVerdict:
    """Apply the exceptions to a pip-audit JSON report (``-f json``)."""
    verdict = AuditVerdict()
    used: set[ExceptionEntry] = set()
    for dependency in report.get("dependencies", []):
        name = str(dependency.get("name", "?"))
        if "skip_reason" in dependency:
            verdict.unaudited.append(name)
            continue
        verdict.audited += 1
        version = str(dependency.get("version", "?"))
        for vulnerability in dependency.get("vulns", []):
            vuln_id = str(vulnerability.get("id", "?"))
            ids = {vuln_id, *(str(alias) for alias in vulnerability.get("aliases", []))}
            fixes = ", ".join(str(v) for v in vulnerability.get("fix_versions", [])) or "none"
            finding = f"{name} {version}: {vuln_id} (fixed in: {fixes})"
            entry = next((e for e in exceptions if e.covers(name, ids)), None)
            if entry is None:
                verdict.failures.append(f"{finding}: no exception")
            elif entry.review_by < today:
                used.add(entry)
                verdict.failures.append(
                    f"{finding}: its exception expired on {entry.review_by.isoformat()}"
                    f" (decided by {entry.decided_by}); review it or upgrade"
                )
            else:
                used.add(entry)
                verdict.excused.append(
                    f"{finding}: excused until {entry.review_by.isoformat()}"
                    f" by {entry.decided_by}: {entry.why}"
                )
    verdict.unused_exceptions = [
        f"{e.id} ({e.package}) matches no finding: remove it" for e in exceptions if e not in used
    ]
    return verdict


def _in_ci(environ: Mapping[str, str]) -> bool:
    return environ.get("CI", "").lower() in ("1", "true", "yes")


def report_and_status(
    verdict: AuditVerdict, *, environ: Mapping[str, str], out: TextIO | None = None
) -> int:
    """Print the verdict; the exit status (0 or 1) it means in this environment."""
    out = out or sys.stdout
    status = 0
    for line in verdict.excused:
        print(f"pip-audit: excused: {line}", file=out)
    for line in verdict.failures:
        print(f"pip-audit: VULNERABLE: {line}", file=out)
        status = 1
    if verdict.unaudited:
        shown = ", ".join(verdict.unaudited[:5]) + (" ..." if len(verdict.unaudited) > 5 else "")
        what = (
            f"{len(verdict.unaudited)} of {len(verdict.unaudited) + verdict.audited} locked"
            f" packages were NOT audited (the vulnerability service did not answer for them:"
            f" {shown})"
        )
        offline = environ.get(OFFLINE_VARIABLE, "").strip()
        if not _in_ci(environ):
            print(f"pip-audit: warning: {what}; under CI this fails the run", file=out)
        elif offline:
            print(f"pip-audit: WARNING: {what}; {OFFLINE_VARIABLE} says: {offline}", file=out)
        else:
            print(
                f"pip-audit: {what}; under CI this fails the run (set {OFFLINE_VARIABLE}"
                " to the reason where CI knowingly has no vulnerability service)",
                file=out,
            )
            status = 1
    elif verdict.unused_exceptions:
        # Only a complete audit can tell that an exception matches nothing.
        for line in verdict.unused_exceptions:
            print(f"pip-audit: warning: exception {line}", file=out)
    if verdict.audited == 0 and not verdict.unaudited:
        print("pip-audit: the report lists no package: nothing was audited", file=out)
        return 1
    if status == 0 and not verdict.unaudited:
        print(f"pip-audit: {verdict.audited} locked packages audited, none vulnerable", file=out)
    return status


def run_pip_audit(lock: Path, output: Path) -> None:
    """pip-audit over the lock file, its JSON report written to ``output``."""
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        str(lock),
        "--no-deps",  # the lock pins every package: nothing to resolve
        "--disable-pip",  # nor to install
        "--vulnerability-service",
        "pypi",
        "--format",
        "json",
        "--output",
        str(output),
        "--progress-spinner",
        "off",
    ]
    # pip-audit exits 1 when it finds a vulnerability: the report, not its status, decides.
    done = subprocess.run(  # noqa: S603 - our own command line
        command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    if not output.exists():
        # Its last line says why (a traceback ending in the connection error, as a rule).
        last = done.stderr.strip().splitlines()[-1:] or ["(nothing on stderr)"]
        print(f"pip-audit: wrote no report: {last[0][:300]}", file=sys.stderr)


def locked_names(lock: Path) -> list[str]:
    """The package names pinned in a ``uv pip compile`` lock file."""
    names = []
    for line in lock.read_text(encoding="utf-8").splitlines():
        pin = line.split("#", 1)[0].strip()
        if "==" in pin:
            names.append(_canonical(pin.split("==", 1)[0].split("[", 1)[0].strip()))
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=LOCK)
    parser.add_argument("--exceptions", type=Path, default=EXCEPTIONS)
    parser.add_argument("--report", type=Path, help="judge this pip-audit JSON report")
    parser.add_argument("--today", type=dt.date.fromisoformat, default=None)
    args = parser.parse_args(argv)
    try:
        exceptions = load_exceptions(args.exceptions)
    except ExceptionsError as exc:
        for problem in exc.problems:
            print(f"pip-audit: exceptions file: {problem}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="rempart-audit-") as scratch:
        report_path = args.report
        if report_path is None:
            report_path = Path(scratch) / "pip-audit.json"
            run_pip_audit(args.lock, report_path)
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            # No report at all: pip-audit could not reach its service (or crashed): every
            # locked package counts as unaudited.
            report = {
                "dependencies": [
                    {"name": name, "skip_reason": "no report"} for name in locked_names(args.lock)
                ]
            }
    today = args.today or dt.datetime.now(dt.UTC).date()
    verdict = judge(report, exceptions, today=today)
    return report_and_status(verdict, environ=os.environ)


if __name__ == "__main__":
    sys.exit(main())
