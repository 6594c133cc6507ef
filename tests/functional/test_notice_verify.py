"""The public notice check, through the real app: the API, the page, the limits, the trail."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from rempart.audit.models import AuditEvent
from rempart.auth.throttle import CounterStore, MemoryCounterStore, RedisCounterStore
from rempart.config import Settings, load_settings
from rempart.nir import make_nir, pseudonymize
from rempart.notify.breach.codes import NoticeKeys, code_hash, derive_code, person_reference
from rempart.notify.breach.verify import NoticeCheckLimits, NoticeCheckThrottle
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Campaign, CampaignRecipient, Incident, Insured, NoticeMessage
from tests.conftest import FAST_HASHING
from tests.functional.conftest import PROXY

VERIFY = "/api/v1/notices/verify"
ROBOT = "198.51.100.66"


@dataclass(frozen=True)
class Notice:
    code: str
    last_name: str
    pseudonym: str


def _insured(order: int, last_name: str, key: bytes) -> Insured:
    nir = make_nir(sex=2, year=1970, month=5, department="75", commune="056", order=order)
    return Insured(
        nir=nir.value,
        birth_date=date(1970, 5, 1),
        sex=2,
        last_name=last_name,
        first_name="Camille",
        department="75",
        treating_doctor=None,
        c2s=False,
        ame=False,
        ald=False,
        email=f"personne{order}@exemple.fr",
        street="3 rue des Lilas",
        postcode="75011",
        city="Paris",
        pseudonym=pseudonymize(nir, key),
    )


@pytest.fixture
def notices(services: Services) -> list[Notice]:
    """An incident, its campaign, and two persons each sent an e-mail notice; a third
    person is insured but was never notified."""
    keys = NoticeKeys(services.settings.keys.notice_code_key)
    now = datetime.now(UTC)
    made = []
    with session_scope(services.sessions) as session:
        incident = Incident(
            name="Comptes de pharmacie compromis",
            definition="{}",
            opened_at=now,
            opened_by="dpo",
            aware_at=now,
        )
        session.add(incident)
        session.flush()
        campaign = Campaign(
            incident_id=incident.incident_id,
            kind="initial",
            scope_version=1,
            created_at=now,
            created_by="dpo",
            persons=2,
        )
        session.add(campaign)
        session.flush()
        people = [
            _insured(1, "Lefèvre-D'Arc", services.settings.keys.pseudonym_key),
            _insured(2, "Dupont", services.settings.keys.pseudonym_key),
            _insured(3, "Martin", services.settings.keys.pseudonym_key),
        ]
        session.add_all(people)
        session.flush()
        for person in people[:2]:
            assert person.pseudonym is not None
            recipient = CampaignRecipient(
                campaign_id=campaign.campaign_id,
                incident_id=incident.incident_id,
                pseudonym=person.pseudonym,
                reference=person_reference(keys, campaign.campaign_id, person.pseudonym),
                categories="nir,identity",
                first_us=0,
                last_us=0,
            )
            session.add(recipient)
            session.flush()
            code = derive_code(keys, campaign.campaign_id, person.pseudonym, "email")
            session.add(
                NoticeMessage(
                    recipient_id=recipient.recipient_id,
                    campaign_id=campaign.campaign_id,
                    channel="email",
                    state="sent",
                    code_hash=code_hash(keys, code),
                )
            )
            made.append(Notice(code, person.last_name, person.pseudonym))
    return made


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


class FakeClock:
    def __init__(self) -> None:
        self.now = float(int(time.time()) // 60 * 60 + 1)

    def __call__(self) -> float:
        return self.now


@contextmanager
def counter_store(request: pytest.FixtureRequest, name: str) -> Iterator[CounterStore]:
    """A throttle's store: in memory, or in the real Redis under a prefix of this test's
    own (removed afterwards), as ``request.param`` says."""
    if request.param == "memory":
        yield MemoryCounterStore()
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    prefix = f"test:{name}:{secrets.token_hex(6)}:"
    try:
        yield RedisCounterStore(client, prefix=prefix)
    finally:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        client.close()


def small_notice_throttle(store: CounterStore, clock: FakeClock) -> NoticeCheckThrottle:
    """The notice check's throttle with limits small enough to reach in a test."""
    return NoticeCheckThrottle(
        store,
        NoticeCheckLimits(
            window_seconds=600,
            address_checks=8,
            address_failures=4,
            network_failures=6,
            code_failures=3,
            global_failures_per_minute=10,
        ),
        secret=b"0123456789abcdef-test",
        clock=clock,
    )


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def clock(request: pytest.FixtureRequest, services: Services) -> Iterator[FakeClock]:
    """The verifier's throttle with small limits on a test clock, in memory or in the
    real Redis under a prefix of its own (removed afterwards)."""
    clock = FakeClock()
    with counter_store(request, "notice") as store:
        services.notice_verifier.throttle = small_notice_throttle(store, clock)
        yield clock


