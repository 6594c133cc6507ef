"""The address block of a letter, laid out to the French postal standard NF Z10-011.

The standard gives an address at most 6 lines of at most 38 characters, each line a
role: 1 the recipient, 2 and 3 complements (apartment, building), 4 the number and
street, 5 a further distribution mention (lieu-dit, BP), 6 the postcode and the
locality. Lines 4 to 6 carry no punctuation; the last lines are in capitals without
accents so that the sorting machines read them. A role with nothing to say is left
out (the numbering is about roles, not print positions), so the printed block keeps
the order but may have 3 or 4 lines.

A line too long is shortened only then, and only by the standard's abbreviations
(street types, titles, SAINT → ST on the city line), flagged ``abbreviated``; a line
still too long is cut at 38 characters and flagged ``truncated``: the campaign writes
the flags in the print manifest so that someone looks at those envelopes.

A person whose address cannot be laid out (no street, a postcode that is not 5
digits, no city, no name) gets an :class:`AddressError` with a stable code: the
campaign reports them unreachable with that code instead of printing a letter that
the post cannot deliver.

>>> block = address_block(sex=2, first_name="Hélène", last_name="Lefèvre",
...                       street="12, rue de l'Église", postcode="69003", city="Lyon")
>>> block.lines
('Madame Hélène LEFÈVRE', '12 RUE DE L EGLISE', '69003 LYON')
>>> block.flags
()
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rempart.errors import RempartError

__all__ = [
    "ABBREVIATED",
    "MAX_LINE",
    "MAX_LINES",
    "MINOR_LINE",
    "TRUNCATED",
    "AddressBlock",
    "AddressError",
    "address_block",
    "postal_text",
]

MAX_LINES = 6
MAX_LINE = 38
ABBREVIATED = "abbreviated"
TRUNCATED = "truncated"

MINOR_LINE = "Aux représentants légaux de"
"""Line 1 of a minor's letter. The child's name goes on its own line below (the
standard's line 2, "complément d'identification du destinataire"): the prefix and a
name together rarely fit 38 characters, and a prefix that pushed the name off, or an
abbreviated "AUX REP LEG DE", would be worse than one more line. The block then has
4 lines of the 6 allowed."""

# The street types of the standard's list (NF Z10-011 annex, as La Poste applies it):
# tried first, since the type is the word the standard expects shortened first.
STREET_TYPES: dict[str, str] = {
    "ALLEE": "ALL",
    "ALLEES": "ALL",
    "AVENUE": "AV",
    "BOULEVARD": "BD",
    "CARREFOUR": "CAR",
    "CHAUSSEE": "CHS",
    "CHEMIN": "CHE",
    "CHEMINEMENT": "CHEM",
    "CITE": "CITE",
    "CORNICHE": "COR",
    "COURS": "CRS",
    "DOMAINE": "DOM",
    "DESCENTE": "DSC",
    "ESPLANADE": "ESP",
    "FAUBOURG": "FG",
    "GRANDE RUE": "GR",
    "HAMEAU": "HAM",
    "IMPASSE": "IMP",
    "LOTISSEMENT": "LOT",
    "MONTEE": "MTE",
    "PASSAGE": "PAS",
    "PLACE": "PL",
    "PLACETTE": "PLT",
    "PROMENADE": "PROM",
    "QUAI": "QUAI",
    "QUARTIER": "QUA",
    "RESIDENCE": "RES",
    "ROND POINT": "RPT",
    "ROUTE": "RTE",
    "RUELLE": "RLE",
    "SENTIER": "SEN",
    "SQUARE": "SQ",
    "TRAVERSE": "TRA",
    "VILLA": "VLA",
    "VILLAGE": "VLGE",
}

# Titles and common words of street names, from the same list: tried after the type,
# from the right of the line (the name's end is what the sorting needs least).
STREET_WORDS: dict[str, str] = {
    "ADJUDANT": "ADJ",
    "AMIRAL": "AMI",
    "ANCIEN": "ANC",
    "ANCIENNE": "ANC",
    "APPARTEMENT": "APP",
    "BATIMENT": "BAT",
    "CAPITAINE": "CAP",
    "COLONEL": "COL",
    "COMMANDANT": "CDT",
    "DOCTEUR": "DR",
    "ENSEIGNE": "ENS",
    "ESCALIER": "ESC",
    "GENERAL": "GAL",
    "GRAND": "GD",
    "GRANDE": "GDE",
    "IMMEUBLE": "IMM",
    "LIEUTENANT": "LT",
    "MADAME": "MME",
    "MADEMOISELLE": "MLLE",
    "MARECHAL": "MAL",
    "MONSEIGNEUR": "MGR",
    "MONSIEUR": "M",
    "NOTRE DAME": "ND",
    "PETIT": "PT",
    "PETITE": "PTE",
    "PRESIDENT": "PDT",
    "PROFESSEUR": "PR",
    "SAINT": "ST",
    "SAINTE": "STE",
    "SERGENT": "SGT",
}

CITY_WORDS: dict[str, str] = {
    "SAINT": "ST",
    "SAINTE": "STE",
    "SAINTS": "STS",
    "SAINTES": "STES",
}

# What NFKD does not take apart into a letter and its accents.
_LIGATURES = str.maketrans(
    {
        "œ": "oe",
        "Œ": "OE",
        "æ": "ae",
        "Æ": "AE",
        "ß": "ss",
        "ø": "o",
        "Ø": "O",
        "đ": "d",
        "Đ": "D",
        "ł": "l",
        "Ł": "L",
        "\u0131": "i",  # dotless i (Turkish names)
    }
)
_NOT_POSTAL = re.compile(r"[^A-Z0-9]+")
_SPACES = re.compile(r"\s+")
_CEDEX = re.compile(r"\bCEDEX( \d{1,2})?$")


@dataclass(frozen=True)
class AddressBlock:
    """The printed lines, in order (3 to 4 here, never more than 6), and what was done
    to make them fit (``abbreviated``, ``truncated``)."""

    lines: tuple[str, ...]
    flags: tuple[str, ...]


class AddressError(RempartError):
    """The address cannot be laid out; ``code`` says why: ``missing_name``,
    ``missing_street``, ``invalid_postcode`` (not 5 digits), ``missing_city``."""

    code = "invalid_address"
    status = 422


def postal_text(value: str) -> str:
    """Capitals without accents or punctuation, single spaces: lines 4 to 6.

    >>> postal_text("  Bd  Saint-Michel, bât. B ")
    'BD SAINT MICHEL BAT B'
    >>> postal_text("Cœur-d'Œuvre")
    'COEUR D OEUVRE'
    """
    decomposed = unicodedata.normalize("NFKD", value.translate(_LIGATURES))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NOT_POSTAL.sub(" ", bare.upper()).strip()


def _recipient_text(value: str) -> str:
    """Line 1 keeps accents and hyphens (the standard allows them there) but loses
    control and invisible characters, and runs of spaces."""
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in unicodedata.normalize("NFC", value)
        if ch.isspace() or not unicodedata.category(ch).startswith("C")
    )
    return _SPACES.sub(" ", kept).strip()


def _abbreviate(line: str, limit: int, tables: tuple[dict[str, str], ...], flags: set[str]) -> str:
    """Replace listed words, table by table and from the right, until the line fits;
    then cut it. Nothing is touched on a line that already fits."""
    if len(line) <= limit:
        return line
    for table in tables:
        # Longest first so that "ROND POINT" wins over a single word of it.
        for word in sorted(table, key=len, reverse=True):
            pattern = re.compile(rf"\b{word}\b")
            while len(line) > limit:
                matches = list(pattern.finditer(line))
                if not matches or table[word] == word:
                    break
                last = matches[-1]
                line = line[: last.start()] + table[word] + line[last.end() :]
                flags.add(ABBREVIATED)
            if len(line) <= limit:
                return line
    flags.add(TRUNCATED)
    return line[:limit].rstrip()


def _recipient_line(sex: int, first_name: str, last_name: str, flags: set[str]) -> str:
    """``Madame Hélène LEFÈVRE``; too long: civility ``MME``/``M``, then the first
    names as initials, then the line cut."""
    last = _recipient_text(last_name).upper()
    first = _recipient_text(first_name)
    civility = {1: "Monsieur", 2: "Madame"}.get(sex, "")
    short_civility = {1: "M", 2: "MME"}.get(sex, "")

    def join(*parts: str) -> str:
        return " ".join(part for part in parts if part)

    line = join(civility, first, last)
    if len(line) <= MAX_LINE:
        return line
    flags.add(ABBREVIATED)
    line = join(short_civility, first, last)
    if len(line) <= MAX_LINE:
        return line
    initials = "-".join(f"{part[0]}" for part in re.split(r"[- ]+", first) if part)
    line = join(short_civility, initials, last)
    if len(line) <= MAX_LINE:
        return line
    flags.add(TRUNCATED)
    return line[:MAX_LINE].rstrip()


def _city_line(postcode: str, city: str, flags: set[str]) -> str:
    code = re.sub(r"\s+", "", postcode)
    if not re.fullmatch(r"[0-9]{5}", code):
        raise AddressError("the postcode is not 5 digits", code="invalid_postcode")
    name = postal_text(city)
    if not name:
        raise AddressError("the address has no city", code="missing_city")
    limit = MAX_LINE - len(code) - 1
    if len(name) > limit:
        # CEDEX and its number are what routes a business address: they stay whole.
        cedex = _CEDEX.search(name)
        tail = cedex.group(0) if cedex else ""
        head = name[: cedex.start()].rstrip() if cedex else name
        head = _abbreviate(head, limit - len(tail) - (1 if tail else 0), (CITY_WORDS,), flags)
        name = f"{head} {tail}".strip() if head else tail[:limit]
    return f"{code} {name}"


def address_block(
    *,
    sex: int,
    first_name: str,
    last_name: str,
    street: str,
    postcode: str,
    city: str,
    minor: bool = False,
) -> AddressBlock:
    """Lay out one person's address (NF Z10-011).

    A minor's letter goes to their legal guardians: :data:`MINOR_LINE`, then the
    child's first name and LAST NAME (no civility: a child is not "Madame").

    >>> address_block(sex=1, first_name="Léo", last_name="Martin", minor=True,
    ...               street="3 place de la Mairie", postcode="13100",
    ...               city="Aix-en-Provence").lines
    ('Aux représentants légaux de', 'Léo MARTIN', '3 PLACE DE LA MAIRIE', '13100 AIX EN PROVENCE')
    >>> block = address_block(sex=2, first_name="Anne", last_name="Roy",
    ...     street="145 boulevard du Maréchal de Lattre de Tassigny",
    ...     postcode="97400", city="Saint-Denis")
    >>> block.lines[1], block.flags
    ('145 BD DU MAL DE LATTRE DE TASSIGNY', ('abbreviated',))
    """
    flags: set[str] = set()
    if not _recipient_text(last_name):
        raise AddressError("the address has no recipient name", code="missing_name")
    street_line = postal_text(street)
    if not street_line:
        raise AddressError("the address has no street", code="missing_street")
    lines: list[str] = []
    if minor:
        lines.append(MINOR_LINE)
        lines.append(_recipient_line(0, first_name, last_name, flags))
    else:
        lines.append(_recipient_line(sex, first_name, last_name, flags))
    lines.append(_abbreviate(street_line, MAX_LINE, (STREET_TYPES, STREET_WORDS), flags))
    lines.append(_city_line(postcode, city, flags))
    order = (ABBREVIATED, TRUNCATED)
    return AddressBlock(lines=tuple(lines), flags=tuple(f for f in order if f in flags))
