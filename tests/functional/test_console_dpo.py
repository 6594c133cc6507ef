"""The DPO's and administrator's console pages on the real app and database: an incident
opened from a guard alert, scoped, its CNIL notification read and downloaded, a campaign
planned, previewed, started in the background and seen done; a person's access history;
operators created and disabled; and each role kept to its pages."""

from __future__ import annotations

import html
import json
import re
import threading
import time

import httpx
import pyotp
import pytest
from sqlalchemy import select

from rempart.audit.models import AuditEvent
from rempart.audit.trail import now_us
from rempart.console.jobs import CampaignJobs, JobRunning
from rempart.guard.alerts import raise_alert
from rempart.incident.register import register_rows
from rempart.notify.breach.runner import RunReport
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Incident, Operator
from tests.functional.breach_world import ROBOT_ACCOUNT, Insuree, build_breach
from tests.functional.console_helpers import (
    OperatorLogin,
    form_token,
    logged_in,
    make_operator,
)
from tests.functional.console_helpers import (
    post_form as post,
)

_LOCATION = re.compile(r"^/console/(incidents|campagnes)/(\d+)(\?.*)?$")


def shown(response: httpx.Response) -> str:
    """A page's text as read (entities such as &#39; decoded)."""
    return html.unescape(response.text)


def created_id(response: httpx.Response) -> int:
    location = response.headers["location"]
    found = _LOCATION.match(location)
    assert found, location
    return int(found.group(2))


def robot_alert(services: Services) -> int:
    with session_scope(services.sessions) as session:
        return raise_alert(
            session,
            account_id=ROBOT_ACCOUNT,
            session_id="robot-session",
            decision="deny",
            score=0.97,
            reasons=("volume", "unknown_patients"),
            audit_ts_us=now_us(),
        )


@pytest.fixture
def breach(services: Services) -> list[Insuree]:
    return build_breach(services)


@pytest.fixture
def dpo(services: Services) -> OperatorLogin:
    return make_operator(services, "dora.dpo", "dpo")


@pytest.fixture
def analyst(services: Services) -> OperatorLogin:
    return make_operator(services, "alice.analyste", "analyst")


@pytest.fixture
def admin(services: Services) -> OperatorLogin:
    return make_operator(services, "adam.admin", "admin")


