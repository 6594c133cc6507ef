"""``make demo`` is one of the two commands: its story runs here end to end, on SQLite."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from rempart.demo import run_demo
from tests.functional.oidc_provider import require_node_provider


def test_the_demo_tells_the_whole_story(tmp_path: Path) -> None:
    require_node_provider()  # the Pro Santé Connect chapter needs the local provider
    console = Console(record=True, width=200)
    run_demo(tmp_path / "demo", console=console)
    text = console.export_text()
    for expected in (
        "the same TOTP code again → 401",
        "POST /api/v1/auth/password/reset (an authenticator code) → 422 reset_method_unavailable",
        "POST /api/v1/auth/password/reset (a guessed recovery code) → 401 invalid_reset",
        "must use the key → 401 insufficient_user_authentication",
        "with the default (notify only) → 200",
        "Nouvelle connexion à votre compte Rempart",
        "step-up with a key of his own (claiming hers) → 401 webauthn_invalid",
        "used through the phishing site → 401 webauthn_invalid",
        "step-up with her key → 200",
        "the stolen session → 401 session_expired",
        "callback → 200, level 'cps'",
        "the same callback replayed → 400 psc_state_invalid",
        "lookup acting as the pharmacist at the counter → 200",
        "lookup acting as a doctor of another practice → 403 acting_professional_invalid",
        "rempart audit verify → intact",
        "403 account_suspended",
        "Votre compte Rempart est suspendu",
        "rempart guard alerts → #1 open",
        "restores the account (rempart accounts restore): the compromise is taken to begin",
        "The robot tries the leaked password again → 401 invalid_credentials",
        "rempart incident open --from-alerts 1 → incident 1",
        "read with DuckDB",
        "identical set",
        "severity (ENISA 2013): SE =",
        "report.html, report.pdf, report.json (initial notification, in French)",
        "the breach register (Art. 33(5))",
        "rempart notify plan 1 → campaign 1:",
        "signed with DKIM",
        "→ genuine: True; a phisher's made-up code → genuine: False",
        "1 letter planned instead, printed by the next run (1 letter)",
        "nobody is told twice",
        "(adds up: yes)",
        "rempart guard replay:",
    ):
        assert expected in text, expected
    assert "Traceback" not in text
