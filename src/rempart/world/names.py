"""Name, street, town and e-mail vocabularies, drawn from Faker's ``fr_FR`` providers.

Faker is used for its word lists only: calling it once per row is far too slow
for a million people, so the generator samples indices into these pools with a
seeded NumPy generator and assembles strings with Arrow compute kernels.

E-mail domains use the reserved ``.example`` top-level domain (RFC 2606):
they keep the mix of French providers recognisable (``orange.example``) while
guaranteeing that a synthetic world can never mail a real mailbox.

>>> slug("Lefèvre"), slug("Da Silva"), slug("Anaïs")
('lefevre', 'dasilva', 'anais')
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from faker.providers.address.fr_FR import Provider as AddressProvider
from faker.providers.person.fr_FR import Provider as PersonProvider

__all__ = [
    "EMAIL_DOMAINS",
    "PROFESSIONAL_DOMAINS",
    "STREET_KINDS",
    "NamePools",
    "name_pools",
    "slug",
]

# Personal mailbox providers (share of French personal addresses, roughly), on .example.
EMAIL_DOMAINS: tuple[tuple[str, float], ...] = (
    ("gmail.example", 0.36),
    ("orange.example", 0.17),
    ("hotmail.example", 0.12),
    ("free.example", 0.08),
    ("yahoo.example", 0.06),
    ("laposte.example", 0.05),
    ("sfr.example", 0.05),
    ("wanadoo.example", 0.05),
    ("outlook.example", 0.03),
    ("icloud.example", 0.03),
)

# Secure-messaging style domains per profession (MSSanté look-alikes, on .example).
PROFESSIONAL_DOMAINS: dict[str, str] = {
    "generaliste": "medecin.mssante.example",
    "specialiste": "medecin.mssante.example",
    "pharmacie": "pharmacien.mssante.example",
    "infirmier": "infirmier.mssante.example",
    "kinesitherapeute": "masseur-kinesitherapeute.mssante.example",
    "dentiste": "chirurgien-dentiste.mssante.example",
    "sage_femme": "sage-femme.mssante.example",
    "laboratoire": "biologiste.mssante.example",
    "etablissement": "ght.mssante.example",
}

# Faker's street prefixes (rue, chemin, avenue, boulevard, with rue twice as
# likely), plus a few very common French ones Faker lacks.
STREET_KINDS: tuple[str, ...] = (
    *AddressProvider.street_prefixes,
    "rue",
    "allée",
    "impasse",
    "place",
    "route",
)


def slug(text: str) -> str:
    """Lower-case ASCII without spaces or punctuation, for e-mail local parts."""
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_only = decomposed.encode("ascii", "ignore").decode("ascii").lower()
    return "".join(ch for ch in ascii_only if ch.isalnum())


def _unique(words: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(words))


@dataclass(frozen=True)
class NamePools:
    """The vocabularies as Arrow arrays (for ``take``) and their sampling weights."""

    male: pa.Array
    female: pa.Array
    last: pa.Array
    male_slug: pa.Array
    female_slug: pa.Array
    last_slug: pa.Array
    last_weights: npt.NDArray[np.float64]
    """Faker lists French surnames by frequency: a Zipf-like weight keeps that order."""
    male_words: tuple[str, ...]
    female_words: tuple[str, ...]
    last_words: tuple[str, ...]
    city_suffixes: tuple[str, ...]


@cache
def name_pools() -> NamePools:
    male = _unique(PersonProvider.first_names_male)
    female = _unique(PersonProvider.first_names_female)
    last = _unique(PersonProvider.last_names)
    ranks = np.arange(1, len(last) + 1, dtype=np.float64)
    weights = 1.0 / (ranks + 8.0) ** 0.75
    return NamePools(
        male=pa.array(male, pa.string()),
        female=pa.array(female, pa.string()),
        last=pa.array(last, pa.string()),
        male_slug=pa.array([slug(w) for w in male], pa.string()),
        female_slug=pa.array([slug(w) for w in female], pa.string()),
        last_slug=pa.array([slug(w) for w in last], pa.string()),
        last_weights=weights / weights.sum(),
        male_words=male,
        female_words=female,
        last_words=last,
        city_suffixes=tuple(AddressProvider.city_suffixes),
    )