def test_dpo_goes_from_an_alert_to_a_finished_campaign(
    services: Services, breach: list[Insuree], dpo: OperatorLogin
) -> None:
    alert_id = robot_alert(services)
    with logged_in(services, dpo) as client:
        # No alert selected: a French error on the incidents page.
        refused = post(client, "/console/incidents/ouvrir", {"name": "Sans alerte"})
        assert refused.status_code == 422
        assert "Sélectionnez au moins une alerte" in shown(refused)

        opened = post(
            client,
            "/console/incidents/ouvrir",
            {"name": "Robot sur un compte de pharmacie", "alert": [str(alert_id)]},
        )
        assert opened.status_code == 303
        incident_id = created_id(opened)
        page = client.get(opened.headers["location"])
        assert page.status_code == 200
        assert f"n° {alert_id} (compte {ROBOT_ACCOUNT})" in shown(page)
        assert "Incident ouvert" in shown(page)

        scoped = post(client, f"/console/incidents/{incident_id}/evaluer")
        assert scoped.status_code == 303
        page = client.get(f"/console/incidents/{incident_id}")
        assert f"{len(breach)} personnes exposées" in shown(page)
        register = client.get("/console/incidents")
        assert "Robot sur un compte de pharmacie" in shown(register)

        # The notification: none yet, then written and marked in the register.
        assert client.get(f"/console/incidents/{incident_id}/notification.pdf").status_code == 404
        notification = client.get(f"/console/incidents/{incident_id}/notification")
        assert "Aucune notification n'a encore été établie" in shown(notification)
        made = post(client, f"/console/incidents/{incident_id}/notification")
        assert made.status_code == 303
        notification = client.get(f"/console/incidents/{incident_id}/notification")
        assert notification.status_code == 200
        assert "Type de notification" in shown(notification)
        assert "script-src 'none'" in notification.headers["content-security-policy"]
        assert "<script" not in shown(notification)
        assert "style=" not in shown(notification)
        pdf = client.get(f"/console/incidents/{incident_id}/notification.pdf")
        assert pdf.content.startswith(b"%PDF")
        assert pdf.headers["content-type"] == "application/pdf"
        assert (
            f'filename="notification-cnil-incident-{incident_id}.pdf"'
            in pdf.headers["content-disposition"]
        )
        document = json.loads(
            client.get(f"/console/incidents/{incident_id}/notification.json").text
        )
        assert document["incident"]["id"] == incident_id
        with services.sessions() as session:
            assert session.get(Incident, incident_id).status == "reported"  # type: ignore[union-attr]
            row = next(
                r
                for r in register_rows(services.incidents.register(session))
                if r.incident_id == incident_id
            )
        assert row.notified_at, "the register says the CNIL was notified"
        csv = client.get("/console/incidents/registre.csv")
        assert csv.status_code == 200
        assert "attachment" in csv.headers["content-disposition"]
        assert csv.content.startswith("\ufeff".encode())
        assert "Robot sur un compte de pharmacie" in csv.content.decode("utf-8-sig")

        # The campaign: planned, previewed, started in the background, seen done.
        planned = post(client, f"/console/incidents/{incident_id}/campagne")
        assert planned.status_code == 303
        campaign_id = created_id(planned)
        listing = client.get("/console/campagnes")
        assert f"/console/campagnes/{campaign_id}" in shown(listing)
        preview = client.get(f"/console/campagnes/{campaign_id}/apercu")
        assert preview.status_code == 200
        samples = re.findall(rf"/console/campagnes/{campaign_id}/apercu/([^\"]+)\"", preview.text)
        assert any(s.endswith(".txt") for s in samples)
        assert any(s.endswith(".pdf") for s in samples)
        text_sample = next(s for s in samples if s.endswith(".txt"))
        sample = client.get(f"/console/campagnes/{campaign_id}/apercu/{text_sample}")
        assert sample.status_code == 200
        assert sample.headers["content-type"].startswith("text/plain")
        letter = next(s for s in samples if s.endswith(".pdf"))
        assert client.get(f"/console/campagnes/{campaign_id}/apercu/{letter}").content.startswith(
            b"%PDF"
        )
        for wrong in ("..%2F..%2Fkeys.json", ".01-x.txt.tmp", "absent.txt"):
            response = client.get(f"/console/campagnes/{campaign_id}/apercu/{wrong}")
            assert response.status_code == 404

        started = post(client, f"/console/campagnes/{campaign_id}/lancer")
        assert started.status_code == 303
        deadline = time.monotonic() + 90
        while True:
            page = client.get(f"/console/campagnes/{campaign_id}")
            assert page.status_code == 200
            if "terminée" in shown(page) and "Envoi en cours" not in shown(page):
                break
            assert time.monotonic() < deadline, "the campaign did not finish"
            time.sleep(0.3)
        assert "<progress" in shown(page)
        assert "le total correspond au plan" in shown(page)
        assert "Actualiser" in shown(page)
    status = services.campaigns.status(campaign_id)
    assert status.status == "done"
    assert status.adds_up
    assert status.pending == 0
    assert status.persons == len(breach)
    expected = {"email": 0, "letter": 0, "unreachable": 0}
    for person in breach:
        expected[person.channel] += 1
    assert status.reached_email + status.reached_letter == expected["email"] + expected["letter"]
    assert sum(status.unreachable.values()) == expected["unreachable"]
    outbox = services.settings.resolved_data_dir / "outbox"
    assert len(list(outbox.rglob("*.eml"))) == status.reached_email
    with services.audit_engine.connect() as connection:
        events = set(connection.execute(select(AuditEvent.event, AuditEvent.reasons)).all())
    assert any(e == "campaign_started" and "operator:dora.dpo" in r for e, r in events)
    assert any(e == "incident_reported" and "operator:dora.dpo" in r for e, r in events)


