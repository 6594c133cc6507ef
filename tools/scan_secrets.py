"""Scan the repository for secret-looking strings (detect-secrets) against the baseline.

Run as ``python tools/scan_secrets.py`` (``make scan``, and through it ``make test``).
Every file git knows of, tracked or about to be (untracked but not ignored), is scanned
with the plugins and filters recorded in ``.secrets.baseline``. The run fails on:

- a secret-looking string that is not in the baseline (a new one);
- a string that is in the baseline but not audited as a false positive
  (``"is_secret": false``, what ``detect-secrets audit`` records), or audited as a real
  secret: a real secret has no place in the repository, baseline or not.

Baseline entries match by file, type and the string's hash, never by line number: an edit
above a test password does not fail the run, and the scan never rewrites the baseline
(detect-secrets' own pre-commit hook does, to keep line numbers). Only the file, the line
and the kind of secret are printed, never the string.

To accept a new false positive: ``detect-secrets scan --baseline .secrets.baseline``
(adds it, keeps the audit marks), then ``detect-secrets audit .secrets.baseline`` (mark
it), and commit the baseline; or mark the line itself ``# pragma: allowlist secret``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from detect_secrets.core import baseline as ds_baseline
from detect_secrets.core.potential_secret import PotentialSecret
from detect_secrets.core.secrets_collection import SecretsCollection

__all__ = ["main", "problems", "repository_files"]

REPO = Path(__file__).resolve().parents[1]
BASELINE = ".secrets.baseline"


def repository_files(root: Path) -> list[str]:
    """Files git tracks or would add (untracked, not ignored), relative to ``root``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.decode()
    # A file deleted but not yet staged is still listed: nothing to read.
    return sorted({name for name in listed.split("\0") if name and (root / name).is_file()})


def problems(found: SecretsCollection, accepted: SecretsCollection) -> list[str]:
    """One line per secret that fails the scan: new, not audited, or audited as real."""
    lines: list[str] = []
    for filename, secret in found:
        # By hash and type within the file: the found secret's own filename is absolute.
        known: PotentialSecret | None = next(
            (
                s
                for s in accepted[filename]
                if (s.type, s.secret_hash) == (secret.type, secret.secret_hash)
            ),
            None,
        )
        where = f"{filename}:{secret.line_number}: {secret.type}"
        if known is None:
            lines.append(f"{where}: new secret-looking string")
        elif known.is_secret is None:
            lines.append(f"{where}: in the baseline but not audited")
        elif known.is_secret:
            lines.append(f"{where}: audited as a real secret: remove it and rotate it")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO, help="the repository to scan")
    parser.add_argument("--baseline", default=BASELINE, help="relative to the root")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    baseline_path = root / args.baseline
    try:
        # Configures detect-secrets' plugins and filters as the baseline recorded them.
        accepted = ds_baseline.load(
            ds_baseline.load_from_file(str(baseline_path)), filename=args.baseline
        )
    except (OSError, ValueError, KeyError) as exc:
        print(f"secrets: cannot read the baseline {baseline_path}: {exc}", file=sys.stderr)
        return 1
    files = [name for name in repository_files(root) if name != args.baseline]
    # Files are named relative to the root, as in the baseline.
    found = SecretsCollection(root=str(root))
    found.scan_files(*files)
    failing = problems(found, accepted)
    for line in failing:
        print(f"secrets: {line}")
    if failing:
        print(
            "secrets: a real secret goes to the environment (REMPART_*), never to the "
            "repository; a false positive goes to the baseline (see tools/scan_secrets.py)"
        )
        return 1
    print(f"secrets: {len(files)} files scanned, nothing new beyond the audited baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
