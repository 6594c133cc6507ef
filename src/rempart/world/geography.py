"""French departments: codes, populations, prefectures, neighbours, and birth-place codes.

Everything here is static reference data, small enough to read: the 101
departments (``01``-``95`` with ``2A``/``2B`` instead of ``20``, and the five
overseas departments ``971``-``976``), their population (INSEE, in thousands,
rounded), their prefecture, which departments share a land border, and the
INSEE codes (COG ``99xxx``) of the countries of birth most common in France.

>>> DEPARTMENT_CODES[:3], DEPARTMENT_CODES[-1], len(DEPARTMENT_CODES)
(('01', '02', '03'), '976', 101)
>>> neighbours("75")
('92', '93', '94')
>>> postcode_prefix("2B"), postcode_prefix("974"), postcode_prefix("33")
('20', '974', '33')
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

__all__ = [
    "COUNTRIES",
    "DEPARTMENTS",
    "DEPARTMENT_CODES",
    "OVERSEAS_CODES",
    "RESORT_CODES",
    "Country",
    "Department",
    "department_index",
    "neighbour_indices",
    "neighbours",
    "population_weights",
    "postcode_prefix",
]


@dataclass(frozen=True, slots=True)
class Department:
    code: str
    name: str
    population: int
    """Inhabitants, in thousands (INSEE, rounded)."""
    prefecture: str


@dataclass(frozen=True, slots=True)
class Country:
    code: str
    """INSEE country code: the three digits after ``99`` in a NIR's place of birth."""
    name: str
    weight: float
    """Relative share among people living in France who were born abroad."""


