"""The message checker's doors through the real app and command: the API, the page, the
CLI, the limits (its own and the notice check's), and nothing kept but counts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from structlog.testing import capture_logs
from typer.testing import CliRunner

from rempart.audit.models import AuditBase
from rempart.cli import app as cli_app
from rempart.config import Settings, load_settings
from rempart.messages.counts import count_check, read_counts
from rempart.messages.throttle import MessageCheckLimits, MessageCheckThrottle
from rempart.services import Services
from rempart.store.models import Base, MessageCheckCount
from tests.conftest import FAST_HASHING
from tests.functional.conftest import PROXY
from tests.functional.message_helpers import (
    FAKE_CARTE_VITALE_SMS,
    SentNotice,
    forged_notice,
    made_up_code,
    sent_notices,
)
from tests.functional.test_notice_verify import FakeClock, counter_store, small_notice_throttle

CHECK = "/api/v1/messages/check"
PAGE = "/verifier/message"
MARKER = "Zorglub-7Q"  # typed into every message, sender and subject: must be kept nowhere


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # The test client connects from the loopback: a trusted proxy, so that each test
    # plays its clients with X-Forwarded-For.
    return load_settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        trusted_proxies=PROXY,
        **FAST_HASHING,
    )


def check(
    client: TestClient, address: str = "203.0.113.5", /, **fields: object
) -> tuple[int, dict[str, object], dict[str, str]]:
    body = {"channel": "sms", "sender": "38000", "text": FAKE_CARTE_VITALE_SMS, **fields}
    answer = client.post(CHECK, json=body, headers={"X-Forwarded-For": address})
    return answer.status_code, answer.json(), dict(answer.headers)


def codes(body: dict[str, object]) -> list[str]:
    reasons = body["reasons"]
    assert isinstance(reasons, list)
    return [reason["code"] for reason in reasons]


def assert_verdict_shape(body: dict[str, object]) -> None:
    assert set(body) == {"verdict", "score", "reasons"}
    assert body["verdict"] in ("phishing", "suspicious", "genuine-looking")
    score = body["score"]
    assert isinstance(score, int)
    assert 0 <= score <= 100
    reasons = body["reasons"]
    assert isinstance(reasons, list)
    assert reasons
    for reason in reasons:
        assert set(reason) == {"code", "text"}
        assert reason["text"].strip()
    assert reasons[-1]["code"] == "genuine_channel"


# -- the API ----------------------------------------------------------------------------------


def test_a_fake_carte_vitale_sms_is_phishing_with_reasons(client: TestClient) -> None:
    status, body, _ = check(client)
    assert status == 200, body
    assert_verdict_shape(body)
    assert body["verdict"] == "phishing"
    assert len(codes(body)) >= 2  # at least one sign of fraud, then the genuine channel


def test_a_sent_notice_is_recognised_and_its_forgery_is_not(
    client: TestClient, services: Services
) -> None:
    notice = sent_notices(services)[0]
    status, genuine, _ = check(
        client, channel="email", sender=services.settings.mail_from, text=notice.text
    )
    assert status == 200, genuine
    assert_verdict_shape(genuine)
    assert "notice_code_genuine" in codes(genuine)
    assert genuine["verdict"] == "genuine-looking"

    forged = forged_notice(notice, made_up_code(services))
    status, fake, _ = check(
        client, channel="email", sender="securite@rempart-example.com", text=forged
    )
    assert status == 200, fake
    assert "notice_code_unknown" in codes(fake)
    assert fake["verdict"] == "phishing"


def test_a_whole_eml_is_read_as_an_email(client: TestClient, services: Services) -> None:
    notice = sent_notices(services)[0]
    status, body, _ = check(client, channel="sms", sender="", text=notice.eml.decode())
    assert status == 200, body
    assert "notice_code_genuine" in codes(body)


@pytest.mark.parametrize(
    ("fields", "status", "error"),
    [
        ({"text": ""}, 422, "empty_message"),
        ({"text": "   \n  "}, 422, "empty_message"),
        ({"text": f"bonjour\x00{MARKER}"}, 422, "binary_message"),
        ({"channel": "fax"}, 422, "invalid_channel"),
        ({"sender": f"{MARKER}\x07"}, 422, "invalid_field"),
        ({"subject": "x" * 5000}, 422, "invalid_field"),
        ({"text": MARKER + "é" * 131_100}, 413, "message_too_large"),
        ({"text": None}, 422, "invalid_type"),
        ({"extra": MARKER}, 422, "unknown_field"),
    ],
)
def test_bad_input_gets_a_stable_code_that_quotes_nothing(
    client: TestClient, fields: dict[str, object], status: int, error: str
) -> None:
    got, body, _ = check(client, **fields)
    assert (got, body["error"]) == (status, error), body
    assert set(body) == {"error", "detail"}
    assert MARKER not in json.dumps(body)


def test_bodies_that_are_not_a_check_are_refused(client: TestClient, settings: Settings) -> None:
    missing = client.post(CHECK, json={"channel": "sms", "text": "bonjour"})
    assert (missing.status_code, missing.json()["error"]) == (422, "missing_field")
    not_json = client.post(
        CHECK, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert (not_json.status_code, not_json.json()["error"]) == (400, "malformed_json")
    form = client.post(CHECK, data={"channel": "sms", "sender": "", "text": "bonjour"})
    assert (form.status_code, form.json()["error"]) == (415, "unsupported_media_type")
    # Beyond what any message of the configured size takes once encoded: refused unread.
    huge = (
        b'{"channel": "sms", "sender": "", "text": "'
        + b"a" * (4 * settings.messages_max_bytes)
        + b'"}'
    )
    answer = client.post(CHECK, content=huge, headers={"content-type": "application/json"})
    assert (answer.status_code, answer.json()["error"]) == (413, "payload_too_large")
    # Other routes keep the ordinary limit.
    other = client.post(
        "/api/v1/notices/verify",
        content=b'{"code": "' + b"A" * settings.max_body_bytes + b'"}',
        headers={"content-type": "application/json"},
    )
    assert other.status_code == 413


def test_the_api_is_documented(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"][CHECK]["post"]
    assert "security" not in operation
    schema = spec["components"]["schemas"]["MessageCheckRequest"]
    assert set(schema["properties"]) == {"channel", "sender", "subject", "text"}
    assert set(schema["required"]) == {"channel", "sender", "text"}
    assert {"200", "413", "422", "429"} <= set(operation["responses"])
    assert "message_too_large" in operation["responses"]["413"]["description"]


# -- the limits -------------------------------------------------------------------------------


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def clock(request: pytest.FixtureRequest, services: Services) -> Iterator[FakeClock]:
    """The checker's throttle and the notice check's, with small limits on a test clock,
    in one store (memory, or the real Redis under a prefix of its own, removed after)."""
    clock = FakeClock()
    with counter_store(request, "messages") as store:
        notice_throttle = small_notice_throttle(store, clock)
        services.notice_verifier.throttle = notice_throttle
        checks = services.message_checks
        checks.notice_throttle = notice_throttle
        checks.throttle = MessageCheckThrottle(
            store,
            MessageCheckLimits(window_seconds=300, address_checks=5, global_per_minute=12),
            secret=b"0123456789abcdef-messages",
            clock=clock,
        )
        yield clock


def test_one_address_gets_bounded_checks_then_waits(client: TestClient, clock: FakeClock) -> None:
    for _ in range(5):
        assert check(client, "198.51.100.7")[0] == 200
    status, body, headers = check(client, "198.51.100.7")
    assert (status, body["error"]) == (429, "too_many_attempts")
    assert 1 <= int(headers["retry-after"]) <= 300
    # Bad input counts too: the limit is checked before anything is read.
    assert check(client, "198.51.100.7", text="")[0] == 429
    # Another address is not held back.
    assert check(client, "198.51.100.8")[0] == 200
    clock.now += 301
    assert check(client, "198.51.100.7")[0] == 200


def test_the_service_wide_limit_stops_many_addresses(client: TestClient, clock: FakeClock) -> None:
    statuses = [check(client, f"192.0.2.{n}")[0] for n in range(1, 14)]
    assert statuses == [200] * 12 + [429]
    clock.now += 60  # the next minute
    assert check(client, "192.0.2.99")[0] == 200


def test_a_code_in_a_message_counts_against_the_notice_checks_limits(
    client: TestClient, services: Services, clock: FakeClock
) -> None:
    """Guessing codes through the checker is no way round /verifier's limits: the
    failures of one address, here and there, add up."""
    notice = sent_notices(services)[0]
    robot = "203.0.113.66"
    for n in range(2):
        status, body, _ = check(
            client, robot, text=forged_notice(notice, made_up_code(services, n))
        )
        assert status == 200, body
        assert "notice_code_unknown" in codes(body)
    for n in range(2, 4):
        answer = client.post(
            "/api/v1/notices/verify",
            json={"code": made_up_code(services, n), "last_name": "Dupont"},
            headers={"X-Forwarded-For": robot},
        )
        assert answer.json() == {"genuine": False}
    # Four failures from this address: the next code waits, on either door.
    status, body, headers = check(
        client, robot, text=forged_notice(notice, made_up_code(services, 9))
    )
    assert (status, body["error"]) == (429, "too_many_attempts")
    assert int(headers["retry-after"]) >= 1
    verify = client.post(
        "/api/v1/notices/verify",
        json={"code": notice.code, "last_name": notice.last_name},
        headers={"X-Forwarded-For": robot},
    )
    assert verify.status_code == 429
    # A message without a code is judged as usual, and another address's code too.
    assert check(client, robot)[0] == 200
    status, body, _ = check(client, "198.51.100.20", channel="email", text=notice.text)
    assert status == 200
    assert "notice_code_genuine" in codes(body)


# -- nothing kept but counts ------------------------------------------------------------------


def _everything_stored(services: Services) -> str:
    dump = []
    for engine, metadata in (
        (services.engine, Base.metadata),
        (services.audit_engine, AuditBase.metadata),
    ):
        with engine.connect() as connection:
            for table in metadata.sorted_tables:
                dump += [repr(tuple(row)) for row in connection.execute(select(table))]
    return "\n".join(dump)


def test_nothing_is_kept_but_anonymous_counts(client: TestClient, services: Services) -> None:
    address = "198.51.100.42"
    before = _everything_stored(services)
    with capture_logs() as logs:
        for channel in ("sms", "email", "sms"):
            status, _, _ = check(
                client,
                address,
                channel=channel,
                sender=f"{MARKER}@exemple.fr",
                subject=f"Objet {MARKER}",
                text=f"{FAKE_CARTE_VITALE_SMS} {MARKER}",
            )
            assert status == 200
        page = client.post(
            PAGE,
            data={"channel": "sms", "sender": MARKER, "subject": "", "text": f"Bonjour {MARKER}"},
            headers={"X-Forwarded-For": address},
        )
        assert page.status_code == 200
        assert check(client, address, text=f"{MARKER}\x00")[0] == 422
    after = _everything_stored(services)
    assert MARKER not in after
    assert address not in after
    with services.sessions() as session:
        rows = session.scalars(select(MessageCheckCount)).all()
    today = datetime.now(UTC).date()
    counted = {(r.day, r.door, r.channel, r.verdict): r.checks for r in rows}
    assert counted[(today, "api", "sms", "phishing")] == 2
    assert counted[(today, "api", "email", "phishing")] == 1
    assert sum(v for (_, door, _, _), v in counted.items() if door == "page") == 1
    assert sum(counted.values()) == 4  # the refused message is not a verdict
    # The only rows added anywhere are the counts.
    added = set(after.splitlines()) - set(before.splitlines())
    assert len(added) == len(rows)
    # The logs say which door and which verdict, never what, who or from where.
    logged = json.dumps(logs, default=str)
    assert MARKER not in logged
    assert address not in logged
    checked = [e for e in logs if e["event"] == "message_checked"]
    assert [set(e) - {"log_level"} for e in checked] == [{"event", "door", "verdict"}] * 4
    requests = [e for e in logs if e["event"] == "request" and e["route"] in (CHECK, PAGE)]
    assert requests
    assert all(e["client"] is None for e in requests)


def test_counts_add_up_under_concurrent_checks(services: Services) -> None:
    """Workers share a row: the upsert adds one atomically (threads on one database)."""

    def one(_: int) -> None:
        count_check(services.engine, door="api", channel="sms", verdict="suspicious")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, range(40)))
    counts = read_counts(services.engine)
    assert [(c.door, c.channel, c.verdict, c.checks) for c in counts] == [
        ("api", "sms", "suspicious", 40)
    ]


# -- the page ---------------------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def ids(self) -> set[str]:
        return {attrs["id"] for _, attrs in self.tags if "id" in attrs}

    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


def parsed(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def assert_accessible_form(page: _Page) -> None:
    """Every control has a label (the radios in a fieldset with a legend), every
    description it points to exists, one h1."""
    labels = {attrs["for"] for attrs in page.all("label")}
    controls = page.all("input") + page.all("textarea")
    assert {c["name"] for c in controls} == {"channel", "sender", "subject", "text"}
    for attrs in controls:
        assert attrs["id"] in labels
        if "aria-describedby" in attrs:
            assert set(attrs["aria-describedby"].split()) <= page.ids()
    assert page.all("legend")
    assert len(page.all("h1")) == 1
    assert page.all("form") == [{"method": "post", "action": PAGE}]


def test_the_page_is_french_accessible_self_contained_and_sets_no_cookie(
    client: TestClient, services: Services
) -> None:
    answer = client.get(PAGE)
    assert answer.status_code == 200
    assert "set-cookie" not in answer.headers
    csp = answer.headers["content-security-policy"]
    assert "script-src 'none'" in csp
    assert answer.headers["cache-control"] == "no-store"
    html = answer.text
    assert '<html lang="fr">' in html
    page = parsed(html)
    assert_accessible_form(page)
    assert not page.all("script")
    assert "//" not in html  # nothing from elsewhere, no link out of the site
    assert [a["href"] for a in page.all("link")] == ["/assets/rempart.css"]
    assert "/verifier" in [a["href"] for a in page.all("a")]
    assert "<title>Vérifier un message" in html
    text = page.words()
    for advice in (
        "coordonnées bancaires",
        "gratuits",
        "33700",
        services.settings.organization_website,
    ):
        assert advice in text, advice
    # And the notice check links here.
    verifier = parsed(client.get("/verifier").text)
    assert PAGE in [a["href"] for a in verifier.all("a")]


def test_the_form_answers_with_the_verdict_the_score_every_reason_and_the_genuine_channel(
    client: TestClient,
) -> None:
    api = client.post(
        CHECK, json={"channel": "sms", "sender": "38000", "text": FAKE_CARTE_VITALE_SMS}
    ).json()
    answer = client.post(
        PAGE,
        data={"channel": "sms", "sender": "38000", "subject": "", "text": FAKE_CARTE_VITALE_SMS},
    )
    assert answer.status_code == 200
    assert "set-cookie" not in answer.headers
    assert "<title>Message frauduleux" in answer.text
    page = parsed(answer.text)
    text = page.words()
    assert "Ce message est très probablement une fraude" in text
    assert f"Indice de risque : {api['score']} sur 100" in text
    for reason in api["reasons"]:
        assert " ".join(reason["text"].split()) in text
    assert "Le canal officiel" in text
    assert FAKE_CARTE_VITALE_SMS not in answer.text  # not shown back once answered
    assert_accessible_form(page)


def test_the_form_ties_each_error_to_its_field(client: TestClient) -> None:
    answer = client.post(
        PAGE, data={"channel": "sms", "sender": "<b>x</b>\x07", "subject": "", "text": "bonjour"}
    )
    assert answer.status_code == 422
    assert "<title>Erreur" in answer.text
    assert "<b>" not in answer.text  # what was typed comes back escaped
    page = parsed(answer.text)
    assert_accessible_form(page)
    by_name = {
        a["name"]: a for a in page.all("input") + page.all("textarea") if a["name"] != "channel"
    }
    assert by_name["sender"]["aria-invalid"] == "true"
    assert "sender-erreur" in by_name["sender"]["aria-describedby"].split()
    assert "aria-invalid" not in by_name["text"]
    assert "#sender" in [a["href"] for a in page.all("a")]

    empty = client.post(
        PAGE, data={"channel": "email", "sender": "", "subject": "Objet", "text": ""}
    )
    assert empty.status_code == 422
    page = parsed(empty.text)
    by_name = {
        a["name"]: a for a in page.all("input") + page.all("textarea") if a["name"] != "channel"
    }
    assert by_name["text"]["aria-invalid"] == "true"
    assert "collez le texte du message reçu" in page.words()
    # What was typed stays: the subject, and the channel chosen.
    assert by_name["subject"]["value"] == "Objet"
    checked = [a["value"] for a in page.all("input") if a["name"] == "channel" and "checked" in a]
    assert checked == ["email"]

    broken = client.post(
        PAGE,
        content=b"channel=sms&channel=email&text=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert broken.status_code == 400
    assert "le formulaire envoyé n'a pas pu être lu" in parsed(broken.text).words()


def test_a_throttled_form_says_how_long_to_wait_and_keeps_the_text(
    client: TestClient, clock: FakeClock
) -> None:
    fields = {"channel": "sms", "sender": "", "subject": "", "text": "Votre colis est en attente"}
    for _ in range(5):
        assert (
            client.post(PAGE, data=fields, headers={"X-Forwarded-For": "198.51.100.9"}).status_code
            == 200
        )
    answer = client.post(PAGE, data=fields, headers={"X-Forwarded-For": "198.51.100.9"})
    assert answer.status_code == 429
    assert 1 <= int(answer.headers["retry-after"]) <= 300
    text = parsed(answer.text).words()
    assert "Trop de vérifications" in text
    assert "Réessayez dans 5 minutes" in text
    assert "Votre colis est en attente" in answer.text


# -- the command ------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli_env(settings: Settings, services: Services) -> dict[str, str]:
    """The command on the test's migrated database and data folder (the same keys)."""
    return {
        "REMPART_DATABASE_URL": services.engine.url.render_as_string(hide_password=False),
        "REMPART_DATA_DIR": str(settings.data_dir),
    }