def check(
    client: TestClient, code: object, last_name: object, address: str = "203.0.113.5"
) -> tuple[int, dict[str, object], dict[str, str]]:
    answer = client.post(
        VERIFY, json={"code": code, "last_name": last_name}, headers={"X-Forwarded-For": address}
    )
    return answer.status_code, answer.json(), dict(answer.headers)


def checks_in_trail(services: Services) -> list[AuditEvent]:
    with Session(services.audit_engine) as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.event == "notice_check")
                .order_by(AuditEvent.ts_us, AuditEvent.shard, AuditEvent.seq)
            )
        )


def unknown_code(services: Services, n: int = 0) -> str:
    """A well-formed code of a notice that was never made (one per ``n``)."""
    keys = NoticeKeys(services.settings.keys.notice_code_key)
    return derive_code(keys, 999, f"nobody-{n}", "email")


# -- the API ----------------------------------------------------------------------------------


def test_a_genuine_notice_is_confirmed_and_nothing_more_is_said(
    client: TestClient, notices: list[Notice]
) -> None:
    for notice in notices:
        status, body, _ = check(client, notice.code, notice.last_name)
        assert (status, body) == (200, {"genuine": True})


def test_case_accents_spaces_and_separators_are_ignored(
    client: TestClient, notices: list[Notice]
) -> None:
    notice = notices[0]  # Lefèvre-D'Arc
    bare = notice.code.replace("-", "")
    for code, name in [
        (notice.code.lower(), "LEFEVRE D ARC"),
        (" ".join(bare[i : i + 3] for i in range(0, 12, 3)), "lef\u00e8vre-d\u2019arc"),
        (bare, "Lefevre d'Arc"),
    ]:
        assert check(client, code, name)[:2] == (200, {"genuine": True}), (code, name)