_DATA: tuple[tuple[str, str, int, str], ...] = (
    ("01", "Ain", 657, "Bourg-en-Bresse"),
    ("02", "Aisne", 526, "Laon"),
    ("03", "Allier", 335, "Moulins"),
    ("04", "Alpes-de-Haute-Provence", 165, "Digne-les-Bains"),
    ("05", "Hautes-Alpes", 141, "Gap"),
    ("06", "Alpes-Maritimes", 1097, "Nice"),
    ("07", "Ardèche", 329, "Privas"),
    ("08", "Ardennes", 270, "Charleville-Mézières"),
    ("09", "Ariège", 154, "Foix"),
    ("10", "Aube", 310, "Troyes"),
    ("11", "Aude", 375, "Carcassonne"),
    ("12", "Aveyron", 279, "Rodez"),
    ("13", "Bouches-du-Rhône", 2043, "Marseille"),
    ("14", "Calvados", 697, "Caen"),
    ("15", "Cantal", 144, "Aurillac"),
    ("16", "Charente", 352, "Angoulême"),
    ("17", "Charente-Maritime", 655, "La Rochelle"),
    ("18", "Cher", 300, "Bourges"),
    ("19", "Corrèze", 240, "Tulle"),
    ("2A", "Corse-du-Sud", 160, "Ajaccio"),
    ("2B", "Haute-Corse", 182, "Bastia"),
    ("21", "Côte-d'Or", 534, "Dijon"),
    ("22", "Côtes-d'Armor", 602, "Saint-Brieuc"),
    ("23", "Creuse", 116, "Guéret"),
    ("24", "Dordogne", 413, "Périgueux"),
    ("25", "Doubs", 545, "Besançon"),
    ("26", "Drôme", 520, "Valence"),
    ("27", "Eure", 600, "Évreux"),
    ("28", "Eure-et-Loir", 431, "Chartres"),
    ("29", "Finistère", 919, "Quimper"),
    ("30", "Gard", 752, "Nîmes"),
    ("31", "Haute-Garonne", 1416, "Toulouse"),
    ("32", "Gers", 192, "Auch"),
    ("33", "Gironde", 1636, "Bordeaux"),
    ("34", "Hérault", 1190, "Montpellier"),
    ("35", "Ille-et-Vilaine", 1094, "Rennes"),
    ("36", "Indre", 218, "Châteauroux"),
    ("37", "Indre-et-Loire", 612, "Tours"),
    ("38", "Isère", 1276, "Grenoble"),
    ("39", "Jura", 259, "Lons-le-Saunier"),
    ("40", "Landes", 418, "Mont-de-Marsan"),
    ("41", "Loir-et-Cher", 329, "Blois"),
    ("42", "Loire", 767, "Saint-Étienne"),
    ("43", "Haute-Loire", 228, "Le Puy-en-Velay"),
    ("44", "Loire-Atlantique", 1449, "Nantes"),
    ("45", "Loiret", 682, "Orléans"),
    ("46", "Lot", 174, "Cahors"),
    ("47", "Lot-et-Garonne", 331, "Agen"),
    ("48", "Lozère", 76, "Mende"),
    ("49", "Maine-et-Loire", 822, "Angers"),
    ("50", "Manche", 492, "Saint-Lô"),
    ("51", "Marne", 566, "Châlons-en-Champagne"),
    ("52", "Haute-Marne", 170, "Chaumont"),
    ("53", "Mayenne", 307, "Laval"),
    ("54", "Meurthe-et-Moselle", 732, "Nancy"),
    ("55", "Meuse", 182, "Bar-le-Duc"),
    ("56", "Morbihan", 764, "Vannes"),
    ("57", "Moselle", 1046, "Metz"),
    ("58", "Nièvre", 200, "Nevers"),
    ("59", "Nord", 2611, "Lille"),
    ("60", "Oise", 830, "Beauvais"),
    ("61", "Orne", 278, "Alençon"),
    ("62", "Pas-de-Calais", 1459, "Arras"),
    ("63", "Puy-de-Dôme", 664, "Clermont-Ferrand"),
    ("64", "Pyrénées-Atlantiques", 687, "Pau"),
    ("65", "Hautes-Pyrénées", 229, "Tarbes"),
    ("66", "Pyrénées-Orientales", 485, "Perpignan"),
    ("67", "Bas-Rhin", 1152, "Strasbourg"),
    ("68", "Haut-Rhin", 767, "Colmar"),
    ("69", "Rhône", 1883, "Lyon"),
    ("70", "Haute-Saône", 233, "Vesoul"),
    ("71", "Saône-et-Loire", 550, "Mâcon"),
    ("72", "Sarthe", 566, "Le Mans"),
    ("73", "Savoie", 439, "Chambéry"),
    ("74", "Haute-Savoie", 835, "Annecy"),
    ("75", "Paris", 2133, "Paris"),
    ("76", "Seine-Maritime", 1255, "Rouen"),
    ("77", "Seine-et-Marne", 1435, "Melun"),
    ("78", "Yvelines", 1448, "Versailles"),
    ("79", "Deux-Sèvres", 375, "Niort"),
    ("80", "Somme", 570, "Amiens"),
    ("81", "Tarn", 390, "Albi"),
    ("82", "Tarn-et-Garonne", 262, "Montauban"),
    ("83", "Var", 1085, "Toulon"),
    ("84", "Vaucluse", 562, "Avignon"),
    ("85", "Vendée", 690, "La Roche-sur-Yon"),
    ("86", "Vienne", 439, "Poitiers"),
    ("87", "Haute-Vienne", 372, "Limoges"),
    ("88", "Vosges", 363, "Épinal"),
    ("89", "Yonne", 335, "Auxerre"),
    ("90", "Territoire de Belfort", 141, "Belfort"),
    ("91", "Essonne", 1306, "Évry-Courcouronnes"),
    ("92", "Hauts-de-Seine", 1624, "Nanterre"),
    ("93", "Seine-Saint-Denis", 1655, "Bobigny"),
    ("94", "Val-de-Marne", 1407, "Créteil"),
    ("95", "Val-d'Oise", 1249, "Cergy"),
    ("971", "Guadeloupe", 384, "Basse-Terre"),
    ("972", "Martinique", 361, "Fort-de-France"),
    ("973", "Guyane", 286, "Cayenne"),
    ("974", "La Réunion", 868, "Saint-Denis"),
    ("976", "Mayotte", 256, "Mamoudzou"),
)

DEPARTMENTS: tuple[Department, ...] = tuple(Department(*row) for row in _DATA)
DEPARTMENT_CODES: tuple[str, ...] = tuple(d.code for d in DEPARTMENTS)
OVERSEAS_CODES: tuple[str, ...] = tuple(c for c in DEPARTMENT_CODES if len(c) == 3)

