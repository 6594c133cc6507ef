"""The long fuzz: schemathesis over every operation of the running service's OpenAPI.

The same harness as ``make test``'s bounded run (tests/functional/fuzzing.py: real
tokens from the real login, Rempart's own checks, tracebacks watched in the logs), with
many more examples per operation, on a fresh SQLite file then a fresh PostgreSQL
database. Writes the operations, the examples sent, the distinct findings and the wall
time into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
from tests.conftest import FAST_HASHING
from tests.functional.conftest import PROXY, make_login
from tests.functional.fuzzing import (
    ClientToken,
    Finding,
    TokenPool,
    declares_header,
    fuzz_service,
    known_person_seeds,
    watch_logs,
)

from bench.bench_lookup import code_version
from bench.bench_lookup_path import on_both_databases
from bench.report import publish
from rempart.api import create_app
from rempart.api.deps import ACTING_PROFESSIONAL_HEADER
from rempart.api.server import running_server
from rempart.auth.clients import ClientSecret
from rempart.config import load_settings
from rempart.logs import configure_logging
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.migrate import upgrade
from rempart.store.models import Professional

DB_NAME = "rempart_bench_fuzz"
# Enough for the whole run: the fuzz of the lookup gets accounts suspended by the guard
# (enumeration), logout and revoke-all end one each; under the 20 distinct logins one
# address may try per window (the harness logs in from loopback, the fuzz from others).
ACCOUNTS = 16
ACTING = "ph-acting"


@dataclass(frozen=True)
class Measured:
    backend: str
    caller: str
    operations: int
    examples: int
    findings: list[Finding]
    log_leaks: int
    reached_success: int
    logins_used: int
    statuses: Counter[int]
    seconds: float


def measure(backend: str, url: str, examples: int) -> list[Measured]:
    """The professionals' pass over every operation, then the practice software's over
    the routes that take X-Acting-Professional, on one service."""
    with tempfile.TemporaryDirectory() as directory:
        settings = load_settings(
            database_url=url,
            data_dir=Path(directory) / "data",
            trusted_proxies=PROXY,  # the fuzz speaks from many addresses through it
            log_level="warning",
            # Cheap hashing: the fuzz measures the answers, bench_auth the login's cost.
            **FAST_HASHING,
        )
        services = Services(settings)
        upgrade(services.engine, schema="data")
        upgrade(services.audit_engine, schema="audit")
        logins = [make_login(services, f"fuzz.{n}") for n in range(ACCOUNTS)]
        seeds = known_person_seeds(services)
        client = _practice_software(services)
        try:
            with running_server(create_app(services=services)) as base, watch_logs() as logs:
                tokens = TokenPool(base, logins)
                # Before the fuzz: its forged tokens' failures put the service "under
                # attack", whose tighter limits would refuse the request (429) later.
                client_token = _client_token(base, client)
                reports = [
                    (
                        "professional",
                        fuzz_service(
                            base,
                            tokens,
                            examples=examples,
                            seeds=seeds,
                            hostile_tokens=examples // 2,
                            progress=print,
                        ),
                    )
                ]
                replaced = tokens.replaced
                reports.append(
                    (
                        "practice software",
                        fuzz_service(
                            base,
                            ClientToken(client_token),
                            examples=examples,
                            seeds=known_person_seeds(services, acting=ACTING),
                            only=declares_header(ACTING_PROFESSIONAL_HEADER),
                            progress=print,
                        ),
                    )
                )
        finally:
            services.close()
    results = []
    for caller, report in reports:
        statuses: Counter[int] = Counter()
        for counts in report.statuses.values():
            statuses.update(counts)
        results.append(
            Measured(
                backend=backend,
                caller=caller,
                operations=len(report.operations),
                examples=report.examples,
                findings=report.distinct_findings(),
                log_leaks=len(logs.leaks()),
                reached_success=len(report.reached_success()),
                logins_used=replaced + 1 if caller == "professional" else 1,
                statuses=statuses,
                seconds=report.seconds,
            )
        )
    return results


def _practice_software(services: Services) -> ClientSecret:
    make_login(services, "fuzz.acting", account_id=ACTING)
    with session_scope(services.sessions) as session:
        session.add(
            Professional(
                account_id=ACTING,
                rpps=None,
                profession="pharmacie",
                department="75",
                organization_id="org-fuzz",
                last_name="Acting",
                first_name="Dominique",
                email="acting@example.fr",
            )
        )
        return services.clients.create(session, organization_id="org-fuzz", label="LGC fuzz")


def _client_token(base: str, client: ClientSecret) -> str:
    answer = httpx.post(
        f"{base}/api/v1/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, client.client_secret),
        timeout=10,
    )
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


def render(args: argparse.Namespace, results: list[Measured]) -> str:
    rows = "\n".join(
        f"| {m.backend} | {m.caller} | {m.operations} | {m.examples:,} | {len(m.findings)} "
        f"| {m.log_leaks} | {m.logins_used} "
        f"| {m.reached_success} | {m.seconds:.0f} s |"
        for m in results
    )
    spread = "\n".join(
        f"- {m.backend}, {m.caller}: "
        + ", ".join(f"{status}: {count:,}" for status, count in sorted(m.statuses.items()))
        for m in results
    )
    findings = (
        "\n".join(f"- {m.backend}, {m.caller}: {f}" for m in results for f in m.findings)
        or "- none"
    )
    return f"""## The fuzz of the OpenAPI (issue 19)

schemathesis {args.schemathesis} over every operation of the running service's own
`/openapi.json` (uvicorn over TCP in this process): up to {args.examples} positive and
{args.examples} negative examples per operation (Hypothesis, derandomized), sent with
a real bearer token (password then TOTP; the next account's when the fuzz logged one
out), plus {args.examples // 2} valid requests per operation with a forged token (random
text, or a JWT's shape with any JSON in its header and claims), from a new client
address every 4 requests; then the routes that take
`X-Acting-Professional` with a practice software's client token (client credentials).
Checks: `not_a_server_error`, `status_code_conformance`, `content_type_conformance`,
`response_schema_conformance`, `negative_data_rejection`, every error body
`{{"error", "detail"}}` (FHIR: an OperationOutcome coded `urn:rempart:error`), no
traceback or source path in any answer, and none in the logs of the run.

| database | token | operations | examples | findings | log tracebacks | logins | 2xx ops | time |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{rows}

Statuses answered:
{spread}

Findings (operation, mode, check, status):
{findings}

- **Code**: {code_version()}.
- **Reproduce**: `.venv/bin/python -m bench.bench_fuzz --examples {args.examples}`
- **Machine**: {platform.machine()}, 2 cores; client and server share the process.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    import schemathesis  # noqa: PLC0415 - its version, for the record

    args.schemathesis = schemathesis.__version__
    configure_logging("warning")
    results = [
        m
        for ms in on_both_databases(
            DB_NAME, lambda backend, url: measure(backend, url, args.examples)
        )
        for m in ms
    ]
    for m in results:
        print(
            f"{m.backend}, {m.caller}: {m.operations} operations, {m.examples} examples, "
            f"{len(m.findings)} findings, {m.log_leaks} log tracebacks, {m.seconds:.0f} s"
        )
    publish("fuzz", render(args, results), dry_run=args.no_write)


if __name__ == "__main__":
    main()
