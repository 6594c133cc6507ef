"""Schemathesis against a running Rempart: the harness the fuzz test and bench/bench_fuzz.py share.

The schema is read from the server's own ``/openapi.json`` over real TCP (as a client
of the deployed service would read it), and every operation it holds is fuzzed, so
routes added later are covered without a list to keep. Each operation gets positive
cases (valid by the schema) and negative ones (broken on purpose), drawn by Hypothesis
derandomized (the same cases every run), sent with a real bearer token, and judged by
schemathesis's checks plus Rempart's own: an error body is ``{"error", "detail"}``
(an OperationOutcome coded ``urn:rempart:error`` on ``/fhir/``), and no answer nor log
line carries a traceback or a source path.

A failure is recorded, not raised, so one run counts every finding of every operation
(Hypothesis does not shrink: the recorded case is the one that was sent).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import hypothesis
import hypothesis.errors
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from rempart.api.deps import ACTING_PROFESSIONAL_HEADER
from rempart.fhir.search import INCLUDE_BENEFICIARY
from rempart.fhir.systems import INS_NIR
from rempart.nir import make_nir
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Insured
from tests.functional.conftest import Login, totp_code

__all__ = [
    "ClientToken",
    "Finding",
    "FuzzReport",
    "LogWatch",
    "TokenPool",
    "Tokens",
    "declares_header",
    "fuzz_service",
    "known_person_seeds",
    "watch_logs",
]

# What a leaked stack trace or source location looks like in a body or a log line.
_LEAK = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+|"
    r"/(?:site-packages|src/rempart)/"
)
ERROR_SYSTEM = "urn:rempart:error"


def _error_payload(response: Any) -> Any:
    if response.status_code < 400:
        return None
    media = response.headers.get("content-type", [""])
    media = (media[0] if isinstance(media, list) else media).split(";")[0].strip()
    if not media.endswith("json"):
        return None
    return json.loads(response.content)


@schemathesis.check
def rempart_error_body(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx JSON answer is exactly ``{"error", "detail"}`` (``/fhir/``: an
    OperationOutcome whose first coding is in ``urn:rempart:error``)."""
    del ctx
    body = _error_payload(response)
    if body is None:
        if response.status_code >= 400 and response.content:
            raise AssertionError(f"error answered as {response.headers.get('content-type')}")
        return None
    if case.path.startswith("/fhir/"):
        issue = body.get("issue", [{}])[0] if isinstance(body, dict) else {}
        coding = issue.get("details", {}).get("coding", [{}])[0]
        if body.get("resourceType") != "OperationOutcome" or coding.get("system") != ERROR_SYSTEM:
            raise AssertionError(f"FHIR error is not a Rempart OperationOutcome: {body!r:.300}")
        return True
    if not isinstance(body, dict) or set(body) - {"reason"} != {"error", "detail"}:
        raise AssertionError(f'error body is not {{"error", "detail"}}: {body!r:.300}')
    if not all(isinstance(body[k], str) and body[k] for k in ("error", "detail")):
        raise AssertionError(f"error or detail is not a non-empty string: {body!r:.300}")
    return True


@schemathesis.check
def no_stack_trace(ctx: Any, response: Any, case: Any) -> bool | None:
    """No traceback, no source path in any answer, whatever its status."""
    del ctx, case
    text = response.content.decode("utf-8", "replace")
    found = _LEAK.search(text)
    if found:
        raise AssertionError(f"the answer leaks a stack trace or a path: {found.group(0)!r}")
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    rempart_error_body,
    no_stack_trace,
]


@dataclass(frozen=True)
class Finding:
    operation: str
    mode: str
    check: str
    status: int
    message: str
    curl: str

    def __str__(self) -> str:
        return f"{self.operation} [{self.mode}] {self.check} -> {self.status}: {self.message}"


@dataclass
class FuzzReport:
    operations: list[str] = field(default_factory=list)
    examples: int = 0
    by_mode: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    # The first answer's body (cut short) per operation and status, to read what was met.
    samples: dict[tuple[str, int], str] = field(default_factory=dict)

    def distinct_findings(self) -> list[Finding]:
        """One finding per operation, check and status: the first case that showed it."""
        seen: dict[tuple[str, str, int], Finding] = {}
        for finding in self.findings:
            seen.setdefault((finding.operation, finding.check, finding.status), finding)
        return list(seen.values())

    def reached_success(self) -> list[str]:
        return [op for op, counts in self.statuses.items() if any(s < 300 for s in counts)]


def declares_header(name: str) -> Callable[[Any], bool]:
    """For ``fuzz_service(only=...)``: the operations that take the header ``name``."""
    return lambda operation: any(p.name.lower() == name.lower() for p in operation.headers)


class Tokens(Protocol):
    def current(self) -> str: ...

    def suspect(self) -> None: ...


@dataclass
class ClientToken:
    """A practice software's client token (client credentials): it outlives the fuzz."""

    token: str

    def current(self) -> str:
        return self.token

    def suspect(self) -> None:
        return None


