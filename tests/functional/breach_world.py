"""A small breach for the campaign tests: insured persons with every kind of contact
(good e-mail, invalid e-mail, postal address only, an address too long for the postal
standard, none at all, a minor, a person gone from the register), a robot's lookups of
them written to the real audit trail, and the incident opened and scoped from it by
the real service."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from sqlalchemy import func, select

from rempart.audit.chain import AuditEntry
from rempart.audit.trail import now_us
from rempart.incident.live_source import LiveSource
from rempart.incident.service import build_definition
from rempart.nir import make_nir, pseudonymize
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Account, Insured
from tests.functional.conftest import make_login

ROBOT_ACCOUNT = "ph-robot"
ALL = "nir,identity,treating_doctor,c2s,ame,ald"


@dataclass(frozen=True)
class Insuree:
    key: str
    """What the test calls them."""
    last_name: str
    first_name: str
    born: date
    email: str | None
    street: str
    postcode: str
    city: str
    categories: str = ALL
    ald: bool = False
    ame: bool = False
    channel: str = "email"
    """What the plan should decide: ``email``, ``letter`` or ``unreachable``."""
    in_register: bool = True
    nir: str = ""
    pseudonym: str = ""


def people() -> list[Insuree]:
    base = Insuree(
        key="",
        last_name="Lefèvre",
        first_name="Louise",
        born=date(1970, 4, 2),
        email="louise.lefevre@orange.example",
        street="7 route Christophe Prévost",
        postcode="07430",
        city="Saint-Tristan",
    )
    specs = [
        replace(base, key="ald", last_name="Dupont", ald=True),
        replace(
            base,
            key="identity",
            last_name="Martin",
            email="j.martin@free.example",
            categories="identity",
        ),
        replace(base, key="ame", last_name="N'Diaye", email="awa.ndiaye@sfr.example", ame=True),
        replace(
            base,
            key="bad-email",
            last_name="Bernard",
            email="pas une adresse@@example",
            channel="letter",
        ),
        replace(base, key="post", last_name="Petit", email=None, channel="letter"),
        replace(
            base,
            key="long-street",
            last_name="Robert",
            email=None,
            street="12 boulevard du Maréchal Jean-Marie de Lattre de Tassigny",
            channel="letter",
        ),
        replace(
            base,
            key="no-address",
            last_name="Richard",
            email=None,
            street="",
            postcode="",
            city="",
            channel="unreachable",
        ),
        replace(base, key="refused", last_name="Durand", email="refuse@laposte.example"),
        replace(
            base,
            key="minor",
            last_name="Moreau",
            first_name="Léo",
            born=date(2015, 6, 1),
            email="parents.moreau@gmail.example",
        ),
        replace(base, key="gone", last_name="Simon", channel="unreachable", in_register=False),
    ]
    specs += [
        replace(base, key=f"mail-{i}", last_name=f"Laurent{i}", email=f"laurent{i}@gmail.example")
        for i in range(8)
    ]
    specs += [
        replace(base, key=f"paper-{i}", last_name=f"Michel{i}", email=None, channel="letter")
        for i in range(4)
    ]
    return specs


def build_breach(services: Services, persons: list[Insuree] | None = None) -> list[Insuree]:
    """Insert the persons, make the robot read them (audit trail); returns them with
    their NIR and pseudonym."""
    persons = people() if persons is None else persons
    key = services.settings.keys.pseudonym_key
    done = []
    with session_scope(services.sessions) as session:
        # Orders follow those already loaded: a second breach gets NIRs of its own.
        already = session.scalar(select(func.count()).select_from(Insured)) or 0
        for order, person in enumerate(persons, start=already + 1):
            sex = 2 if person.first_name in ("Louise",) else 1
            nir = make_nir(
                sex=sex,
                year=person.born.year,
                month=person.born.month,
                department="07",
                commune="123",
                order=order,
            ).value
            pseudonym = pseudonymize(nir, key)
            if person.in_register:
                session.add(
                    Insured(
                        nir=nir,
                        birth_date=person.born,
                        sex=sex,
                        last_name=person.last_name,
                        first_name=person.first_name,
                        department="07",
                        treating_doctor=None,
                        c2s=False,
                        ame=person.ame,
                        ald=person.ald,
                        email=person.email,
                        street=person.street,
                        postcode=person.postcode,
                        city=person.city,
                        pseudonym=pseudonym,
                    )
                )
            done.append(replace(person, nir=nir, pseudonym=pseudonym))
    if not _has_account(services):
        make_login(services, "pharmacie.robot", account_id=ROBOT_ACCOUNT)
    read(services, done)
    return done


def read(services: Services, persons: list[Insuree], account: str = ROBOT_ACCOUNT) -> None:
    """The robot's lookups, as the service writes them when it answered with data."""
    start = now_us()
    services.audit.append(
        [
            AuditEntry(
                seq=0,
                ts_us=start + i,
                event="lookup",
                account_id=account,
                session_id="robot-session",
                client_ip="203.0.113.66",
                channel="portal",
                subject=person.pseudonym,
                found=1,
                categories=person.categories,
                decision="allow",
                outcome="ok",
            )
            for i, person in enumerate(persons)
        ]
    )


def _has_account(services: Services) -> bool:
    with services.sessions() as session:
        return session.get(Account, ROBOT_ACCOUNT) is not None


def open_and_scope(services: Services, accounts: tuple[str, ...] = (ROBOT_ACCOUNT,)) -> int:
    with session_scope(services.sessions) as session:
        definition = build_definition(session, accounts=accounts)
        incident = services.incidents.open(
            session, name="Robot sur un compte de pharmacie", definition=definition, operator="dpo"
        )
    services.incidents.scope(incident, LiveSource(services.audit_engine), operator="dpo")
    return incident
