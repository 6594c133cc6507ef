"""The severity of a breach by the ENISA method, and the Article 33 and 34 decisions.

The method is ENISA's "Recommendations for a methodology of the assessment of
severity of personal data breaches" (working document v1.0, December 2013)::

    SE = DPC * EI + CB

- **DPC** (data processing context), 1 to 4: each kind of data present gets the
  base score of its class (simple 1, behavioural 2, financial 3, sensitive 4),
  adjusted by the method's contextual factors (volume, characteristics of the
  controller or of the individuals, invalidity, public availability, nature of
  the data), then bounded to [1, 4]; the DPC is the highest of those scores.
- **EI** (ease of identification): 0.25 negligible, 0.5 limited, 0.75 significant,
  1 maximum.
- **CB** (circumstances of the breach), added: loss of confidentiality (+0.25
  known recipients, +0.5 unknown recipients), of integrity and of availability
  (+0 / +0.25 / +0.5 each), malicious intent (+0.5).
- Bands: low < 2 ≤ medium < 3 ≤ high < 4 ≤ very high.

Everything the method leaves to the controller's judgement is decided once, in
the tables below, each with the reason the report prints (French, as the CNIL
reads it). The choices for a rights lookup:

- identity (names, birth date, sex) and the declared treating doctor are
  *simple* data (1): they say who the person is, not how they live;
- C2S reveals a low income (below the C2S ceiling): *financial* (3), kept at the
  base: a real insight into the financial situation (not a mere customer
  relation, which the method lowers by 1 or 2), but no amount, account or means
  of payment that would enable fraud (which it raises by 1);
- ALD reveals a long-term illness, health data under GDPR Art. 9: *sensitive* (4),
  kept at the base: the status states a serious illness as a fact about a named
  person, it is not a mere assumption (which the method lowers);
- AME reveals an irregular residence status: not in the Art. 9 list, but
  *assimilated to sensitive* (4): its disclosure exposes the person to harms as
  grave as Art. 9 data (removal proceedings, exploitation, blackmail,
  discrimination) and it suggests a foreign origin;
- the NIR is a context adjustment (+1 on every kind present): a national
  identifier whose use French law restricts (GDPR Art. 87; décret n° 2019-341),
  the key to the person's health and social files, and the lever of identity
  fraud and of credible phishing ("your Carte Vitale", the 2022 SMS campaign);
- vulnerable individuals (minors, people over 75) are the method's "special
  characteristics of the individuals" (+1): +1 and not the method's +3, which is
  for data critical to the person's safety, which a rights lookup does not hold.

A kind counts only when at least one person's exposure revealed it, and the
contextual factors apply to the whole breach as soon as one person carries them
(the conservative reading: the report counts how many persons each concerns).

The circumstances follow the incident's definition: an incident defined by
accounts, networks, sessions or guard alerts is, in Rempart, an unauthorised use
of an access (a compromised account, a stolen session), so by default the data
went to **unknown recipients** with **malicious intent**. A lookup service only
reads: integrity and availability are not lost. An incident of another nature
(a professional's mistake, data seen by known people) says so with ``rempart
incident describe ID --recipients known --not-malicious``, kept in
``facts.extra["circumstances"]``: ``{"recipients": "none" | "known" | "unknown",
"malicious": bool, "integrity": "none" | "recoverable" | "lost", "availability":
"none" | "temporary" | "permanent"}`` (keys omitted keep the default).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from rempart.errors import RempartError
from rempart.incident.summary import IncidentFacts

__all__ = [
    "BANDS",
    "CLASS_LABEL",
    "DATA_KINDS",
    "Band",
    "CategoryScore",
    "Decision",
    "Factor",
    "InvalidCircumstances",
    "Severity",
    "assess",
    "band_of",
    "check_circumstances",
    "cnil_decision",
    "people_decision",
]

DPC_MIN, DPC_MAX = 1, 4
TIMES = "\N{MULTIPLICATION SIGN}"


class Band(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    VERY_HIGH = "very_high"


BANDS: tuple[tuple[float, Band, str], ...] = (
    (2.0, Band.LOW, "faible"),
    (3.0, Band.MEDIUM, "moyenne"),
    (4.0, Band.HIGH, "élevée"),
    (float("inf"), Band.VERY_HIGH, "très élevée"),
)
"""(upper bound, excluded; band; French label): low < 2 ≤ medium < 3 ≤ high < 4 ≤ very high."""

CLASS_BASE = {"simple": 1, "behavioural": 2, "financial": 3, "sensitive": 4}
CLASS_LABEL = {
    "simple": "données simples",
    "behavioural": "données comportementales",
    "financial": "données financières",
    "sensitive": "données sensibles",
}


@dataclass(frozen=True)
class DataKind:
    """One kind of data a lookup returns, classified once for the method."""

    key: str
    label: str
    source: str
    """``category`` (``scope.by_category``) or ``reveal`` (``scope.by_reveal``)."""
    source_key: str
    enisa_class: str
    nature: int
    """The method's adjustment for the nature of this data (0: kept at the base)."""
    why: str


