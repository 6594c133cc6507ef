"""Schemathesis over every operation of the running service's OpenAPI, with real tokens.

A bounded budget (a few derandomized examples per operation and mode) on SQLite and
PostgreSQL; bench/bench_fuzz.py runs the long campaign. The harness and Rempart's own
checks are in :mod:`tests.functional.fuzzing`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from schemathesis import GenerationMode

from rempart.api import create_app
from rempart.api.deps import ACTING_PROFESSIONAL_HEADER
from rempart.api.schemas import ErrorBody
from rempart.api.server import running_server
from rempart.config import Settings, load_settings
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Professional
from tests.conftest import FAST_HASHING
from tests.functional.conftest import PROXY, make_login
from tests.functional.fuzzing import (
    ClientToken,
    TokenPool,
    declares_header,
    fuzz_service,
    known_person_seeds,
    watch_logs,
)

EXAMPLES = 25
HOSTILE_TOKENS = 10  # more requests per operation, each with a forged bearer token
ACCOUNTS = 6


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """As the shared fixture's, behind a trusted proxy on loopback: the fuzz speaks from
    a new client address every few requests (see ``fuzzing.Addresses``)."""
    return load_settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        trusted_proxies=PROXY,
        **FAST_HASHING,
    )


@pytest.fixture
def served(services: Services) -> Iterator[str]:
    with running_server(create_app(services=services)) as url:
        yield url


def test_every_operation_survives_the_fuzz(services: Services, served: str) -> None:
    logins = [make_login(services, f"fuzz.{n}") for n in range(ACCOUNTS)]
    seeds = known_person_seeds(services)
    with watch_logs() as logs:
        tokens = TokenPool(served, logins)
        report = fuzz_service(
            served, tokens, examples=EXAMPLES, seeds=seeds, hostile_tokens=HOSTILE_TOKENS
        )

    assert report.operations, "the schema holds no operation"
    # Every operation got its cases (fewer where its inputs allow fewer), and its forgeries.
    assert report.by_mode["positive"] >= len(report.operations)
    assert report.by_mode["negative"] >= EXAMPLES
    assert report.by_mode["forged token"] == len(report.operations) * HOSTILE_TOKENS
    findings = report.distinct_findings()
    assert not findings, "\n\n".join(f"{f}\n{f.curl}" for f in findings)
    assert not logs.leaks(), "\n".join(logs.leaks()[:5])
    # The fuzz went past the token check: authenticated routes answered with success.
    reached = report.reached_success()
    for route in ("POST /api/v1/rights/lookup", "GET /api/v1/auth/sessions"):
        assert route in reached, report.statuses


def test_practice_software_routes_survive_the_fuzz(services: Services, served: str) -> None:
    """The routes that take X-Acting-Professional, with a practice software's client
    token (client credentials) and hostile values of the header."""
    make_login(services, "fuzz.acting", account_id="ph-acting")
    with session_scope(services.sessions) as session:
        session.add(
            Professional(
                account_id="ph-acting",
                rpps=None,
                profession="pharmacie",
                department="75",
                organization_id="org-fuzz",
                last_name="Acting",
                first_name="Dominique",
                email="acting@example.fr",
            )
        )
        creds = services.clients.create(session, organization_id="org-fuzz", label="LGC fuzz")
    answer = requests.post(
        f"{served}/api/v1/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(creds.client_id, creds.client_secret),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    seeds = known_person_seeds(services, acting="ph-acting")
    with watch_logs() as logs:
        report = fuzz_service(
            served,
            ClientToken(answer.json()["access_token"]),
            examples=EXAMPLES,
            seeds=seeds,
            only=declares_header(ACTING_PROFESSIONAL_HEADER),
        )

    assert set(report.operations) >= set(seeds), report.operations
    findings = report.distinct_findings()
    assert not findings, "\n\n".join(f"{f}\n{f.curl}" for f in findings)
    assert not logs.leaks(), "\n".join(logs.leaks()[:5])
    # The seeded lookup passed as the acting professional, random ones were refused; the
    # FHIR searches after that loop may meet the guard's step-up (401), as declared.
    lookup = report.statuses["POST /api/v1/rights/lookup"]
    samples = "\n".join(f"{k}: {v}" for k, v in report.samples.items())
    assert lookup[200] >= 1, samples
    assert lookup[403] >= 1, samples


def _faulty_app() -> FastAPI:
    """Each route breaks one promise the fuzz checks, as a regression would."""
    app = FastAPI()
    declared: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorBody},
        404: {"model": ErrorBody},
    }

    @app.get("/crash", responses=declared)
    def crash(n: int = 0) -> dict[str, int]:
        raise RuntimeError(f"unexpected {n}")  # uvicorn answers 500 and logs a traceback

    @app.get("/leak", responses=declared)
    def leak(n: int = 0) -> JSONResponse:
        detail = f'Traceback (most recent call last):\n  File "/src/rempart/x.py", line {n}'
        return JSONResponse({"error": "bad", "detail": detail}, status_code=400)

    @app.get("/shapeless", responses=declared)
    def shapeless(n: int = 0) -> JSONResponse:
        return JSONResponse({"message": f"no {n}"}, status_code=404)

    @app.get("/undeclared", responses=declared)
    def undeclared(n: int = 0) -> JSONResponse:
        return JSONResponse({"error": "teapot", "detail": str(n)}, status_code=418)

    return app


def test_the_fuzz_reports_each_broken_promise() -> None:
    """The checks can fail: a 500, a traceback in a body, an error body of another shape,
    an undeclared status, and the traceback in the log are each reported."""
    with running_server(_faulty_app()) as url, watch_logs() as logs:
        report = fuzz_service(url, None, examples=3, modes=(GenerationMode.POSITIVE,))

    found = {(f.operation, f.check) for f in report.distinct_findings()}
    assert ("GET /crash", "Server error") in found
    assert ("GET /leak", "Custom check failed: `no_stack_trace`") in found
    assert ("GET /shapeless", "Custom check failed: `rempart_error_body`") in found
    assert ("GET /shapeless", "Response violates schema") in found
    assert ("GET /undeclared", "Undocumented status code") in found
    assert any("RuntimeError: unexpected" in line for line in logs.leaks())