def test_the_command_prints_the_verdict_and_the_french_reasons(
    cli_env: dict[str, str], client: TestClient
) -> None:
    api = client.post(
        CHECK, json={"channel": "sms", "sender": "38000", "text": FAKE_CARTE_VITALE_SMS}
    ).json()
    result = runner.invoke(
        cli_app,
        ["messages", "check", "--sender", "38000"],
        input=FAKE_CARTE_VITALE_SMS,
        env=cli_env,
    )
    assert result.exit_code == 0, result.output
    assert "verdict: phishing" in result.stdout
    assert f"score {api['score']}/100" in result.stdout
    flat = " ".join(result.stdout.split())
    for reason in api["reasons"]:
        assert reason["code"] in flat
    as_json = runner.invoke(
        cli_app,
        ["messages", "check", "--sender", "38000", "--json"],
        input=FAKE_CARTE_VITALE_SMS,
        env=cli_env,
    )
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == api


def test_the_command_reads_a_whole_eml(cli_env: dict[str, str], services: Services) -> None:
    notice: SentNotice = sent_notices(services)[0]
    result = runner.invoke(cli_app, ["messages", "check", "--json"], input=notice.eml, env=cli_env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert_verdict_shape(body)
    assert "notice_code_genuine" in codes(body)
    assert body["verdict"] == "genuine-looking"


def test_the_command_reads_text_that_is_not_utf8(cli_env: dict[str, str]) -> None:
    latin1 = "Remboursement de 23,50 € effectué sur votre compte.".encode("cp1252")
    result = runner.invoke(cli_app, ["messages", "check", "--json"], input=latin1, env=cli_env)
    assert result.exit_code == 0, result.output
    assert_verdict_shape(json.loads(result.stdout))


@pytest.mark.parametrize(
    ("args", "stdin", "error"),
    [
        ([], b"", "empty_message"),
        ([], b"\x00\x01\x02binary", "binary_message"),
        (["--channel", "fax"], b"bonjour", "invalid_channel"),
        (["--sender", "a\x07b"], b"bonjour", "invalid_field"),
    ],
)
def test_the_command_refuses_bad_input_with_its_code(
    cli_env: dict[str, str], args: list[str], stdin: bytes, error: str
) -> None:
    result = runner.invoke(cli_app, ["messages", "check", *args], input=stdin, env=cli_env)
    assert result.exit_code == 1
    assert f"[{error}]" in result.stderr
    assert not result.stdout


def test_the_command_refuses_a_message_too_large(
    cli_env: dict[str, str], settings: Settings
) -> None:
    body = b"a" * (settings.messages_max_bytes + 10)
    result = runner.invoke(cli_app, ["messages", "check"], input=body, env=cli_env)
    assert result.exit_code == 1
    assert "[message_too_large]" in result.stderr


def test_stats_show_the_counts_of_every_door(cli_env: dict[str, str], client: TestClient) -> None:
    runner.invoke(cli_app, ["messages", "check"], input=FAKE_CARTE_VITALE_SMS, env=cli_env)
    check(client)
    client.post(
        PAGE, data={"channel": "sms", "sender": "", "subject": "", "text": FAKE_CARTE_VITALE_SMS}
    )
    result = runner.invoke(cli_app, ["messages", "stats", "--json"], env=cli_env)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    today = datetime.now(UTC).date().isoformat()
    assert {(r["day"], r["door"], r["channel"], r["verdict"], r["checks"]) for r in rows} == {
        (today, door, "sms", "phishing", 1) for door in ("cli", "api", "page")
    }
    table = runner.invoke(cli_app, ["messages", "stats"], env=cli_env)
    assert table.exit_code == 0
    assert "total" in table.stdout