DATA_KINDS: tuple[DataKind, ...] = (
    DataKind(
        "identity",
        "Identité (nom, prénom, date de naissance, sexe)",
        "category",
        "identity",
        "simple",
        0,
        "L'identité dit qui est la personne, pas comment elle vit : données simples (1).",
    ),
    DataKind(
        "treating_doctor",
        "Médecin traitant déclaré",
        "category",
        "treating_doctor",
        "simple",
        0,
        "Le médecin traitant déclaré (nom et RPPS) ne dit rien de l'état de santé : "
        "la quasi-totalité des assurés en déclarent un ; données simples (1).",
    ),
    DataKind(
        "low_income",
        "Bénéfice de la C2S (révèle de faibles revenus)",
        "reveal",
        "low_income",
        "financial",
        0,
        "Le bénéfice de la complémentaire santé solidaire révèle des revenus inférieurs "
        "au plafond de la C2S : données financières (3), sans diminution (c'est une "
        "indication réelle de la situation financière, pas une simple relation de "
        "client) ni augmentation (aucun montant, compte ou moyen de paiement permettant "
        "une fraude).",
    ),
    DataKind(
        "health",
        "Prise en charge à 100 % au titre d'une ALD (révèle une maladie de longue durée)",
        "reveal",
        "health",
        "sensitive",
        0,
        "Le statut ALD révèle une affection de longue durée, donnée de santé au sens de "
        "l'article 9 du RGPD : données sensibles (4), sans diminution : il affirme une "
        "maladie grave et durable d'une personne nommée, ce n'est pas une simple "
        "supposition, même si la maladie elle-même n'est pas communiquée.",
    ),
    DataKind(
        "irregular_residence",
        "Bénéfice de l'AME (révèle une situation de séjour irrégulier)",
        "reveal",
        "irregular_residence",
        "sensitive",
        0,
        "Le bénéfice de l'aide médicale de l'État révèle un séjour irrégulier. Cette "
        "donnée ne figure pas à l'article 9 du RGPD mais est assimilée à une donnée "
        "sensible (4) : sa divulgation expose la personne à des préjudices aussi graves "
        "(procédure d'éloignement, exploitation, chantage, discrimination) et laisse "
        "supposer une origine étrangère.",
    ),
)


@dataclass(frozen=True)
class ContextFactor:
    key: str
    label: str
    reveals: tuple[str, ...]
    """Present when any of these ``scope.by_reveal`` counts is at least 1."""
    adjustment: int
    why: str


CONTEXT_FACTORS: tuple[ContextFactor, ...] = (
    ContextFactor(
        "nir",
        "Numéro de sécurité sociale (NIR)",
        ("nir",),
        1,
        "Le NIR est un identifiant national dont la loi française encadre strictement "
        "l'usage (article 87 du RGPD, décret n° 2019-341) : il ouvre l'accès aux dossiers "
        "de santé et sociaux de la personne et rend crédibles l'usurpation d'identité et "
        "l'hameçonnage (« renouvelez votre carte Vitale ») : +1.",
    ),
    ContextFactor(
        "vulnerable",
        "Personnes vulnérables (mineurs, plus de 75 ans)",
        ("minor", "over_75"),
        1,
        "Des mineurs ou des personnes de plus de 75 ans sont concernés, public plus "
        "exposé aux escroqueries et moins à même de s'en défendre (caractéristiques "
        "particulières des personnes, au sens de la méthode) : +1 ; pas +3, réservé par "
        "la méthode aux données critiques pour la sécurité des personnes, qu'une "
        "consultation de droits ne contient pas.",
    ),
)

EI_LEVELS = {
    "negligible": (0.25, "négligeable"),
    "limited": (0.5, "limitée"),
    "significant": (0.75, "importante"),
    "maximum": (1.0, "maximale"),
}