# Land borders. Symmetric (a unit test checks it); overseas departments have none.
_NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "01": ("38", "39", "69", "71", "73", "74"),
    "02": ("08", "51", "59", "60", "77", "80"),
    "03": ("18", "23", "42", "58", "63", "71"),
    "04": ("05", "06", "26", "83", "84"),
    "05": ("04", "26", "38", "73"),
    "06": ("04", "83"),
    "07": ("26", "30", "38", "42", "43", "48", "84"),
    "08": ("02", "51", "55"),
    "09": ("11", "31", "66"),
    "10": ("21", "51", "52", "77", "89"),
    "11": ("09", "31", "34", "66", "81"),
    "12": ("15", "30", "34", "46", "48", "81", "82"),
    "13": ("30", "83", "84"),
    "14": ("27", "50", "61"),
    "15": ("12", "19", "43", "46", "48", "63"),
    "16": ("17", "24", "79", "86", "87"),
    "17": ("16", "24", "33", "79", "85"),
    "18": ("03", "23", "36", "41", "45", "58"),
    "19": ("15", "23", "24", "46", "63", "87"),
    "2A": ("2B",),
    "2B": ("2A",),
    "21": ("10", "39", "52", "58", "70", "71", "89"),
    "22": ("29", "35", "56"),
    "23": ("03", "18", "19", "36", "63", "87"),
    "24": ("16", "17", "19", "33", "46", "47", "87"),
    "25": ("39", "70", "90"),
    "26": ("04", "05", "07", "38", "84"),
    "27": ("14", "28", "60", "61", "76", "78", "95"),
    "28": ("27", "41", "45", "61", "72", "78", "91"),
    "29": ("22", "56"),
    "30": ("07", "12", "13", "34", "48", "84"),
    "31": ("09", "11", "32", "65", "81", "82"),
    "32": ("31", "40", "47", "64", "65", "82"),
    "33": ("17", "24", "40", "47"),
    "34": ("11", "12", "30", "81"),
    "35": ("22", "44", "49", "50", "53", "56"),
    "36": ("18", "23", "37", "41", "86", "87"),
    "37": ("36", "41", "49", "72", "86"),
    "38": ("01", "05", "07", "26", "42", "69", "73"),
    "39": ("01", "21", "25", "70", "71"),
    "40": ("32", "33", "47", "64"),
    "41": ("18", "28", "36", "37", "45", "72"),
    "42": ("03", "07", "38", "43", "63", "69", "71"),
    "43": ("07", "15", "42", "48", "63"),
    "44": ("35", "49", "56", "85"),
    "45": ("18", "28", "41", "58", "77", "89", "91"),
    "46": ("12", "15", "19", "24", "47", "82"),
    "47": ("24", "32", "33", "40", "46", "82"),
    "48": ("07", "12", "15", "30", "43"),
    "49": ("35", "37", "44", "53", "72", "79", "85", "86"),
    "50": ("14", "35", "53", "61"),
    "51": ("02", "08", "10", "52", "55", "77"),
    "52": ("10", "21", "51", "55", "70", "88"),
    "53": ("35", "49", "50", "61", "72"),
    "54": ("55", "57", "67", "88"),
    "55": ("08", "51", "52", "54", "88"),
    "56": ("22", "29", "35", "44"),
    "57": ("54", "67"),
    "58": ("03", "18", "21", "45", "71", "89"),
    "59": ("02", "62", "80"),
    "60": ("02", "27", "76", "77", "80", "95"),
    "61": ("14", "27", "28", "50", "53", "72"),
    "62": ("59", "80"),
    "63": ("03", "15", "19", "23", "42", "43"),
    "64": ("32", "40", "65"),
    "65": ("31", "32", "64"),
    "66": ("09", "11"),
    "67": ("54", "57", "68", "88"),
    "68": ("67", "88", "90"),
    "69": ("01", "38", "42", "71"),
    "70": ("21", "25", "39", "52", "88", "90"),
    "71": ("01", "03", "21", "39", "42", "58", "69"),
    "72": ("28", "37", "41", "49", "53", "61"),
    "73": ("01", "05", "38", "74"),
    "74": ("01", "73"),
    "75": ("92", "93", "94"),
    "76": ("27", "60", "80"),
    "77": ("02", "10", "45", "51", "60", "89", "91", "93", "94", "95"),
    "78": ("27", "28", "91", "92", "95"),
    "79": ("16", "17", "49", "85", "86"),
    "80": ("02", "59", "60", "62", "76"),
    "81": ("11", "12", "31", "34", "82"),
    "82": ("12", "31", "32", "46", "47", "81"),
    "83": ("04", "06", "13", "84"),
    "84": ("04", "07", "13", "26", "30", "83"),
    "85": ("17", "44", "49", "79"),
    "86": ("16", "36", "37", "49", "79", "87"),
    "87": ("16", "19", "23", "24", "36", "86"),
    "88": ("52", "54", "55", "67", "68", "70", "90"),
    "89": ("10", "21", "45", "58", "77"),
    "90": ("25", "68", "70", "88"),
    "91": ("28", "45", "77", "78", "92", "94"),
    "92": ("75", "78", "91", "93", "94", "95"),
    "93": ("75", "77", "92", "94", "95"),
    "94": ("75", "77", "91", "92", "93"),
    "95": ("27", "60", "77", "78", "92", "93"),
    "971": (),
    "972": (),
    "973": (),
    "974": (),
    "976": (),
}