def test_an_unknown_code_and_another_persons_name_answer_alike(
    client: TestClient, services: Services, notices: list[Notice]
) -> None:
    dupont = notices[1]
    answers = [
        check(client, unknown_code(services), "Dupont")[:2],  # no such notice
        check(client, dupont.code, "Martin")[:2],  # insured, but not this notice's person
        check(client, dupont.code, "Dupond")[:2],  # one letter off
        check(client, notices[0].code, "Dupont")[:2],  # another notified person's name
    ]
    assert answers == [(200, {"genuine": False})] * 4


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "malformed_json"),
        (b"\xff\xfe", 400, "malformed_json"),
        (b'["H3NP-8RTX-2CWW", "Dupont"]', 422, "invalid_body"),
        (b'{"code": "H3NP-8RTX-2CWW"}', 422, "missing_field"),
        (b'{"code": 123456789012, "last_name": "Dupont"}', 422, "invalid_type"),
        (b'{"code": "H3NP-8RTX-2CWW", "last_name": ["Dupont"]}', 422, "invalid_type"),
        (b'{"code": "H3NP-8RTX-2CWW", "last_name": "Dupont", "nir": "1"}', 422, "unknown_field"),
        (b'{"code": "H3NP-8RTX-2CW0", "last_name": "Dupont"}', 422, "invalid_code"),
        (b'{"code": "H3NP-8RTX", "last_name": "Dupont"}', 422, "invalid_code"),
        (b'{"code": "' + b"K" * 5000 + b'", "last_name": "Dupont"}', 422, "invalid_code"),
        (b'{"code": "H3NP-8RTX-2CWW", "last_name": ""}', 422, "invalid_last_name"),
        (b'{"code": "H3NP-8RTX-2CWW", "last_name": " - \' "}', 422, "invalid_last_name"),
        (
            b'{"code": "H3NP-8RTX-2CWW", "last_name": "' + b"a" * 129 + b'"}',
            422,
            "invalid_last_name",
        ),
        (b'{"code": "H3NP-8RTX-2CWW", "last_name": "Du\\u0000pont"}', 422, "control_characters"),
    ],
)
def test_absurd_input_gets_a_clear_4xx_that_quotes_nothing(
    client: TestClient, notices: list[Notice], body: bytes, status: int, error: str
) -> None:
    answer = client.post(VERIFY, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    assert set(answer.json()) == {"error", "detail"}
    assert answer.json()["error"] == error
    for echoed in ("H3NP", "Dupont", "aaaa", "KKKK"):
        assert echoed not in answer.json()["detail"]


def test_a_body_that_is_not_json_is_refused_as_every_api_body(client: TestClient) -> None:
    answer = client.post(VERIFY, data={"code": "K7QM-4XPD-9TRW", "last_name": "Dupont"})
    assert answer.status_code == 415
    assert answer.json()["error"] == "unsupported_media_type"


def test_every_check_is_audited_without_the_code_or_the_name(
    client: TestClient, services: Services, notices: list[Notice], clock: FakeClock
) -> None:
    lefevre, dupont = notices
    assert check(client, lefevre.code, "lefevre-d'arc", "203.0.113.5")[1] == {"genuine": True}
    assert check(client, dupont.code, "Martin", "203.0.113.6")[1] == {"genuine": False}
    assert check(client, unknown_code(services), "Dupont", "203.0.113.6")[1] == {"genuine": False}
    assert check(client, dupont.code, "", "203.0.113.7")[0] == 422
    page = client.post(
        "/verifier",
        data={"code": dupont.code, "last_name": "Dupont"},
        headers={"X-Forwarded-For": "203.0.113.8", "User-Agent": "Navigateur/1.0"},
    )
    assert page.status_code == 200
    for i in range(4):  # the address's failures reach the limit (4), then one more
        check(client, unknown_code(services, i), "Martin", "192.0.2.9")
    assert check(client, unknown_code(services, 4), "Martin", "192.0.2.9")[0] == 429

    entries = checks_in_trail(services)
    assert [(e.outcome, e.client_ip, e.channel) for e in entries] == [
        ("genuine", "203.0.113.5", "api"),
        ("not_genuine", "203.0.113.6", "api"),
        ("not_genuine", "203.0.113.6", "api"),
        ("invalid", "203.0.113.7", "api"),
        ("genuine", "203.0.113.8", "page"),
        *[("not_genuine", "192.0.2.9", "api")] * 4,
        ("throttled", "192.0.2.9", "api"),
    ]
    assert [e.subject for e in entries[:5]] == [lefevre.pseudonym, "", "", "", dupont.pseudonym]
    assert all(e.subject == "" for e in entries[5:])
    assert entries[3].reasons == "error:invalid_last_name"
    assert entries[4].user_agent == "Navigateur/1.0"
    secrets_typed = [
        *(n.code for n in notices),
        *(n.code.replace("-", "") for n in notices),
        *(unknown_code(services, i) for i in range(5)),
        *(unknown_code(services, i).replace("-", "") for i in range(5)),
    ]
    for entry in entries:
        stored = " ".join(str(v) for v in vars(entry).values() if isinstance(v, str | int)).lower()
        for typed in secrets_typed:
            assert typed.lower() not in stored
        for name in ("lefevre", "lefèvre", "dupont", "martin"):
            assert name not in stored


# -- the limits -------------------------------------------------------------------------------


def test_one_address_gets_bounded_failures_then_waits_out_the_window(
    client: TestClient, services: Services, notices: list[Notice], clock: FakeClock
) -> None:
    dupont = notices[1]
    for i in range(4):
        assert check(client, unknown_code(services, i), "Dupont", ROBOT)[:2] == (
            200,
            {"genuine": False},
        )
    status, body, headers = check(client, dupont.code, "Dupont", ROBOT)
    assert (status, body["error"]) == (429, "too_many_attempts")
    assert 1 <= int(headers["retry-after"]) <= 600
    # Another subscriber carries on; the robot too once its failures age out.
    assert check(client, dupont.code, "Dupont", "203.0.113.77")[:2] == (200, {"genuine": True})
    clock.now += 601
    assert check(client, dupont.code, "Dupont", ROBOT)[:2] == (200, {"genuine": True})


def test_checks_per_address_are_bounded_even_when_they_succeed(
    client: TestClient, notices: list[Notice], clock: FakeClock
) -> None:
    for _ in range(8):
        assert check(client, notices[0].code, "Lefevre d'Arc", ROBOT)[0] == 200
    assert check(client, notices[0].code, "Lefevre d'Arc", ROBOT)[0] == 429


def test_names_guessed_for_one_code_are_bounded_across_addresses_and_say_nothing(
    client: TestClient, services: Services, notices: list[Notice], clock: FakeClock
) -> None:
    """A found letter's code tried with many names from many addresses: after the code's
    failures, the code waits, genuine or not (so a 429 tells nothing of it)."""
    for code in (notices[1].code, unknown_code(services)):
        for i in range(3):
            assert check(client, code, f"Nom{i}", f"198.51.{i}.1")[1] == {"genuine": False}
        assert check(client, code, "Dupont", "203.0.113.99")[0] == 429


def test_a_botnet_meets_the_global_limit(
    client: TestClient, services: Services, notices: list[Notice], clock: FakeClock
) -> None:
    """One guess per address, every address in a network of its own: the global limit
    (10 failures a minute) stops them all until the next minute."""
    for i in range(10):
        code = derive_code(NoticeKeys(services.settings.keys.notice_code_key), 7, str(i), "email")
        assert check(client, code, "Dupont", f"10.{i}.0.1")[0] == 200
    status, _, headers = check(client, notices[1].code, "Dupont", "203.0.113.200")
    assert status == 429
    assert 1 <= int(headers["retry-after"]) <= 60
    clock.now += 60
    assert check(client, notices[1].code, "Dupont", "203.0.113.200")[:2] == (200, {"genuine": True})


# -- the page -----------------------------------------------------------------------------------


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.h1 = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self.h1 += tag == "h1"

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def ids(self) -> set[str]:
        return {attrs["id"] for _, attrs in self.tags if "id" in attrs}


def parsed(html: str) -> PageParser:
    page = PageParser()
    page.feed(html)
    return page


def assert_accessible_form(page: PageParser) -> None:
    assert page.all("html") == [{"lang": "fr"}]
    assert page.h1 == 1
    labels = {attrs.get("for") for attrs in page.all("label")}
    inputs = [a for a in page.all("input") if a.get("type") != "hidden"]
    assert {a["name"] for a in inputs} == {"code", "last_name"}
    for attrs in inputs:
        assert attrs["id"] in labels
        assert attrs["autocomplete"]
        assert set(attrs["aria-describedby"].split()) <= page.ids()
    assert {a["autocomplete"] for a in inputs} == {"off", "family-name"}
    assert page.all("form") == [{"method": "post", "action": "/verifier"}]


def test_the_page_is_french_accessible_and_self_contained(
    client: TestClient, services: Services
) -> None:
    answer = client.get("/verifier")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    csp = answer.headers["content-security-policy"]
    directives = dict(d.strip().partition(" ")[::2] for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'none'"
    assert "unsafe-inline" not in csp
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"

    html = answer.text
    page = parsed(html)
    assert_accessible_form(page)
    # No script, no inline style, nothing from elsewhere, no link out of the site.
    assert not page.all("script")
    assert not page.all("style")
    assert all("style" not in attrs for _, attrs in page.tags)
    assert "http:" not in html
    assert "https:" not in html
    assert "//" not in html
    for attrs in page.all("a") + page.all("link"):
        assert attrs["href"].startswith(("/", "#"))
    assert [a["href"] for a in page.all("link")] == ["/assets/rempart.css"]

    text = " ".join(" ".join(page.text).split())
    for advice in (
        "coordonnées bancaires",
        "mot de passe",
        "numéro de sécurité sociale",
        "paiement",
        "gratuits",
        "33700",
        "internet-signalement.gouv.fr",
        "cybermalveillance.gouv.fr",
        "no-reply@rempart.example",
        services.settings.organization_website,
    ):
        assert advice in text, advice

    css = client.get("/assets/rempart.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "url(" not in css.text  # no font or image fetched from anywhere
    assert "@import" not in css.text


def test_the_form_answers_in_french(client: TestClient, notices: list[Notice]) -> None:
    dupont = notices[1]
    genuine = client.post("/verifier", data={"code": dupont.code, "last_name": "DUPONT"})
    assert genuine.status_code == 200
    assert "Cet avis est authentique" in genuine.text
    assert dupont.code not in genuine.text  # nothing typed is shown back once answered
    assert "<title>Avis authentique" in genuine.text

    wrong = client.post("/verifier", data={"code": dupont.code, "last_name": "Martin"})
    assert wrong.status_code == 200
    assert "Aucun avis ne correspond" in wrong.text
    assert_accessible_form(parsed(wrong.text))
    assert "content-security-policy" in wrong.headers


def test_the_form_ties_each_error_to_its_field(client: TestClient) -> None:
    answer = client.post("/verifier", data={"code": "O0O0-<b>", "last_name": ""})
    assert answer.status_code == 422
    assert answer.text.count("<b>") == 0  # what was typed comes back escaped
    assert "<title>Erreur" in answer.text
    page = parsed(answer.text)
    assert_accessible_form(page)
    by_name = {a["name"]: a for a in page.all("input")}
    for name in ("code", "last_name"):
        assert by_name[name]["aria-invalid"] == "true"
        assert f"{name}-erreur" in by_name[name]["aria-describedby"].split()
    assert by_name["code"]["value"] == "O0O0-<b>"
    text = " ".join(page.text)
    assert "ce n'est pas un code de vérification" in text
    assert "saisissez votre nom de famille" in text
    # The summary links to the fields, inside the page.
    assert {a["href"] for a in page.all("a")} >= {"#code", "#last_name"}


def test_a_throttled_form_says_how_long_to_wait(
    client: TestClient, services: Services, clock: FakeClock
) -> None:
    for i in range(4):
        client.post(
            "/verifier",
            data={"code": unknown_code(services, i), "last_name": "Dupont"},
            headers={"X-Forwarded-For": ROBOT},
        )
    answer = client.post(
        "/verifier",
        data={"code": unknown_code(services, 4), "last_name": "Dupont"},
        headers={"X-Forwarded-For": ROBOT},
    )
    assert answer.status_code == 429
    assert int(answer.headers["retry-after"]) >= 1
    assert "Trop de vérifications" in answer.text
    assert "Réessayez dans 10 minutes" in answer.text