RECIPIENTS = {
    "none": (0.0, "Aucune divulgation avérée : les données n'ont pas quitté le service."),
    "known": (
        0.25,
        "Perte de confidentialité : données divulguées à des destinataires connus et "
        "identifiés : +0,25.",
    ),
    "unknown": (
        0.5,
        "Perte de confidentialité : les données ont été obtenues par des personnes non "
        "identifiées au moyen d'accès compromis, et peuvent avoir été transmises à un "
        "nombre inconnu de destinataires : +0,5.",
    ),
}
INTEGRITY = {
    "none": (
        0.0,
        "Pas de perte d'intégrité : le service ne fait que des consultations, "
        "aucune donnée n'a été modifiée.",
    ),
    "recoverable": (0.25, "Données modifiées, dont l'original peut être rétabli : +0,25."),
    "lost": (0.5, "Données modifiées sans possibilité de rétablir l'original : +0,5."),
}
AVAILABILITY = {
    "none": (
        0.0,
        "Pas de perte de disponibilité : les données restent disponibles pour "
        "l'organisme et les personnes.",
    ),
    "temporary": (0.25, "Indisponibilité temporaire des données : +0,25."),
    "permanent": (0.5, "Indisponibilité définitive des données : +0,5."),
}
MALICIOUS = 0.5


class InvalidCircumstances(RempartError):
    """``facts.extra["circumstances"]`` names a level the method does not have."""

    code = "invalid_circumstances"
    status = 422


@dataclass(frozen=True)
class Factor:
    """One term of the formula: its value and why it was chosen (French)."""

    key: str
    label: str
    value: float
    why: str


@dataclass(frozen=True)
class CategoryScore:
    """The DPC of one kind of data present: base, adjustments, bounded score."""

    key: str
    label: str
    persons: int
    enisa_class: str
    base: int
    adjustments: tuple[Factor, ...]
    score: int
    why: str


@dataclass(frozen=True)
class Severity:
    categories: tuple[CategoryScore, ...]
    """Kinds of data present only, in ``DATA_KINDS`` order."""
    dpc: Factor
    ei: Factor
    cb: tuple[Factor, ...]
    """Confidentiality, integrity, availability, malicious intent."""
    score: float
    band: Band
    band_label: str
    summary: str
    """One French sentence: the formula with its values and the band."""

    @property
    def cb_total(self) -> float:
        return sum(f.value for f in self.cb)

    @property
    def confidentiality_lost(self) -> bool:
        return self.cb[0].value > 0

    def to_dict(self) -> dict[str, Any]:
        data = _plain(asdict(self))
        data["cb_total"] = self.cb_total
        return data


@dataclass(frozen=True)
class Decision:
    """An Article 33 or 34 decision, with its reasoning (French)."""

    article: str
    required: bool
    reasoning: str
    exceptions: tuple[Factor, ...] = ()
    """Art. 34(3) exceptions considered (value 1 when one applies)."""

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """As JSON gives it back (lists, not tuples; the band's value): the report's JSON
    file and the document in memory are then equal."""
    plain: dict[str, Any] = json.loads(json.dumps(data))
    return plain


def band_of(score: float) -> tuple[Band, str]:
    """The band of a score and its French label.

    >>> [band_of(s)[0].value for s in (1.99, 2, 3.5, 4)]
    ['low', 'medium', 'high', 'very_high']
    """
    for upper, band, label in BANDS:
        if score < upper:
            return band, label
    raise AssertionError("the last band is unbounded")