COUNTRIES: tuple[Country, ...] = (
    Country("352", "Algérie", 12.5),
    Country("350", "Maroc", 11.5),
    Country("139", "Portugal", 7.5),
    Country("351", "Tunisie", 4.5),
    Country("127", "Italie", 3.5),
    Country("208", "Turquie", 3.5),
    Country("134", "Espagne", 3.0),
    Country("132", "Royaume-Uni", 1.8),
    Country("109", "Allemagne", 1.8),
    Country("131", "Belgique", 1.7),
    Country("341", "Sénégal", 2.2),
    Country("326", "Côte d'Ivoire", 2.0),
    Country("335", "Mali", 1.6),
    Country("322", "Cameroun", 1.6),
    Country("333", "Madagascar", 1.5),
    Country("114", "Roumanie", 1.5),
    Country("122", "Pologne", 1.0),
    Country("216", "Chine", 1.3),
    Country("243", "Vietnam", 0.9),
    Country("410", "Haïti", 1.0),
    Country("397", "Comores", 0.9),
    Country("140", "Suisse", 0.8),
    Country("404", "États-Unis", 0.6),
    Country("155", "Ukraine", 0.8),
    Country("205", "Liban", 0.6),
    Country("416", "Brésil", 0.5),
    Country("437", "Suriname", 0.1),
    Country("438", "Dominique", 0.05),
)

# Departments whose resorts draw tourists by the hundred thousand in the holidays: the
# coasts (Channel, Atlantic, Mediterranean, Corsica, the islands overseas) and the
# mountains (Alps, Pyrenees, Vosges, Massif central). Where a regional seasonal surge
# can happen: the pharmacies and doctors of a resort see far more patients who live
# elsewhere.
RESORT_CODES: tuple[str, ...] = (
    "04", "05", "06", "09", "11", "14", "15", "17", "22", "29", "2A", "2B", "30", "33",
    "34", "38", "40", "44", "50", "56", "63", "64", "65", "66", "73", "74", "76", "80",
    "83", "85", "88", "971", "972", "974",
)  # fmt: skip

# Where people born abroad and living overseas come from (codes in COUNTRIES).
OVERSEAS_BIRTH_COUNTRIES: dict[str, tuple[tuple[str, float], ...]] = {
    "971": (("410", 6.0), ("438", 2.0), ("132", 0.5)),
    "972": (("410", 4.0), ("438", 1.0), ("132", 0.5)),
    "973": (("410", 4.0), ("437", 4.0), ("416", 4.0)),
    "974": (("333", 5.0), ("397", 3.0)),
    "976": (("397", 9.0), ("333", 1.0)),
}


@cache
def department_index(code: str) -> int:
    """Position of a department code in :data:`DEPARTMENT_CODES` (``KeyError``-like ValueError)."""
    return DEPARTMENT_CODES.index(code)


def neighbours(code: str) -> tuple[str, ...]:
    """Departments sharing a land border with ``code``, sorted by code."""
    return tuple(sorted(_NEIGHBOURS[code]))


@cache
def neighbour_indices() -> tuple[tuple[int, ...], ...]:
    """For each department index, the indices of its neighbours."""
    return tuple(tuple(department_index(n) for n in neighbours(code)) for code in DEPARTMENT_CODES)


def population_weights() -> npt.NDArray[np.float64]:
    """Each department's share of the population, in :data:`DEPARTMENT_CODES` order."""
    population = np.array([d.population for d in DEPARTMENTS], dtype=np.float64)
    weights: npt.NDArray[np.float64] = population / population.sum()
    return weights


def postcode_prefix(code: str) -> str:
    """The first digits of the department's postcodes: ``20`` for Corsica, ``97x`` overseas."""
    return "20" if code in ("2A", "2B") else code


def raw_neighbours() -> dict[str, tuple[str, ...]]:
    """The border table as written, for the symmetry test."""
    return dict(_NEIGHBOURS)