class TokenPool:
    """Professionals logged in through the real login (password, then TOTP), one after
    the other: a token that stops working (the fuzz logged it out, revoked its sessions,
    the guard suspended its account) is replaced by the next account's. All log in
    first, before the login routes are fuzzed, so that the throttle those fuzzed
    failures set off from this address cannot refuse them."""

    def __init__(self, base_url: str, logins: list[Login]) -> None:
        self._base_url = base_url
        self._tokens = [self._log_in(login) for login in logins]
        self.replaced = 0
        self._suspect = True

    def _log_in(self, login: Login) -> str:
        first = requests.post(
            f"{self._base_url}/api/v1/auth/login",
            json={"login": login.login, "password": login.password},
            timeout=10,
        )
        first.raise_for_status()
        second = requests.post(
            f"{self._base_url}/api/v1/auth/mfa/totp",
            json={"mfa_token": first.json()["mfa_token"], "code": totp_code(login)},
            timeout=10,
        )
        second.raise_for_status()
        token: str = second.json()["access_token"]
        return token

    def _alive(self, token: str) -> bool:
        answer = requests.get(
            f"{self._base_url}/api/v1/auth/sessions",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        return answer.status_code == 200

    def current(self) -> str:
        if self._suspect:
            while len(self._tokens) > 1 and not self._alive(self._tokens[0]):
                self._tokens.pop(0)
                self.replaced += 1
            self._suspect = False
        return self._tokens[0]

    def suspect(self) -> None:
        """The last answer was a 401 or 403: check the token before the next request."""
        self._suspect = True


@dataclass
class LogWatch:
    lines: list[str] = field(default_factory=list)

    def leaks(self) -> list[str]:
        return [line for line in self.lines if _LEAK.search(line)]


class _Recorder(logging.Handler):
    def __init__(self, watch: LogWatch) -> None:
        super().__init__(level=logging.DEBUG)
        self.watch = watch
        # The message and, when a record carries one, its formatted exception.
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.watch.lines.append(self.format(record))


# uvicorn's loggers do not propagate to the root: its "Exception in ASGI application"
# (with the traceback) is only seen on "uvicorn". Its configuration replaces that
# logger's handlers when a server starts: watch once the server runs.
_WATCHED = ("", "uvicorn")


@contextmanager
def watch_logs() -> Iterator[LogWatch]:
    """Every log line of the process (structlog renders through stdlib logging) and of
    uvicorn, with any exception formatted as a traceback would be printed."""
    watch = LogWatch()
    handler = _Recorder(watch)
    for name in _WATCHED:
        logging.getLogger(name).addHandler(handler)
    try:
        yield watch
    finally:
        for name in _WATCHED:
            logging.getLogger(name).removeHandler(handler)


def _failure_title(failure: Any) -> str:
    return str(getattr(failure, "title", type(failure).__name__))


# A body too large for the route is refused with 413 before it is read: as good a
# refusal of invalid data as a 422 (schemathesis's default list lacks it).
_CONFIG = {
    "checks": {
        "negative_data_rejection": {
            "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
        }
    }
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
# What a client may put after "Bearer ": printable ASCII (what an HTTP client can send
# in a header), or a JWT's shape whose header and claims are any JSON (a "typ" that is
# not a string, claims that are a list...), or random bytes between the dots.
HOSTILE_TOKENS = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=300),
    st.builds(
        lambda header, claims, signature: ".".join(
            (_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), signature)
        ),
        st.fixed_dictionaries(
            {}, optional={"alg": _JSON, "typ": _JSON | st.sampled_from(["client", "JWT"])}
        ),
        _JSON,
        st.binary(max_size=64).map(_b64),
    ),
    st.lists(st.binary(max_size=48).map(_b64), min_size=1, max_size=5).map(".".join),
)


class Addresses:
    """The client addresses the fuzz speaks from, through the trusted proxy on loopback
    (``X-Forwarded-For``): a new one, in a /24 of its own, every ``every`` requests. The
    login throttle and the per-address limits still answer 429 within that span, but
    the failures one route's fuzz sets off do not hide the next routes behind them."""

    def __init__(self, every: int = 4) -> None:
        self._every = every
        self._sent = 0

    def next(self) -> str:
        block = self._sent // self._every
        self._sent += 1
        return f"10.{(block // 256) % 256}.{block % 256}.7"


# A few valid requests per operation, as the keyword arguments of its Case (``body``,
# ``headers``...), tried first: random data rarely holds a NIR with a valid key.
Seeds = dict[str, list[dict[str, Any]]]