def _number(value: float) -> str:
    """French decimal notation: ``4,5``, ``0,25``, ``1``."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text.replace(".", ",")


def _count(n: int) -> str:
    """``510 000``, with the narrow no-break space of French typography."""
    return f"{n:,}".replace(",", "\u202f")


def _persons(facts: IncidentFacts, source: str, key: str) -> int:
    counts = facts.scope.by_category if source == "category" else facts.scope.by_reveal
    return int(counts.get(key, 0))


def _category_scores(facts: IncidentFacts) -> tuple[CategoryScore, ...]:
    present_context = [
        c for c in CONTEXT_FACTORS if any(facts.scope.by_reveal.get(r, 0) > 0 for r in c.reveals)
    ]
    out: list[CategoryScore] = []
    for kind in DATA_KINDS:
        persons = _persons(facts, kind.source, kind.source_key)
        if persons < 1:
            continue
        base = CLASS_BASE[kind.enisa_class]
        adjustments = [Factor(c.key, c.label, float(c.adjustment), c.why) for c in present_context]
        raw = base + kind.nature + sum(int(a.value) for a in adjustments)
        score = min(DPC_MAX, max(DPC_MIN, raw))
        why = kind.why
        if raw != score:
            why += f" Score borné à {score} (la méthode va de 1 à 4)."
        out.append(
            CategoryScore(
                kind.key,
                kind.label,
                persons,
                kind.enisa_class,
                base,
                tuple(adjustments),
                score,
                why,
            )
        )
    return tuple(out)


def _dpc(categories: tuple[CategoryScore, ...]) -> Factor:
    if not categories:
        return Factor(
            "dpc",
            "Contexte du traitement des données (DPC)",
            0.0,
            "Aucune donnée n'a été communiquée (seules des tentatives, refusées ou sans "
            "résultat) : aucune catégorie de données n'est présente, DPC = 0.",
        )
    # On a tie, the most sensitive class explains the score best.
    top = max(categories, key=lambda c: (c.score, c.base))
    adjustments = " ; ".join(f"{a.label} +{_number(a.value)}" for a in top.adjustments)
    how = f"base {top.base} ({CLASS_LABEL[top.enisa_class]})"
    if adjustments:
        how += f", ajustements : {adjustments}"
    return Factor(
        "dpc",
        "Contexte du traitement des données (DPC)",
        float(top.score),
        f"Score le plus élevé parmi les catégories présentes : {top.label}, {how}, "
        f"soit {top.score}.",
    )


def _ei(facts: IncidentFacts) -> Factor:
    # The method rates how easily the persons are identified from the data set itself:
    # a name with a birth date, or a national identifier, identifies outright.
    identity = facts.scope.by_category.get("identity", 0) > 0
    nir = facts.scope.by_category.get("nir", 0) > 0 or facts.scope.by_reveal.get("nir", 0) > 0
    if identity and nir:
        level, why = (
            "maximum",
            "Le NIR, le nom, le prénom et la date de naissance identifient chaque personne "
            "directement et sans ambiguïté.",
        )
    elif identity:
        level, why = (
            "maximum",
            "Le nom, le prénom et la date de naissance identifient directement la personne.",
        )
    elif nir:
        level, why = (
            "significant",
            "Le NIR seul identifie la personne pour quiconque a accès à un fichier qui le "
            "contient (professionnels, employeurs, organismes).",
        )
    else:
        level, why = (
            "negligible",
            "Aucune donnée d'identification n'a été communiquée.",
        )
    value, label = EI_LEVELS[level]
    return Factor(
        "ei", "Facilité d'identification (EI)", value, f"{why} Facilité d'identification {label}."
    )


def _circumstances(facts: IncidentFacts) -> dict[str, Any]:
    exposed = facts.scope.persons > 0
    # In Rempart an incident's definition names accesses used without authority
    # (compromised accounts, stolen sessions, hostile networks, the guard's alerts).
    defined = any(facts.definition.get(k) for k in ("accounts", "networks", "sessions", "alerts"))
    chosen: dict[str, Any] = {
        "recipients": "unknown" if exposed and defined else ("known" if exposed else "none"),
        "malicious": defined,
        "integrity": "none",
        "availability": "none",
    }
    given = facts.extra.get("circumstances") or {}
    check_circumstances(given)
    chosen.update(given)
    if not exposed:
        chosen["recipients"] = "none"
    return chosen


def check_circumstances(given: object) -> None:
    """Refuses circumstances the method does not have (``invalid_circumstances``)."""
    if not isinstance(given, dict):
        raise InvalidCircumstances("circumstances must be an object")
    tables = {"recipients": RECIPIENTS, "integrity": INTEGRITY, "availability": AVAILABILITY}
    for key, value in given.items():
        if key == "malicious":
            if not isinstance(value, bool):
                raise InvalidCircumstances("malicious must be true or false")
        elif key not in tables:
            raise InvalidCircumstances(f"unknown circumstance {key!r}")
        elif value not in tables[key]:
            raise InvalidCircumstances(f"{key} must be one of {sorted(tables[key])}")


def _cb(facts: IncidentFacts) -> tuple[Factor, ...]:
    c = _circumstances(facts)
    conf_value, conf_why = RECIPIENTS[c["recipients"]]
    int_value, int_why = INTEGRITY[c["integrity"]]
    av_value, av_why = AVAILABILITY[c["availability"]]
    if c["malicious"]:
        mal = Factor(
            "malicious",
            "Intention malveillante",
            MALICIOUS,
            "Les accès en cause ont été utilisés sans autorisation, par des tiers, pour "
            "obtenir des données : intention malveillante, +0,5.",
        )
    else:
        mal = Factor(
            "malicious",
            "Intention malveillante",
            0.0,
            "Erreur sans intention de nuire : pas de majoration.",
        )
    return (
        Factor("confidentiality", "Perte de confidentialité", conf_value, conf_why),
        Factor("integrity", "Perte d'intégrité", int_value, int_why),
        Factor("availability", "Perte de disponibilité", av_value, av_why),
        mal,
    )


def assess(facts: IncidentFacts) -> Severity:
    """The severity of the incident's breach, every factor with its reason."""
    categories = _category_scores(facts)
    dpc = _dpc(categories)
    ei = _ei(facts)
    cb = _cb(facts)
    score = round(dpc.value * ei.value + sum(f.value for f in cb), 2)
    band, label = band_of(score)
    summary = (
        f"SE = DPC {TIMES} EI + CB = {_number(dpc.value)} {TIMES} {_number(ei.value)} + "
        f"{_number(sum(f.value for f in cb))} = {_number(score)} : gravité {label}."
    )
    return Severity(categories, dpc, ei, cb, score, band, label, summary)


