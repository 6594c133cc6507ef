"""What a psycopg connection really sends and receives, from libpq's own protocol trace.

``PQtrace`` lists every message: ``F`` sent by the client, ``B`` sent back by the server.
A *round trip* is a run of messages sent before the next reply; a *statement* is one
``Execute`` (extended protocol) or ``Query`` (simple protocol). Counted this way, nothing
the driver or a layer above it does is missed or double-counted (implicit ``BEGIN`` and
``COMMIT`` included), whatever runs the statement: SQLAlchemy, or psycopg directly.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

__all__ = ["Trace", "traced"]


class Trace:
    """The messages of one traced stretch of one connection: ``"F Parse"``, ``"B DataRow"``…"""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def round_trips(self) -> int:
        trips, previous = 0, "B"
        for message in self.messages:
            if message.startswith("F") and previous == "B":
                trips += 1
            previous = message[0]
        return trips

    def statements(self) -> int:
        return sum(message in ("F Execute", "F Query") for message in self.messages)


def _read(path: Path) -> list[str]:
    return [
        f"{fields[0]} {fields[2]}"
        for fields in (line.split("\t") for line in path.read_text().splitlines())
        if fields[0] in ("F", "B") and len(fields) > 2  # a query's text spans lines
    ]


@contextmanager
def traced(connection: psycopg.Connection[Any]) -> Iterator[Trace]:
    """Trace ``connection`` while the block runs; the :class:`Trace` is filled at its end."""
    trace = Trace()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "trace.txt"
        with path.open("w") as handle:
            connection.pgconn.trace(handle.fileno())
            connection.pgconn.set_trace_flags(
                psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE
            )
            try:
                yield trace
            finally:
                connection.pgconn.untrace()
        trace.messages = _read(path)
