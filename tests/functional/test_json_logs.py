"""``rempart serve`` as deployed writes one JSON object per line of standard error, the
libraries' lines (uvicorn, Alembic) included, and no line carries what the test's
people and professional typed or hold: NIR, birth date, name, password, tokens, the
TOTP secret or code."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from rempart.config import Settings
from tests.functional.conftest import Login, Person, totp_code
from tests.functional.served import rempart_serve, settings_env


def test_every_line_is_json_without_personal_data(
    settings: Settings, pharmacist: Login, people: list[Person], tmp_path: Path
) -> None:
    person = people[0]
    typed: list[str] = []
    with (
        rempart_serve(settings_env(settings), tmp_path / "serve.log") as served,
        httpx.Client(base_url=served.base, timeout=20) as http,
    ):
        wrong = http.post(
            "/api/v1/auth/login",
            json={"login": pharmacist.login, "password": "not the password at all"},
        )
        assert wrong.status_code == 401
        first = http.post(
            "/api/v1/auth/login",
            json={"login": pharmacist.login, "password": pharmacist.password},
        )
        mfa_token = first.json()["mfa_token"]
        code = totp_code(pharmacist)
        second = http.post("/api/v1/auth/mfa/totp", json={"mfa_token": mfa_token, "code": code})
        assert second.status_code == 200, second.text
        token = second.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        nir, born = person.nir.value, person.birth_date.isoformat()
        answers = {
            "found": http.post(
                "/api/v1/rights/lookup", json={"nir": nir, "birth_date": born}, headers=auth
            ),
            "not_found": http.post(
                "/api/v1/rights/lookup",
                json={"nir": nir, "birth_date": "1990-01-01"},
                headers=auth,
            ),
            "malformed": http.post(
                "/api/v1/rights/lookup",
                json={"nir": nir[:-2] + "00", "birth_date": born},
                headers=auth,
            ),
            "refused": http.post(
                "/api/v1/rights/lookup",
                json={"nir": nir, "birth_date": born},
                headers={"Authorization": f"Bearer {token[:-4]}AAAA"},
            ),
            "no_token": http.post("/api/v1/rights/lookup", json={"nir": nir, "birth_date": born}),
        }
        assert {k: a.status_code for k, a in answers.items()} == {
            "found": 200,
            "not_found": 404,
            "malformed": 422,
            "refused": 401,
            "no_token": 401,
        }
        assert answers["found"].json()["last_name"] == person.last_name
        typed = [token, mfa_token, code]
    lines = served.log_lines()
    assert lines, "rempart serve wrote nothing"
    events = []
    for line in lines:
        record = json.loads(line)  # fails on any line that is not JSON
        assert isinstance(record, dict), line
        assert {"event", "level", "timestamp"} <= set(record), line
        events.append(record["event"])
    # The service's own events and uvicorn's, through the same formatter.
    assert "request" in events
    assert any(str(e).startswith("Uvicorn running on") for e in events)
    assert any(str(e).startswith("Finished server process") for e in events)
    text = "\n".join(lines)
    forbidden = [
        person.nir.value,
        person.nir.value[:13],
        person.nir.value[:-2] + "00",
        person.birth_date.isoformat(),
        person.last_name,
        pharmacist.login,
        pharmacist.password,
        "not the password at all",
        pharmacist.totp.secret,
        *typed,
    ]
    for secret in forbidden:
        assert secret not in text, f"a log line holds {secret[:3]}…"
