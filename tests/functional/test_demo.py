"""``make demo`` is one of the two commands: its story runs here end to end, on SQLite."""

from __future__ import annotations

import re
from pathlib import Path

from rich.console import Console

from rempart.demo import run_demo
from tests.functional.oidc_provider import require_node_provider


def test_the_demo_tells_the_whole_story(tmp_path: Path) -> None:
    require_node_provider()  # the Pro Santé Connect chapter needs the local provider
    console = Console(record=True, width=200)
    workdir = tmp_path / "demo"
    run_demo(workdir, console=console)
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
        "GET /fhir/metadata → 200, searches: Patient, Coverage",
        "→ 200 application/fhir+json: 1 Coverage(s) (Assurance maladie obligatoire), and Patient",
        "GET /fhir/Patient?identifier=… → 405 OperationOutcome search_by_get_refused",
        "its audit entry: channel fhir, categories nir,identity,treating_doctor,c2s,ame,ald, "
        "guard allow",
        "a local SMTP server (aiosmtpd)",
        "logs in at /portail/connexion: password → 303, code → 303",
        "redirected to /portail/consultation/resultat (no NIR in the address)",
        "the answer card → 200: Nom ",
        "the same address again (reload, back button) → 410",
        "with whom by name (yes), never a NIR (NIR in the page: no)",
        "attempt 6: 429 too_many_attempts",
        "36 professionals of the world get an account",
        "rempart guard alerts → #1 open",
        "rempart guard alerts → #3 open",
        "against 360 an unguarded service would have leaked",
        "0 deny(ies); 0 alert(s) on honest accounts",
        "3 e-mail(s): Votre compte Rempart est suspendu",
        "rempart audit verify → intact",
        "and restores it (rempart accounts restore): the compromise is taken to begin",
        "The robot tries the leaked password again → 401 invalid_credentials",
        "rempart incident open --from-alerts 1,2,3 → incident 1",
        "read with DuckDB",
        "identical set",
        "severity (ENISA 2013): SE =",
        "report.html, report.pdf, report.json (initial notification, in French)",
        "the breach register (Art. 33(5))",
        "rempart notify plan 1 → campaign 1:",
        "signed with DKIM, sent over SMTP to the local server, which received",
        "POST /verifier → 200 « Cet avis est authentique »",
        "a phisher's made-up code: POST /verifier → 200 « Aucun avis ne correspond »",
        "1 letter planned instead, printed by the next run (1 letter)",
        "nobody is told twice",
        "(adds up: yes)",
        "Is this message really from the insurer?",
        "genuine notice → genuine-looking; fake notice → phishing",
        "the genuine notice: genuine-looking (score",
        "GET /health/ready → 200: database ok, audit ok",
        "x 503 overloaded, each refusal with Retry-After",
        "without a token) → 401: the public checks have a lane of their own",
        "What Prometheus reads",
        "rempart_requests_shed_total",
        "rempart claims ingest claims.parquet:",
        "again: 0 new (idempotent)",
        "rempart guard replay:",
        "honest accounts suspended: 0 (a suspension needs evidence of an attacker",
        "The story in figures",
        "3 account(s) suspended, 3 alert(s)",
        "the code checked on /verifier: authentic; a made-up code refused",
        "Where every output lies",
        "incident-1/ report.html, report.pdf, report.json",
        "courriels-recus/",
        "courriers-campagne-1/",
    ):
        assert expected in text, expected
    assert "Traceback" not in text
    # The fake notice is called phishing in the summary as in the chapter.
    assert re.search(r"a fake in the insurer's name: phishing \(score \d+\)", text)
    # The burst of public checks: some served, the rest shed at once, none failing.
    burst = re.search(r"sent at once to POST /api/v1/messages/check \(anonymous\): (.*)", text)
    assert burst is not None
    outcomes = {outcome: int(n) for n, outcome in re.findall(r"(\d+) x ([^,]+)", burst.group(1))}
    assert outcomes.get("200", 0) >= 1
    assert outcomes.get("503 overloaded", 0) >= 1
    assert set(outcomes) <= {"200", "503 overloaded"}, outcomes
    assert re.search(r"ready: yes; [1-9]\d* lookup\(s\) counted in /metrics", text)
    # The guard contains the robot: a handful read where an unguarded service leaks all.
    exposed = re.search(r"exposed: (\d+) person\(s\) in all, against (\d+)", text)
    assert exposed is not None
    assert 0 < int(exposed.group(1)) * 10 < int(exposed.group(2))
    # What the summary points at is there.
    assert list((workdir / "courriels-recus").glob("*.eml"))
    assert list((workdir / "courriers-campagne-1").glob("*.pdf"))
    for name in ("report.html", "report.pdf", "report.json"):
        assert (workdir / "incident-1" / name).is_file()