def known_person_seeds(services: Services, acting: str | None = None) -> Seeds:
    """One insured person in the database, and the requests that look them up through
    the JSON API and the FHIR facade (``acting``: for a practice software's token)."""
    born = date(1985, 3, 14)
    nir = make_nir(sex=1, year=1985, month=3, department="75", commune="056", order=1)
    with session_scope(services.sessions) as session:
        if session.get(Insured, nir.value) is None:  # once per database
            session.add(
                Insured(
                    nir=nir.value,
                    birth_date=born,
                    sex=1,
                    last_name="Dupont",
                    first_name="Camille",
                    department="75",
                    treating_doctor=None,
                    c2s=False,
                    ame=True,
                    ald=False,
                    email=None,
                    street="3 rue des Lilas",
                    postcode="75011",
                    city="Paris",
                )
            )
    identifier = f"{INS_NIR}|{nir.value}"
    headers = {ACTING_PROFESSIONAL_HEADER: acting} if acting else None
    bodies = {
        "POST /api/v1/rights/lookup": {"nir": nir.value, "birth_date": born.isoformat()},
        "POST /fhir/Patient/_search": {"identifier": identifier, "birthdate": born.isoformat()},
        "POST /fhir/Coverage/_search": {
            "beneficiary.identifier": identifier,
            "birthdate": born.isoformat(),
            "_include": INCLUDE_BENEFICIARY,
        },
    }
    return {label: [{"body": body, "headers": headers}] for label, body in bodies.items()}


def fuzz_service(
    base_url: str,
    tokens: Tokens | None,
    *,
    examples: int,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
    seeds: Seeds | None = None,
    only: Callable[[Any], bool] | None = None,
    hostile_tokens: int = 0,
    progress: Callable[[str], None] | None = None,
) -> FuzzReport:
    """Fuzzes every operation of the server's own schema (``only``: those it accepts);
    returns what was sent and found. ``hostile_tokens``: that many more valid requests
    per operation, each with a forged bearer token (:data:`HOSTILE_TOKENS`)."""
    config = schemathesis.Config.from_dict(_CONFIG)
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)
    report = FuzzReport()
    started = time.perf_counter()
    session = requests.Session()
    run = _Run(base_url, session, tokens, Addresses(), report)
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # an operation schemathesis cannot read is a finding too
        operation = result.ok()
        if only is not None and not only(operation):
            continue
        label = f"{operation.method.upper()} {operation.path}"
        report.operations.append(label)
        report.statuses.setdefault(label, Counter())
        for mode in modes:
            known = (seeds or {}).get(label, []) if mode is GenerationMode.POSITIVE else []
            run.operation(operation, mode, examples, known)
        if hostile_tokens:
            run.operation(operation, GenerationMode.POSITIVE, hostile_tokens, [], hostile=True)
        if progress is not None:
            progress(f"{label}: {dict(sorted(report.statuses[label].items()))}")
    # Closed, or the server waits for the idle keep-alive connection when it stops.
    session.close()
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class _Run:
    base_url: str
    session: requests.Session
    tokens: Tokens | None
    addresses: Addresses
    report: FuzzReport

    def operation(
        self,
        operation: Any,
        mode: GenerationMode,
        examples: int,
        known: list[dict[str, Any]],
        *,
        hostile: bool = False,
    ) -> None:
        # The previous operation may have logged its token out or revoked its sessions.
        if self.tokens is not None:
            self.tokens.suspect()
        tokens = HOSTILE_TOKENS if hostile else st.none()
        test = hypothesis.given(case=operation.as_strategy(generation_mode=mode), forged=tokens)(
            lambda case, forged: self.send(operation, mode, case, forged)
        )
        for arguments in known:
            test = hypothesis.example(case=operation.Case(**arguments), forged=None)(test)
        test = hypothesis.settings(
            max_examples=examples,
            derandomize=True,  # the same cases on every run: a finding reproduces
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],  # nothing raised, nothing to shrink
            suppress_health_check=list(HealthCheck),
        )(test)
        try:
            test()
        except hypothesis.errors.Unsatisfiable:
            # Nothing to break in an operation without inputs: no negative case exists.
            if mode is not GenerationMode.NEGATIVE:
                raise

    def send(self, operation: Any, mode: GenerationMode, case: Any, forged: str | None) -> None:
        label = f"{operation.method.upper()} {operation.path}"
        report = self.report
        headers = {"X-Forwarded-For": self.addresses.next()}
        if forged is not None:
            headers["Authorization"] = f"Bearer {forged}"
        elif self.tokens is not None:
            headers["Authorization"] = f"Bearer {self.tokens.current()}"
        report.examples += 1
        mode_name = "forged token" if forged is not None else mode.value
        report.by_mode[mode_name] += 1
        try:
            response = case.call(
                base_url=self.base_url, session=self.session, headers=headers, timeout=30
            )
        except requests.RequestException as exc:
            curl = case.as_curl_command(base_url=self.base_url)
            report.findings.append(Finding(label, mode_name, "transport", 0, repr(exc), curl))
            return
        report.statuses[label][response.status_code] += 1
        report.samples.setdefault((label, response.status_code), response.text[:200])
        if response.status_code in (401, 403) and self.tokens is not None and forged is None:
            self.tokens.suspect()
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            curl = case.as_curl_command(base_url=self.base_url)
            for failure in group.exceptions:
                report.findings.append(
                    Finding(
                        label,
                        mode_name,
                        _failure_title(failure),
                        response.status_code,
                        str(getattr(failure, "message", failure))[:500],
                        curl,
                    )
                )
