"""Describing and closing an incident in the console, on the real app and database: what
the DPO states reaches the stored incident, the audit trail (operator named) and the CNIL
notification; wrong input is refused in French with what was typed kept; a closed
incident refuses any change; other roles and forged forms change nothing."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from rempart.audit.models import AuditEvent
from rempart.audit.trail import now_us
from rempart.guard.alerts import raise_alert
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Incident, IncidentTransition
from tests.functional.breach_world import ROBOT_ACCOUNT, Insuree, build_breach
from tests.functional.console_helpers import (
    OperatorLogin,
    logged_in,
    make_operator,
)
from tests.functional.console_helpers import (
    post_form as post,
)

CAUSE = "Identifiants d'une pharmacie obtenus par hameçonnage\r\npuis rejoués par un robot."
STORED_CAUSE = CAUSE.replace("\r\n", "\n")


def shown(response: httpx.Response) -> str:
    return html.unescape(response.text)


def stored(services: Services, incident_id: int) -> Incident:
    with services.sessions() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        session.expunge(incident)
        return incident


def audited(services: Services, incident_id: int) -> list[tuple[str, str]]:
    with services.audit_engine.connect() as connection:
        rows = connection.execute(
            select(AuditEvent.event, AuditEvent.reasons)
            .where(AuditEvent.session_id == f"incident:{incident_id}")
            .order_by(AuditEvent.seq)
        ).all()
    return [(event, reasons) for event, reasons in rows]


def open_incident(services: Services, client: TestClient) -> int:
    with session_scope(services.sessions) as session:
        alert_id = raise_alert(
            session,
            account_id=ROBOT_ACCOUNT,
            session_id="robot-session",
            decision="deny",
            score=0.97,
            reasons=("volume", "unknown_patients"),
            audit_ts_us=now_us(),
        )
    opened = post(
        client, "/console/incidents/ouvrir", {"name": "Robot en pharmacie", "alert": str(alert_id)}
    )
    assert opened.status_code == 303, opened.text
    found = re.match(r"^/console/incidents/(\d+)", opened.headers["location"])
    assert found
    return int(found.group(1))


def report_field(document: dict[str, Any], section: str, key: str) -> Any:
    return next(f for f in document["sections"][section]["fields"] if f["key"] == key)


@pytest.fixture
def breach(services: Services) -> list[Insuree]:
    return build_breach(services)


@pytest.fixture
def dpo(services: Services) -> OperatorLogin:
    return make_operator(services, "dora.dpo", "dpo")


def test_dpo_describes_an_incident_and_the_cnil_notification_says_it(
    services: Services, breach: list[Insuree], dpo: OperatorLogin
) -> None:
    with logged_in(services, dpo) as client:
        incident_id = open_incident(services, client)
        page = shown(client.get(f"/console/incidents/{incident_id}"))
        # The form is pre-filled with what is stored (here the discovery open() deduced).
        discovery = stored(services, incident_id).discovery
        assert discovery.startswith("Alerte(s) du garde-fou")
        assert 'name="discovery" rows="4" maxlength="4000"' in page
        assert f"\n{discovery}</textarea>" in page
        assert "Non renseignée (la notification à la CNIL l'indiquera ainsi)." in page

        described = post(
            client,
            f"/console/incidents/{incident_id}/decrire",
            {
                "cause": CAUSE,
                "discovery": discovery,
                "delay_reason": "",
                "planned": "Authentification à deux facteurs pour les pharmacies\r\n\r\n"
                "Campagne de sensibilisation à l'hameçonnage",
                "recipients": "known",
                "malicious": "non",
                "integrity": "",
                "availability": "",
            },
        )
        assert described.status_code == 303, described.text
        page = shown(client.get(described.headers["location"]))
        assert "Description enregistrée." in page
        assert STORED_CAUSE in page
        assert "<li>Campagne de sensibilisation à l'hameçonnage</li>" in page
        assert "Destinataires des données : Des destinataires connus et identifiés" in page
        assert "Intention malveillante : Non : erreur sans intention de nuire" in page
        assert "Les autres circonstances sont déduites de la définition" in page

        incident = stored(services, incident_id)
        assert incident.cause == STORED_CAUSE
        assert incident.discovery == discovery
        assert json.loads(incident.planned_measures) == [
            "Authentification à deux facteurs pour les pharmacies",
            "Campagne de sensibilisation à l'hameçonnage",
        ]
        assert json.loads(incident.circumstances) == {"malicious": False, "recipients": "known"}
        assert ("incident_described", f"operator:{dpo.login}") in audited(services, incident_id)

        # The notification written afterwards carries what the DPO stated.
        assert post(client, f"/console/incidents/{incident_id}/evaluer").status_code == 303
        assert post(client, f"/console/incidents/{incident_id}/notification").status_code == 303
        document = json.loads(
            client.get(f"/console/incidents/{incident_id}/notification.json").text
        )
        assert report_field(document, "nature", "cause")["value"] == STORED_CAUSE
        assert report_field(document, "nature", "malicious")["value"] is False
        assert document["sections"]["measures"]["data"]["planned"] == json.loads(
            incident.planned_measures
        )

        # Measures are added, never rewritten; an emptied text erases the stored one.
        again = post(
            client,
            f"/console/incidents/{incident_id}/decrire",
            {"cause": "  ", "planned": "Revue des habilitations"},
        )
        assert again.status_code == 303
        incident = stored(services, incident_id)
        assert incident.cause == ""
        assert incident.discovery == discovery, "a field absent from the post is kept"
        assert json.loads(incident.planned_measures)[-1] == "Revue des habilitations"
        assert len(json.loads(incident.planned_measures)) == 3
        assert json.loads(incident.circumstances) == {"malicious": False, "recipients": "known"}
        page = shown(client.get(f"/console/incidents/{incident_id}"))
        assert "Non renseignée (la notification à la CNIL l'indiquera ainsi)." in page
        # A stated circumstance is pre-selected and no longer offers the default.
        assert '<option value="known" selected>' in page
        assert page.count("Déduite de la définition (par défaut)") == 2


def test_wrong_descriptions_are_refused_in_french_and_kept(
    services: Services, breach: list[Insuree], dpo: OperatorLogin
) -> None:
    with logged_in(services, dpo) as client:
        incident_id = open_incident(services, client)
        post(client, f"/console/incidents/{incident_id}/decrire", {"cause": "Hameçonnage."})
        before = stored(services, incident_id)
        events = audited(services, incident_id)

        # 4,000 characters pass (a CRLF counts as one), 4,001 do not.
        fits = "x" * 3998 + "\r\ny"
        assert (
            post(
                client, f"/console/incidents/{incident_id}/decrire", {"delay_reason": fits}
            ).status_code
            == 303
        )
        assert len(stored(services, incident_id).delay_reason) == 4000

        typed = "Une cause très détaillée. " * 200
        refused = post(
            client,
            f"/console/incidents/{incident_id}/decrire",
            {"cause": typed, "planned": "Mesure gardée", "recipients": "everyone"},
        )
        assert refused.status_code == 422
        page = shown(refused)
        assert "<title>Erreur : Incident n° " in page
        assert "La description n'a pas été enregistrée" in page
        count = f"{len(typed):,}".replace(",", "\u00a0")
        assert f"Texte trop long : {count} caractères pour 4\u00a0000 au plus." in page
        assert "Choisissez une valeur de la liste." in page
        assert 'aria-describedby="description-cause-aide description-cause-erreur"' in page
        assert 'aria-invalid="true"' in page
        assert typed in page, "what was typed is shown back"
        assert f"\n{before.discovery}</textarea>" in page, "a field not posted shows what is kept"
        assert "\nMesure gardée</textarea>" in page

        for data in (
            {"cause": "Hameçonnage\x07 par SMS"},
            {"discovery": "Vu par \u202eresiv"},
            {"planned": "x" * 501},
            {"planned": "\n".join(f"Mesure {n}" for n in range(21))},
            {"malicious": "peut-être"},
        ):
            response = post(client, f"/console/incidents/{incident_id}/decrire", data)
            assert response.status_code == 422, data
            assert "Erreur : " in shown(response)
        control = post(client, f"/console/incidents/{incident_id}/decrire", {"cause": "a\x00b"})
        assert "caractère de contrôle invisible" in shown(control)

        after = stored(services, incident_id)
        assert after.cause == before.cause == "Hameçonnage."
        assert after.planned_measures == "[]"
        assert after.circumstances == "{}"
        assert len(audited(services, incident_id)) == len(events) + 1, "only the one that fit"

        missing = post(client, "/console/incidents/999999/decrire", {"cause": "x"})
        assert missing.status_code == 404
        assert "Cet incident n'existe pas." in shown(missing)


def test_closing_an_incident_ends_every_change(
    services: Services, breach: list[Insuree], dpo: OperatorLogin
) -> None:
    with logged_in(services, dpo) as client:
        incident_id = open_incident(services, client)
        page = shown(client.get(f"/console/incidents/{incident_id}"))
        assert f"/console/incidents/{incident_id}/clore" in page

        unconfirmed = post(
            client, f"/console/incidents/{incident_id}/clore", {"note": "Comptes rétablis"}
        )
        assert unconfirmed.status_code == 422
        assert "Cochez la case pour confirmer" in shown(unconfirmed)
        assert "\nComptes rétablis</textarea>" in shown(unconfirmed)
        assert stored(services, incident_id).status == "open"

        closed = post(
            client,
            f"/console/incidents/{incident_id}/clore",
            {"note": "Comptes rétablis, personnes informées", "confirmer": "oui"},
        )
        assert closed.status_code == 303
        page = shown(client.get(closed.headers["location"]))
        assert "Incident clos." in page
        assert "Cet incident est clos : il reste au registre et ne peut plus changer." in page
        for action in ("decrire", "clore", "evaluer", "ajouter"):
            assert f"/console/incidents/{incident_id}/{action}" not in page, action
        assert "Comptes rétablis, personnes informées" in page
        assert stored(services, incident_id).status == "closed"
        with services.sessions() as session:
            last = session.scalars(
                select(IncidentTransition)
                .where(IncidentTransition.incident_id == incident_id)
                .order_by(IncidentTransition.transition_id.desc())
            ).first()
        assert last is not None
        assert (last.status_to, last.operator) == ("closed", dpo.login)
        assert (
            "incident_closed",
            f"operator:{dpo.login}; Comptes rétablis, personnes informées",
        ) in audited(services, incident_id)

        refused = post(client, f"/console/incidents/{incident_id}/decrire", {"cause": "Trop tard"})
        assert refused.status_code == 409
        assert "Cet incident est clos : il ne peut plus changer." in shown(refused)
        # Even a wrong form on a closed incident says why no change is possible.
        too_long = post(client, f"/console/incidents/{incident_id}/decrire", {"cause": "x" * 5000})
        assert too_long.status_code == 409
        assert "Cet incident est clos" in shown(too_long)
        twice = post(client, f"/console/incidents/{incident_id}/clore", {"confirmer": "oui"})
        assert twice.status_code == 409
        assert stored(services, incident_id).cause == ""


def test_other_roles_and_forged_forms_change_nothing(
    services: Services, breach: list[Insuree], dpo: OperatorLogin
) -> None:
    admin = make_operator(services, "adam.admin", "admin")
    with logged_in(services, dpo) as client:
        incident_id = open_incident(services, client)
        events = audited(services, incident_id)
        for path in ("decrire", "clore"):
            data = {"cause": "Forgée", "confirmer": "oui"}
            without = client.post(
                f"/console/incidents/{incident_id}/{path}", data=data, follow_redirects=False
            )
            assert without.status_code == 403, path
            forged = client.post(
                f"/console/incidents/{incident_id}/{path}",
                data={"csrf": "forged", **data},
                follow_redirects=False,
            )
            assert forged.status_code == 403, path
    with logged_in(services, admin) as client:
        assert client.get(f"/console/incidents/{incident_id}").status_code == 403
        for path in ("decrire", "clore"):
            response = post(
                client,
                f"/console/incidents/{incident_id}/{path}",
                {"cause": "Par l'administrateur", "confirmer": "oui"},
            )
            assert response.status_code == 403, path
            assert "Accès refusé" in shown(response)
    incident = stored(services, incident_id)
    assert (incident.status, incident.cause) == ("open", "")
    assert audited(services, incident_id) == events