def cnil_decision(severity: Severity) -> Decision:
    """Art. 33: notify the CNIL unless the breach is unlikely to result in a risk."""
    if severity.band is Band.LOW:
        return Decision(
            "33",
            False,
            f"Gravité {severity.band_label} ({_number(severity.score)}) : la violation "
            "n'est pas susceptible d'engendrer un risque pour les droits et libertés des "
            "personnes ; la notification à la CNIL n'est pas requise (article 33.1). Elle "
            "est inscrite au registre des violations (article 33.5) avec cette analyse.",
        )
    return Decision(
        "33",
        True,
        f"Gravité {severity.band_label} ({_number(severity.score)}) : la violation est "
        "susceptible d'engendrer un risque pour les droits et libertés des personnes ; "
        "elle doit être notifiée à la CNIL dans les 72 heures après en avoir pris "
        "connaissance (article 33.1), et est inscrite au registre (article 33.5).",
    )


def people_decision(severity: Severity, facts: IncidentFacts) -> Decision:
    """Art. 34: tell the people when the risk is high, unless an Art. 34(3) exception holds."""
    high = severity.band in (Band.HIGH, Band.VERY_HIGH)
    reachable = facts.scope.reachable
    addressable = sum(int(v) for v in reachable.values())
    exceptions = (
        Factor(
            "34.3.a",
            "Données rendues incompréhensibles (chiffrement)",
            0.0,
            "Non applicable : les données ont été affichées en clair aux personnes qui "
            "ont utilisé les accès compromis."
            if severity.confidentiality_lost
            else "Non applicable : aucune donnée n'a été divulguée.",
        ),
        Factor(
            "34.3.b",
            "Mesures ultérieures rendant le risque élevé improbable",
            0.0,
            "Non applicable : la suspension des accès arrête l'exposition mais ne reprend "
            "pas les données déjà obtenues ; le risque (hameçonnage, usurpation "
            "d'identité, divulgation) demeure pour les personnes.",
        ),
        Factor(
            "34.3.c",
            "Efforts disproportionnés (communication publique à la place)",
            0.0,
            f"Non applicable : {_count(addressable)} personne(s) peuvent être informées "
            "individuellement, par courrier électronique ou postal, à partir des "
            "coordonnées détenues par l'organisme.",
        ),
    )
    if not high:
        return Decision(
            "34",
            False,
            f"Gravité {severity.band_label} ({_number(severity.score)}) : la violation "
            "n'est pas susceptible d'engendrer un risque élevé pour les droits et libertés "
            "des personnes ; leur information individuelle n'est pas requise (article "
            "34.1). Elle reste possible si l'organisme le juge utile.",
        )
    return Decision(
        "34",
        True,
        f"Gravité {severity.band_label} ({_number(severity.score)}) : la violation est "
        "susceptible d'engendrer un risque élevé pour les droits et libertés des "
        "personnes ; elles doivent en être informées dans les meilleurs délais (article "
        "34.1), en termes clairs et simples, avec les conseils utiles pour se protéger. "
        "Aucune des exceptions de l'article 34.3 ne s'applique.",
        exceptions,
    )
