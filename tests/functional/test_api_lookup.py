"""The rights lookup through the real HTTP app, on SQLite and on PostgreSQL."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from rempart.nir import make_nir, parse_nir
from rempart.services import Services
from rempart.store.engine import session_scope
from tests.functional.conftest import Login, Person, log_in


def lookup(
    client: TestClient, token: str, nir: str, birth_date: str
) -> tuple[int, dict[str, object]]:
    response = client.post(
        "/api/v1/rights/lookup",
        json={"nir": nir, "birth_date": birth_date},
        headers={"Authorization": f"Bearer {token}"},
    )
    return response.status_code, response.json()


def test_lookup_returns_identity_and_rights(
    client: TestClient, people: list[Person], pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    person = people[0]
    status, body = lookup(client, token, person.nir.value, person.birth_date.isoformat())
    assert status == 200
    assert body == {
        "nir": person.nir.value,
        "last_name": "Dupont",
        "first_name": "Camille",
        "birth_date": "1985-03-14",
        "sex": 1,
        "treating_doctor": {"name": "Claire Martin", "rpps": "10003456789"},
        "c2s": False,
        "ame": False,
        "ald": True,
    }


def test_lookup_normalises_spaces_dots_and_lowercase_corsica(
    client: TestClient, people: list[Person], pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    corsican = people[1]
    raw = corsican.nir.value
    typed = f"{raw[0]} {raw[1:3]}.{raw[3:5]} {raw[5:7].lower()} {raw[7:10]} {raw[10:13]} {raw[13:]}"
    status, body = lookup(client, token, typed, "1955-08-02")
    assert status == 200
    assert body["nir"] == raw
    assert body["treating_doctor"] is None


def test_unknown_nir_and_wrong_birth_date_answer_the_same(
    client: TestClient, people: list[Person], pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    person = people[2]
    wrong_date = lookup(client, token, person.nir.value, "2001-12-31")
    other = people[0].nir
    unknown_nir = make_unknown(other.value)
    unknown = lookup(client, token, unknown_nir, "2001-12-30")
    assert (
        wrong_date
        == unknown
        == (
            404,
            {"error": "not_found", "detail": "no insured person matches this NIR and birth date"},
        )
    )


def make_unknown(valid: str) -> str:
    nir = parse_nir(valid)
    place = nir.birth_place
    return make_nir(
        sex=nir.sex,
        year=nir.birth_year_2d,
        month=nir.birth_month or 1,
        department=place.department,
        commune=place.commune,
        order=(nir.order_number + 500) % 1000,
    ).value


@pytest.mark.parametrize(
    ("nir", "reason"),
    [
        ("18503750560127", "nir_length"),
        ("1850375056012700", "nir_length"),
        ("18503750X601270", "nir_characters"),
        ("185037505601271", "nir_key"),
        ("185137505601270", "nir_key"),
    ],
)
def test_malformed_nir_is_422_with_reason(
    client: TestClient, people: list[Person], pharmacist: Login, nir: str, reason: str
) -> None:
    token = log_in(client, pharmacist)
    status, body = lookup(client, token, nir, "1985-03-14")
    assert status == 422
    assert body["error"] == "invalid_nir"
    assert body["reason"] == reason
    assert nir not in str(body)


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b'{"nir": "1850', "application/json", 400, "malformed_json"),
        (
            b'{"nir": "\xff\xfe", "birth_date": "1985-03-14"}',
            "application/json",
            400,
            "malformed_body",
        ),
        (b"[]", "application/json", 422, "invalid_body"),
        (
            b'{"nir": 185037505601270, "birth_date": "1985-03-14"}',
            "application/json",
            422,
            "invalid_type",
        ),
        (b'{"nir": "185037505601270"}', "application/json", 422, "missing_field"),
        (
            b'{"nir": "185037505601270", "birth_date": "1985-03-14", "x": 1}',
            "application/json",
            422,
            "unknown_field",
        ),
        (
            b'{"nir": "185037505601270", "birth_date": "14/03/1985"}',
            "application/json",
            422,
            "invalid_birth_date",
        ),
        (
            b'{"nir": "185037505601270", "birth_date": "1985-02-30"}',
            "application/json",
            422,
            "invalid_birth_date",
        ),
        (
            b'{"nir": "185037505601270", "birth_date": "1789-07-14"}',
            "application/json",
            422,
            "invalid_birth_date",
        ),
        (
            b'{"nir": "185037505601270", "birth_date": "2999-01-01"}',
            "application/json",
            422,
            "invalid_birth_date",
        ),
        (
            b'{"nir": "' + b"1" * 70 + b'", "birth_date": "1985-03-14"}',
            "application/json",
            422,
            "invalid_value",
        ),
        (
            b'{"nir": "185037505601270", "birth_date": "1985-03-14"}',
            "text/plain",
            415,
            "unsupported_media_type",
        ),
        (b'{"pad": "' + b"x" * 40_000 + b'"}', "application/json", 413, "payload_too_large"),
    ],
)
def test_bad_input_gets_a_stable_4xx(
    client: TestClient,
    pharmacist: Login,
    content: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    token = log_in(client, pharmacist)
    response = client.post(
        "/api/v1/rights/lookup",
        content=content,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code
    assert set(body) >= {"error", "detail"}
    assert "Traceback" not in response.text


def test_lookup_needs_a_valid_token(client: TestClient, people: list[Person]) -> None:
    person = people[0]
    payload = {"nir": person.nir.value, "birth_date": "1985-03-14"}
    missing = client.post("/api/v1/rights/lookup", json=payload)
    forged = client.post(
        "/api/v1/rights/lookup",
        json=payload,
        headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."},
    )
    for response in (missing, forged):
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_suspending_an_account_revokes_its_tokens(
    client: TestClient, services: Services, people: list[Person], pharmacist: Login
) -> None:
    token = log_in(client, pharmacist)
    person = people[0]
    assert lookup(client, token, person.nir.value, "1985-03-14")[0] == 200
    with session_scope(services.sessions) as session:
        assert services.auth.suspend(session, pharmacist.account_id)
    status, body = lookup(client, token, person.nir.value, "1985-03-14")
    assert status == 403
    assert body["error"] == "account_suspended"


def test_no_nir_in_any_log_line(
    client: TestClient,
    people: list[Person],
    pharmacist: Login,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # The test client's own httpx log is the caller's, not the service's.
    caplog.set_level(logging.WARNING, logger="httpx")
    token = log_in(client, pharmacist)
    person = people[0]
    lookup(client, token, person.nir.value, "1985-03-14")
    lookup(client, token, person.nir.value, "1985-03-15")
    lookup(client, token, person.nir.value[:-1] + "9", "1985-03-14")
    # A client that puts the NIR in the URL anyway: the access log keeps no raw path.
    client.get(f"/api/v1/rights/{person.nir.value}")
    captured = capsys.readouterr()
    # The test client's own httpx log is the caller's, not the service's.
    service_records = "\n".join(r.getMessage() for r in caplog.records if r.name != "httpx")
    everything = captured.out + captured.err + service_records
    assert "request" in everything  # the access log did write lines
    assert person.nir.value not in everything
    assert person.nir.value[:13] not in everything


def test_openapi_is_published(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/api/v1/auth/login", "/api/v1/auth/mfa/totp", "/api/v1/rights/lookup"} <= set(
        spec["paths"]
    )
