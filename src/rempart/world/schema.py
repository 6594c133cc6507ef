"""The world format (DESIGN.md, "World format"): one Arrow schema per Parquet file.

This is the contract that the generator writes, the loader and the guard read,
and that an insurer's own export must follow.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "CARE",
    "CLAIMS",
    "INSURED",
    "LABELS",
    "LOOKUPS",
    "PROFESSIONALS",
    "PROFESSIONS",
    "TABLES",
]

PROFESSIONS: tuple[str, ...] = (
    "generaliste",
    "specialiste",
    "pharmacie",
    "infirmier",
    "kinesitherapeute",
    "dentiste",
    "sage_femme",
    "laboratoire",
    "etablissement",
)

INSURED = pa.schema(
    [
        pa.field("nir", pa.string(), nullable=False),
        pa.field("birth_date", pa.date32(), nullable=False),
        pa.field("sex", pa.int8(), nullable=False),
        pa.field("last_name", pa.string(), nullable=False),
        pa.field("first_name", pa.string(), nullable=False),
        pa.field("department", pa.string(), nullable=False),
        pa.field("treating_doctor", pa.string(), nullable=True),
        pa.field("c2s", pa.bool_(), nullable=False),
        pa.field("ame", pa.bool_(), nullable=False),
        pa.field("ald", pa.bool_(), nullable=False),
        pa.field("email", pa.string(), nullable=True),
        pa.field("street", pa.string(), nullable=False),
        pa.field("postcode", pa.string(), nullable=False),
        pa.field("city", pa.string(), nullable=False),
    ]
)

PROFESSIONALS = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("rpps", pa.string(), nullable=True),
        pa.field("profession", pa.string(), nullable=False),
        pa.field("department", pa.string(), nullable=False),
        pa.field("organization_id", pa.string(), nullable=True),
        pa.field("last_name", pa.string(), nullable=False),
        pa.field("first_name", pa.string(), nullable=False),
        pa.field("email", pa.string(), nullable=False),
    ]
)

CARE = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("nir", pa.string(), nullable=False),
        pa.field("since", pa.date32(), nullable=False),
    ]
)

CLAIMS = pa.schema(
    [
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("nir", pa.string(), nullable=False),
    ]
)

LOOKUPS = pa.schema(
    [
        pa.field("event_id", pa.int64(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("nir", pa.string(), nullable=False),
        pa.field("birth_date", pa.string(), nullable=True),
        pa.field("ip", pa.string(), nullable=False),
        pa.field("user_agent", pa.string(), nullable=False),
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("auth", pa.string(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
    ]
)

LABELS = pa.schema(
    [
        pa.field("event_id", pa.int64(), nullable=False),
        pa.field("attack", pa.string(), nullable=True),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "insured": INSURED,
    "professionals": PROFESSIONALS,
    "care": CARE,
    "claims": CLAIMS,
    "lookups": LOOKUPS,
    "labels": LABELS,
}
