"""A database that cannot be reached yields 503, never data and never a stack trace."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from rempart.api import create_app
from rempart.config import load_settings
from rempart.services import Services
from tests.conftest import FAST_HASHING


def test_unreachable_database_answers_503(tmp_path: Path) -> None:
    settings = load_settings(
        database_url="postgresql://postgres@127.0.0.1:1/nowhere",
        data_dir=tmp_path / "data",
        **FAST_HASHING,
    )
    with TestClient(create_app(services=Services(settings))) as client:
        response = client.post(
            "/api/v1/auth/login", json={"login": "dr.martin", "password": "whatever it is"}
        )
    assert response.status_code == 503
    assert response.json() == {
        "error": "database_unavailable",
        "detail": "the database cannot be reached; retry later",
    }


def test_unreachable_database_answers_an_fhir_search_with_a_503_operation_outcome(
    tmp_path: Path,
) -> None:
    settings = load_settings(
        database_url="postgresql://postgres@127.0.0.1:1/nowhere",
        data_dir=tmp_path / "data",
        **FAST_HASHING,
    )
    with TestClient(create_app(services=Services(settings))) as client:
        response = client.post(
            "/fhir/Patient/_search",
            content="identifier=185037505600610&birthdate=1985-03-14",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": "Bearer x",
            },
        )
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/fhir+json")
    issue = response.json()["issue"][0]
    assert (issue["severity"], issue["code"]) == ("fatal", "transient")
    assert issue["details"]["coding"][0]["code"] == "database_unavailable"
    assert "185037505600610" not in response.text