def test_each_role_keeps_to_its_pages(
    services: Services,
    breach: list[Insuree],
    analyst: OperatorLogin,
    admin: OperatorLogin,
) -> None:
    alert_id = robot_alert(services)
    with logged_in(services, analyst) as client:
        opened = post(
            client, "/console/incidents/ouvrir", {"name": "Robot vu", "alert": str(alert_id)}
        )
        assert opened.status_code == 303
        incident_id = created_id(opened)
        page = client.get(f"/console/incidents/{incident_id}")
        assert page.status_code == 200
        assert "/notification" not in shown(page)
        for path in (
            f"/console/incidents/{incident_id}/notification",
            f"/console/incidents/{incident_id}/notification.pdf",
            f"/console/incidents/{incident_id}/notification.json",
            "/console/incidents/registre.csv",
            "/console/campagnes",
            "/console/campagnes/1",
            "/console/historique",
        ):
            response = client.get(path)
            assert response.status_code == 403, path
            assert "Accès refusé" in shown(response)
        for path in (
            f"/console/incidents/{incident_id}/notification",
            f"/console/incidents/{incident_id}/campagne",
            "/console/campagnes/1/lancer",
        ):
            assert post(client, path).status_code == 403, path
    with logged_in(services, admin) as client:
        for path in ("/console/incidents", f"/console/incidents/{incident_id}"):
            assert client.get(path).status_code == 403, path
        assert post(client, "/console/incidents/ouvrir", {"name": "x"}).status_code == 403
        assert client.get("/console/incidents/999999").status_code == 403


def test_unknown_ids_and_forged_forms(
    services: Services, dpo: OperatorLogin, breach: list[Insuree]
) -> None:
    with logged_in(services, dpo) as client:
        missing = client.get("/console/incidents/999999")
        assert missing.status_code == 404
        assert "Cet incident n'existe pas." in shown(missing)
        assert client.get("/console/campagnes/999999").status_code == 404
        assert client.get("/console/incidents/abc").status_code == 404
        unknown = post(
            client, "/console/incidents/ouvrir", {"name": "Fantôme", "comptes": "personne-9"}
        )
        assert unknown.status_code == 422
        assert "Un des comptes indiqués n'existe pas." in shown(unknown)
        forged = client.post(
            "/console/incidents/ouvrir",
            data={"csrf": "forged", "name": "x", "comptes": ROBOT_ACCOUNT},
            follow_redirects=False,
        )
        assert forged.status_code == 403
        # From account ids, like `rempart incident open --accounts`; then grown.
        opened = post(
            client, "/console/incidents/ouvrir", {"name": "Compte seul", "comptes": ROBOT_ACCOUNT}
        )
        incident_id = created_id(opened)
        not_scoped = post(client, f"/console/incidents/{incident_id}/campagne")
        assert not_scoped.status_code == 409
        assert "Évaluez d'abord le périmètre" in shown(not_scoped)
        grown = post(client, f"/console/incidents/{incident_id}/ajouter", {"comptes": "zz-none"})
        assert grown.status_code == 422


def test_access_history_shows_the_lookups_and_is_audited(
    services: Services, breach: list[Insuree], dpo: OperatorLogin
) -> None:
    person = breach[0]
    with logged_in(services, dpo) as client:
        form = client.get("/console/historique")
        assert form.status_code == 200
        token = form_token(form.text)
        result = client.post("/console/historique", data={"csrf": token, "nir": person.nir})
        assert result.status_code == 200
        assert result.headers["cache-control"] == "no-store"
        assert ROBOT_ACCOUNT in shown(result)
        assert "Consultations du dossier de la personne (1)" in shown(result)
        assert person.nir not in shown(result)
        later = client.post(
            "/console/historique",
            data={"csrf": token, "nir": person.nir, "depuis": "2999-01-01"},
        )
        assert "Consultations du dossier de la personne (0)" in shown(later)
        wrong_key = person.nir[:13] + ("00" if person.nir[13:] != "00" else "01")
        bad = client.post("/console/historique", data={"csrf": token, "nir": wrong_key})
        assert bad.status_code == 422
        assert "La clé du NIR ne correspond pas au numéro" in shown(bad)
        assert wrong_key not in shown(bad)
        short = client.post("/console/historique", data={"csrf": token, "nir": "1234"})
        assert short.status_code == 422
        assert "Un NIR compte 15 caractères" in shown(short)
    with services.audit_engine.connect() as connection:
        queries = connection.execute(
            select(AuditEvent.account_id, AuditEvent.subject).where(
                AuditEvent.event == "access_history"
            )
        ).all()
    assert (f"operator:{dpo.login}", person.pseudonym) in queries


