"""The ``insured.pseudonym`` column: each person's NIR under the trail's keyed pseudonym.

The audit trail names a person only by pseudonym; scoping a breach joins those
pseudonyms to persons through this indexed column, so its cost follows the trail
rows read and the persons exposed, never the size of the population (which a
recomputation of every pseudonym would cost: 68 million HMACs in a real deployment).
The world load fills it in the load's own transaction; ``backfill`` completes the
rows loaded before the column existed (``rempart db upgrade`` runs it).
"""

from __future__ import annotations

import pyarrow as pa
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from rempart.nir import pseudonymize
from rempart.store.models import Insured

__all__ = ["backfill", "with_pseudonyms"]

_BATCH = 10_000


def with_pseudonyms(insured: pa.Table, key: bytes) -> pa.Table:
    """The world's insured table with its ``pseudonym`` column computed."""
    pseudonyms = pa.array(
        [pseudonymize(nir, key) for nir in insured.column("nir").to_pylist()], pa.string()
    )
    if "pseudonym" in insured.column_names:
        insured = insured.drop_columns(["pseudonym"])
    return insured.append_column("pseudonym", pseudonyms)


def backfill(engine: Engine, key: bytes) -> int:
    """Compute the pseudonym of every person who has none; returns how many. Cheap when
    there are none (the unique index answers ``IS NULL``); each batch commits on its own,
    so an interrupted backfill resumes where it stopped."""
    done = 0
    while True:
        with Session(engine) as session, session.begin():
            nirs = session.scalars(
                select(Insured.nir).where(Insured.pseudonym.is_(None)).limit(_BATCH)
            ).all()
            if not nirs:
                return done
            session.execute(
                update(Insured),
                [{"nir": nir, "pseudonym": pseudonymize(nir, key)} for nir in nirs],
            )
            done += len(nirs)
