"""How the console's pages write times and numbers (French, Paris time)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

__all__ = ["PARIS", "number", "when"]

PARIS = ZoneInfo("Europe/Paris")


def when(moment: datetime | None, *, seconds: bool = True) -> str:
    """``04/12/2026 14:03:05`` in Paris time; empty for None."""
    if moment is None:
        return ""
    return moment.astimezone(PARIS).strftime("%d/%m/%Y %H:%M:%S" if seconds else "%d/%m/%Y %H:%M")


def number(value: float, decimals: int = 0) -> str:
    r"""French digits: a narrow no-break space between thousands, a decimal comma.

    >>> number(1234567), number(2.5, 1)
    ('1\u202f234\u202f567', '2,5')
    """
    text = f"{value:,.{decimals}f}"
    return text.replace(",", "\u202f").replace(".", ",")