def test_admin_creates_and_disables_operators(
    services: Services, admin: OperatorLogin, dpo: OperatorLogin
) -> None:
    with logged_in(services, admin) as client:
        page = client.get("/console/operateurs")
        assert page.status_code == 200
        assert "dora.dpo" in shown(page)
        weak = post(
            client,
            "/console/operateurs",
            {"login": "bruno.analyste", "role": "analyst", "password": "court"},
        )
        assert weak.status_code == 422
        assert "Mot de passe trop faible" in shown(weak)
        password = "une phrase de passe assez longue pour la console"
        created = post(
            client,
            "/console/operateurs",
            {"login": "bruno.analyste", "role": "analyst", "password": password},
        )
        assert created.status_code == 201
        uri = re.search(r"otpauth://[^<\s]+", created.text)
        assert uri, "the TOTP URI is shown once"
        again = client.get("/console/operateurs")
        assert "otpauth://" not in shown(again)
        twice = post(
            client,
            "/console/operateurs",
            {"login": "bruno.analyste", "role": "analyst", "password": password},
        )
        assert twice.status_code == 422
        assert "Un opérateur porte déjà cet identifiant." in shown(twice)
        newcomer = OperatorLogin(
            "bruno.analyste",
            "analyst",
            password,
            pyotp.TOTP(pyotp.parse_uri(uri.group(0).replace("&amp;", "&")).secret),
        )
        with logged_in(services, newcomer) as other:
            assert other.get("/console/").status_code == 200
            assert post(client, "/console/operateurs/adam.admin/desactiver").status_code == 409
            disabled = post(client, "/console/operateurs/bruno.analyste/desactiver")
            assert disabled.status_code == 303
            ended = other.get("/console/", follow_redirects=False)
            assert ended.status_code == 303
            assert ended.headers["location"].startswith("/console/connexion")
        missing = post(client, "/console/operateurs/personne/desactiver")
        assert missing.status_code == 404
        configuration = client.get("/console/configuration")
        assert configuration.status_code == 200
        assert "Garde-fou actif" in shown(configuration)
        assert services.settings.database_url not in shown(configuration)
        assert services.settings.keys.token_secret.hex() not in shown(configuration)
    with services.sessions() as session:
        assert session.get(Operator, "bruno.analyste").status == "disabled"  # type: ignore[union-attr]
    with services.audit_engine.connect() as connection:
        events = connection.execute(
            select(AuditEvent.event, AuditEvent.account_id, AuditEvent.reasons)
        ).all()
    assert ("console_operator_disabled", "operator:adam.admin", "operator:bruno.analyste") in events
    with logged_in(services, dpo) as client:
        assert client.get("/console/operateurs").status_code == 403
        assert client.get("/console/configuration").status_code == 403


def test_a_running_campaign_cannot_start_twice() -> None:
    jobs = CampaignJobs()
    release = threading.Event()

    def slow() -> RunReport:
        release.wait(10)
        return RunReport(emailed=1)

    jobs.start(7, "dora.dpo", slow)
    with pytest.raises(JobRunning):
        jobs.start(7, "dora.dpo", slow)
    release.set()
    assert jobs.wait(7, 10)
    job = jobs.get(7)
    assert job is not None
    assert job.report is not None
    assert job.error_code is None

    def broken() -> RunReport:
        raise RuntimeError("smtp gone")

    jobs.start(7, "dora.dpo", broken)  # a finished run may start again
    assert jobs.wait(7, 10)
    failed = jobs.get(7)
    assert failed is not None
    assert failed.error_code == "RuntimeError"
    assert not failed.running
